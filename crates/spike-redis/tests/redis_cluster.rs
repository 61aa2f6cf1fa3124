//! The Redis central stock on a real three-primary Redis Cluster: the
//! shared conformance suite, sales spread over the shards by their
//! `{event}` slot, and selling exactly the stock while slots migrate or a
//! primary fails over.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failure

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use redis::Commands;
use spike_core::{CentralError, CentralStock, EventId, PurchaseBatch, SaleConfig, Verdict};
use spike_redis::{EventKeys, RedisCentral, RedisSettings};
use spike_testkit::{unique, TestRedisCluster};

mod common;

use common::purchase;

async fn central(cluster: &TestRedisCluster) -> RedisCentral {
    common::connect(cluster.url()).await
}

/// The conformance suite on the suite's shared cluster, one test per case.
mod conformance {
    async fn on_cluster() -> (spike_testkit::TestRedisCluster, spike_redis::RedisCentral) {
        let cluster = spike_testkit::TestRedisCluster::shared();
        let central = super::central(&cluster).await;
        (cluster, central)
    }

    spike_core::conformance_tests!(on_cluster);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_sales_spread_over_every_primary() {
    let cluster = TestRedisCluster::spawn();
    let central = central(&cluster).await;
    let events: Vec<EventId> = (0..100)
        .map(|i| EventId::parse(format!("spread-{i}")).unwrap())
        .collect();
    let before: Vec<u64> = (cluster.primaries().iter())
        .map(|p| p.command_calls("evalsha"))
        .collect();
    for event in &events {
        central
            .create_sale(event, &SaleConfig::new(10).unwrap(), false)
            .await
            .unwrap();
        let reply = central.buy(&purchase(event, "u1")).await.unwrap();
        assert!(matches!(reply.verdict, Verdict::Sold { .. }), "{reply:?}");
    }
    let mut sales_per_primary: BTreeMap<u16, usize> = BTreeMap::new();
    for event in &events {
        let keys = EventKeys::new(event);
        let primary = cluster.primary_of(&keys.sale);
        *sales_per_primary.entry(primary.port()).or_default() += 1;
        assert!(
            primary
                .connection()
                .exists::<_, bool>(&keys.orders)
                .unwrap(),
            "{event}'s stream lives with its sale"
        );
    }
    assert_eq!(sales_per_primary.len(), 3, "{sales_per_primary:?}");
    assert!(
        sales_per_primary.values().all(|&sales| sales >= 15),
        "{sales_per_primary:?}"
    );
    let primaries = cluster.primaries();
    for (primary, before) in primaries.iter().zip(before) {
        let ran = primary.command_calls("evalsha") - before;
        assert!(ran >= 30, "primary {} ran {ran} scripts", primary.port());
    }
    let mut listed = central.events().await.unwrap();
    listed.retain(|e| e.as_str().starts_with("spread-"));
    assert_eq!(listed.len(), 100);
}

/// Lets `buyers` buyers buy, eight at a time in batches of five, retrying
/// each batch whose outcome was unknown (as a client would, with the same
/// request ids) until it is decided; returns the orders sold. While `slow`
/// is set, each lane pauses a second between batches, and all hold once
/// [`HELD_BACK`] seats are left, so that a fault injected meanwhile lands
/// mid-sale however long it takes.
async fn sell_out(
    central: &RedisCentral,
    event: &EventId,
    buyers: usize,
    slow: Arc<AtomicBool>,
) -> HashSet<String> {
    let central = Arc::new(central.clone());
    let sold_so_far = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for lane in 0..8 {
        let central = Arc::clone(&central);
        let event = event.clone();
        let slow = Arc::clone(&slow);
        let sold_so_far = Arc::clone(&sold_so_far);
        tasks.push(tokio::spawn(async move {
            let mut sold = Vec::new();
            for chunk in (0..buyers)
                .filter(|i| i % 8 == lane)
                .collect::<Vec<_>>()
                .chunks(5)
            {
                let mut batch = PurchaseBatch::new(purchase(&event, &format!("b{}", chunk[0])));
                for i in &chunk[1..] {
                    batch.push(purchase(&event, &format!("b{i}"))).unwrap();
                }
                let replies = loop {
                    match central.buy_many(&batch).await {
                        Ok(replies) => break replies,
                        Err(CentralError::OutcomeUnknown(_) | CentralError::Unavailable(_)) => {
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                        Err(other) => panic!("{other}"),
                    }
                };
                for reply in replies {
                    if let Verdict::Sold { order, .. } = reply.verdict {
                        sold.push(order.to_string());
                        sold_so_far.fetch_add(1, Ordering::AcqRel);
                    }
                }
                if slow.load(Ordering::Acquire) {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                while slow.load(Ordering::Acquire)
                    && sold_so_far.load(Ordering::Acquire) >= STOCK - HELD_BACK
                {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
            sold
        }));
    }
    let mut orders = HashSet::new();
    for task in tasks {
        for order in task.await.unwrap() {
            assert!(orders.insert(order.clone()), "{order} sold twice");
        }
    }
    orders
}

/// Seats of the mid-sale tests.
const STOCK: u64 = 500;

/// Seats the mid-sale tests keep for after the fault.
const HELD_BACK: u64 = 50;

/// Waits until the sale has sold at least `seats`; returns how many it has.
async fn sold_at_least(central: &RedisCentral, event: &EventId, seats: u64) -> u64 {
    loop {
        if let Ok(Some(snapshot)) = central.snapshot(event).await {
            if snapshot.sold >= seats {
                return snapshot.sold;
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A sale of [`STOCK`] seats on a fresh cluster, bought by 2,000 buyers
/// while `fault` runs, given the cluster and the port of the sale's
/// primary. Checks that seats sold before, during and after the fault, and
/// exactly the stock in the end; returns the cluster, the sale's keys, that
/// port and what `fault` returned, for the fault's own checks.
async fn sells_exactly_the_stock_through<T>(
    fault: &str,
    inject: impl FnOnce(&TestRedisCluster, u16) -> T,
) -> (TestRedisCluster, EventKeys, u16, T) {
    let cluster = TestRedisCluster::spawn();
    let central = central(&cluster).await;
    let event = EventId::parse(unique(fault)).unwrap();
    let keys = EventKeys::new(&event);
    central
        .create_sale(&event, &SaleConfig::new(STOCK).unwrap(), false)
        .await
        .unwrap();
    let primary = cluster.primary_of(&keys.sale).port();
    let slow = Arc::new(AtomicBool::new(true));
    let selling = tokio::spawn({
        let central = central.clone();
        let event = event.clone();
        let slow = Arc::clone(&slow);
        async move { sell_out(&central, &event, 2_000, slow).await }
    });
    let sold_before = sold_at_least(&central, &event, 20).await;
    let started = std::time::Instant::now();
    let injected = tokio::task::block_in_place(|| inject(&cluster, primary));
    eprintln!("the {fault} took {:?}", started.elapsed());
    let sold_after = sold_at_least(&central, &event, 0).await;
    slow.store(false, Ordering::Release);
    let orders = selling.await.unwrap();
    assert!(
        sold_before < sold_after && sold_after < STOCK,
        "seats sold before ({sold_before}), during and after ({sold_after}) the {fault}"
    );
    assert_eq!(orders.len() as u64, STOCK, "exactly the stock");
    let snapshot = central.snapshot(&event).await.unwrap().unwrap();
    assert_eq!((snapshot.sold, snapshot.orders_in_stream), (STOCK, STOCK));
    (cluster, keys, primary, injected)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slot_migration_mid_sale_still_sells_exactly_the_stock() {
    // Move every slot of the sale's primary to another primary.
    let (cluster, keys, source, target) =
        sells_exactly_the_stock_through("migration", |cluster, from| {
            let primaries = cluster.primaries();
            let source = primaries.iter().find(|p| p.port() == from).unwrap();
            let target = primaries.iter().find(|p| p.port() != from).unwrap();
            cluster.reshard(source, target, 16384);
            target.port()
        })
        .await;
    assert_ne!(
        cluster.primary_of(&keys.sale).port(),
        source,
        "the sale moved"
    );
    assert_eq!(cluster.primary_of(&keys.sale).port(), target);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_primary_failover_mid_sale_still_sells_exactly_the_stock() {
    let (cluster, keys, primary, ()) =
        sells_exactly_the_stock_through("failover", |cluster, primary| {
            let primary = cluster
                .nodes()
                .iter()
                .find(|n| n.port() == primary)
                .unwrap();
            cluster.fail_over(primary);
        })
        .await;
    assert_ne!(cluster.primary_of(&keys.sale).port(), primary);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sales_and_batches_are_confirmed_by_a_replica_on_a_cluster() {
    // WAIT goes to every primary (each has one replica) and counts the
    // fewest acknowledgements: a sale is answered only once its shard's
    // replica holds it.
    let cluster = TestRedisCluster::shared();
    let mut settings = RedisSettings::new(cluster.url());
    settings.confirm_replicas = 1;
    let central = RedisCentral::connect(&settings).await.unwrap();
    let event = EventId::parse(unique("confirmed")).unwrap();
    central
        .create_sale(&event, &SaleConfig::new(10).unwrap(), false)
        .await
        .unwrap();
    let reply = central.buy(&purchase(&event, "alone")).await.unwrap();
    assert!(matches!(reply.verdict, Verdict::Sold { .. }), "{reply:?}");
    let mut batch = PurchaseBatch::new(purchase(&event, "b1"));
    batch.push(purchase(&event, "b2")).unwrap();
    let replies = central.buy_many(&batch).await.unwrap();
    assert!(
        (replies.iter()).all(|r| matches!(r.verdict, Verdict::Sold { .. })),
        "{replies:?}"
    );
    settings.confirm_replicas = 2; // more replicas than any shard has
    let strict = RedisCentral::connect(&settings).await.unwrap();
    let unconfirmed = strict.buy(&purchase(&event, "nobody-confirms")).await;
    assert!(
        matches!(unconfirmed, Err(CentralError::OutcomeUnknown(_))),
        "{unconfirmed:?}"
    );
}
