//! The conformance cases of waiting rooms: places and the seal, admission
//! at the rate (a token bucket), only admitted positions buying, resets,
//! `--max-active`, and spillover rooms.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test suite: a panic is a failed case

use super::*;

/// Buyers who prove who they are with a token: what a waiting room needs.
pub(super) const TOKEN_BUYERS: BuyerPolicy = BuyerPolicy::Identified {
    per_user_limit: NonZeroU32::MIN,
    auth: BuyerAuth::Token,
};

pub(super) fn queued_sale(total: u64, per_second: u32, opens_in: Option<Duration>) -> SaleConfig {
    let queue = QueueConfig::new(NonZeroU32::new(per_second).expect("rate")).expect("queue");
    SaleConfig::new(total)
        .expect("config")
        .with_policy(TOKEN_BUYERS)
        .opening_at(opens_in.map(|wait| SystemTime::now() + wait))
        .with_queue(Some(queue))
        .expect("queued sale")
}

pub(super) fn user(name: &str) -> UserId {
    UserId::parse(name).expect("valid test user")
}

pub(super) async fn join<C: CentralStock>(central: &C, event: &EventId, name: &str) -> u64 {
    match central
        .join_queue(event, &user(name), 99)
        .await
        .expect("join")
    {
        QueueJoin::Joined { join_index } => join_index,
        other => panic!("{name} could not join: {other:?}"),
    }
}

pub(super) async fn tick<C: CentralStock>(
    central: &C,
    event: &EventId,
    seed: u64,
) -> QueueCounters {
    central
        .tick_queue(event, seed, 0)
        .await
        .expect("tick")
        .expect("a waiting room")
}

pub(super) fn admitted(
    event: &EventId,
    name: &str,
    request: &str,
    position: Option<u64>,
) -> Purchase {
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
        let room = (config.queue().expect("a room"))
            .with_mode(QueueMode::Spillover)
            .with_admit_window(Duration::from_secs(3))
            .expect("a window");
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
    // A pass lasts the admission window, as an admission does.
    tokio::time::sleep(Duration::from_millis(3_100)).await;
    let lapsed = (central.join_queue(&event, &user("s0"), 99).await).expect("join");
    assert_eq!(
        lapsed,
        QueueJoin::Joined { join_index: 0 },
        "the pass lapsed"
    );
    let config = spillover(None);
    let room = config.queue().expect("a room");
    assert!(
        record.origin_ms > 0,
        "a sale open from its creation counts from its seal"
    );
    assert_eq!(
        crate::queue::steps_beyond_rate(
            &crate::control::rate_periods(*room, record.origin_ms, &[]),
            steps
        ),
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
    let missing = super::event(prefix, "queue-missing");
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
