//! The conformance cases of batched purchases: a recorded sequence gives the
//! same replies one by one and in one batch, and a batch for a missing sale
//! is refused whole.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test suite: a panic is a failed case

use super::*;

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
