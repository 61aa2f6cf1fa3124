//! Changes (改签) through a node, on Redis with PostgreSQL and on the
//! embedded pair: a paid ticket exchanged for another leg, class or date in
//! one request, all or nothing; and a change cut short by Redis being
//! killed ends, once settled, with the old ticket or the new one, never
//! both or neither.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failure

mod common;

use std::time::Duration;

use common::{create_sale, named, redis_central, spawn_node, start_pipeline, Reply, TestNode};
use hyper::StatusCode;
use serde_json::{json, Value};
use spike_core::order::OrderState;
use spike_core::{
    CentralStock, Code, MemoryCentral, NodeId, OrderId, OrderStream, Passengers, Purchase,
    RequestId, SaleConfig, SeatPreference, SeatRequest, TicketPurchase, TrainLayout, TrainRun,
    UserId,
};
use spike_orders::{audit_event, settle_stalled_changes, OrderLedger};
use spike_testkit::{unique, TestDatabase, TestRedis};

/// A fresh train number on two dates: its runs.
fn runs() -> (TrainRun, TrainRun) {
    let number: String = unique("C")
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect();
    let number = &number[..number.len().min(16)];
    (
        TrainRun::parse(number, "2026-12-01").unwrap(),
        TrainRun::parse(number, "2026-12-02").unwrap(),
    )
}

fn data(reply: &Reply) -> &Value {
    &reply.body["data"]
}

/// `user` buys from `from` to `to` in `class` on `run`, and pays: the
/// order and its key.
async fn paid_ticket<C: CentralStock + std::fmt::Debug>(
    node: &TestNode<C>,
    run: &TrainRun,
    user: &str,
    (from, to, class): (&str, &str, &str),
) -> (String, String) {
    let query = format!(
        "/buy/ticket?train={}&date={}&user_id={user}&from={from}&to={to}&class={class}",
        run.train(),
        run.date()
    );
    let bought = node.get(&query).await;
    assert_eq!(bought.code(), Code::Success, "{:?}", bought.body);
    let order = bought.order().unwrap();
    let paid = node.pay(&order).await;
    assert_eq!(paid.code(), Code::Ok, "{:?}", paid.body);
    (
        order,
        data(&bought)["order_key"].as_str().unwrap().to_owned(),
    )
}

async fn changes_are_all_or_nothing<C>(central: C, ledger: OrderLedger)
where
    C: CentralStock + OrderStream + Clone + std::fmt::Debug,
{
    let (first_day, second_day) = runs();
    let stations = ["A", "B", "C", "D"];
    let layout = TrainLayout::new(&stations, &["second:1x3", "first:1x1"]).unwrap();
    create_sale(
        &central,
        &first_day.event(),
        SaleConfig::for_train(layout).unwrap(),
    )
    .await;
    let later = TrainLayout::new(&stations, &["second:1x1"]).unwrap();
    create_sale(
        &central,
        &second_day.event(),
        SaleConfig::for_train(later).unwrap(),
    )
    .await;
    let _pipelines = [
        start_pipeline(&central, &ledger, &first_day.event()),
        start_pipeline(&central, &ledger, &second_day.event()),
    ];
    let spec = named("change")
        .serving(&first_day.event())
        .serving(&second_day.event())
        .orders_from(&ledger);
    let node: TestNode<C> = spawn_node(central.clone(), spec).await;

    // Alice extends A → B to A → D: a new seat, the old one given back.
    let (order, key) = paid_ticket(&node, &first_day, "alice", ("A", "B", "second")).await;
    let change = |order: &str, key: &str, query: &str| {
        format!("/orders/{order}/change?order_key={key}&{query}")
    };
    let longer = node.post(&change(&order, &key, "to=D")).await;
    assert_eq!(longer.status, StatusCode::OK, "{:?}", longer.body);
    assert_eq!(longer.body["msg"], "order changed");
    let (old, new) = (&data(&longer)["old"], &data(&longer)["new"]);
    assert_eq!(
        (old["state"].as_str(), new["state"].as_str()),
        (Some("changed"), Some("paid"))
    );
    assert_eq!(new["ticket"]["from"], "A");
    assert_eq!(new["ticket"]["to"], "D");
    assert_eq!(
        new["ticket"]["seats"],
        json!(["01-01B"]),
        "the old seat is still held while buying"
    );
    let new_order = new["order_id"].as_str().unwrap().to_owned();
    let new_key = new["order_key"]
        .as_str()
        .expect("the new order's key")
        .to_owned();
    let shown = node
        .get(&format!("/orders/{new_order}?order_key={new_key}"))
        .await;
    assert_eq!(data(&shown)["state"], "paid");
    let again = node.post(&change(&order, &key, "to=C")).await;
    assert_eq!(
        again.status,
        StatusCode::CONFLICT,
        "a changed order changes no more"
    );

    // Then to first class, then to the next day's run.
    let first = node
        .post(&change(&new_order, &new_key, "class=first"))
        .await;
    assert_eq!(
        data(&first)["new"]["ticket"]["class"],
        "first",
        "{:?}",
        first.body
    );
    let first_order = data(&first)["new"]["order_id"].as_str().unwrap().to_owned();
    let first_key = data(&first)["new"]["order_key"]
        .as_str()
        .unwrap()
        .to_owned();
    let next_day = node
        .post(&change(
            &first_order,
            &first_key,
            "date=2026-12-02&class=second",
        ))
        .await;
    assert_eq!(next_day.status, StatusCode::OK, "{:?}", next_day.body);
    assert_eq!(data(&next_day)["new"]["event"], second_day.event().as_str());

    // Bob wants the next day too: sold out there, so nothing changes.
    let (bob, bob_key) = paid_ticket(&node, &first_day, "bob", ("B", "C", "second")).await;
    let full = node.post(&change(&bob, &bob_key, "date=2026-12-02")).await;
    assert_eq!(full.status, StatusCode::CONFLICT);
    assert_eq!(
        full.body["msg"],
        "no seats for that change; your ticket is unchanged"
    );
    assert_eq!(data(&full)["state"], "paid");

    // Refusals change nothing.
    let carol = node
        .get(&format!(
            "/buy/ticket?train={}&date={}&user_id=carol&from=A&to=B&class=second",
            first_day.train(),
            first_day.date()
        ))
        .await;
    let carol_key = data(&carol)["order_key"].as_str().unwrap().to_owned();
    let unpaid = node
        .post(&change(&carol.order().unwrap(), &carol_key, "to=C"))
        .await;
    assert_eq!(unpaid.status, StatusCode::CONFLICT, "{:?}", unpaid.body);
    for (query, status) in [
        ("to=Z", StatusCode::BAD_REQUEST),
        ("from=C&to=A", StatusCode::BAD_REQUEST),
        ("class=sleeper", StatusCode::BAD_REQUEST),
        ("to=C&seat=E", StatusCode::BAD_REQUEST),
        ("from=B&to=C", StatusCode::BAD_REQUEST),
        ("date=2026-13-01", StatusCode::BAD_REQUEST),
        ("date=2026-12-03", StatusCode::NOT_FOUND),
    ] {
        let reply = node.post(&change(&bob, &bob_key, query)).await;
        assert_eq!(reply.status, status, "{query}: {:?}", reply.body);
    }
    let stranger = node.post(&change(&bob, &carol_key, "to=D")).await;
    assert_eq!(stranger.status, StatusCode::FORBIDDEN);
    let bob_order = ledger
        .order(&OrderId::parse(bob.as_str()).unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        bob_order.state,
        OrderState::Paid,
        "bob's ticket is as it was"
    );

    common::drained(&central, &first_day.event()).await;
    common::drained(&central, &second_day.event()).await;
    for run in [&first_day, &second_day] {
        let report = audit_event(&central, &ledger, &run.event(), None)
            .await
            .unwrap();
        assert!(report.passed(), "{report:#?}");
    }
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_are_all_or_nothing_on_redis_and_postgres() {
    let redis = TestRedis::shared_or_spawn();
    let database = TestDatabase::postgres();
    let ledger = OrderLedger::connect(database.url()).await.unwrap();
    changes_are_all_or_nothing(redis_central(redis.url()).await, ledger).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_are_all_or_nothing_embedded() {
    let database = TestDatabase::sqlite();
    let ledger = OrderLedger::connect(database.url()).await.unwrap();
    changes_are_all_or_nothing(MemoryCentral::new(), ledger).await;
}

/// Redis killed in the middle of changes: one change whose purchase never
/// reached it, one whose purchase did but whose desk "crashed" before the
/// ledger heard. Once Redis is back (from its append-only file) and the
/// stalled changes are settled, each traveller holds exactly one ticket:
/// the old one for the first, the new one for the second.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_cut_short_by_redis_dying_ends_with_one_ticket() {
    let mut redis = TestRedis::spawn_with(&["--appendonly", "yes", "--appendfsync", "always"]);
    let database = TestDatabase::postgres();
    let ledger = OrderLedger::connect(database.url()).await.unwrap();
    let central = redis_central(redis.url()).await;
    let (run, _) = runs();
    let layout = TrainLayout::new(&["A", "B", "C"], &["second:1x4"]).unwrap();
    create_sale(
        &central,
        &run.event(),
        SaleConfig::for_train(layout).unwrap(),
    )
    .await;
    let pipeline = start_pipeline(&central, &ledger, &run.event());
    let node: TestNode<_> = spawn_node(central.clone(), named("cut").orders_from(&ledger)).await;
    let (first, first_key) = paid_ticket(&node, &run, "ann", ("A", "B", "second")).await;
    let (second, _) = paid_ticket(&node, &run, "ben", ("A", "B", "second")).await;
    common::drained(&central, &run.event()).await;
    drop(pipeline);

    // Ben's change bought its seat, then its desk died before the ledger heard.
    let second_id = OrderId::parse(second.as_str()).unwrap();
    let now = spike_core::time::unix_millis(std::time::SystemTime::now());
    ledger
        .begin_change(&second_id, &run.event(), now)
        .await
        .unwrap();
    let purchase = TicketPurchase {
        purchase: Purchase {
            event: run.event(),
            user: Some(UserId::parse("ben").unwrap()),
            request: RequestId::for_change_of(&second_id),
            node: NodeId::parse("change").unwrap(),
            admission: None,
        },
        seats: SeatRequest {
            class: 0,
            leg: spike_core::Leg::new(0, 2).unwrap(),
            passengers: Passengers::ONE,
            preference: SeatPreference::ANY,
        },
        replacing: Some(second_id.clone()),
    };
    let bought = central.buy_seats(&purchase).await.unwrap();
    assert!(matches!(bought.verdict, spike_core::Verdict::Sold { .. }));

    // Ann's change meets a dead Redis: the node says try again.
    redis.kill();
    let cut = node
        .post(&format!(
            "/orders/{first}/change?order_key={first_key}&to=C"
        ))
        .await;
    assert_eq!(
        cut.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{:?}",
        cut.body
    );
    let first_id = OrderId::parse(first.as_str()).unwrap();
    let stalled = ledger.order(&first_id).await.unwrap().unwrap();
    assert_eq!(
        stalled.state,
        OrderState::Changing,
        "the old ticket is held meanwhile"
    );

    redis.start();
    let settled = settle_stalled_changes(&central, &ledger, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(settled, 2);
    let ann = ledger.order(&first_id).await.unwrap().unwrap();
    assert_eq!(
        ann.state,
        OrderState::Paid,
        "no new ticket: the old one stands"
    );
    let ben = ledger.order(&second_id).await.unwrap().unwrap();
    assert_eq!(
        ben.state,
        OrderState::Changed,
        "the new ticket was bought: it stands"
    );
    let new = ledger
        .order(ben.changed_to.as_ref().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(new.state, OrderState::Paid);
    assert!(ben.seat_returned_at_ms.is_some(), "the old seat went back");
    let record = central
        .request_record(&run.event(), &RequestId::for_change_of(&first_id))
        .await
        .unwrap();
    assert_eq!(record, None, "ann's change bought nothing");
    let report = audit_event(&central, &ledger, &run.event(), None)
        .await
        .unwrap();
    assert!(report.passed(), "{report:#?}");
    node.stop().await;
}
