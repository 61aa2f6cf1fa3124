//! Reading one sale's records — central stock, the order stream and the
//! ledger — for the pure reconciliation in `spike_core::reconcile`: the
//! audit, and the recovery of central stock from the ledger.

use std::time::SystemTime;

use spike_core::central::Restoration;
use std::collections::{BTreeSet, HashSet};

use spike_core::control::{recovered_log, OperatorEntry, StandingControls};
use spike_core::reconcile::{
    audit, restoration, restored_waitlist, AuditReport, Evidence, LoggedAnswers, LoggedSale,
};
use spike_core::time::unix_millis;
use spike_core::{CentralStock, EventId, OrderId, OrderStream, StreamEntry, UserId};

use crate::error::OrdersError;
use crate::ledger::OrderLedger;

/// Audits one event; `logged` is what the stat logs told buyers, if given.
pub async fn audit_event<C: CentralStock + OrderStream>(
    central: &C,
    ledger: &OrderLedger,
    event: &EventId,
    logged: Option<&LoggedAnswers>,
) -> Result<AuditReport, OrdersError> {
    let snapshot = central.snapshot(event).await?;
    let stream = central.unacknowledged(event).await?;
    let backlog = central.backlog(event).await?;
    let orders = ledger.orders_of_event(event).await?;
    let queue = central.queue_record(event).await?;
    let occupancy = central.occupancy(event).await?;
    let waitlist = match occupancy {
        Some(_) => central.waitlist(event).await?,
        None => Vec::new(),
    };
    let operator_log = central.operator_log(event, 0).await?;
    Ok(audit(&Evidence {
        central: snapshot.as_ref(),
        stream: &stream,
        pending: backlog.pending,
        orders: &orders,
        logged,
        queue: queue.as_ref(),
        occupancy: occupancy.as_ref(),
        waitlist: &waitlist,
        operator_log: &operator_log,
    }))
}

/// What a recovery did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recovered {
    /// What central stock was rebuilt from.
    pub restoration: Restoration,
    /// Orders in the ledger after the recovery wrote what it restores.
    pub ledger_orders: usize,
    /// Entries the stream held that no writer had written yet, written by
    /// the recovery.
    pub from_stream: usize,
    /// Sales only the stat logs held (lost with Redis before any writer read
    /// them), written by the recovery.
    pub from_stat_logs: usize,
    /// Whether the sale's waiting room was reset (see
    /// [`CentralStock::reset_queue`]): buyers join again.
    pub queue_reset: bool,
    /// Waitlist entries restored (every state).
    pub waitlist: usize,
    /// Waiting entries the rebuilt run's free seats filled at once.
    pub refilled: u64,
}

/// Rebuilds central stock for `event` from the ledger, the stream's
/// unwritten entries and the stat logs; the rules come from the ledger,
/// else central stock. The steps of a [`Recovery`], in order.
pub async fn recover_sale<C: CentralStock + OrderStream>(
    central: &C,
    ledger: &OrderLedger,
    event: &EventId,
    logged: &LoggedAnswers,
) -> Result<Recovered, OrdersError> {
    let mut recovery = Recovery::begin(central, ledger, event).await?;
    recovery.fence().await?;
    recovery.finish(logged).await
}

/// A recovery of one sale, step by step:
/// 1. [`Recovery::begin`] reads the rules and the stream's unacknowledged
///    entries, before anything is fenced: a writer acknowledges (deletes) an
///    entry only once the ledger holds it, or once the ledger refused it as
///    fenced; with no fence yet, every entry is in the stream or in the
///    ledger when the other is read;
/// 2. [`Recovery::fence`] closes the life of central stock being replaced:
///    from then on writers cannot add an order of that life (an entry a
///    writer read before Redis lost it, which no record shows, would
///    otherwise become an order central stock does not count: a seat sold
///    twice), and entries they refuse were read in step 1;
/// 3. [`Recovery::finish`] reads the ledger, writes every order of that
///    life that the records show and the ledger lacks (the stream's
///    unwritten entries, and the sales the stat logs report that were told
///    to buyers and lost with Redis: reserved, their payment window counted
///    from the answer, with the buyer's own request id), rebuilds central
///    stock from the ledger, its sequence resuming above the fence, and
///    resets the sale's waiting room, if it has one. The operator log comes
///    back too (central stock's while it has the sale, else the one the
///    stat logs hold), and with it a pause, the last admission change and
///    every revocation.
pub struct Recovery<'a, C> {
    central: &'a C,
    ledger: &'a OrderLedger,
    event: &'a EventId,
    config: spike_core::SaleConfig,
    stream: Vec<StreamEntry>,
    /// Central stock's waitlist as step 1 read it (empty when it lost it).
    waitlist: Vec<spike_core::WaitEntry>,
    /// Central stock's operator log as step 1 read it; `None` when central
    /// stock had lost the sale (the stat logs' copy is used then).
    operator_log: Option<Vec<OperatorEntry>>,
    fence: Option<u64>,
}

impl<'a, C: CentralStock + OrderStream> Recovery<'a, C> {
    /// Step 1: the rules (recorded in the ledger if only central stock had
    /// them) and the stream's unacknowledged entries.
    pub async fn begin(
        central: &'a C,
        ledger: &'a OrderLedger,
        event: &'a EventId,
    ) -> Result<Self, OrdersError> {
        let config = match ledger.sale(event).await? {
            Some(config) => config,
            None => {
                let config = central
                    .snapshot(event)
                    .await?
                    .map(|snapshot| snapshot.config)
                    .ok_or_else(|| OrdersError::UnknownSale(event.clone()))?;
                ledger.record_sale(event, &config).await?;
                config
            }
        };
        let stream = central.unacknowledged(event).await?;
        let waitlist = central.waitlist(event).await?;
        let operator_log = match central.snapshot(event).await? {
            Some(_) => Some(central.operator_log(event, 0).await?),
            None => None,
        };
        Ok(Self {
            central,
            ledger,
            event,
            config,
            stream,
            waitlist,
            operator_log,
            fence: None,
        })
    }

    /// Step 2: fences the ledger above every sequence the stream shows and
    /// the life being closed could have handed out; returns the fence.
    pub async fn fence(&mut self) -> Result<u64, OrdersError> {
        let records = self.stream.iter().map(|e| e.sequence).max().unwrap_or(0);
        let fence = self.ledger.fence(self.event, records).await?;
        self.fence = Some(fence);
        Ok(fence)
    }

    /// Step 3: writes what the records hold and the ledger lacks, and
    /// rebuilds central stock (fencing first if [`Recovery::fence`] was
    /// not called).
    pub async fn finish(mut self, logged: &LoggedAnswers) -> Result<Recovered, OrdersError> {
        let fence = match self.fence {
            Some(fence) => fence,
            None => self.fence().await?,
        };
        let (ledger, event) = (self.ledger, self.event);
        let orders = ledger.orders_of_event(event).await?;
        let stream = &self.stream;
        let in_ledger: HashSet<&OrderId> = orders.iter().map(|o| &o.id).collect();
        let unwritten: Vec<StreamEntry> = (stream.iter())
            .filter(|entry| !in_ledger.contains(&entry.order))
            .cloned()
            .collect();
        let known: HashSet<&OrderId> = in_ledger
            .iter()
            .copied()
            .chain(stream.iter().map(|e| &e.order))
            .collect();
        let lost: Vec<StreamEntry> = (logged.sales.iter())
            .filter(|sale| !known.contains(&sale.order))
            .filter_map(LoggedSale::to_entry)
            .collect();
        let restoring: Vec<StreamEntry> = unwritten.iter().chain(&lost).cloned().collect();
        if !restoring.is_empty() {
            let now_ms = unix_millis(SystemTime::now());
            ledger
                .insert_recovered(&restoring, self.config.payment_window(), now_ms)
                .await?;
        }
        let orders = ledger.orders_of_event(event).await?;
        // The operator's controls come back with the sale, and what they
        // leave in force: central stock's log while it has the sale (the
        // stat logs may hold a recreated sale's older life), else the one
        // the stat logs hold.
        let operator_log = match self.operator_log.take() {
            Some(log) => log,
            None => recovered_log(logged.controls.iter().cloned()),
        };
        let config = StandingControls::of(&operator_log).applied_to(self.config);
        let mut restored = restoration(config, &orders, stream, fence);
        restored.operator_log = operator_log;
        let mirrored = ledger.waitlist(event).await?;
        restored.waitlist = restored_waitlist(&self.waitlist, &mirrored, &orders, stream);
        self.central.restore(event, &restored).await?;
        // The free seats the rebuilt run has go to the waitlist first.
        let refilled = match restored.waitlist.is_empty() {
            true => 0,
            false => self.central.refill_waitlist(event).await?,
        };
        // Joins and admissions are in no record but central stock's: the
        // waiting room starts over, explicitly, carrying who holds seats.
        let holders: BTreeSet<UserId> = (restored.holding.iter())
            .filter_map(|h| h.user.clone())
            .collect();
        let holders: Vec<UserId> = holders.into_iter().collect();
        let queue_reset = self.central.reset_queue(event, &holders).await?;
        Ok(Recovered {
            waitlist: restored.waitlist.len(),
            restoration: restored,
            ledger_orders: orders.len(),
            from_stream: unwritten.len(),
            from_stat_logs: lost.len(),
            queue_reset,
            refilled,
        })
    }
}
