//! HTTP plumbing every Spike server shares: the one accept loop with
//! graceful shutdown ([`serve`]) and the JSON answer wire format
//! ([`Answer`]). The node, the front door, the dashboard, the baseline and
//! the metrics endpoint all serve through it.

#![warn(missing_docs)]

pub mod answer;
pub mod server;

pub use answer::{Answer, RetryReason, SOLD_OUT_BODY};
pub use server::{serve, Handler, Server, ServerOptions};
