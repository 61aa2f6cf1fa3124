//! The waitlist (候补购票) through a node, on Redis with PostgreSQL and on
//! the embedded pair: a sold-out traveller places a waitlist order, a
//! cancelled seat becomes their reserved order before anyone else can buy
//! it, a refunded paid seat does the same, the order's key goes only to
//! whoever shows the placement's key, a stranger cannot withdraw it, and
//! what nobody waits for goes on sale.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failure

mod common;

use std::time::Duration;

use common::{create_sale, named, redis_central, spawn_node, start_pipeline, Reply, TestNode};
use hyper::StatusCode;
use serde_json::Value;
use spike_core::{
    CentralStock, Code, EventId, MemoryCentral, OrderStream, SaleConfig, TrainLayout, TrainRun,
};
use spike_orders::{audit_event, OrderLedger};
use spike_testkit::{unique, TestDatabase, TestRedis};

/// A run of a fresh train number.
fn run() -> TrainRun {
    let number: String = unique("W")
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect();
    TrainRun::parse(&number[..number.len().min(16)], "2026-12-01").unwrap()
}

/// A traveller's request about `run`, from `from` to `to` in `class`.
fn trip(run: &TrainRun, user: &str, from: &str, to: &str, class: &str) -> String {
    format!(
        "train={}&date={}&user_id={user}&from={from}&to={to}&class={class}",
        run.train(),
        run.date()
    )
}

/// Who `user` is on `run`, for status and withdrawals.
fn who(run: &TrainRun, user: &str) -> String {
    format!("train={}&date={}&user_id={user}", run.train(), run.date())
}

fn data(reply: &Reply) -> &Value {
    &reply.body["data"]
}

/// The scenario, on any central stock and ledger.
async fn a_cancelled_seat_fills_the_oldest_waiting_order<C>(central: C, ledger: OrderLedger)
where
    C: CentralStock + OrderStream + Clone + std::fmt::Debug,
{
    let run = run();
    let layout = TrainLayout::new(&["A", "B", "C", "D"], &["second:1x2", "first:1x1"]).unwrap();
    create_sale(
        &central,
        &run.event(),
        SaleConfig::for_train(layout).unwrap(),
    )
    .await;
    let _pipeline = start_pipeline(&central, &ledger, &run.event());
    let period = Duration::from_millis(100);
    let spec = named("wait")
        .serving(&run.event())
        .refreshing_every(period)
        .orders_from(&ledger);
    let node: TestNode<C> = spawn_node(central.clone(), spec).await;

    let buy = |user: &str| format!("/buy/ticket?{}", trip(&run, user, "A", "D", "second"));
    let alice = node.get(&buy("alice")).await;
    let bob = node.get(&buy("bob")).await;
    assert_eq!((alice.code(), bob.code()), (Code::Success, Code::Success));
    assert_eq!(node.get(&buy("late")).await.code(), Code::SoldOut);

    // Carol, then Dave, wait for A → D; only a sold-out request may wait.
    let place = |user: &str| format!("/waitlist?{}", trip(&run, user, "A", "D", "second"));
    let carol = node.post(&place("carol")).await;
    assert_eq!(carol.code(), Code::Ok, "{:?}", carol.body);
    assert_eq!(
        (
            &data(&carol)["place"],
            &data(&carol)["state"],
            &data(&carol)["ahead"]
        ),
        (&Value::from(1), &Value::from("waiting"), &Value::from(0))
    );
    let carol_key = data(&carol)["request_key"]
        .as_str()
        .expect("a request key")
        .to_owned();
    let dave = node.post(&place("dave")).await;
    assert_eq!(
        (data(&dave)["place"].as_u64(), data(&dave)["ahead"].as_u64()),
        (Some(2), Some(1))
    );
    let dave_key = data(&dave)["request_key"].as_str().unwrap().to_owned();
    let twice = node.post(&place("carol")).await;
    assert_eq!(
        twice.status,
        StatusCode::CONFLICT,
        "one waitlist order per traveller"
    );
    assert_eq!(data(&twice)["place"], 1);
    let first_class = node
        .post(&format!(
            "/waitlist?{}",
            trip(&run, "erin", "A", "D", "first")
        ))
        .await;
    assert_eq!(
        first_class.status,
        StatusCode::CONFLICT,
        "first class has a seat: buy it"
    );
    let holder = node.post(&place("alice")).await;
    assert_eq!(
        holder.code(),
        Code::AlreadyPurchased,
        "one order per traveller"
    );

    // Bad input: a clear 4xx, nothing placed.
    for bad in [
        place("x") + "&wait_minutes=0",
        place("x") + "&seat=middle",
        format!("/waitlist?{}", trip(&run, "x", "D", "A", "second")),
        format!(
            "/waitlist?train={}&date={}&from=A&to=D&class=second",
            run.train(),
            run.date()
        ),
    ] {
        let reply = node.post(&bad).await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{bad}: {:?}",
            reply.body
        );
    }
    assert_eq!(
        node.get(&place("x")).await.status,
        StatusCode::METHOD_NOT_ALLOWED
    );
    let nobody = node
        .get(&format!("/waitlist/status?{}", who(&run, "x")))
        .await;
    assert_eq!(nobody.status, StatusCode::NOT_FOUND);

    // A stranger naming Dave cannot withdraw his order: it takes his key.
    let stranger = node
        .delete(&format!("/waitlist?{}", who(&run, "dave")))
        .await;
    assert_eq!(stranger.status, StatusCode::FORBIDDEN);
    let forged = format!("/waitlist?{}&request_key={carol_key}", who(&run, "dave"));
    assert_eq!(node.delete(&forged).await.status, StatusCode::FORBIDDEN);

    // Alice cancels: her seat becomes Carol's reserved order at once.
    let alice_order = alice.order().unwrap();
    let alice_key = data(&alice)["order_key"].as_str().unwrap();
    assert_eq!(node.cancel(&alice_order, alice_key).await.code(), Code::Ok);
    let status = |user: &str, key: Option<&str>| {
        let key = key.map(|k| format!("&request_key={k}")).unwrap_or_default();
        format!("/waitlist/status?{}{key}", who(&run, user))
    };
    let filled = node.get(&status("carol", None)).await;
    assert_eq!(data(&filled)["state"], "filled", "{:?}", filled.body);
    let order = data(&filled)["order_id"].as_str().unwrap().to_owned();
    assert!(
        data(&filled).get("order_key").is_none(),
        "a name alone gets no key"
    );
    let proven = node.get(&status("carol", Some(&carol_key))).await;
    let order_key = data(&proven)["order_key"]
        .as_str()
        .expect("the order's key")
        .to_owned();
    let shown = node
        .get(&format!("/orders/{order}?order_key={order_key}"))
        .await;
    assert_eq!(shown.status, StatusCode::OK, "{:?}", shown.body);
    assert_eq!(
        data(&shown)["state"],
        "reserved",
        "a fill is a reserved order"
    );
    assert_eq!(data(&shown)["user_id"], "carol");
    let waiting = node.get(&status("dave", None)).await;
    assert_eq!(
        (
            data(&waiting)["state"].as_str(),
            data(&waiting)["ahead"].as_u64()
        ),
        (Some("waiting"), Some(0))
    );

    // Bob pays, then refunds: his seat fills Dave's waiting order.
    let bob_order = bob.order().unwrap();
    let bob_key = data(&bob)["order_key"].as_str().unwrap().to_owned();
    let refund = format!("/orders/{bob_order}/refund?order_key={bob_key}");
    let unpaid = node.post(&refund).await;
    assert_eq!(
        unpaid.status,
        StatusCode::CONFLICT,
        "a reserved order is cancelled, not refunded"
    );
    assert_eq!(node.pay(&bob_order).await.code(), Code::Ok);
    let stranger = node
        .post(&format!("/orders/{bob_order}/refund?order_key={alice_key}"))
        .await;
    assert_eq!(stranger.status, StatusCode::FORBIDDEN);
    let refunded = node.post(&refund).await;
    assert_eq!(data(&refunded)["state"], "refunded", "{:?}", refunded.body);
    assert_eq!(
        node.post(&refund).await.body["msg"],
        "order already refunded"
    );
    let dave_filled = node.get(&status("dave", Some(&dave_key))).await;
    assert_eq!(
        data(&dave_filled)["state"],
        "filled",
        "{:?}",
        dave_filled.body
    );
    assert!(data(&dave_filled)["order_key"].is_string());

    // Erin waits, then withdraws with her key; Carol's cancel then puts
    // the seat on sale, and Frank buys it.
    let erin = node.post(&place("erin")).await;
    let erin_key = data(&erin)["request_key"].as_str().unwrap().to_owned();
    let withdrawn = node
        .delete(&format!(
            "/waitlist?{}&request_key={erin_key}",
            who(&run, "erin")
        ))
        .await;
    assert_eq!(
        data(&withdrawn)["state"],
        "withdrawn",
        "{:?}",
        withdrawn.body
    );
    assert_eq!(node.cancel(&order, &order_key).await.code(), Code::Ok);
    tokio::time::sleep(period * 3).await;
    let frank = node.get(&buy("frank")).await;
    assert_eq!(frank.code(), Code::Success, "{:?}", frank.body);
    assert_eq!(data(&frank)["seats"], serde_json::json!(["01-01A"]));

    common::drained(&central, &run.event()).await;
    let report = audit_event(&central, &ledger, &run.event(), None)
        .await
        .unwrap();
    assert!(report.passed(), "{report:#?}");
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_seat_fills_the_oldest_waiting_order_on_redis_and_postgres() {
    let redis = TestRedis::shared_or_spawn();
    let database = TestDatabase::postgres();
    let ledger = OrderLedger::connect(database.url()).await.unwrap();
    let central = redis_central(redis.url()).await;
    a_cancelled_seat_fills_the_oldest_waiting_order(central, ledger).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_seat_fills_the_oldest_waiting_order_embedded() {
    let database = TestDatabase::sqlite();
    let ledger = OrderLedger::connect(database.url()).await.unwrap();
    a_cancelled_seat_fills_the_oldest_waiting_order(MemoryCentral::new(), ledger).await;
}

/// A sale that is not a train run has no waitlist.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_sale_has_no_waitlist() {
    let central = MemoryCentral::new();
    let event = EventId::parse(unique("plain")).unwrap();
    create_sale(&central, &event, SaleConfig::new(1).unwrap()).await;
    let node = spawn_node(central, named("plain").serving(&event)).await;
    let reply = node
        .post(&format!("/waitlist?event={event}&user_id=a"))
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{:?}", reply.body);
    node.stop().await;
}

/// Redis loses everything: `recover_sale` rebuilds the run and its
/// waitlist from the ledger (the pipeline's mirror of the line), every
/// entry in its place, and a seat given back afterwards goes to the first
/// traveller still waiting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_waitlist_comes_back_with_recovery_after_redis_lost_everything() {
    let mut redis = TestRedis::spawn();
    let database = TestDatabase::postgres();
    let ledger = OrderLedger::connect(database.url()).await.unwrap();
    let central = redis_central(redis.url()).await;
    let run = run();
    let layout = TrainLayout::new(&["A", "B"], &["second:1x1"]).unwrap();
    create_sale(
        &central,
        &run.event(),
        SaleConfig::for_train(layout).unwrap(),
    )
    .await;
    let pipeline = start_pipeline(&central, &ledger, &run.event());
    let node = spawn_node(
        central.clone(),
        named("lost").serving(&run.event()).orders_from(&ledger),
    )
    .await;
    let bought = node
        .get(&format!(
            "/buy/ticket?{}",
            trip(&run, "ann", "A", "B", "second")
        ))
        .await;
    assert_eq!(bought.code(), Code::Success);
    let mut keys = Vec::new();
    for user in ["bob", "cat"] {
        let placed = node
            .post(&format!(
                "/waitlist?{}",
                trip(&run, user, "A", "B", "second")
            ))
            .await;
        assert_eq!(placed.code(), Code::Ok, "{:?}", placed.body);
        keys.push(data(&placed)["request_key"].as_str().unwrap().to_owned());
    }
    common::drained(&central, &run.event()).await;
    let mut copied = std::collections::HashMap::new();
    spike_orders::mirror_once(&central, &ledger, &[run.event()], &mut copied)
        .await
        .unwrap();
    pipeline.stop().await;

    redis.kill();
    redis.start();
    // As `spike sale recover` would: a client of its own.
    let central = redis_central(redis.url()).await;
    let recovered =
        spike_orders::recover_sale(&central, &ledger, &run.event(), &Default::default())
            .await
            .unwrap();
    assert_eq!(
        (recovered.waitlist, recovered.refilled),
        (2, 0),
        "{recovered:?}"
    );
    let entries = central.waitlist(&run.event()).await.unwrap();
    let users: Vec<(&str, &str)> = (entries.iter())
        .map(|e| (e.user.as_str(), e.state.name()))
        .collect();
    assert_eq!(users, [("bob", "waiting"), ("cat", "waiting")]);

    // Ann cancels after the recovery: her seat goes to Bob, first in line.
    let _pipeline = start_pipeline(&central, &ledger, &run.event());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let ann_key = data(&bought)["order_key"].as_str().unwrap();
    let cancelled = node.cancel(&bought.order().unwrap(), ann_key).await;
    assert_eq!(cancelled.code(), Code::Ok, "{:?}", cancelled.body);
    let bob = node
        .get(&format!(
            "/waitlist/status?{}&request_key={}",
            who(&run, "bob"),
            keys[0]
        ))
        .await;
    assert_eq!(data(&bob)["state"], "filled", "{:?}", bob.body);
    let cat = node
        .get(&format!("/waitlist/status?{}", who(&run, "cat")))
        .await;
    assert_eq!(
        (data(&cat)["state"].as_str(), data(&cat)["ahead"].as_u64()),
        (Some("waiting"), Some(0))
    );
    common::drained(&central, &run.event()).await;
    let report = audit_event(&central, &ledger, &run.event(), None)
        .await
        .unwrap();
    assert!(report.passed(), "{report:#?}");
    node.stop().await;
}

/// The crowd, on Redis and PostgreSQL: 2,000 buyers on 4 nodes
/// buying random legs of an 80-seat run, the first 300 turned away placing
/// waitlist orders, then 200 random orders given back (half cancelled,
/// half paid and refunded) at once. No seat-segment is held twice, every
/// fill is its traveller's order, and no traveller still waiting was
/// passed over: no waiting order is served by a younger fill whose seats
/// would have served it (same class, its leg within the fill's, its party
/// no bigger), nor by the seats left free.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crowd_with_a_waitlist_and_seats_coming_back_keeps_every_rule() {
    use common::{send_all, Http, OPERATOR_KEY};
    use hyper::Method;

    let redis = TestRedis::shared_or_spawn();
    let database = TestDatabase::postgres();
    let ledger = OrderLedger::connect(database.url()).await.unwrap();
    let central = redis_central(redis.url()).await;
    let run = run();
    let stations = ["A", "B", "C", "D", "E", "F"];
    let layout = TrainLayout::new(&stations, &["second:4x20"]).unwrap();
    create_sale(
        &central,
        &run.event(),
        SaleConfig::for_train(layout).unwrap(),
    )
    .await;
    let _pipeline = start_pipeline(&central, &ledger, &run.event());
    let mut nodes = Vec::new();
    for i in 0..4 {
        let spec = named(&format!("crowd{i}"))
            .serving(&run.event())
            .orders_from(&ledger);
        nodes.push(spawn_node(central.clone(), spec).await);
    }
    let mut dice: u64 = 0x0012_3060_2000_0300;
    let mut roll = |n: u64| {
        dice ^= dice << 13;
        dice ^= dice >> 7;
        dice ^= dice << 17;
        dice % n
    };
    let mut legs = Vec::new();
    let mut buys = Vec::new();
    for i in 0..2_000 {
        let from = roll(5) as usize;
        let to = from + 1 + roll((5 - from) as u64) as usize;
        let party = 1 + roll(2);
        legs.push((from, to, party));
        let query = trip(
            &run,
            &format!("b{i}"),
            stations[from],
            stations[to],
            "second",
        );
        let node = &nodes[roll(4) as usize];
        buys.push((
            Method::GET,
            node.url(&format!("/buy/ticket?{query}&passengers={party}")),
            None,
        ));
    }
    let http = Http::new();
    let bought = send_all(&http, buys, 64).await;
    let sold: Vec<usize> = (0..bought.len())
        .filter(|&i| bought[i].code() == Code::Success)
        .collect();
    let turned_away: Vec<usize> = (0..bought.len())
        .filter(|&i| bought[i].code() == Code::SoldOut)
        .collect();
    assert_eq!(
        sold.len() + turned_away.len(),
        2_000,
        "every buyer answered"
    );
    assert!(
        turned_away.len() >= 300,
        "{} turned away",
        turned_away.len()
    );

    let places: Vec<_> = (turned_away.iter().take(300))
        .map(|&i| {
            let (from, to, party) = legs[i];
            let query = trip(
                &run,
                &format!("b{i}"),
                stations[from],
                stations[to],
                "second",
            );
            let node = &nodes[roll(4) as usize];
            (
                Method::POST,
                node.url(&format!("/waitlist?{query}&passengers={party}")),
                None,
            )
        })
        .collect();
    let placed = send_all(&http, places, 64).await;
    let waiting = placed.iter().filter(|r| r.code() == Code::Ok).count();
    let refused = placed
        .iter()
        .filter(|r| r.status == StatusCode::CONFLICT)
        .count();
    assert_eq!(waiting + refused, 300, "placed, or bookable meanwhile");
    assert!(waiting > 200, "{waiting} wait");

    // 200 orders come back at once: cancels and refunds (paid first).
    let mut given_back = sold.clone();
    for i in (1..given_back.len()).rev() {
        given_back.swap(i, roll(i as u64 + 1) as usize);
    }
    given_back.truncate(200);
    let (cancels, refunds) = given_back.split_at(100);
    let pays = (refunds.iter())
        .map(|&i| {
            let order = bought[i].order().unwrap();
            (
                Method::POST,
                nodes[0].url(&format!("/orders/{order}/pay")),
                Some(OPERATOR_KEY),
            )
        })
        .collect();
    for paid in send_all(&http, pays, 32).await {
        assert_eq!(paid.code(), Code::Ok, "{:?}", paid.body);
    }
    let back = (cancels.iter().map(|&i| (i, "cancel")))
        .chain(refunds.iter().map(|&i| (i, "refund")))
        .map(|(i, how)| {
            let order = bought[i].order().unwrap();
            let key = data(&bought[i])["order_key"].as_str().unwrap().to_owned();
            let node = &nodes[roll(4) as usize];
            (
                Method::POST,
                node.url(&format!("/orders/{order}/{how}?order_key={key}")),
                None,
            )
        })
        .collect();
    for reply in send_all(&http, back, 32).await {
        assert_eq!(reply.code(), Code::Ok, "{:?}", reply.body);
    }

    common::drained(&central, &run.event()).await;
    common::seats_settled(&ledger, &run.event()).await;
    let report = audit_event(&central, &ledger, &run.event(), None)
        .await
        .unwrap();
    assert!(report.passed(), "{report:#?}");
    let line = |name: &str| {
        report
            .lines
            .iter()
            .find(|l| l.name == name)
            .map(|l| l.actual)
    };
    let filled = line("waitlist orders filled").unwrap();
    assert!(
        filled > 20,
        "{filled} filled: returned seats went to the waitlist"
    );

    // No one still waiting was passed over by a younger fill.
    let entries = central.waitlist(&run.event()).await.unwrap();
    for older in entries
        .iter()
        .filter(|e| e.state == spike_core::WaitState::Waiting)
    {
        for younger in entries.iter().filter(|e| e.place > older.place) {
            let spike_core::WaitState::Filled { .. } = younger.state else {
                continue;
            };
            let served = younger.seats.class == older.seats.class
                && younger.seats.leg.covers(older.seats.leg)
                && younger.seats.passengers >= older.seats.passengers;
            assert!(
                !served,
                "place {} waits while place {} was filled",
                older.place, younger.place
            );
        }
    }
    for node in nodes {
        node.stop().await;
    }
}
