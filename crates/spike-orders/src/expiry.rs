//! Expiry: reserved orders whose payment window closed become `expired`, and
//! every expired, cancelled, refunded or changed order's seat goes back to central stock exactly
//! once. The ledger row is the outbox: the seat is owed until
//! `seat_returned_at_ms` is set, which happens only after central stock
//! confirmed the release, and the release itself is idempotent — so a crash
//! anywhere in between is finished by the next pass, never doubled.

use std::time::{Duration, SystemTime};

use metrics::counter;
use spike_core::order::Order;
use spike_core::time::unix_millis;
use spike_core::{CentralStock, Release};
use tokio::sync::watch;

use crate::ledger::{LedgerError, OrderLedger};

/// Orders handled per pass.
const PASS_SIZE: u32 = 1_000;

/// What one pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExpiryPass {
    /// Orders this pass expired.
    pub expired: u64,
    /// Seats this pass gave back (or found already given back).
    pub returned: u64,
    /// Seats still owed because central stock failed; retried next pass.
    pub still_owed: u64,
}

/// Expires one batch of due orders and returns owed seats.
pub async fn expire_and_return<C: CentralStock>(
    central: &C,
    ledger: &OrderLedger,
) -> Result<ExpiryPass, LedgerError> {
    let now = unix_millis(SystemTime::now());
    let expired = ledger.expire_due(now, PASS_SIZE).await?;
    counter!("spike_orders_expired_total").increment(expired.len() as u64);
    let owed = ledger.seats_owed(PASS_SIZE).await?;
    let (returned, still_owed) = return_seats(central, ledger, &owed).await?;
    Ok(ExpiryPass {
        expired: expired.len() as u64,
        returned,
        still_owed,
    })
}

/// Gives the seats of `owed` (expired or cancelled) orders back to central
/// stock, then records each one given back. Returns how many were recorded
/// and how many stay owed (central stock failed; retried by the next pass).
pub async fn return_seats<C: CentralStock>(
    central: &C,
    ledger: &OrderLedger,
    owed: &[Order],
) -> Result<(u64, u64), LedgerError> {
    let mut returned = Vec::with_capacity(owed.len());
    let mut still_owed = 0;
    for order in owed {
        let release = central
            .release(&order.event, &order.id, order.user.as_ref(), &order.request)
            .await;
        match release {
            Ok(Release::Released { .. } | Release::AlreadyReleased) => {
                returned.push(order.id.clone())
            }
            Ok(Release::NotSold) => {
                tracing::warn!(order = %order.id, "central stock never sold this order; nothing to return");
                returned.push(order.id.clone());
            }
            Ok(Release::NoSuchSale) => {
                tracing::warn!(order = %order.id, event = %order.event, "no such sale in central stock; seat stays owed");
                still_owed += 1;
            }
            Err(error) => {
                tracing::warn!(order = %order.id, %error, "seat return failed; will retry");
                still_owed += 1;
            }
        }
    }
    let marked = ledger
        .mark_returned(&returned, unix_millis(SystemTime::now()))
        .await?;
    counter!("spike_seats_returned_total").increment(marked);
    Ok((marked, still_owed))
}

/// Runs expiry passes every `every` until `stop` turns true.
pub async fn run_expiry<C: CentralStock>(
    central: C,
    ledger: OrderLedger,
    every: Duration,
    mut stop: watch::Receiver<bool>,
) {
    while !*stop.borrow() {
        let busy = match expire_and_return(&central, &ledger).await {
            Ok(pass) => {
                pass.expired >= u64::from(PASS_SIZE) || pass.returned >= u64::from(PASS_SIZE)
            }
            Err(error) => {
                tracing::warn!(%error, "expiry pass failed; will retry");
                false
            }
        };
        if !busy {
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = stop.changed() => {}
            }
        }
    }
}
