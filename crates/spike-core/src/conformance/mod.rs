//! The conformance suite every [`CentralStock`] must pass: embedded and Redis
//! run these same checks, which is what makes the embedded mode a real
//! implementation rather than a mock. Events are named `<prefix>-<case>` so
//! that a shared server can host several runs.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test suite: a panic is a failed case

mod batches;
mod controls;
mod queue;
mod stream;
mod trains;
mod waitlist;

pub use batches::*;
pub use controls::*;
pub use queue::*;
pub use stream::*;
pub use trains::*;
pub use waitlist::*;

use std::num::NonZeroU32;
use std::time::{Duration, SystemTime};

use crate::central::{CentralStock, CreateSaleError, Holding, QueueJoin, Release, Restoration};
use crate::ids::{EventId, NodeId, OrderId, RequestId, UserId};
use crate::order_stream::{Backlog, OrderStream};
use crate::purchase::{CentralReply, Purchase, PurchaseBatch, Verdict, MAX_BATCH};
use crate::purchase::{TicketBatch, TicketPurchase, TicketReply};
use crate::queue::{QueueConfig, QueueCounters, QueueMode};
use crate::sale::{BuyerAuth, BuyerPolicy, SaleConfig};
use crate::train::{Leg, Occupancy, Passengers, SeatPreference, SeatRequest, Ticket, TrainLayout};

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
            every_seat_choice_is_the_one_rule_over_a_long_random_sale,
            a_change_is_not_held_to_the_limit_by_the_order_it_replaces,
            batched_and_single_seat_purchases_agree,
            a_returned_seat_goes_to_the_oldest_waiting_requests_it_can_serve,
            only_a_sold_out_request_waits_and_only_on_a_train_run,
            expired_and_superseded_entries_are_passed_over,
            a_restored_waitlist_stands_as_it_was_and_a_refill_fills_it,
            a_recorded_sequence_gives_the_same_seats_and_fills_as_embedded,
            a_paused_sale_sells_nothing_until_resumed,
            an_admission_change_starts_an_empty_bucket_at_the_new_rate,
            a_revoked_admission_buys_nothing,
            a_restored_sale_keeps_its_operators_controls);
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
    assert_eq!(
        released,
        Release::Released {
            remaining: 1,
            filled: 0
        }
    );
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
