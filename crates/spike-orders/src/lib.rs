//! The order ledger and everything that keeps it true: the repository of
//! durable orders (PostgreSQL or SQLite), the worker that turns the order
//! stream into rows, the expiry that gives unpaid seats back exactly once,
//! and the audit and recovery that reconcile central stock with the ledger.

#![warn(missing_docs)]

pub mod change;
pub mod defaults;
pub mod desk;
pub mod error;
pub mod expiry;
pub mod ledger;
pub mod mirror;
pub mod pipeline;
pub mod records;
pub mod writer;

pub use change::{settle_stalled_changes, Change, ChangeTo, STALLED_AFTER};
pub use desk::{Found, OrderDesk};
pub use error::OrdersError;
pub use expiry::{expire_and_return, return_seats, run_expiry, ExpiryPass};
pub use ledger::{Backend, Inserted, LedgerError, Moved, OrderLedger, StateCounts};
pub use mirror::{mirror_once, run_waitlist_mirror, MIRROR_EVERY};
pub use pipeline::{Pipeline, PipelineConfig};
pub use records::{audit_event, recover_sale, Recovered, Recovery};
pub use writer::{OrderWriter, WriterConfig, WriterTally};
