//! `spike bench`: a load generator for flash sales. Simulated users buy
//! through a target URL over keep-alive connections (a raw HTTP/1.1 client,
//! so that the generator is not the bottleneck), optionally at a fixed rate;
//! the run ends with throughput, an HDR latency histogram, answers by code,
//! the split over nodes, invariant checks, and optionally a plot.

#![warn(missing_docs)]

pub mod client;
pub mod crowd;
pub mod invariants;
pub mod plot;
pub mod report;
pub mod run;
mod seeded;
pub mod stampede;
pub mod tickets;

pub use invariants::{CentralView, Check};
pub use report::Report;
pub use run::{run, BenchConfig, BenchError, Target, Users};
pub use tickets::TicketChoices;
