//! Trains: seats on route segments, end to end on real Redis. Buyers ask
//! nodes for (from, to, class, passengers) on a train run; the specs here
//! are the issue's: no seat-segment is ever sold twice, every "sold out for
//! this segment" was true when it was given (checked against a replay of
//! the orders), and a segment known sold out is refused from memory.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failure

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use hyper::StatusCode;
use spike_core::order::OrderState;
use spike_core::{
    CentralStock, ClassOccupancy, EventId, Leg, Occupancy, OrderStream, Passengers, SaleConfig,
    SeatPreference, StreamEntry, TrainLayout, TrainRun,
};
use spike_redis::RedisCentral;
use spike_testkit::{unique, TestRedis};

/// A run of a fresh train number on 2026-12-01.
fn run() -> TrainRun {
    // Train numbers are letters and digits only.
    let number: String = unique("G")
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect();
    TrainRun::parse(&number[..number.len().min(16)], "2026-12-01").unwrap()
}

/// Creates `run` with `stations` and `classes` on `central`.
async fn create_train(
    central: &RedisCentral,
    run: &TrainRun,
    stations: &[&str],
    classes: &[&str],
) -> Arc<TrainLayout> {
    let layout = TrainLayout::new(stations, classes).unwrap();
    create_sale(
        central,
        &run.event(),
        SaleConfig::for_train(layout.clone()).unwrap(),
    )
    .await;
    Arc::new(layout)
}

/// The purchase path and query of `user` for `passengers` on `from`→`to`.
fn ticket(
    run: &TrainRun,
    user: &str,
    from: &str,
    to: &str,
    class: &str,
    passengers: u32,
) -> String {
    format!(
        "/buy/ticket?train={}&date={}&user_id={user}&from={from}&to={to}&class={class}&passengers={passengers}",
        run.train(),
        run.date()
    )
}

/// A small deterministic generator (xorshift), so a failure replays.
struct Dice(u64);

impl Dice {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// Every order central stock handed out for `event`, by order id.
async fn orders_of(central: &RedisCentral, event: &EventId) -> HashMap<String, StreamEntry> {
    (central.unacknowledged(event).await.unwrap().into_iter())
        .map(|entry| (entry.order.to_string(), entry))
        .collect()
}

/// The occupancy the orders up to sequence `as_of` make.
fn replay(layout: &TrainLayout, orders: &[&StreamEntry], as_of: u64) -> Vec<ClassOccupancy> {
    let mut classes: Vec<ClassOccupancy> = (layout.classes().iter())
        .map(|c| ClassOccupancy::empty(c.seats()))
        .collect();
    for entry in orders.iter().filter(|e| e.sequence <= as_of) {
        let ticket = entry.ticket.as_ref().expect("a train order has seats");
        classes[ticket.class].take(&ticket.seats, ticket.leg);
    }
    classes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_thousand_buyers_on_four_nodes_never_share_a_seat_segment() {
    let redis = TestRedis::shared_or_spawn();
    let central = redis_central(redis.url()).await;
    let run = run();
    let stations = [
        "Beijing", "Tianjin", "Jinan", "Xuzhou", "Nanjing", "Shanghai",
    ];
    let layout = create_train(&central, &run, &stations, &["first:1x40", "second:2x80"]).await;
    // Four nodes, each with its own connection, refreshing often so that
    // their memos come both from central's answers and from refreshes.
    let mut nodes = Vec::new();
    for n in 0..4 {
        let spec = named(&format!("t{n}"))
            .serving(&run.event())
            .refreshing_every(Duration::from_millis(50));
        nodes.push(spawn_node(redis_central(redis.url()).await, spec).await);
    }
    let mut dice = Dice(0x5eed_7a1e);
    let mut asked = Vec::new();
    let urls: Vec<String> = (0..5000)
        .map(|u| {
            let from = dice.below(5) as usize;
            let to = from + 1 + dice.below((5 - from) as u64) as usize;
            let class = ["first", "second"][dice.below(2) as usize];
            let passengers = 1 + dice.below(3) as u32;
            asked.push((Leg::new(from, to).unwrap(), class, passengers));
            let path = ticket(
                &run,
                &format!("u{u}"),
                stations[from],
                stations[to],
                class,
                passengers,
            );
            nodes[u % 4].url(&path)
        })
        .collect();
    let replies = get_all_past_shedding(&Http::new(), urls, 200).await;

    let orders = orders_of(&central, &run.event()).await;
    let entries: Vec<&StreamEntry> = orders.values().collect();
    let (mut sold, mut sold_out) = (0, 0);
    for (reply, (leg, class, passengers)) in replies.iter().zip(&asked) {
        let class_index = layout.class_index(class).unwrap();
        match reply.code() {
            Code::Success => {
                sold += 1;
                let order = reply.order().expect("a sale names its order");
                let entry = &orders[&order];
                let ticket = entry.ticket.as_ref().expect("its seats");
                assert_eq!((ticket.leg, ticket.class), (*leg, class_index));
                assert_eq!(ticket.seats.len(), *passengers as usize);
                assert_eq!(
                    reply.body["data"]["seats"],
                    serde_json::json!(layout.seat_names(ticket)),
                    "the answer names the seats the order holds"
                );
                let carriage =
                    |seat: &u32| seat / layout.classes()[class_index].seats_per_carriage();
                assert!(
                    ticket
                        .seats
                        .iter()
                        .all(|s| carriage(s) == carriage(&ticket.seats[0])),
                    "one order, one carriage: {ticket}"
                );
            }
            Code::SoldOut => {
                sold_out += 1;
                assert_eq!(reply.body["msg"], "sold out for this segment");
                let as_of = reply.body["data"]["as_of_order"]
                    .as_u64()
                    .expect("as_of_order");
                // The orders up to as_of, replayed: no seat, or no group in
                // one carriage, was free over the leg then. Nothing was given
                // back in this test, so it stayed true from then on.
                let then = replay(&layout, &entries, as_of);
                let class_layout = &layout.classes()[class_index];
                let group = Passengers::new(*passengers).unwrap();
                let any = SeatPreference::ANY;
                assert_eq!(
                    then[class_index].find_seats(class_layout, *leg, group, any),
                    None,
                    "sold out for {leg:?} {class} ×{passengers} was false after order {as_of}"
                );
            }
            other => panic!("unexpected answer {other:?}: {:?}", reply.body),
        }
    }
    assert_eq!(sold + sold_out, 5000);
    assert_eq!(orders.len(), sold, "one order per sale, none unanswered");
    assert!(
        sold > 100 && sold_out > 100,
        "the run sold out on some legs: {sold} sold"
    );

    // No double booking: the orders laid over each other never overlap, and
    // they are exactly central's bits.
    let mut rebuilt = replay(&layout, &[], 0);
    for entry in &entries {
        let ticket = entry.ticket.as_ref().unwrap();
        assert!(
            rebuilt[ticket.class].all_free(&ticket.seats, ticket.leg),
            "{ticket} shares a seat-segment"
        );
        rebuilt[ticket.class].take(&ticket.seats, ticket.leg);
    }
    let occupancy = central
        .occupancy(&run.event())
        .await
        .unwrap()
        .expect("a train");
    assert_eq!(
        occupancy.classes, rebuilt,
        "central's bits are the orders' seats"
    );
    for node in nodes {
        node.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_segment_sold_out_is_refused_from_memory_with_zero_redis_calls() {
    // A Redis of its own, so that its command counts are this test's.
    let redis = TestRedis::spawn();
    let central = redis_central(redis.url()).await;
    let run = run();
    let stations = ["A", "B", "C", "D", "E"];
    create_train(&central, &run, &stations, &["first:1x5", "second:1x5"]).await;
    let node = spawn_node(central.clone(), named("memo").serving(&run.event())).await;
    for u in 0..5 {
        let reply = node
            .get(&ticket(&run, &format!("b{u}"), "B", "C", "first", 1))
            .await;
        assert_eq!(reply.code(), Code::Success, "{:?}", reply.body);
    }
    let told = node.get(&ticket(&run, "late", "B", "C", "first", 1)).await;
    assert_eq!(
        told.code(),
        Code::SoldOut,
        "central says so: {:?}",
        told.body
    );

    let (calls, scripts) = (node.central_calls(), redis.command_calls("evalsha"));
    let wider = [("B", "C"), ("A", "C"), ("B", "D"), ("A", "E"), ("B", "E")];
    let urls: Vec<String> = (0..20_000)
        .map(|i| {
            let (from, to) = wider[i % wider.len()];
            node.url(&ticket(
                &run,
                &format!("m{i}"),
                from,
                to,
                "first",
                1 + (i % 5) as u32,
            ))
        })
        .collect();
    let replies = get_all(&Http::new(), urls, 100).await;
    assert_eq!(count(&replies, Code::SoldOut), 20_000, "every one refused");
    assert_eq!(node.central_calls(), calls, "no call to central stock");
    assert_eq!(
        redis.command_calls("evalsha"),
        scripts,
        "no script ran in Redis"
    );

    // Memory refuses only what the fact covers: the same leg in another
    // class, and a leg beside it, still reach central stock and sell.
    let other_class = node.get(&ticket(&run, "s1", "B", "C", "second", 1)).await;
    assert_eq!(other_class.code(), Code::Success);
    let beside = node.get(&ticket(&run, "s2", "C", "E", "first", 2)).await;
    assert_eq!(beside.code(), Code::Success, "{:?}", beside.body);
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn availability_is_answered_from_memory_and_bad_input_changes_nothing() {
    let redis = TestRedis::shared_or_spawn();
    let central = redis_central(redis.url()).await;
    let run = run();
    create_train(&central, &run, &["A", "B", "C"], &["first:1x2"]).await;
    let period = Duration::from_millis(100);
    let spec = named("avail")
        .serving(&run.event())
        .refreshing_every(period);
    let node = spawn_node(central.clone(), spec).await;
    let path = availability(&run);

    let pair = node.get(&ticket(&run, "pair", "A", "B", "first", 2)).await;
    assert_eq!(pair.code(), Code::Success);
    assert_eq!(
        pair.body["data"]["seats"],
        serde_json::json!(["01-01A", "01-01B"])
    );
    assert_eq!(
        node.get(&ticket(&run, "late", "A", "C", "first", 1))
            .await
            .code(),
        Code::SoldOut
    );
    tokio::time::sleep(period * 3).await;
    let calls = node.central_calls();
    let table = node.get(&path).await;
    assert_eq!(table.code(), Code::Ok);
    assert_eq!(node.central_calls(), calls, "answered from memory");
    assert_eq!(
        (
            free(&table, "A", "B"),
            free(&table, "B", "C"),
            free(&table, "A", "C")
        ),
        (0, 2, 0)
    );
    let legs = table.body["data"]["legs"].as_array().unwrap();
    let parties_of = |from: &str, to: &str| {
        let leg = legs
            .iter()
            .find(|l| l["from"] == from && l["to"] == to)
            .unwrap();
        leg["parties"]["first"].clone()
    };
    assert_eq!(
        parties_of("B", "C"),
        serde_json::json!({"2": 1, "3": 0, "4": 0, "5": 0})
    );
    assert_eq!(parties_of("A", "B")["2"], 0);
    assert_eq!(table.body["data"]["event"], run.event().as_str());
    assert_eq!(table.body["data"]["train"], run.train());
    let age = table.body["data"]["age_ms"].as_u64().unwrap();
    assert!(age <= 2 * period.as_millis() as u64, "{age} ms old");

    // Bad input: a clear 4xx, nothing sold.
    let before = central.snapshot(&run.event()).await.unwrap();
    let bad = [
        ticket(&run, "x", "C", "A", "first", 1),
        ticket(&run, "x", "A", "A", "first", 1),
        ticket(&run, "x", "A", "Z", "first", 1),
        ticket(&run, "x", "A", "B", "sleeper", 1),
        ticket(&run, "x", "A", "B", "first", 6),
        ticket(&run, "x", "A", "B", "first", 0),
        ticket(&run, "x", "A", "B", "first", 1) + "&seat=E",
        ticket(&run, "x", "A", "B", "first", 1) + "&seat=middle",
        format!(
            "/buy/ticket?train={}&user_id=x&from=A&to=B&class=first",
            run.train()
        ),
        format!("/buy/ticket?event={}&user_id=x", run.event()),
        "/buy/ticket?train=G-1&date=2026-12-01&user_id=x&from=A&to=B&class=first".to_owned(),
    ];
    for query in bad {
        let reply = node.get(&query).await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{query}: {:?}",
            reply.body
        );
        assert_eq!(reply.code(), Code::Refused);
    }
    for (path, status) in [
        (
            "/trains/G0/2026-12-01/availability".to_owned(),
            StatusCode::NOT_FOUND,
        ),
        (
            "/trains/G-1/2026-12-01/availability".to_owned(),
            StatusCode::BAD_REQUEST,
        ),
        (
            format!("/trains/{}/2026-13-01/availability", run.train()),
            StatusCode::BAD_REQUEST,
        ),
    ] {
        assert_eq!(node.get(&path).await.status, status, "{path}");
    }
    assert_eq!(
        node.post(&path).await.status,
        StatusCode::METHOD_NOT_ALLOWED
    );
    assert_eq!(
        central.snapshot(&run.event()).await.unwrap(),
        before,
        "nothing changed"
    );
    node.stop().await;
}

/// Seat preferences (12306's seat picker): a window, an aisle or one
/// letter is given while such a seat is free on the leg; otherwise the
/// usual seat, and the answer says the preference was not met. A party
/// stays side by side.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_traveller_gets_the_seat_asked_for_while_one_is_free() {
    use serde_json::json;
    let redis = TestRedis::shared_or_spawn();
    let central = redis_central(redis.url()).await;
    let run = run();
    create_train(&central, &run, &["A", "B", "C"], &["second:1x10"]).await;
    let node = spawn_node(central.clone(), named("seat").serving(&run.event())).await;
    let buy = async |user: &str, passengers: u32, seat: &str| {
        let reply = node
            .get(&(ticket(&run, user, "A", "C", "second", passengers) + "&seat=" + seat))
            .await;
        assert_eq!(reply.code(), Code::Success, "{user}: {:?}", reply.body);
        let data = &reply.body["data"];
        assert_eq!(data["seat_preference"], seat, "{user}");
        (data["seats"].clone(), data["preference_met"].clone())
    };
    assert_eq!(
        buy("w1", 1, "window").await,
        (json!(["01-01A"]), json!(true))
    );
    assert_eq!(
        buy("a1", 1, "aisle").await,
        (json!(["01-01C"]), json!(true))
    );
    assert_eq!(buy("f1", 1, "F").await, (json!(["01-01F"]), json!(true)));
    assert_eq!(
        buy("pair", 2, "window").await,
        (json!(["01-02A", "01-02B"]), json!(true)),
        "a pair by the window, side by side"
    );
    assert_eq!(
        buy("w2", 1, "window").await,
        (json!(["01-02F"]), json!(true))
    );
    // No window left: the lowest free seat, and the answer says so.
    assert_eq!(
        buy("w3", 1, "window").await,
        (json!(["01-01B"]), json!(false))
    );
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_train_made_by_the_cli_sells_keeps_and_gives_back_seats_and_recovers() {
    let mut records = Records::new();
    let run = records.run.clone();
    let (created, said) = records.create_train(&[
        "--stations",
        "Beijing,Jinan,Nanjing,Shanghai",
        "--class",
        "first:1x5",
        "--class",
        "second:1x10",
        "--payment-window",
        "2s",
    ]);
    assert!(created, "{said}");
    assert!(
        said.contains("Beijing → Jinan → Nanjing → Shanghai"),
        "{said}"
    );
    let (again, said) = records.create_train(&["--stations", "A,B", "--class", "first:1x5"]);
    assert!(
        !again,
        "an existing run is not replaced without --force: {said}"
    );
    for bad in [
        &["--stations", "A", "--class", "first:1x5"][..],
        &["--stations", "A,B,A", "--class", "first:1x5"],
        &["--stations", "A,B", "--class", "first:0x5"],
        &["--stations", "A,B", "--class", "first"],
        &["--stations", "A,B", "--class", "first:1x5", "--stock", "5"],
    ] {
        let mut args = vec![
            "train",
            "create",
            "--redis",
            records.redis.url(),
            "--train",
            "B9",
            "--date",
            run.date(),
        ];
        args.extend_from_slice(bad);
        let (ok, said) = spike(&args);
        assert!(!ok, "{bad:?} refused");
        assert!(!said.contains("panicked"), "{said}");
    }

    let central = redis_central(records.redis.url()).await;
    let ledger = spike_orders::OrderLedger::connect(records.database.url())
        .await
        .unwrap();
    let event = run.event();
    let pipeline = start_pipeline(&central, &ledger, &event);
    let period = Duration::from_millis(100);
    let spec = named("life")
        .serving(&event)
        .refreshing_every(period)
        .orders_from(&ledger);
    let node = spawn_node(central.clone(), spec).await;

    // Three orders: one paid, one cancelled, one left to expire.
    let paid = node
        .get(&ticket(&run, "paid", "Beijing", "Nanjing", "first", 2))
        .await;
    let cancelled = node
        .get(&ticket(&run, "cancelled", "Jinan", "Shanghai", "first", 3))
        .await;
    let expiring = node
        .get(&ticket(&run, "expiring", "Nanjing", "Shanghai", "first", 2))
        .await;
    for reply in [&paid, &cancelled, &expiring] {
        assert_eq!(reply.code(), Code::Success, "{:?}", reply.body);
    }
    assert_eq!(
        paid.body["data"]["seats"],
        serde_json::json!(["01-01A", "01-01B"])
    );
    assert_eq!(
        cancelled.body["data"]["seats"],
        serde_json::json!(["01-01C", "01-01D", "01-01F"])
    );
    assert_eq!(
        expiring.body["data"]["seats"],
        serde_json::json!(["01-01A", "01-01B"])
    );
    // Jinan → Nanjing is now full in first class.
    let refused = node
        .get(&ticket(&run, "early", "Jinan", "Nanjing", "first", 1))
        .await;
    assert_eq!(refused.code(), Code::SoldOut);

    drained(&central, &event).await;
    let order = paid.order().unwrap();
    assert_eq!(node.pay(&order).await.code(), Code::Ok);
    let key = paid.body["data"]["order_key"].as_str().unwrap();
    let shown = node.get(&format!("/orders/{order}?order_key={key}")).await;
    assert_eq!(
        shown.body["data"]["ticket"]["seats"],
        serde_json::json!(["01-01A", "01-01B"])
    );
    assert_eq!(shown.body["data"]["ticket"]["from"], "Beijing");
    let order = cancelled.order().unwrap();
    let key = cancelled.body["data"]["order_key"].as_str().unwrap();
    assert_eq!(node.cancel(&order, key).await.code(), Code::Ok);

    // Expiry and cancellation give back exactly their bits: what is left is
    // the paid order's seats, Beijing → Nanjing.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let unpaid = expiring.order().unwrap();
    while ledger
        .order(&spike_core::OrderId::parse(unpaid.as_str()).unwrap())
        .await
        .unwrap()
        .map(|o| o.state)
        != Some(OrderState::Expired)
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the unpaid order never expired"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    seats_settled(&ledger, &event).await;
    let layout = TrainLayout::new(
        &["Beijing", "Jinan", "Nanjing", "Shanghai"],
        &["first:1x5", "second:1x10"],
    )
    .unwrap();
    let mut expected = Occupancy::empty(Arc::new(layout));
    expected.classes[0].take(&[0, 1], Leg::new(0, 2).unwrap());
    let held = central.occupancy(&event).await.unwrap().unwrap();
    assert_eq!(held.classes, expected.classes);

    // The node's memo is lifted at its next refresh: the seats sell again.
    tokio::time::sleep(period * 3).await;
    let resold = node
        .get(&ticket(&run, "early", "Jinan", "Nanjing", "first", 1))
        .await;
    assert_eq!(resold.code(), Code::Success, "{:?}", resold.body);
    assert_eq!(resold.body["data"]["seats"], serde_json::json!(["01-01C"]));
    drained(&central, &event).await;
    let (audited, table) = records.spike_on(&["audit"], &[]);
    assert!(audited, "{table}");
    assert!(table.contains("seat-segments sold twice"), "{table}");

    // Redis loses everything; the ledger rebuilds the run, seats included.
    let before = central.occupancy(&event).await.unwrap().unwrap();
    node.stop().await;
    drop(pipeline);
    let central = records.lose_redis().await;
    let (recovered, said) = records.spike_on(&["sale", "recover"], &[]);
    assert!(recovered, "{said}");
    let after = central
        .occupancy(&event)
        .await
        .unwrap()
        .expect("the run is back");
    assert_eq!(
        after.classes, before.classes,
        "the same seats, on the same segments"
    );
    let (audited, table) = records.spike_on(&["audit"], &[]);
    assert!(audited, "{table}");
}

/// `GET /trains/{train}/{date}/availability` of `run`.
fn availability(run: &TrainRun) -> String {
    format!("/trains/{}/{}/availability", run.train(), run.date())
}

/// Free first-class seats `from` → `to` in an availability answer.
fn free(table: &Reply, from: &str, to: &str) -> u64 {
    (table.body["data"]["legs"].as_array().unwrap().iter())
        .find(|leg| leg["from"] == from && leg["to"] == to)
        .and_then(|leg| leg["free"]["first"].as_u64())
        .unwrap()
}

/// A train run on records of a test's own: a Redis it may restart empty,
/// and a PostgreSQL ledger.
struct Records {
    redis: TestRedis,
    database: spike_testkit::TestDatabase,
    run: TrainRun,
}

impl Records {
    fn new() -> Self {
        Self {
            redis: TestRedis::spawn(),
            database: spike_testkit::TestDatabase::postgres(),
            run: run(),
        }
    }

    /// `spike train create` of the run in Redis and the ledger, with
    /// `layout` (stations, classes, rules).
    fn create_train(&self, layout: &[&str]) -> (bool, String) {
        let mut args = vec!["train", "create", "--train", self.run.train()];
        args.extend_from_slice(&["--date", self.run.date()]);
        args.extend_from_slice(&["--redis", self.redis.url()]);
        args.extend_from_slice(&["--database-url", self.database.url()]);
        args.extend_from_slice(layout);
        spike(&args)
    }

    /// `spike COMMAND…` of the run's event on these records, with `extra`:
    /// whether it succeeded, and what it printed.
    fn spike_on(&self, command: &[&str], extra: &[&str]) -> (bool, String) {
        let event = self.run.event();
        let mut args = command.to_vec();
        args.extend_from_slice(&["--redis", self.redis.url()]);
        args.extend_from_slice(&["--database-url", self.database.url()]);
        args.extend_from_slice(&["--event", event.as_str()]);
        args.extend_from_slice(extra);
        spike(&args)
    }

    /// Redis crashes and comes back empty; a connection to it, once the
    /// run is checked gone.
    async fn lose_redis(&mut self) -> RedisCentral {
        self.redis.kill();
        self.redis.start();
        let central = redis_central(self.redis.url()).await;
        let event = self.run.event();
        assert_eq!(central.occupancy(&event).await.unwrap(), None, "gone");
        central
    }
}

/// `spike demo --train` with `extra` arguments: its JSON report.
fn train_demo(users: &str, extra: &[&str]) -> serde_json::Value {
    let mut args = vec!["--train", "--users", users];
    args.extend_from_slice(extra);
    demo_report(&args)
}

#[test]
fn the_train_demo_fills_the_run_and_every_invariant_holds() {
    let redis = TestRedis::shared_or_spawn();
    for demo in [
        train_demo("20000", &[]),
        train_demo("5000", &["--redis", redis.url()]),
    ] {
        assert_eq!(demo["all_invariants_held"], true, "{demo:#}");
        assert_eq!(demo["orders"]["audit_passed"], true);
        let seats = &demo["seats"];
        assert_eq!(
            seats["seat_segments_total"], 9_000,
            "1,000 seats over 9 segments"
        );
        let sold = seats["seat_segments_sold"].as_u64().unwrap();
        assert!(sold > 1_000 && sold <= 9_000, "{seats}");
        let per_class: u64 = (seats["per_class"].as_array().unwrap().iter())
            .map(|class| class["sold"].as_u64().unwrap())
            .sum();
        assert_eq!(per_class, sold);
        // Every order written was sold by a node or filled from the waitlist.
        let by_nodes: u64 = (demo["sales_per_node"].as_object().unwrap().values())
            .map(|sold| sold.as_u64().unwrap())
            .sum();
        let act = &demo["waitlist"];
        let filled = act["filled"].as_u64().unwrap();
        assert_eq!(demo["orders"]["written"].as_u64(), Some(by_nodes + filled));
        assert_eq!(
            act["placed"].as_u64().unwrap() + act["bookable"].as_u64().unwrap(),
            500
        );
        assert!(filled + act["waiting"].as_u64().unwrap() <= act["placed"].as_u64().unwrap());
        assert!(act["wait_p50_ms"].as_u64() <= act["wait_max_ms"].as_u64());
    }
    let sold_out = train_demo("30000", &["--waitlist", "300"]);
    let act = &sold_out["waitlist"];
    assert!(
        act["placed"].as_u64().unwrap() > 100,
        "the run sold out: {act}"
    );
    assert!(
        act["filled"].as_u64().unwrap() > 0,
        "returned seats filled the waitlist: {act}"
    );
    assert_eq!(sold_out["all_invariants_held"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_embedded_node_serves_a_train_run_made_from_its_flags() {
    let port = spike_testkit::free_port();
    let listen = format!("127.0.0.1:{port}");
    let run = [
        "--train",
        "G7",
        "--date",
        "2026-12-01",
        "--stations",
        "A,B,C",
    ];
    let _node = tokio::process::Command::new(env!("CARGO_BIN_EXE_spike"))
        .args(["node", "--listen", &listen, "--no-stat-log"])
        .args(run)
        .args(["--class", "first:1x5"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start spike node");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while tokio::net::TcpStream::connect(&listen).await.is_err() {
        assert!(std::time::Instant::now() < deadline, "node did not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let http = Http::new();
    let base = format!("http://{listen}");
    let bought = http
        .get(&format!(
            "{base}/buy/ticket?train=G7&date=2026-12-01&from=A&to=C&class=first&passengers=2&user_id=u"
        ))
        .await;
    assert_eq!(bought.code(), Code::Success, "{:?}", bought.body);
    assert_eq!(
        bought.body["data"]["seats"],
        serde_json::json!(["01-01A", "01-01B"])
    );
    // The table is answered once the node has read the run (at start).
    let table = loop {
        let table = http
            .get(&format!("{base}/trains/G7/2026-12-01/availability"))
            .await;
        if table.code() == Code::Ok || std::time::Instant::now() > deadline {
            break table;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(table.code(), Code::Ok, "{:?}", table.body);
    let a_to_b = &table.body["data"]["legs"][0];
    assert_eq!((&a_to_b["from"], &a_to_b["to"]), (&"A".into(), &"B".into()));

    // What an embedded node refuses to start with.
    for (extra, why) in [
        (
            &["--class", "first:1x5", "--stock", "5"][..],
            "--stock does not apply",
        ),
        (
            &["--class", "first:1x5", "--event", "E"],
            "exactly one sale",
        ),
        (
            &["--class", "first:1x5", "--redis", "redis://127.0.0.1:1"],
            "spike train create",
        ),
        (&[], "--class"),
    ] {
        let mut args = vec!["node", "--listen", "127.0.0.1:0", "--no-stat-log"];
        args.extend_from_slice(&run);
        args.extend_from_slice(extra);
        let (started, said) = spike(&args);
        assert!(!started, "{extra:?}");
        assert!(said.contains(why), "{extra:?}: {said}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seats_known_only_from_the_stat_log_come_back_with_recovery() {
    // Redis dies before any writer read the orders: the stat log is the
    // only record of them, and it names their seats.
    let mut records = Records::new();
    let run = records.run.clone();
    let (created, said) = records.create_train(&["--stations", "A,B,C,D", "--class", "first:1x5"]);
    assert!(created, "{said}");
    let event = run.event();
    let stat_log = std::env::temp_dir().join(format!("{}.stat.log", unique("train-stat")));
    let spec = named("logged").serving(&event).stat_log(&stat_log);
    let node = spawn_node(redis_central(records.redis.url()).await, spec).await;
    for (user, from, to, passengers) in [("a", "A", "C", 2), ("b", "B", "D", 3), ("c", "C", "D", 2)]
    {
        let reply = node
            .get(&ticket(&run, user, from, to, "first", passengers))
            .await;
        assert_eq!(reply.code(), Code::Success, "{:?}", reply.body);
    }
    let central = redis_central(records.redis.url()).await;
    let before = central.occupancy(&event).await.unwrap().unwrap();
    node.stop().await;
    let logged = std::fs::read_to_string(&stat_log).unwrap();
    assert_eq!(logged.matches(",ticket:").count(), 3, "{logged}");

    let central = records.lose_redis().await;
    let with_log = ["--stat-log", stat_log.to_str().unwrap()];
    let (recovered, said) = records.spike_on(&["sale", "recover"], &with_log);
    assert!(recovered, "{said}");
    let after = central
        .occupancy(&event)
        .await
        .unwrap()
        .expect("the run is back");
    assert_eq!(after.classes, before.classes, "every logged sale's seats");
    let (audited, table) = records.spike_on(&["audit"], &with_log);
    assert!(audited, "{table}");
}

/// The dashboard's grid comes by changes: `/stats` carries the grid's
/// legend and version, `/stats/grid` every mask once, then only the seats
/// that changed since the version the caller holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_grid_is_watched_by_changes_not_every_mask() {
    let redis = TestRedis::shared_or_spawn();
    let central = redis_central(redis.url()).await;
    let run = run();
    create_train(&central, &run, &["A", "B", "C"], &["first:1x5"]).await;
    let period = Duration::from_millis(100);
    let node = spawn_node(
        central.clone(),
        named("grid").serving(&run.event()).refreshing_every(period),
    )
    .await;
    let http = Http::new();
    let grid =
        |since: u64| node.admin_url(&format!("/stats/grid?event={}&since={since}", run.event()));
    tokio::time::sleep(period * 3).await;
    let full = http.get(&grid(0)).await.body;
    assert_eq!(
        full["full"],
        serde_json::json!([["0", "0", "0", "0", "0"]]),
        "{full}"
    );
    let version = full["version"].as_u64().unwrap();
    let same = http.get(&grid(version)).await.body;
    assert_eq!(same["changes"], serde_json::json!([]), "nothing changed");

    assert_eq!(
        node.get(&ticket(&run, "a", "A", "C", "first", 2))
            .await
            .code(),
        Code::Success
    );
    tokio::time::sleep(period * 3).await;
    let changed = http.get(&grid(version)).await.body;
    assert_eq!(
        changed["changes"],
        serde_json::json!([[0, 0, "3"], [0, 1, "3"]]),
        "{changed}"
    );
    let stats = http.get(&node.admin_url("/stats")).await.body;
    let legend = &stats["events"][0]["train"];
    assert_eq!(legend["grid_version"], changed["version"]);
    assert!(
        legend["classes"][0].get("masks").is_none(),
        "no masks in /stats"
    );
    let bad = http.get(&node.admin_url("/stats/grid?since=1")).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    node.stop().await;
}
