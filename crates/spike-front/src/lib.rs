//! The front door: spreads purchases over nodes by weight. Production uses
//! real nginx with the configuration [`nginx::render`] prints; the embedded
//! mode (and the demo) uses [`proxy`], the same smooth weighted round robin
//! in this process.

#![warn(missing_docs)]

pub mod nginx;
pub mod proxy;
pub mod upstream;
pub mod weighted;

pub use proxy::{serve_front, FrontConfig, DEFAULT_MAX_IN_FLIGHT_PER_UPSTREAM};
pub use upstream::{Upstream, UpstreamError};
pub use weighted::Balancer;
