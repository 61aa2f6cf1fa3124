//! The waitlist's mirror: about once a second, every train run's waitlist
//! as central stock shows it is copied into the ledger (only the entries
//! that changed since the last copy), so that `spike sale recover` can
//! restore the line after Redis lost everything. What changed in the last
//! second before such a loss is what the mirror can miss, as the stream's
//! unwritten entries are for orders (those the stat logs cover).

use std::collections::HashMap;
use std::time::Duration;

use spike_core::{CentralStock, EventId};
use tokio::sync::watch;

use crate::error::OrdersError;
use crate::ledger::OrderLedger;

/// How often the mirror copies.
pub const MIRROR_EVERY: Duration = Duration::from_secs(1);

/// Copies the waitlists of `events` (empty: every event central stock
/// has) into the ledger every `every` until `stop` turns true.
pub async fn run_waitlist_mirror<C: CentralStock>(
    central: C,
    ledger: OrderLedger,
    events: Vec<EventId>,
    every: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut copied: HashMap<(EventId, u64), String> = HashMap::new();
    while !*stop.borrow() {
        if let Err(error) = mirror_once(&central, &ledger, &events, &mut copied).await {
            tracing::warn!(%error, "waitlist mirror: will retry");
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.changed() => {}
        }
    }
}

/// One copy: what changed since `copied` (the wire forms last copied).
pub async fn mirror_once<C: CentralStock>(
    central: &C,
    ledger: &OrderLedger,
    events: &[EventId],
    copied: &mut HashMap<(EventId, u64), String>,
) -> Result<u64, OrdersError> {
    let events = match events.is_empty() {
        true => central.events().await?,
        false => events.to_vec(),
    };
    let mut changed_total = 0;
    for event in events {
        let entries = central.waitlist(&event).await?;
        let changed: Vec<_> = (entries.into_iter())
            .filter(|entry| {
                let key = (event.clone(), entry.place);
                copied.get(&key) != Some(&entry.to_wire())
            })
            .collect();
        if changed.is_empty() {
            continue;
        }
        ledger.mirror_waitlist(&event, &changed).await?;
        for entry in &changed {
            copied.insert((event.clone(), entry.place), entry.to_wire());
        }
        changed_total += changed.len() as u64;
    }
    Ok(changed_total)
}
