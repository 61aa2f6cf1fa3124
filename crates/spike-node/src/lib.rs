//! A Spike node over HTTP: `/buy/ticket`, `/buy/result`, `/healthz`, the
//! orders API, the stat log, and the baseline server used by the benchmarks.

#![warn(missing_docs)]

pub mod answer;
pub mod baseline;
pub mod node;
pub mod orders_api;
pub mod query;
pub mod server;
pub mod stat_log;
pub mod telemetry;

pub use answer::{Answer, RetryReason};
pub use node::{EventState, Node, NodeConfig, NodeError, NodeStats};
pub use orders_api::{OrdersApi, OrdersHttp};
pub use server::{serve, RunningServer, NODE_HEADER};
pub use stat_log::StatLog;
