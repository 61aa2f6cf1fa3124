//! The Redis central stock against a real `redis-server`: the shared
//! conformance suite, plus what only Redis can get wrong (script cache,
//! restarts, keys).

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failure

use spike_core::{CentralStock, EventId, SaleConfig, Verdict};
use spike_redis::{EventKeys, RedisCentral};
use spike_testkit::{unique, TestRedis};

mod common;

use common::purchase;

async fn central(redis: &TestRedis) -> RedisCentral {
    common::connect(redis.url()).await
}

/// The conformance suite on Redis, one test per case.
mod conformance {
    async fn on_redis() -> (spike_testkit::TestRedis, spike_redis::RedisCentral) {
        let redis = spike_testkit::TestRedis::shared_or_spawn();
        let central = super::central(&redis).await;
        (redis, central)
    }

    spike_core::conformance_tests!(on_redis);
}

#[tokio::test]
async fn buy_survives_a_flushed_script_cache() {
    // A Redis of its own: flushing the shared one's scripts would race the
    // other tests' reloads.
    let redis = TestRedis::spawn();
    let central = central(&redis).await;
    let event = EventId::parse(unique("noscript")).unwrap();
    central
        .create_sale(&event, &SaleConfig::new(5).unwrap(), false)
        .await
        .unwrap();
    let _: () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query(&mut redis.connection())
        .unwrap();
    let reply = central.buy(&purchase(&event, "after-flush")).await.unwrap();
    assert!(matches!(reply.verdict, Verdict::Sold { .. }), "{reply:?}");
}

#[tokio::test]
async fn sale_keys_and_stream_hold_what_was_sold() {
    let redis = TestRedis::shared_or_spawn();
    let central = central(&redis).await;
    let event = EventId::parse(unique("keys")).unwrap();
    central
        .create_sale(&event, &SaleConfig::new(3).unwrap(), false)
        .await
        .unwrap();
    for user in ["a", "b", "c", "d"] {
        central.buy(&purchase(&event, user)).await.unwrap();
    }
    let keys = EventKeys::new(&event);
    let mut connection = redis.connection();
    let sold: u64 = redis::cmd("HGET")
        .arg(&keys.sale)
        .arg("sold")
        .query(&mut connection)
        .unwrap();
    let stream: u64 = redis::cmd("XLEN")
        .arg(&keys.orders)
        .query(&mut connection)
        .unwrap();
    let buyers: u64 = redis::cmd("HLEN")
        .arg(&keys.buyers)
        .query(&mut connection)
        .unwrap();
    assert_eq!((sold, stream, buyers), (3, 3, 3));
    // Redis Cluster hashes only the part between the first `{` and the next `}`.
    let hash_tag = |key: &str| -> String {
        let open = key.find('{').expect("hash tag opens");
        let close = key[open..].find('}').expect("hash tag closes") + open;
        key[open + 1..close].to_string()
    };
    let slots: std::collections::HashSet<String> = keys.all().iter().map(|k| hash_tag(k)).collect();
    assert_eq!(slots.len(), 1, "one event's keys must share a cluster slot");
}

#[tokio::test]
async fn unreachable_redis_is_unavailable_not_a_verdict() {
    let mut redis = TestRedis::spawn();
    let central = central(&redis).await;
    let event = EventId::parse(unique("down")).unwrap();
    central
        .create_sale(&event, &SaleConfig::new(5).unwrap(), false)
        .await
        .unwrap();
    redis.kill();
    let started = std::time::Instant::now();
    let result = central.buy(&purchase(&event, "during-outage")).await;
    assert!(result.is_err(), "no verdict without Redis: {result:?}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(2),
        "bounded wait"
    );
}

/// Batched seat purchases declare every seat map from the run's shape as
/// last read; a run re-created with another shape is read again, and no
/// purchase lands on a map of the old shape.
#[tokio::test]
async fn a_run_recreated_with_another_shape_is_read_again_by_batches() {
    use spike_core::{
        Leg, Passengers, SeatPreference, SeatRequest, TicketBatch, TicketPurchase, TrainLayout,
    };
    let redis = TestRedis::shared_or_spawn();
    let central = central(&redis).await;
    let run = EventId::parse(unique("reshaped")).unwrap();
    let ticket = |user: &str, to: usize| TicketPurchase {
        purchase: purchase(&run, user),
        seats: SeatRequest {
            class: 0,
            leg: Leg::new(0, to).unwrap(),
            passengers: Passengers::ONE,
            preference: SeatPreference::ANY,
        },
        replacing: None,
    };
    let small = TrainLayout::new(&["A", "B", "C"], &["c:1x2"]).unwrap();
    central
        .create_sale(&run, &SaleConfig::for_train(small).unwrap(), false)
        .await
        .unwrap();
    let first = central
        .buy_seats_many(&TicketBatch::new(ticket("a", 2)))
        .await
        .unwrap();
    assert!(matches!(first[0].verdict, Verdict::Sold { .. }));
    let bigger = TrainLayout::new(&["A", "B", "C", "D"], &["c:1x2", "d:1x2"]).unwrap();
    central
        .create_sale(&run, &SaleConfig::for_train(bigger).unwrap(), true)
        .await
        .unwrap();
    let again = central
        .buy_seats_many(&TicketBatch::new(ticket("b", 3)))
        .await
        .unwrap();
    assert!(
        matches!(again[0].verdict, Verdict::Sold { .. }),
        "{again:?}"
    );
    let held = central.occupancy(&run).await.unwrap().unwrap();
    assert_eq!(held.classes[0].masks(), [0b111, 0], "on the new run's maps");
}
