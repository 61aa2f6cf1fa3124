//! [`OrdersError`]: why an operation over central stock and the ledger
//! (writing, paying, auditing, recovering) failed.

use spike_core::{CentralError, EventId};

use crate::ledger::LedgerError;

/// Why an operation over central stock and the ledger failed.
#[derive(Debug, thiserror::Error)]
pub enum OrdersError {
    /// Central stock or its stream failed.
    #[error(transparent)]
    Central(#[from] CentralError),
    /// The ledger failed.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// Neither the ledger nor central stock knows the sale's rules.
    #[error("the ledger has no rules for {0} and central stock has no sale")]
    UnknownSale(EventId),
}
