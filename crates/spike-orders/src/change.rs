//! Changes (改签): a paid ticket exchanged for another seat of the same run
//! (another leg or class) or of another run (another date), all or nothing.
//!
//! Central stock keeps each run on its own (one Redis Cluster slot per
//! run), so a change is three steps, each one safe to repeat, with the
//! ledger holding where it stands:
//! 1. the old order moves `paid → changing` (a conditional update: a
//!    second change, or a refund, of it is refused meanwhile); it keeps
//!    its seat;
//! 2. the new seats are bought on the target run with the request id
//!    [`RequestId::for_change_of`] the old order (every attempt is the same
//!    purchase: it replays, never buys twice), the per-user limit not
//!    counting the old order on its own run;
//! 3. bought: in one ledger transaction the new order is paid and the old
//!    one `changed` (`changed_to` it), and its seat goes back through the
//!    outbox (to the waitlist first); not bought (sold out, refused): the
//!    old order is `paid` again and nothing changed.
//!
//! A crash (or Redis failing) between the steps leaves the old order
//! `changing`; the pipeline's settler settles every change stalled for
//! [`STALLED_AFTER`]: central stock's request index says whether step 2
//! bought (then step 3 runs) or not (then the old order is paid again). So
//! a change ends with the old ticket or the new one, never both, never
//! neither.

use std::time::{Duration, SystemTime};

use metrics::counter;
use spike_core::order::Order;
use spike_core::time::unix_millis;
use spike_core::{
    CentralStock, EventId, NodeId, OrderId, OrderStream, Purchase, RequestId, SeatRequest,
    TicketPurchase, Verdict,
};

use crate::desk::{write_unwritten, OrderDesk};
use crate::error::OrdersError;
use crate::expiry::return_seats;
use crate::ledger::{Moved, OrderLedger};

/// How long a change may stand `changing` before the pipeline's settler settles
/// it: far longer than a purchase takes to reach central stock (its
/// response deadline is 500 ms), so a change settled is never in flight.
pub const STALLED_AFTER: Duration = Duration::from_secs(10);

/// Most stalled changes one pass settles.
const SETTLE_BATCH: u32 = 100;

/// Where a change takes a ticket: a run, and the seats on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeTo {
    /// The run (the same one, or another date's).
    pub event: EventId,
    /// The class, the leg, the party (the old ticket's) and the seat.
    pub seats: SeatRequest,
}

/// What a change did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// The new ticket is the traveller's: `new` is paid, `old` changed.
    Done {
        /// The old order, now changed.
        old: Order,
        /// The new order, paid.
        new: Order,
    },
    /// The old order could not start a change (not paid, not found, being
    /// changed already): nothing changed.
    NotStarted(Moved),
    /// No new ticket (`verdict` says why): nothing changed, the old order
    /// is paid again.
    Refused {
        /// The old order, paid.
        old: Order,
        /// Central stock's answer on the target run.
        verdict: Verdict,
    },
    /// Central stock did not answer: the old order stays `changing` until
    /// the pipeline's settler settles it (or the same change is asked again).
    Unsettled(Order),
}

/// The node the orders of changes are recorded as sold by.
fn change_node() -> NodeId {
    NodeId::parse("change").unwrap_or_else(|e| unreachable!("a valid node id: {e}"))
}

fn now_ms() -> u64 {
    unix_millis(SystemTime::now())
}

impl<C: CentralStock + OrderStream> OrderDesk<C> {
    /// Changes paid order `id` for seats `to`, all or nothing. A change
    /// left `changing` by an earlier attempt is taken up again.
    pub async fn change(&self, id: &OrderId, to: &ChangeTo) -> Result<Change, OrdersError> {
        let old = match self.ledger.begin_change(id, &to.event, now_ms()).await? {
            Moved::Applied(old) => old,
            // An earlier attempt to the same run stalled: try it again.
            Moved::Refused(old, _)
                if old.change_event.as_ref() == Some(&to.event) && is_changing(&old) =>
            {
                old
            }
            other => return Ok(Change::NotStarted(other)),
        };
        let purchase = TicketPurchase {
            purchase: Purchase {
                event: to.event.clone(),
                user: old.user.clone(),
                request: RequestId::for_change_of(&old.id),
                node: change_node(),
                admission: None,
            },
            seats: to.seats,
            replacing: (to.event == old.event).then(|| old.id.clone()),
        };
        match self.central.buy_seats(&purchase).await {
            Ok(reply) => match reply.verdict {
                Verdict::Sold { order, .. } => {
                    finish(&self.central, &self.ledger, &old, &order).await
                }
                verdict => {
                    self.ledger.undo_change(&old.id, now_ms()).await?;
                    let old = self.ledger.order(&old.id).await?.unwrap_or(old);
                    Ok(Change::Refused { old, verdict })
                }
            },
            Err(error) => {
                tracing::warn!(order = %old.id, %error, "change unsettled; the settler settles it");
                Ok(Change::Unsettled(old))
            }
        }
    }
}

fn is_changing(order: &Order) -> bool {
    order.state == spike_core::order::OrderState::Changing
}

/// Step 3 of a change that bought `new`: the new order written (from the
/// stream, if the writer has not yet) and paid, the old one changed, its
/// seat given back.
async fn finish<C: CentralStock + OrderStream>(
    central: &C,
    ledger: &OrderLedger,
    old: &Order,
    new: &OrderId,
) -> Result<Change, OrdersError> {
    let now = now_ms();
    write_unwritten(central, ledger, new, now).await?;
    if ledger.finish_change(&old.id, new, now).await? {
        counter!("spike_orders_changed_total").increment(1);
    }
    let (Some(old), Some(new)) = (ledger.order(&old.id).await?, ledger.order(new).await?) else {
        return Ok(Change::Unsettled(old.clone()));
    };
    if !is_changing(&old) && old.changed_to.is_some() {
        let owed = std::slice::from_ref(&old);
        if let Err(error) = return_seats(central, ledger, owed).await {
            tracing::warn!(order = %old.id, %error, "seat return deferred to the next expiry pass");
        }
        let old = ledger.order(&old.id).await?.unwrap_or(old);
        return Ok(Change::Done { old, new });
    }
    Ok(Change::Unsettled(old))
}

/// Settles stalled changes every `every` until `stop` turns true (the
/// pipeline runs it beside the expiry loop).
pub async fn run_change_settler<C: CentralStock + OrderStream>(
    central: C,
    ledger: OrderLedger,
    every: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    while !*stop.borrow() {
        if let Err(error) = settle_stalled_changes(&central, &ledger, STALLED_AFTER).await {
            tracing::warn!(%error, "settling stalled changes failed; will retry");
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.changed() => {}
        }
    }
}

/// Settles the changes stalled for `stalled_after` or longer (a crash
/// between their steps; the settler gives [`STALLED_AFTER`]): finished
/// when central stock's request index shows the new ticket bought, undone
/// when it shows nothing. Returns how many were settled.
pub async fn settle_stalled_changes<C: CentralStock + OrderStream>(
    central: &C,
    ledger: &OrderLedger,
    stalled_after: Duration,
) -> Result<u64, OrdersError> {
    let stalled_ms = u64::try_from(stalled_after.as_millis()).unwrap_or(u64::MAX);
    let before = now_ms().saturating_sub(stalled_ms);
    let mut settled = 0;
    for old in ledger.stalled_changes(before, SETTLE_BATCH).await? {
        let Some(event) = old.change_event.clone() else {
            ledger.undo_change(&old.id, now_ms()).await?;
            settled += 1;
            continue;
        };
        let request = RequestId::for_change_of(&old.id);
        match central.request_record(&event, &request).await {
            Ok(Some(record)) => {
                if let Change::Done { .. } = finish(central, ledger, &old, &record.order).await? {
                    settled += 1;
                }
            }
            Ok(None) => {
                ledger.undo_change(&old.id, now_ms()).await?;
                settled += 1;
            }
            Err(error) => {
                tracing::warn!(order = %old.id, %error, "stalled change not settled; will retry");
            }
        }
    }
    Ok(settled)
}
