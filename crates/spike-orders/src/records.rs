//! Reading one sale's records — central stock, the order stream and the
//! ledger — for the pure reconciliation in `spike_core::reconcile`: the
//! audit, and the recovery of central stock from the ledger.

use std::time::SystemTime;

use spike_core::central::Restoration;
use std::collections::HashSet;

use spike_core::reconcile::{audit, restoration, AuditReport, Evidence, LoggedAnswers, LoggedSale};
use spike_core::sale::unix_millis;
use spike_core::{CentralStock, EventId, OrderId, OrderStream, StreamEntry};

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
    Ok(audit(&Evidence {
        central: snapshot.as_ref(),
        stream: &stream,
        pending: backlog.pending,
        orders: &orders,
        logged,
    }))
}

/// What a recovery did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recovered {
    /// What central stock was rebuilt from.
    pub restoration: Restoration,
    /// Orders read from the ledger.
    pub ledger_orders: usize,
    /// Entries read from the stream.
    pub stream_entries: usize,
    /// Sales only the stat logs held (lost with Redis before any writer read
    /// them), written into the ledger as reserved orders.
    pub from_stat_logs: usize,
}

/// Rebuilds central stock for `event` from the ledger plus the stream's
/// unwritten entries; the rules come from the ledger, else central stock.
/// Sales the stat logs report (`logged`) that neither record holds were
/// told to buyers and lost with Redis: they are written into the ledger
/// first (reserved, their payment window counted from the answer), so that
/// their buyers keep their seats.
pub async fn recover_sale<C: CentralStock + OrderStream>(
    central: &C,
    ledger: &OrderLedger,
    event: &EventId,
    logged: &LoggedAnswers,
) -> Result<Recovered, OrdersError> {
    let config = match ledger.sale(event).await? {
        Some(config) => config,
        None => central
            .snapshot(event)
            .await?
            .map(|snapshot| snapshot.config)
            .ok_or_else(|| OrdersError::UnknownSale(event.clone()))?,
    };
    let mut orders = ledger.orders_of_event(event).await?;
    let stream = central.unacknowledged(event).await?;
    let known: HashSet<&OrderId> = (orders.iter().map(|o| &o.id))
        .chain(stream.iter().map(|e| &e.order))
        .collect();
    let lost: Vec<StreamEntry> = (logged.sales.iter())
        .filter(|sale| !known.contains(&sale.order))
        .filter_map(LoggedSale::to_entry)
        .collect();
    if !lost.is_empty() {
        let now_ms = unix_millis(SystemTime::now());
        ledger
            .insert(&lost, config.payment_window(), now_ms)
            .await?;
        orders = ledger.orders_of_event(event).await?;
    }
    let restored = restoration(config, &orders, &stream, SystemTime::now());
    central.restore(event, &restored).await?;
    Ok(Recovered {
        restoration: restored,
        ledger_orders: orders.len(),
        stream_entries: stream.len(),
        from_stat_logs: lost.len(),
    })
}
