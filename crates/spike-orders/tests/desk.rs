//! The desk and the writer together, on both pairs (in-process central stock
//! with SQLite, Redis with PostgreSQL): a buyer who pays before the writer
//! wrote their order is answered correctly, and the writer's later insert of
//! the same entry is a replay that leaves the payment alone.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failure

use std::time::Duration;

use spike_core::order::OrderState;
use spike_core::{
    CentralStock, EventId, MemoryCentral, NodeId, OrderStream, Purchase, RequestId, SaleConfig,
    UserId, Verdict,
};
use spike_orders::{Found, Moved, OrderDesk, OrderLedger, OrderWriter, WriterConfig};
use spike_redis::{RedisCentral, RedisSettings};
use spike_testkit::{unique, TestDatabase, TestRedis};
use tokio::sync::watch;

async fn pay_before_the_writer<C>(central: C, ledger: OrderLedger)
where
    C: CentralStock + OrderStream + Clone,
{
    let event = EventId::parse(unique("desk")).unwrap();
    central
        .create_sale(&event, &SaleConfig::new(5).unwrap(), false)
        .await
        .unwrap();
    let purchase = Purchase {
        event: event.clone(),
        user: Some(UserId::parse("ann").unwrap()),
        request: RequestId::parse("r-ann").unwrap(),
        node: NodeId::parse("n1").unwrap(),
        admission: None,
    };
    let Verdict::Sold { order, .. } = central.buy(&purchase).await.unwrap().verdict else {
        panic!("sold");
    };
    let desk = OrderDesk::new(ledger.clone(), central.clone());
    assert!(matches!(
        desk.find(&order).await.unwrap(),
        Found::InStream(_)
    ));
    let paid = desk.pay(&order).await.unwrap();
    assert!(
        matches!(&paid, Moved::Applied(o) if o.state == OrderState::Paid),
        "{paid:?}"
    );

    // Now the writer catches up: its insert is a replay.
    let (stop, stopped) = watch::channel(false);
    let mut config = WriterConfig::new(NodeId::parse("w1").unwrap());
    config.events = vec![event.clone()];
    let writer =
        tokio::spawn(OrderWriter::new(config, central.clone(), ledger.clone()).run(stopped));
    for _ in 0..500 {
        if central.backlog(&event).await.unwrap().entries == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop.send(true).unwrap();
    let tally = writer.await.unwrap();
    assert_eq!((tally.written, tally.replayed), (0, 1));
    let Found::Written(stored) = desk.find(&order).await.unwrap() else {
        panic!("written");
    };
    assert_eq!(
        stored.state,
        OrderState::Paid,
        "the replay left the payment alone"
    );
    assert_eq!(central.backlog(&event).await.unwrap().entries, 0);
}

#[tokio::test]
async fn paying_an_unwritten_order_embedded() {
    let database = TestDatabase::sqlite();
    let ledger = OrderLedger::connect(database.url()).await.unwrap();
    pay_before_the_writer(MemoryCentral::new(), ledger).await;
}

#[tokio::test]
async fn paying_an_unwritten_order_on_redis_and_postgres() {
    let redis = TestRedis::shared_or_spawn();
    let database = TestDatabase::postgres();
    let central = RedisCentral::connect(&RedisSettings::new(redis.url()))
        .await
        .unwrap();
    let ledger = OrderLedger::connect(database.url()).await.unwrap();
    pay_before_the_writer(central, ledger).await;
}
