//! The conformance suite every [`CentralStock`] must pass: embedded and Redis
//! run these same checks, which is what makes the embedded mode a real
//! implementation rather than a mock. Events are named `<prefix>-<case>` so
//! that a shared server can host several runs.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test suite: a panic is a failed case

use std::num::NonZeroU32;
use std::time::{Duration, SystemTime};

use crate::central::{CentralStock, CreateSaleError, Holding, QueueJoin, Release, Restoration};
use crate::ids::{EventId, NodeId, OrderId, RequestId, UserId};
use crate::order_stream::{Backlog, OrderStream};
use crate::purchase::{CentralReply, Purchase, PurchaseBatch, Verdict, MAX_BATCH};
use crate::purchase::{TicketPurchase, TicketReply};
use crate::queue::{QueueConfig, QueueCounters, QueueMode};
use crate::sale::{BuyerAuth, BuyerPolicy, SaleConfig};
use crate::train::{Leg, Occupancy, Passengers, SeatRequest, Ticket, TrainLayout};

/// Declares one `#[tokio::test]` per conformance case, so that a failure
/// names its case. `$setup` is an async function returning
/// `(guard, central)`: the guard (a test server, or `()`) lives as long as
/// the test.
///
/// ```ignore
/// spike_core::conformance_tests!(memory_fixture);
/// ```
#[macro_export]
macro_rules! conformance_tests {
    ($setup:path) => {
        $crate::conformance_tests!(@cases $setup; duplicate_sale_is_refused_unless_forced,
            every_sale_rule_round_trips,
            sells_exactly_the_stock_never_one_more,
            per_user_limit_returns_the_held_order,
            same_request_id_replays_the_same_order,
            nothing_sells_before_opening,
            anonymous_sales_need_no_user_and_have_no_limit,
            identified_sales_require_a_user,
            unknown_sale_is_reported,
            concurrent_buyers_get_exactly_the_stock,
            concurrent_retries_of_one_user_get_one_order,
            a_released_seat_is_sold_again_exactly_once,
            release_refuses_what_was_not_sold,
            stream_delivers_each_entry_once_until_acknowledged,
            a_batch_of_ten_thousand_entries_is_acknowledged_whole,
            restore_rebuilds_the_sale_and_continues_its_sequence,
            a_waiting_room_places_each_buyer_once_and_seals_at_the_opening,
            a_waiting_room_admits_only_admitted_positions,
            a_waiting_room_keeps_max_active_and_stops_at_sold_out,
            a_quiet_waiting_room_admits_late_joiners_at_the_rate_not_at_once,
            a_spillover_room_lets_buyers_through_under_the_rate_and_queues_the_rest,
            a_reset_waiting_room_starts_over_and_carries_the_holders,
            a_sale_without_a_waiting_room_has_none,
            batched_and_single_purchases_agree,
            a_batch_for_a_missing_sale_is_refused_whole,
            a_train_sells_seats_per_segment,
            a_group_sits_together_or_is_refused,
            a_ticket_replays_and_keeps_the_per_user_limit,
            releasing_a_ticket_clears_exactly_its_bits,
            a_train_sells_only_seats_and_a_sale_no_seats,
            restore_rebuilds_a_trains_seats,
            concurrent_ticket_buyers_never_share_a_seat_segment,
            every_seat_choice_is_the_one_rule_over_a_long_random_sale);
    };
    (@cases $setup:path; $($case:ident),*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let (_guard, central) = $setup().await;
                let prefix = $crate::conformance::unique_prefix();
                $crate::conformance::$case(&central, &prefix).await;
            }
        )*
    };
}

/// A prefix no other run uses, so that runs can share one server.
pub fn unique_prefix() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("cf{}x{nanos:x}x{n}", std::process::id())
}

fn event(prefix: &str, case: &str) -> EventId {
    EventId::parse(format!("{prefix}-{case}")).expect("valid test event id")
}

fn purchase(event: &EventId, user: Option<&str>, request: &str) -> Purchase {
    Purchase {
        event: event.clone(),
        user: user.map(|u| UserId::parse(u).expect("valid test user")),
        request: RequestId::parse(request).expect("valid test request id"),
        node: NodeId::parse("conformance").expect("valid node id"),
        admission: None,
    }
}

async fn create<C: CentralStock>(central: &C, event: &EventId, config: SaleConfig) {
    central
        .create_sale(event, &config, true)
        .await
        .expect("create sale");
}

async fn sold<C: CentralStock>(central: &C, event: &EventId) -> u64 {
    central
        .snapshot(event)
        .await
        .expect("snapshot")
        .expect("sale exists")
        .sold
}

fn order_of(verdict: &Verdict) -> OrderId {
    match verdict {
        Verdict::Sold { order, .. } | Verdict::AlreadyPurchased { order } => order.clone(),
        other => panic!("expected an order, got {other:?}"),
    }
}

/// Conformance case: see its name.
pub async fn duplicate_sale_is_refused_unless_forced<C: CentralStock>(central: &C, prefix: &str) {
    let event = event(prefix, "dup");
    create(central, &event, SaleConfig::new(5).expect("config")).await;
    let again = central
        .create_sale(&event, &SaleConfig::new(7).expect("config"), false)
        .await;
    assert!(
        matches!(again, Err(CreateSaleError::AlreadyExists(_))),
        "{again:?}"
    );
    let snapshot = central
        .snapshot(&event)
        .await
        .expect("snapshot")
        .expect("exists");
    assert_eq!(
        snapshot.config.total(),
        5,
        "a refused create changes nothing"
    );
    create(central, &event, SaleConfig::new(7).expect("config")).await;
    let snapshot = central
        .snapshot(&event)
        .await
        .expect("snapshot")
        .expect("exists");
    assert_eq!((snapshot.config.total(), snapshot.sold), (7, 0));
    assert!(central.events().await.expect("events").contains(&event));
}

/// Conformance case: see its name.
pub async fn every_sale_rule_round_trips<C: CentralStock>(central: &C, prefix: &str) {
    let event = event(prefix, "rules");
    let config = SaleConfig::new(9)
        .expect("config")
        .with_policy(BuyerPolicy::Identified {
            per_user_limit: NonZeroU32::new(2).expect("non-zero"),
            auth: BuyerAuth::Token,
        })
        .opening_at(Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_000)))
        .with_payment_window(Duration::from_secs(42))
        .expect("window");
    create(central, &event, config.clone()).await;
    let snapshot = central
        .snapshot(&event)
        .await
        .expect("snapshot")
        .expect("exists");
    assert_eq!(snapshot.config, config, "central stock keeps every rule");
    let queue = QueueConfig::new(NonZeroU32::new(250).expect("rate"))
        .expect("queue")
        .with_max_active(std::num::NonZeroU64::new(40))
        .with_admit_window(Duration::from_secs(90))
        .expect("window")
        .joining_from(Some(SystemTime::UNIX_EPOCH + Duration::from_secs(999)));
    // (`config` has token buyers: a waiting room needs them.)
    let queued = config.with_queue(Some(queue)).expect("queued");
    create(central, &event, queued.clone()).await;
    let snapshot = central.snapshot(&event).await.expect("snapshot");
    assert_eq!(
        snapshot.expect("exists").config,
        queued,
        "and the waiting room's"
    );
}

/// Buyers who prove who they are with a token: what a waiting room needs.
const TOKEN_BUYERS: BuyerPolicy = BuyerPolicy::Identified {
    per_user_limit: NonZeroU32::MIN,
    auth: BuyerAuth::Token,
};

fn queued_sale(total: u64, per_second: u32, opens_in: Option<Duration>) -> SaleConfig {
    let queue = QueueConfig::new(NonZeroU32::new(per_second).expect("rate")).expect("queue");
    SaleConfig::new(total)
        .expect("config")
        .with_policy(TOKEN_BUYERS)
        .opening_at(opens_in.map(|wait| SystemTime::now() + wait))
        .with_queue(Some(queue))
        .expect("queued sale")
}

fn user(name: &str) -> UserId {
    UserId::parse(name).expect("valid test user")
}

async fn join<C: CentralStock>(central: &C, event: &EventId, name: &str) -> u64 {
    match central
        .join_queue(event, &user(name), 99)
        .await
        .expect("join")
    {
        QueueJoin::Joined { join_index } => join_index,
        other => panic!("{name} could not join: {other:?}"),
    }
}

async fn tick<C: CentralStock>(central: &C, event: &EventId, seed: u64) -> QueueCounters {
    central
        .tick_queue(event, seed, 0)
        .await
        .expect("tick")
        .expect("a waiting room")
}

fn admitted(event: &EventId, name: &str, request: &str, position: Option<u64>) -> Purchase {
    Purchase {
        admission: position,
        ..purchase(event, Some(name), request)
    }
}

/// Conformance case: see its name.
pub async fn a_waiting_room_places_each_buyer_once_and_seals_at_the_opening<C: CentralStock>(
    central: &C,
    prefix: &str,
) {
    let event = event(prefix, "queue-seal");
    let opens_in = Duration::from_millis(400);
    create(central, &event, queued_sale(100, 100, Some(opens_in))).await;
    let started = std::time::Instant::now();
    for i in 0..50 {
        assert_eq!(join(central, &event, &format!("q{i}")).await, i);
    }
    assert_eq!(join(central, &event, "q7").await, 7, "one place per buyer");
    let before = tick(central, &event, 11).await;
    assert_eq!((before.joined, before.seal, before.admitted), (50, None, 0));
    let early = admitted(&event, "q0", "rq0-early", Some(0));
    let reply = central.buy(&early).await.expect("buy");
    assert_eq!(
        reply.verdict,
        Verdict::NotOpen,
        "nothing before the opening"
    );

    tokio::time::sleep((opens_in + Duration::from_millis(150)).saturating_sub(started.elapsed()))
        .await;
    let opened = tick(central, &event, 12).await;
    let seal = opened.seal.expect("sealed at the opening");
    assert_eq!((seal.seed, seal.early), (12, 50));
    assert!(
        (10..=50).contains(&opened.admitted),
        "100/s for more than 100 ms: {}",
        opened.admitted
    );
    assert_eq!(
        opened.steps.last().map(|s| s.admitted),
        Some(opened.admitted)
    );
    assert_eq!(
        join(central, &event, "late").await,
        50,
        "behind the early ones"
    );
    let again = tick(central, &event, 13).await;
    assert_eq!(again.seal, Some(seal), "sealed once");
    assert!(again.admitted >= opened.admitted, "never back");
}

/// Conformance case: see its name. The waiting room's rate is a token
/// bucket holding one second of it: a room quiet for longer than that
/// admits one second's worth at once, then the rate.
pub async fn a_quiet_waiting_room_admits_late_joiners_at_the_rate_not_at_once<C: CentralStock>(
    central: &C,
    prefix: &str,
) {
    let event = event(prefix, "queue-quiet");
    create(central, &event, queued_sale(100_000, 200, None)).await;
    join(central, &event, "first").await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let first = tick(central, &event, 5).await;
    assert_eq!(first.admitted, 1, "the one who joined");
    // A quiet spell, longer than the bucket holds; then a crowd joins.
    tokio::time::sleep(Duration::from_millis(1300)).await;
    for i in 0..400 {
        join(central, &event, &format!("late{i}")).await;
    }
    let burst = tick(central, &event, 5).await;
    let burst_at = std::time::Instant::now();
    assert_eq!(
        burst.admitted,
        1 + 200,
        "one second of the rate at once, not the quiet spell's"
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    let next = tick(central, &event, 5).await;
    let allowed = (burst_at.elapsed().as_secs_f64() * 200.0).ceil() as u64 + 2;
    let moved = next.admitted - burst.admitted;
    assert!(
        (10..=allowed).contains(&moved),
        "then the rate: {moved} in {:?}",
        burst_at.elapsed()
    );
}

/// Conformance case: see its name. A spillover room (`--queue auto`): a
/// buyer passes straight through while the rate's bucket has a token and
/// nobody waits; once one buyer waits, everyone after waits too (even when
/// tokens come back) until the ticks have admitted them in arrival order.
pub async fn a_spillover_room_lets_buyers_through_under_the_rate_and_queues_the_rest<
    C: CentralStock,
>(
    central: &C,
    prefix: &str,
) {
    let event = event(prefix, "queue-spill");
    let rate = 10;
    let spillover = |opens_in| {
        let config = queued_sale(1_000, rate, opens_in);
        let room = config
            .queue()
            .expect("a room")
            .with_mode(QueueMode::Spillover);
        config.with_queue(Some(room)).expect("spillover sale")
    };
    // Before the opening nobody passes: early joiners are shuffled.
    let early = EventId::parse(format!("{event}-early")).expect("valid test event id");
    create(central, &early, spillover(Some(Duration::from_secs(60)))).await;
    assert_eq!(
        join(central, &early, "early0").await,
        0,
        "waits for the opening"
    );

    create(central, &event, spillover(None)).await;
    // A full bucket: one second of the rate.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let started = std::time::Instant::now();
    let mut doors = Vec::new();
    for i in 0..16 {
        let door = (central
            .join_queue(&event, &user(&format!("s{i}")), 99)
            .await)
            .expect("join");
        doors.push(door);
    }
    let elapsed = started.elapsed();
    let passed = doors
        .iter()
        .take_while(|door| matches!(door, QueueJoin::Passed { .. }))
        .count();
    let allowed = rate as usize + (elapsed.as_millis() as usize * rate as usize).div_ceil(1000);
    assert!(
        (rate as usize..=allowed).contains(&passed),
        "the bucket's worth passes: {passed} in {elapsed:?}"
    );
    for (index, door) in doors.iter().enumerate() {
        let expected = match index < passed {
            true => QueueJoin::Passed {
                join_index: index as u64,
            },
            false => QueueJoin::Joined {
                join_index: index as u64,
            },
        };
        assert_eq!(*door, expected, "once one waits, everyone after waits");
    }
    let again = central
        .join_queue(&event, &user("s0"), 99)
        .await
        .expect("join");
    assert_eq!(again, QueueJoin::Passed { join_index: 0 }, "a pass is kept");

    // A passer buys at their own position at once; a waiter may not yet.
    let pass = admitted(&event, "s0", "rs0", Some(0));
    assert!(matches!(
        central.buy(&pass).await.expect("buy").verdict,
        Verdict::Sold { .. }
    ));
    let waiter = passed as u64;
    let early_buy = admitted(&event, &format!("s{waiter}"), "rsw", Some(waiter));
    assert_eq!(
        central.buy(&early_buy).await.expect("buy").verdict,
        Verdict::NotAdmitted
    );

    // The ticks admit the waiters at the rate, in arrival order; then the
    // room is empty again and a newcomer passes.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while tick(central, &event, 5).await.admitted < 16 {
        assert!(
            std::time::Instant::now() < deadline,
            "the waiters are admitted"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(150)).await;
    let newcomer = central
        .join_queue(&event, &user("later"), 99)
        .await
        .expect("join");
    assert_eq!(newcomer, QueueJoin::Passed { join_index: 16 });

    let record = (central.queue_record(&event).await)
        .expect("record")
        .expect("a room");
    let mut expected: Vec<u64> = (0..passed as u64).collect();
    expected.push(16);
    assert_eq!(record.passed, expected);
    let steps = &record.counters.steps;
    assert_eq!(
        crate::queue::passes_ahead_of_waiters(steps, &record.passed),
        0
    );
    let config = spillover(None);
    let room = config.queue().expect("a room");
    assert!(
        record.origin_ms > 0,
        "a sale open from its creation counts from its seal"
    );
    assert_eq!(
        crate::queue::steps_beyond_rate(room, record.origin_ms, steps),
        0,
        "{steps:?}"
    );
}

/// Conformance case: see its name.
pub async fn a_waiting_room_admits_only_admitted_positions<C: CentralStock>(
    central: &C,
    prefix: &str,
) {
    let event = event(prefix, "queue-admit");
    // Open from creation at 1,000/s: the budget is far ahead, the joiners decide.
    create(central, &event, queued_sale(10, 1000, None)).await;
    for i in 0..4 {
        join(central, &event, &format!("a{i}")).await;
    }
    let counters = tick(central, &event, 5).await;
    assert_eq!((counters.joined, counters.admitted), (4, 4));
    assert_eq!(
        counters.seal,
        Some(crate::queue::Seal { seed: 99, early: 0 }),
        "the first join sealed it: nobody was early"
    );
    let reply = |purchase: Purchase| async move { central.buy(&purchase).await.expect("buy") };
    let none = reply(admitted(&event, "a0", "ra0", None)).await;
    assert_eq!(none.verdict, Verdict::NotAdmitted);
    let beyond = reply(admitted(&event, "a0", "ra0", Some(4))).await;
    assert_eq!(beyond.verdict, Verdict::NotAdmitted);
    assert_eq!(sold(central, &event).await, 0, "nothing sold to strangers");
    let sale = reply(admitted(&event, "a2", "ra2", Some(2))).await;
    assert!(matches!(sale.verdict, Verdict::Sold { .. }), "{sale:?}");
    let record = central
        .queue_record(&event)
        .await
        .expect("record")
        .expect("a waiting room");
    assert_eq!(record.bought, vec![(2, user("a2"))]);
    let joiners: Vec<u64> = record.joiners.iter().map(|(_, index)| *index).collect();
    assert_eq!(joiners, [0, 1, 2, 3]);
    assert_eq!(record.counters.admitted, 4);
}

/// Conformance case: see its name.
pub async fn a_reset_waiting_room_starts_over_and_carries_the_holders<C: CentralStock>(
    central: &C,
    prefix: &str,
) {
    let plain = event(prefix, "queue-none");
    let event = event(prefix, "queue-reset");
    create(central, &event, queued_sale(10, 1000, None)).await;
    for i in 0..3 {
        join(central, &event, &format!("r{i}")).await;
    }
    let before = tick(central, &event, 5).await;
    assert_eq!(before.admitted, 3);
    let sale = central
        .buy(&admitted(&event, "r1", "rr1", Some(1)))
        .await
        .expect("buy");
    assert!(matches!(sale.verdict, Verdict::Sold { .. }), "{sale:?}");

    let reset = central
        .reset_queue(&event, &[user("r1")])
        .await
        .expect("reset");
    assert!(reset, "the sale has a waiting room");
    let record = central
        .queue_record(&event)
        .await
        .expect("record")
        .expect("a waiting room");
    assert!(record.joiners.is_empty() && record.bought.is_empty());
    assert_eq!(record.carried, [user("r1")]);
    assert_eq!(record.counters.admitted, 0);
    // Sealed anew at the next step or join, with the new seed.
    let rejoin = central.join_queue(&event, &user("r2"), 1234).await;
    assert_eq!(
        rejoin.expect("join"),
        QueueJoin::Joined { join_index: 0 },
        "first in the new room"
    );
    let after = tick(central, &event, 77).await;
    assert_eq!(after.seal.map(|seal| seal.seed), Some(1234), "sealed anew");
    assert_ne!(after.seal, before.seal);
    let stale = central
        .buy(&admitted(&event, "r0", "rr0", Some(2)))
        .await
        .expect("buy");
    assert_eq!(
        stale.verdict,
        Verdict::NotAdmitted,
        "position 2 is not admitted now"
    );

    create(central, &plain, SaleConfig::new(1).expect("config")).await;
    assert!(!central.reset_queue(&plain, &[]).await.expect("reset"));
}

/// Conformance case: see its name.
pub async fn a_waiting_room_keeps_max_active_and_stops_at_sold_out<C: CentralStock>(
    central: &C,
    prefix: &str,
) {
    let event = event(prefix, "queue-active");
    let queue = QueueConfig::new(NonZeroU32::new(1000).expect("rate"))
        .expect("queue")
        .with_max_active(std::num::NonZeroU64::new(3));
    let config = SaleConfig::new(2)
        .expect("config")
        .with_policy(TOKEN_BUYERS)
        .with_queue(Some(queue))
        .expect("queued");
    create(central, &event, config).await;
    for i in 0..10 {
        join(central, &event, &format!("m{i}")).await;
    }
    assert_eq!(tick(central, &event, 1).await.admitted, 3, "three active");
    assert_eq!(tick(central, &event, 1).await.admitted, 3, "still three");
    let sale = central
        .buy(&admitted(&event, "m0", "rm0", Some(0)))
        .await
        .expect("buy");
    assert!(matches!(sale.verdict, Verdict::Sold { .. }), "{sale:?}");
    assert_eq!(
        tick(central, &event, 1).await.admitted,
        4,
        "one bought, one more"
    );
    let sale = central
        .buy(&admitted(&event, "m1", "rm1", Some(1)))
        .await
        .expect("buy");
    assert!(matches!(sale.verdict, Verdict::Sold { .. }), "{sale:?}");
    assert_eq!(
        tick(central, &event, 1).await.admitted,
        4,
        "sold out: nobody more is admitted"
    );
}

/// Conformance case: see its name.
pub async fn a_sale_without_a_waiting_room_has_none<C: CentralStock>(central: &C, prefix: &str) {
    let event = event(prefix, "queue-none");
    create(central, &event, SaleConfig::new(1).expect("config")).await;
    let join = central
        .join_queue(&event, &user("x"), 1)
        .await
        .expect("join");
    assert_eq!(join, QueueJoin::NoQueue);
    assert_eq!(central.tick_queue(&event, 1, 0).await.expect("tick"), None);
    assert_eq!(central.queue_record(&event).await.expect("record"), None);
    let sale = central
        .buy(&purchase(&event, Some("x"), "rx"))
        .await
        .expect("buy");
    assert!(
        matches!(sale.verdict, Verdict::Sold { .. }),
        "no admission needed"
    );
    let missing = super::conformance::event(prefix, "queue-missing");
    let join = central
        .join_queue(&missing, &user("x"), 1)
        .await
        .expect("join");
    assert_eq!(join, QueueJoin::NoSuchSale);
    let future = QueueConfig::new(NonZeroU32::MIN)
        .expect("queue")
        .joining_from(Some(SystemTime::now() + Duration::from_secs(3600)));
    let later = SaleConfig::new(1)
        .expect("config")
        .with_policy(TOKEN_BUYERS)
        .opening_at(Some(SystemTime::now() + Duration::from_secs(7200)))
        .with_queue(Some(future))
        .expect("queued");
    create(central, &event, later).await;
    let join = central
        .join_queue(&event, &user("x"), 1)
        .await
        .expect("join");
    assert!(
        matches!(join, QueueJoin::NotYetOpen { .. }),
        "joining starts when the room opens to joiners: {join:?}"
    );
}

/// Conformance case: see its name.
pub async fn sells_exactly_the_stock_never_one_more<C: CentralStock>(central: &C, prefix: &str) {
    // The articles' script checks `total >= sold` and sells a 101st seat.
    let event = event(prefix, "oversell");
    create(central, &event, SaleConfig::new(100).expect("config")).await;
    for i in 1..=100 {
        let reply = central
            .buy(&purchase(&event, Some(&format!("u{i}")), &format!("r{i}")))
            .await
            .expect("buy");
        assert!(
            matches!(
                reply.verdict,
                Verdict::Sold {
                    replayed: false,
                    ..
                }
            ),
            "{reply:?}"
        );
        assert_eq!(reply.remaining, 100 - i);
    }
    let reply = central
        .buy(&purchase(&event, Some("u101"), "r101"))
        .await
        .expect("buy");
    assert_eq!(
        reply.verdict,
        Verdict::SoldOut,
        "the 101st buyer must be refused"
    );
    assert_eq!(reply.remaining, 0);
    let snapshot = central
        .snapshot(&event)
        .await
        .expect("snapshot")
        .expect("exists");
    assert_eq!(
        (snapshot.sold, snapshot.buyers, snapshot.orders_in_stream),
        (100, 100, 100)
    );
    assert_eq!(snapshot.remaining(), 0);
}

/// Conformance case: see its name.
pub async fn per_user_limit_returns_the_held_order<C: CentralStock>(central: &C, prefix: &str) {
    let event = event(prefix, "limit1");
    create(central, &event, SaleConfig::new(10).expect("config")).await;
    let first = central
        .buy(&purchase(&event, Some("alice"), "a1"))
        .await
        .expect("buy");
    let again = central
        .buy(&purchase(&event, Some("alice"), "a2"))
        .await
        .expect("buy");
    assert_eq!(
        again.verdict,
        Verdict::AlreadyPurchased {
            order: order_of(&first.verdict)
        }
    );
    assert_eq!(sold(central, &event).await, 1);

    let event = crate::conformance::event(prefix, "limit3");
    let three = BuyerPolicy::Identified {
        per_user_limit: NonZeroU32::new(3).expect("non-zero"),
        auth: BuyerAuth::Open,
    };
    create(
        central,
        &event,
        SaleConfig::new(10).expect("config").with_policy(three),
    )
    .await;
    let mut last = None;
    for i in 0..3 {
        let reply = central
            .buy(&purchase(&event, Some("bob"), &format!("b{i}")))
            .await
            .expect("buy");
        assert!(matches!(reply.verdict, Verdict::Sold { .. }), "{reply:?}");
        last = Some(order_of(&reply.verdict));
    }
    let fourth = central
        .buy(&purchase(&event, Some("bob"), "b3"))
        .await
        .expect("buy");
    assert_eq!(
        fourth.verdict,
        Verdict::AlreadyPurchased {
            order: last.expect("three orders")
        }
    );
    let snapshot = central
        .snapshot(&event)
        .await
        .expect("snapshot")
        .expect("exists");
    assert_eq!((snapshot.sold, snapshot.buyers), (3, 1));
}

/// Conformance case: see its name.
pub async fn same_request_id_replays_the_same_order<C: CentralStock>(central: &C, prefix: &str) {
    let event = event(prefix, "replay");
    let anonymous = SaleConfig::new(10)
        .expect("config")
        .with_policy(BuyerPolicy::Anonymous);
    create(central, &event, anonymous).await;
    let first = central
        .buy(&purchase(&event, None, "req-1"))
        .await
        .expect("buy");
    let replay = central
        .buy(&purchase(&event, None, "req-1"))
        .await
        .expect("buy");
    let order = order_of(&first.verdict);
    assert_eq!(
        replay.verdict,
        Verdict::Sold {
            order: order.clone(),
            replayed: true
        }
    );
    assert_eq!(sold(central, &event).await, 1, "a replay sells nothing");
    let request = RequestId::parse("req-1").expect("id");
    let record = central
        .request_record(&event, &request)
        .await
        .expect("lookup")
        .expect("the request bought");
    assert_eq!(record.order, order);
    let unknown = RequestId::parse("never-sent").expect("id");
    assert_eq!(
        central
            .request_record(&event, &unknown)
            .await
            .expect("lookup"),
        None
    );
}

/// Conformance case: see its name.
pub async fn nothing_sells_before_opening<C: CentralStock>(central: &C, prefix: &str) {
    let event = event(prefix, "notopen");
    let later = SystemTime::now() + Duration::from_secs(3600);
    create(
        central,
        &event,
        SaleConfig::new(10).expect("config").opening_at(Some(later)),
    )
    .await;
    let reply = central
        .buy(&purchase(&event, Some("early"), "e1"))
        .await
        .expect("buy");
    assert_eq!((reply.verdict, reply.remaining), (Verdict::NotOpen, 10));
    assert_eq!(sold(central, &event).await, 0);
}

/// Conformance case: see its name.
pub async fn anonymous_sales_need_no_user_and_have_no_limit<C: CentralStock>(
    central: &C,
    prefix: &str,
) {
    let event = event(prefix, "anon");
    let anonymous = SaleConfig::new(3)
        .expect("config")
        .with_policy(BuyerPolicy::Anonymous);
    create(central, &event, anonymous).await;
    for request in ["x1", "x2"] {
        let reply = central
            .buy(&purchase(&event, Some("same"), request))
            .await
            .expect("buy");
        assert!(matches!(reply.verdict, Verdict::Sold { .. }), "{reply:?}");
    }
    let reply = central
        .buy(&purchase(&event, None, "x3"))
        .await
        .expect("buy");
    assert!(matches!(reply.verdict, Verdict::Sold { .. }), "{reply:?}");
    let reply = central
        .buy(&purchase(&event, None, "x4"))
        .await
        .expect("buy");
    assert_eq!(reply.verdict, Verdict::SoldOut);
    let snapshot = central
        .snapshot(&event)
        .await
        .expect("snapshot")
        .expect("exists");
    assert_eq!(
        (snapshot.sold, snapshot.buyers, snapshot.orders_in_stream),
        (3, 0, 3)
    );
}

/// Conformance case: see its name.
pub async fn identified_sales_require_a_user<C: CentralStock>(central: &C, prefix: &str) {
    let event = event(prefix, "needuser");
    create(central, &event, SaleConfig::new(3).expect("config")).await;
    let reply = central
        .buy(&purchase(&event, None, "n1"))
        .await
        .expect("buy");
    assert_eq!(reply.verdict, Verdict::UserRequired);
    assert_eq!(sold(central, &event).await, 0);
}

/// Conformance case: see its name.
pub async fn unknown_sale_is_reported<C: CentralStock>(central: &C, prefix: &str) {
    let event = event(prefix, "missing");
    let reply = central
        .buy(&purchase(&event, Some("u"), "m1"))
        .await
        .expect("buy");
    assert_eq!(reply.verdict, Verdict::NoSuchSale);
    assert_eq!(central.snapshot(&event).await.expect("snapshot"), None);
}

/// Conformance case: see its name.
pub async fn concurrent_buyers_get_exactly_the_stock<C: CentralStock + Clone>(
    central: &C,
    prefix: &str,
) {
    let event = event(prefix, "race");
    create(central, &event, SaleConfig::new(100).expect("config")).await;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..400 {
        let central = central.clone();
        let purchase = purchase(&event, Some(&format!("racer{i}")), &format!("rr{i}"));
        tasks.spawn(async move { central.buy(&purchase).await.expect("buy").verdict });
    }
    let mut orders = std::collections::HashSet::new();
    let mut sold_out = 0;
    while let Some(verdict) = tasks.join_next().await {
        match verdict.expect("task") {
            Verdict::Sold { order, .. } => assert!(orders.insert(order), "order given twice"),
            Verdict::SoldOut => sold_out += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!((orders.len(), sold_out), (100, 300));
    assert_eq!(sold(central, &event).await, 100);
}

/// Conformance case: see its name.
pub async fn concurrent_retries_of_one_user_get_one_order<C: CentralStock + Clone>(
    central: &C,
    prefix: &str,
) {
    let event = event(prefix, "oneuser");
    create(central, &event, SaleConfig::new(10).expect("config")).await;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..50 {
        let central = central.clone();
        let purchase = purchase(&event, Some("eager"), &format!("eager{i}"));
        tasks.spawn(async move { central.buy(&purchase).await.expect("buy").verdict });
    }
    let mut verdicts = Vec::new();
    while let Some(verdict) = tasks.join_next().await {
        verdicts.push(verdict.expect("task"));
    }
    let sold: Vec<_> = verdicts
        .iter()
        .filter(|v| matches!(v, Verdict::Sold { .. }))
        .collect();
    assert_eq!(sold.len(), 1);
    let order = order_of(sold[0]);
    let held = verdicts
        .iter()
        .filter(|v| {
            **v == Verdict::AlreadyPurchased {
                order: order.clone(),
            }
        })
        .count();
    assert_eq!(held, 49);
}

/// Conformance case: see its name.
pub async fn a_released_seat_is_sold_again_exactly_once<C: CentralStock>(
    central: &C,
    prefix: &str,
) {
    let event = event(prefix, "release");
    create(central, &event, SaleConfig::new(2).expect("config")).await;
    let first = central
        .buy(&purchase(&event, Some("ann"), "ra"))
        .await
        .expect("buy");
    central
        .buy(&purchase(&event, Some("ben"), "rb"))
        .await
        .expect("buy");
    let order = order_of(&first.verdict);
    let ann = UserId::parse("ann").expect("id");
    let ra = RequestId::parse("ra").expect("id");
    let released = central
        .release(&event, &order, Some(&ann), &ra)
        .await
        .expect("release");
    assert_eq!(released, Release::Released { remaining: 1 });
    let again = central
        .release(&event, &order, Some(&ann), &ra)
        .await
        .expect("release");
    assert_eq!(again, Release::AlreadyReleased, "a seat goes back once");
    let snapshot = central
        .snapshot(&event)
        .await
        .expect("snapshot")
        .expect("exists");
    assert_eq!((snapshot.sold, snapshot.buyers), (1, 1));
    // The buyer whose order was released may buy again, and gets a new order.
    let rebuy = central
        .buy(&purchase(&event, Some("ann"), "ra2"))
        .await
        .expect("buy");
    let new_order = order_of(&rebuy.verdict);
    assert!(
        matches!(
            rebuy.verdict,
            Verdict::Sold {
                replayed: false,
                ..
            }
        ),
        "{rebuy:?}"
    );
    assert_ne!(new_order, order);
    let late = central
        .buy(&purchase(&event, Some("cat"), "rc"))
        .await
        .expect("buy");
    assert_eq!(
        late.verdict,
        Verdict::SoldOut,
        "still never more than the stock"
    );
    assert_eq!(sold(central, &event).await, 2);
}

/// Conformance case: see its name.
pub async fn release_refuses_what_was_not_sold<C: CentralStock>(central: &C, prefix: &str) {
    let event = event(prefix, "norelease");
    create(central, &event, SaleConfig::new(2).expect("config")).await;
    let bought = central
        .buy(&purchase(&event, Some("dan"), "rd"))
        .await
        .expect("buy");
    let order = order_of(&bought.verdict);
    let dan = UserId::parse("dan").expect("id");
    let wrong_request = RequestId::parse("not-rd").expect("id");
    let refused = central
        .release(&event, &order, Some(&dan), &wrong_request)
        .await
        .expect("release");
    assert_eq!(refused, Release::NotSold);
    let unknown = OrderId::parse("never-sold-9").expect("id");
    let rd = RequestId::parse("rd").expect("id");
    let refused = central
        .release(&event, &unknown, Some(&dan), &rd)
        .await
        .expect("release");
    assert_eq!(refused, Release::NotSold);
    assert_eq!(
        sold(central, &event).await,
        1,
        "refused releases change nothing"
    );
    let missing = crate::conformance::event(prefix, "norelease-missing");
    let refused = central
        .release(&missing, &order, Some(&dan), &rd)
        .await
        .expect("release");
    assert_eq!(refused, Release::NoSuchSale);
}

/// Conformance case: see its name. (A script that hands every id to one
/// command at once fails past Lua's unpack limit, about 8,000 values.)
pub async fn a_batch_of_ten_thousand_entries_is_acknowledged_whole<
    C: CentralStock + OrderStream,
>(
    central: &C,
    prefix: &str,
) {
    const ENTRIES: u64 = 10_000;
    let event = event(prefix, "big-ack");
    let config = SaleConfig::new(ENTRIES)
        .expect("config")
        .with_policy(BuyerPolicy::Anonymous);
    create(central, &event, config).await;
    let mut next = 0;
    while next < ENTRIES {
        let mut batch = PurchaseBatch::new(purchase(&event, None, &format!("big-{next}")));
        next += 1;
        while next < ENTRIES && batch.len() < MAX_BATCH {
            let more = purchase(&event, None, &format!("big-{next}"));
            batch.push(more).expect("room in the batch");
            next += 1;
        }
        central.buy_many(&batch).await.expect("batch");
    }
    let writer = NodeId::parse("big-writer").expect("id");
    let read = central
        .read_new(&event, &writer, ENTRIES as usize)
        .await
        .expect("read");
    assert_eq!(read.len() as u64, ENTRIES);
    let sequences: Vec<u64> = read.iter().map(|e| e.sequence).collect();
    assert_eq!(
        central.acknowledge(&event, &sequences).await.expect("ack"),
        ENTRIES
    );
    assert_eq!(
        central.backlog(&event).await.expect("backlog"),
        Backlog::default()
    );
}

/// Conformance case: see its name.
pub async fn stream_delivers_each_entry_once_until_acknowledged<C: CentralStock + OrderStream>(
    central: &C,
    prefix: &str,
) {
    let event = event(prefix, "stream");
    create(central, &event, SaleConfig::new(10).expect("config")).await;
    for user in ["s1", "s2", "s3"] {
        let reply = central
            .buy(&purchase(&event, Some(user), &format!("r-{user}")))
            .await
            .expect("buy");
        order_of(&reply.verdict);
    }
    let (a, b, c) = (
        NodeId::parse("writer-a").expect("id"),
        NodeId::parse("writer-b").expect("id"),
        NodeId::parse("writer-c").expect("id"),
    );
    let first = central.read_new(&event, &a, 2).await.expect("read");
    let sequences: Vec<u64> = first.iter().map(|e| e.sequence).collect();
    assert_eq!(sequences, [1, 2]);
    assert_eq!(first[0].order, OrderId::for_sequence(&event, 1));
    assert_eq!(first[0].user, Some(UserId::parse("s1").expect("id")));
    assert_eq!(first[0].request.as_str(), "r-s1");
    assert!(first[0].sold_at_ms > 0);
    let second = central.read_new(&event, &b, 10).await.expect("read");
    assert_eq!(second.iter().map(|e| e.sequence).collect::<Vec<_>>(), [3]);
    assert!(central
        .read_new(&event, &b, 10)
        .await
        .expect("read")
        .is_empty());
    let found = central.entry(&event, 2).await.expect("entry");
    assert_eq!(
        found.map(|e| e.order),
        Some(OrderId::for_sequence(&event, 2))
    );
    assert_eq!(central.acknowledge(&event, &[1, 2]).await.expect("ack"), 2);
    assert_eq!(central.acknowledge(&event, &[1]).await.expect("ack"), 0);
    assert_eq!(central.entry(&event, 1).await.expect("entry"), None);
    assert_eq!(
        central.backlog(&event).await.expect("backlog"),
        Backlog {
            entries: 1,
            pending: 1
        }
    );
    let long = Duration::from_secs(3600);
    let not_stale = central.reclaim(&event, &c, long, 10).await.expect("claim");
    assert!(not_stale.is_empty(), "{not_stale:?}");
    tokio::time::sleep(Duration::from_millis(20)).await;
    let short = Duration::from_millis(10);
    let stale = central.reclaim(&event, &c, short, 10).await.expect("claim");
    assert_eq!(stale.iter().map(|e| e.sequence).collect::<Vec<_>>(), [3]);
    let left = central.unacknowledged(&event).await.expect("range");
    assert_eq!(left.iter().map(|e| e.sequence).collect::<Vec<_>>(), [3]);
    assert_eq!(central.acknowledge(&event, &[3]).await.expect("ack"), 1);
    assert_eq!(
        central.backlog(&event).await.expect("backlog"),
        Backlog::default()
    );
    let snapshot = central
        .snapshot(&event)
        .await
        .expect("snapshot")
        .expect("sale");
    assert_eq!((snapshot.sold, snapshot.orders_in_stream), (3, 0));
}

/// Conformance case: see its name.
pub async fn restore_rebuilds_the_sale_and_continues_its_sequence<C: CentralStock>(
    central: &C,
    prefix: &str,
) {
    let event = event(prefix, "restore");
    let config = SaleConfig::new(3).expect("config");
    create(central, &event, config.clone()).await;
    let kept = central
        .buy(&purchase(&event, Some("k1"), "rk1"))
        .await
        .expect("buy");
    let given_up = central
        .buy(&purchase(&event, Some("k2"), "rk2"))
        .await
        .expect("buy");
    let (kept, given_up) = (order_of(&kept.verdict), order_of(&given_up.verdict));
    // Central state is lost and taken up again from the ledger, which knows
    // of five sequences: one order holding a seat, one given back.
    let restoration = Restoration {
        config,
        last_sequence: 5,
        holding: vec![Holding {
            order: kept.clone(),
            user: Some(UserId::parse("k1").expect("id")),
            request: RequestId::parse("rk1").expect("id"),
            ticket: None,
        }],
        released: vec![given_up.clone()],
    };
    central
        .restore(&event, &restoration)
        .await
        .expect("restore");
    let snapshot = central
        .snapshot(&event)
        .await
        .expect("snapshot")
        .expect("sale");
    assert_eq!((snapshot.sold, snapshot.buyers), (1, 1));
    let again = central
        .buy(&purchase(&event, Some("k1"), "rk1-b"))
        .await
        .expect("buy");
    assert_eq!(
        again.verdict,
        Verdict::AlreadyPurchased {
            order: kept.clone()
        }
    );
    let replay = central
        .buy(&purchase(&event, Some("k1"), "rk1"))
        .await
        .expect("buy");
    assert_eq!(order_of(&replay.verdict), kept);
    let k2 = UserId::parse("k2").expect("id");
    let rk2 = RequestId::parse("rk2").expect("id");
    let release = central.release(&event, &given_up, Some(&k2), &rk2).await;
    assert_eq!(release, Ok(Release::AlreadyReleased));
    let next = central
        .buy(&purchase(&event, Some("k3"), "rk3"))
        .await
        .expect("buy");
    assert_eq!(order_of(&next.verdict), OrderId::for_sequence(&event, 6));
    central
        .buy(&purchase(&event, Some("k4"), "rk4"))
        .await
        .expect("buy");
    let late = central
        .buy(&purchase(&event, Some("k5"), "rk5"))
        .await
        .expect("buy");
    assert_eq!(late.verdict, Verdict::SoldOut);
}

/// One recorded purchase: buyer, request id, admitted position.
type Recorded = (Option<&'static str>, &'static str, Option<u64>);

/// Six seats, two per buyer: replays, a request id reused by another buyer,
/// a purchase without a buyer, the limit, the last seat, and purchases
/// after the sellout (replays still answered, limits before "sold out").
const OPEN_SEQUENCE: &[Recorded] = &[
    (Some("alice"), "r1", None),
    (Some("alice"), "r1", None),
    (Some("bob"), "r2", None),
    (Some("carol"), "r2", None),
    (Some("alice"), "r3", None),
    (Some("alice"), "r4", None),
    (None, "r5", None),
    (Some("bob"), "r6", None),
    (Some("dave"), "r7", None),
    (Some("dave"), "r7", None),
    (Some("erin"), "r8", None),
    (Some("frank"), "r9", None),
    (Some("erin"), "r10", None),
    (Some("alice"), "r1", None),
    (Some("bob"), "r11", None),
    (Some("gina"), "r2", None),
    (Some("frank"), "r9", None),
];

/// A waiting room with positions 0..4 admitted: purchases without a
/// position, beyond the admitted ones, and two buyers sharing a position.
const QUEUED_SEQUENCE: &[Recorded] = &[
    (Some("a0"), "q0", None),
    (Some("a0"), "q1", Some(4)),
    (Some("a2"), "q2", Some(2)),
    (Some("a1"), "q3", Some(1)),
    (Some("a3"), "q4", Some(1)),
    (Some("a2"), "q2", Some(2)),
    (Some("a0"), "q5", Some(0)),
];

/// A sale ready for one run of `recorded`: two per buyer for
/// [`OPEN_SEQUENCE`], or a waiting room with four admitted.
async fn recorded_sale<C: CentralStock>(central: &C, event: &EventId, queued: bool) {
    if queued {
        create(central, event, queued_sale(10, 1000, None)).await;
        for i in 0..4 {
            join(central, event, &format!("a{i}")).await;
        }
        assert_eq!(tick(central, event, 5).await.admitted, 4);
        return;
    }
    let two_each = BuyerPolicy::Identified {
        per_user_limit: NonZeroU32::new(2).expect("two"),
        auth: BuyerAuth::Open,
    };
    create(
        central,
        event,
        SaleConfig::new(6).expect("config").with_policy(two_each),
    )
    .await;
}

fn recorded_purchase(event: &EventId, (user, request, position): Recorded) -> Purchase {
    Purchase {
        admission: position,
        ..purchase(event, user, request)
    }
}

/// A reply with its order named by sequence, so two sales' replies compare.
fn comparable(reply: &CentralReply) -> String {
    let sequence = |order: &OrderId| order.split().map_or(0, |(_, sequence)| sequence);
    let verdict = match &reply.verdict {
        Verdict::Sold { order, replayed } => {
            format!("sold #{} replayed={replayed}", sequence(order))
        }
        Verdict::AlreadyPurchased { order } => format!("holds #{}", sequence(order)),
        other => format!("{other:?}"),
    };
    format!("{verdict}, {} left", reply.remaining)
}

/// What a sale holds after a run: counters, and each request's order.
async fn holdings<C: CentralStock>(
    central: &C,
    event: &EventId,
    recorded: &[Recorded],
) -> Vec<String> {
    let snapshot = central
        .snapshot(event)
        .await
        .expect("snapshot")
        .expect("exists");
    let mut seen = vec![format!(
        "sold {} buyers {} stream {}",
        snapshot.sold, snapshot.buyers, snapshot.orders_in_stream
    )];
    for (_, request, _) in recorded {
        let request = RequestId::parse(*request).expect("request id");
        let record = central
            .request_record(event, &request)
            .await
            .expect("index");
        seen.push(format!(
            "{request}: {:?}",
            record.and_then(|r| r.order.split()).map(|(_, s)| s)
        ));
    }
    seen
}

/// Conformance case: see its name. Each recorded sequence runs once one
/// purchase at a time and once in batches of several shapes, each on its
/// own sale: every verdict, the counters and the request index agree.
pub async fn batched_and_single_purchases_agree<C: CentralStock>(central: &C, prefix: &str) {
    for (name, recorded, queued) in [
        ("open", OPEN_SEQUENCE, false),
        ("queued", QUEUED_SEQUENCE, true),
    ] {
        let single_event = event(prefix, &format!("single-{name}"));
        recorded_sale(central, &single_event, queued).await;
        let mut single = Vec::new();
        for step in recorded {
            let reply = central
                .buy(&recorded_purchase(&single_event, *step))
                .await
                .expect("buy");
            single.push(comparable(&reply));
        }
        let single_holdings = holdings(central, &single_event, recorded).await;
        for shape in [&[1][..], &[3, 1, 4, 1, 5], &[2], &[recorded.len()]] {
            let batched_event = event(prefix, &format!("batched-{name}-{}", shape[0]));
            recorded_sale(central, &batched_event, queued).await;
            let mut batched = Vec::new();
            let mut steps = recorded.iter();
            for size in shape.iter().cycle() {
                let mut chunk = steps.by_ref().take(*size).peekable();
                let Some(first) = chunk.next() else { break };
                let mut batch = PurchaseBatch::new(recorded_purchase(&batched_event, *first));
                for step in chunk {
                    batch
                        .push(recorded_purchase(&batched_event, *step))
                        .expect("one sale's purchases");
                }
                let replies = central.buy_many(&batch).await.expect("buy_many");
                assert_eq!(replies.len(), batch.len(), "one reply per purchase");
                batched.extend(replies.iter().map(comparable));
            }
            assert_eq!(batched, single, "{name} sequence in batches of {shape:?}");
            assert_eq!(
                holdings(central, &batched_event, recorded).await,
                single_holdings,
                "{name} sequence in batches of {shape:?}"
            );
        }
        if queued {
            let record = central
                .queue_record(&single_event)
                .await
                .expect("record")
                .expect("a waiting room");
            // a3 bought at a1's position: recorded, for the audit to refuse.
            let bought = [(0, "a0"), (1, "a1"), (1, "a3"), (2, "a2")];
            let bought: Vec<(u64, UserId)> = bought.iter().map(|(p, u)| (*p, user(u))).collect();
            assert_eq!(record.bought, bought);
        }
    }
}

/// Conformance case: see its name.
pub async fn a_batch_for_a_missing_sale_is_refused_whole<C: CentralStock>(
    central: &C,
    prefix: &str,
) {
    let event = event(prefix, "batch-missing");
    let mut batch = PurchaseBatch::new(purchase(&event, Some("u1"), "m1"));
    batch
        .push(purchase(&event, Some("u2"), "m2"))
        .expect("same sale");
    let replies = central.buy_many(&batch).await.expect("buy_many");
    let verdicts: Vec<Verdict> = replies.into_iter().map(|r| r.verdict).collect();
    assert_eq!(verdicts, [Verdict::NoSuchSale, Verdict::NoSuchSale]);
}

// ---- Trains: seats on route segments --------------------------------------

/// G1's four stations, with one class of `classes` (such as `"second:1x3"`).
fn g1(classes: &[&str]) -> TrainLayout {
    TrainLayout::new(&["Beijing", "Jinan", "Nanjing", "Shanghai"], classes).expect("layout")
}

async fn create_train<C: CentralStock>(central: &C, event: &EventId, layout: TrainLayout) {
    let config = SaleConfig::for_train(layout).expect("train config");
    create(central, event, config).await;
}

fn ticket_purchase(
    event: &EventId,
    user: &str,
    request: &str,
    (from, to): (usize, usize),
    passengers: u32,
) -> TicketPurchase {
    TicketPurchase {
        purchase: purchase(event, Some(user), request),
        seats: SeatRequest {
            class: 0,
            leg: Leg::new(from, to).expect("leg"),
            passengers: Passengers::new(passengers).expect("passengers"),
        },
    }
}

async fn buy_seats<C: CentralStock>(central: &C, purchase: &TicketPurchase) -> TicketReply {
    central.buy_seats(purchase).await.expect("buy seats")
}

/// The seats a reply sold, or a panic naming what it got.
fn seats_of(reply: &TicketReply) -> Vec<u32> {
    match (&reply.verdict, &reply.ticket) {
        (Verdict::Sold { .. }, Some(ticket)) => ticket.seats.clone(),
        other => panic!("expected seats, got {other:?}"),
    }
}

async fn occupancy<C: CentralStock>(central: &C, event: &EventId) -> Occupancy {
    central
        .occupancy(event)
        .await
        .expect("occupancy")
        .expect("a train run")
}

/// Conformance case: see its name.
pub async fn a_train_sells_seats_per_segment<C: CentralStock + OrderStream>(
    central: &C,
    prefix: &str,
) {
    let event = event(prefix, "train");
    create_train(central, &event, g1(&["second:1x2"])).await;
    let beijing_nanjing = buy_seats(central, &ticket_purchase(&event, "u1", "r1", (0, 2), 1)).await;
    assert_eq!(seats_of(&beijing_nanjing), [0]);
    // Seat 0 is still free from Nanjing on.
    let onwards = buy_seats(central, &ticket_purchase(&event, "u2", "r2", (2, 3), 1)).await;
    assert_eq!(seats_of(&onwards), [0]);
    let jinan_shanghai = buy_seats(central, &ticket_purchase(&event, "u3", "r3", (1, 3), 1)).await;
    assert_eq!(seats_of(&jinan_shanghai), [1]);
    // Jinan → Nanjing is now held on both seats; Beijing → Jinan is not.
    let refused = buy_seats(central, &ticket_purchase(&event, "u4", "r4", (1, 2), 1)).await;
    assert_eq!((refused.verdict, refused.ticket), (Verdict::SoldOut, None));
    assert_eq!(refused.as_of, 3, "sold out after the third order");
    let wider = buy_seats(central, &ticket_purchase(&event, "u5", "r5", (0, 3), 1)).await;
    assert_eq!(wider.verdict, Verdict::SoldOut);
    let short = buy_seats(central, &ticket_purchase(&event, "u6", "r6", (0, 1), 1)).await;
    assert_eq!(seats_of(&short), [1]);
    let held = occupancy(central, &event).await;
    assert_eq!(held.classes[0].masks(), [0b111, 0b111]);
    assert_eq!(held.as_of, 4);
    let entries = central.unacknowledged(&event).await.expect("stream");
    let tickets: Vec<String> = (entries.iter())
        .map(|e| e.ticket.as_ref().expect("a ticket").to_string())
        .collect();
    assert_eq!(tickets, ["0/0/2/0", "0/2/3/0", "0/1/3/1", "0/0/1/1"]);
    assert_eq!(sold(central, &event).await, 4, "sold counts orders");
}

/// Conformance case: see its name.
pub async fn a_group_sits_together_or_is_refused<C: CentralStock>(central: &C, prefix: &str) {
    let event = event(prefix, "group");
    // Two carriages of 7 seats: rows A-F and a short second row A-B.
    create_train(central, &event, g1(&["second:2x7"])).await;
    let one = buy_seats(central, &ticket_purchase(&event, "u1", "r1", (0, 3), 1)).await;
    assert_eq!(seats_of(&one), [0]);
    let three = buy_seats(central, &ticket_purchase(&event, "u2", "r2", (0, 3), 3)).await;
    assert_eq!(seats_of(&three), [1, 2, 3], "side by side in row 1");
    let two = buy_seats(central, &ticket_purchase(&event, "u3", "r3", (0, 3), 2)).await;
    assert_eq!(seats_of(&two), [5, 6], "row 1 has one seat left: row 2");
    let four = buy_seats(central, &ticket_purchase(&event, "u4", "r4", (0, 3), 4)).await;
    assert_eq!(seats_of(&four), [7, 8, 9, 10], "carriage 2, row 1");
    // Carriage 1 has seat 4 free, carriage 2 seats 11, 12, 13: three
    // free seats, but not side by side, in carriage 2.
    let scattered = buy_seats(central, &ticket_purchase(&event, "u5", "r5", (0, 3), 3)).await;
    assert_eq!(
        seats_of(&scattered),
        [11, 12, 13],
        "one carriage, not one row"
    );
    let too_many = buy_seats(central, &ticket_purchase(&event, "u6", "r6", (0, 3), 2)).await;
    assert_eq!(
        too_many.verdict,
        Verdict::SoldOut,
        "one free seat per carriage"
    );
    let alone = buy_seats(central, &ticket_purchase(&event, "u7", "r7", (0, 3), 1)).await;
    assert_eq!(seats_of(&alone), [4]);
}

/// Conformance case: see its name.
pub async fn a_ticket_replays_and_keeps_the_per_user_limit<C: CentralStock>(
    central: &C,
    prefix: &str,
) {
    let event = event(prefix, "ticket-replay");
    create_train(central, &event, g1(&["second:1x5"])).await;
    let first = buy_seats(central, &ticket_purchase(&event, "ann", "ra", (0, 2), 2)).await;
    let order = order_of(&first.verdict);
    assert_eq!(seats_of(&first), [0, 1]);
    let replay = buy_seats(central, &ticket_purchase(&event, "ann", "ra", (0, 2), 2)).await;
    assert_eq!(
        replay.verdict,
        Verdict::Sold {
            order: order.clone(),
            replayed: true
        }
    );
    assert_eq!(replay.ticket, first.ticket, "the same seats again");
    let again = buy_seats(central, &ticket_purchase(&event, "ann", "ra2", (2, 3), 1)).await;
    assert_eq!(again.verdict, Verdict::AlreadyPurchased { order });
    let stolen = buy_seats(central, &ticket_purchase(&event, "ben", "ra", (2, 3), 1)).await;
    assert_eq!(stolen.verdict, Verdict::RequestIdTaken);
    assert_eq!(
        occupancy(central, &event).await.classes[0].sold_segments(),
        4
    );
    let nobody = TicketPurchase {
        purchase: purchase(&event, None, "rn"),
        ..ticket_purchase(&event, "x", "rn", (0, 1), 1)
    };
    assert_eq!(
        buy_seats(central, &nobody).await.verdict,
        Verdict::UserRequired
    );
}

/// Conformance case: see its name.
pub async fn releasing_a_ticket_clears_exactly_its_bits<C: CentralStock>(
    central: &C,
    prefix: &str,
) {
    let event = event(prefix, "ticket-release");
    create_train(central, &event, g1(&["second:1x3"])).await;
    let kept = buy_seats(central, &ticket_purchase(&event, "u1", "r1", (0, 2), 1)).await;
    assert_eq!(seats_of(&kept), [0]);
    let given_back = buy_seats(central, &ticket_purchase(&event, "u2", "r2", (1, 3), 2)).await;
    assert_eq!(seats_of(&given_back), [1, 2]);
    let masks = |o: Occupancy| o.classes[0].masks().to_vec();
    assert_eq!(
        masks(occupancy(central, &event).await),
        [0b011, 0b110, 0b110]
    );
    let order = order_of(&given_back.verdict);
    let (u2, r2) = (
        UserId::parse("u2").expect("id"),
        RequestId::parse("r2").expect("id"),
    );
    let released = central
        .release(&event, &order, Some(&u2), &r2)
        .await
        .expect("release");
    assert!(matches!(released, Release::Released { .. }), "{released:?}");
    assert_eq!(
        masks(occupancy(central, &event).await),
        [0b011, 0, 0],
        "only its bits"
    );
    let again = central
        .release(&event, &order, Some(&u2), &r2)
        .await
        .expect("release");
    assert_eq!(again, Release::AlreadyReleased);
    assert_eq!(
        masks(occupancy(central, &event).await),
        [0b011, 0, 0],
        "once"
    );
    let resold = buy_seats(central, &ticket_purchase(&event, "u3", "r3", (0, 3), 2)).await;
    assert_eq!(seats_of(&resold), [1, 2]);
    assert_eq!(
        masks(occupancy(central, &event).await),
        [0b011, 0b111, 0b111]
    );
}

/// Conformance case: see its name.
pub async fn a_train_sells_only_seats_and_a_sale_no_seats<C: CentralStock>(
    central: &C,
    prefix: &str,
) {
    let train = event(prefix, "only-seats");
    create_train(central, &train, g1(&["second:1x3"])).await;
    let plain = central
        .buy(&purchase(&train, Some("u1"), "r1"))
        .await
        .expect("buy");
    assert_eq!(
        plain.verdict,
        Verdict::NoSuchSale,
        "a train sells only seats"
    );
    let sale = event(prefix, "no-seats");
    create(central, &sale, SaleConfig::new(3).expect("config")).await;
    let seats = buy_seats(central, &ticket_purchase(&sale, "u1", "r1", (0, 1), 1)).await;
    assert_eq!((seats.verdict, seats.ticket), (Verdict::NoSuchSale, None));
    assert_eq!(central.occupancy(&sale).await.expect("read"), None);
    let missing = event(prefix, "no-train");
    assert_eq!(central.occupancy(&missing).await.expect("read"), None);
    let seats = buy_seats(central, &ticket_purchase(&missing, "u1", "r1", (0, 1), 1)).await;
    assert_eq!(seats.verdict, Verdict::NoSuchSale);
    assert_eq!(sold(central, &train).await + sold(central, &sale).await, 0);
}

/// Conformance case: see its name.
pub async fn restore_rebuilds_a_trains_seats<C: CentralStock>(central: &C, prefix: &str) {
    let event = event(prefix, "train-restore");
    let layout = g1(&["second:1x3"]);
    let config = SaleConfig::for_train(layout).expect("config");
    create(central, &event, config.clone()).await;
    let held = |sequence: u64, user: &str, ticket: &str| Holding {
        order: OrderId::for_sequence(&event, sequence),
        user: Some(UserId::parse(user).expect("id")),
        request: RequestId::parse(format!("r{sequence}")).expect("id"),
        ticket: Some(ticket.parse::<Ticket>().expect("ticket")),
    };
    let restoration = Restoration {
        config,
        last_sequence: 9,
        holding: vec![held(2, "a", "0/0/2/0"), held(5, "b", "0/1/3/1.2")],
        released: vec![OrderId::for_sequence(&event, 3)],
    };
    central
        .restore(&event, &restoration)
        .await
        .expect("restore");
    let seats = occupancy(central, &event).await;
    assert_eq!(seats.classes[0].masks(), [0b011, 0b110, 0b110]);
    let next = buy_seats(central, &ticket_purchase(&event, "c", "rc", (1, 2), 1)).await;
    assert_eq!(next.verdict, Verdict::SoldOut);
    let next = buy_seats(central, &ticket_purchase(&event, "c", "rc", (2, 3), 1)).await;
    assert_eq!(seats_of(&next), [0]);
    assert_eq!(order_of(&next.verdict), OrderId::for_sequence(&event, 10));
    // The restored order gives back exactly its bits.
    let (b, r5) = (
        UserId::parse("b").expect("id"),
        RequestId::parse("r5").expect("id"),
    );
    let order = OrderId::for_sequence(&event, 5);
    central
        .release(&event, &order, Some(&b), &r5)
        .await
        .expect("release");
    let seats = occupancy(central, &event).await;
    assert_eq!(seats.classes[0].masks(), [0b111, 0, 0]);
}

/// Conformance case: see its name. 400 purchases of random legs and
/// parties on carriages of 23 seats (rows of 5, 5, 5, 5 and 3; carriages
/// that start mid-byte in Redis's maps): every seat central stock picks is
/// the one `ClassOccupancy::find_seats` picks, and every refusal is its
/// refusal.
pub async fn every_seat_choice_is_the_one_rule_over_a_long_random_sale<C: CentralStock>(
    central: &C,
    prefix: &str,
) {
    let event = event(prefix, "one-rule");
    let stations = ["A", "B", "C", "D", "E", "F", "G", "H"];
    let layout = TrainLayout::new(&stations, &["second:3x23"]).expect("layout");
    let class = layout.classes()[0].clone();
    create_train(central, &event, layout).await;
    let mut expected = crate::train::ClassOccupancy::empty(class.seats());
    let mut dice: u64 = 0x1230_6000_0000_0001;
    let mut roll = |n: u64| {
        dice ^= dice << 13;
        dice ^= dice >> 7;
        dice ^= dice << 17;
        dice % n
    };
    let (mut sold, mut refused) = (0, 0);
    for i in 0..400 {
        let from = roll(7) as usize;
        let to = from + 1 + roll((7 - from) as u64) as usize;
        let passengers = 1 + roll(5) as u32;
        let request = ticket_purchase(
            &event,
            &format!("u{i}"),
            &format!("r{i}"),
            (from, to),
            passengers,
        );
        let reply = buy_seats(central, &request).await;
        let leg = request.seats.leg;
        match expected.find_seats(&class, leg, request.seats.passengers) {
            Some(seats) => {
                assert_eq!(
                    seats_of(&reply),
                    seats,
                    "purchase {i}: {leg:?} ×{passengers}"
                );
                expected.take(&seats, leg);
                sold += 1;
            }
            None => {
                assert_eq!(
                    reply.verdict,
                    Verdict::SoldOut,
                    "purchase {i}: {leg:?} ×{passengers}"
                );
                refused += 1;
            }
        }
    }
    assert!(sold > 50 && refused > 50, "{sold} sold, {refused} refused");
    assert_eq!(occupancy(central, &event).await.classes, [expected]);
}

/// Conformance case: see its name.
pub async fn concurrent_ticket_buyers_never_share_a_seat_segment<C: CentralStock + Clone>(
    central: &C,
    prefix: &str,
) {
    let event = event(prefix, "train-crowd");
    create_train(central, &event, g1(&["first:1x5", "second:2x5"])).await;
    let mut tasks = Vec::new();
    for i in 0..300u32 {
        let central = central.clone();
        let from = (i % 3) as usize;
        let to = from + 1 + (i / 3 % (3 - from as u32)) as usize;
        let mut purchase = ticket_purchase(
            &event,
            &format!("u{i}"),
            &format!("r{i}"),
            (from, to),
            1 + i % 3,
        );
        purchase.seats.class = (i % 2) as usize;
        tasks.push(tokio::spawn(async move {
            (
                purchase.seats,
                central.buy_seats(&purchase).await.expect("buy"),
            )
        }));
    }
    let mut replies = Vec::new();
    for task in tasks {
        replies.push(task.await.expect("task"));
    }
    let held = occupancy(central, &event).await;
    let mut rebuilt = Occupancy::empty(std::sync::Arc::clone(&held.layout));
    for (request, reply) in &replies {
        let Some(ticket) = &reply.ticket else {
            assert_eq!(reply.verdict, Verdict::SoldOut);
            continue;
        };
        assert_eq!(ticket.seats.len() as u32, request.passengers.get());
        let class = &mut rebuilt.classes[ticket.class];
        assert!(
            class.all_free(&ticket.seats, ticket.leg),
            "a seat-segment sold twice"
        );
        class.take(&ticket.seats, ticket.leg);
    }
    assert_eq!(
        rebuilt.classes, held.classes,
        "central's bits are the orders' seats"
    );
    let sold = sold(central, &event).await;
    assert_eq!(
        sold,
        replies.iter().filter(|(_, r)| r.ticket.is_some()).count() as u64
    );
}
