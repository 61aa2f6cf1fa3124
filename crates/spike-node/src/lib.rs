//! A Spike node over HTTP: the routing table ([`routes`]), the node and its
//! rooms ([`node`]: purchases, tickets, the waiting room, order access,
//! observation, refresh), its answers ([`answer`]), the seam to the orders
//! API, the stat log, and the baseline server the benchmarks compare
//! against. No database driver is linked here.

#![warn(missing_docs)]

pub mod answer;
pub mod baseline;
pub mod batcher;
pub mod central_thread;
pub mod node;
pub mod orders;
mod proof;
pub mod query;
pub mod rate_limit;
pub mod routes;
pub mod server;
pub mod stat_log;
pub mod stats;
pub mod telemetry;
pub mod train;
pub mod waiting_room;

pub use answer::{ticket_json, Answer, SoldSeats, SOLD_OUT_BODY};
pub use node::{
    EventState, Node, NodeConfig, NodeError, NodeParts, NodeRequest, DEFAULT_REFRESH_INTERVAL,
};
pub use orders::{AnswerFuture, Caller, OrdersApi, OrdersRequest};
pub use routes::{ChangeWanted, Methods, Route, Surface};
pub use server::{serve_node, NodeService, NODE_HEADER};
pub use spike_http::RetryReason;
pub use stat_log::{StatLog, StatSlot};
pub use stats::NodeStats;
