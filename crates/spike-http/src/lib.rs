//! HTTP plumbing every Spike server shares: the one accept loop with
//! graceful shutdown ([`serve`]), the answers every server gives
//! ([`Answer`]: refusals, "try again", documents) and the HTTP status of
//! each answer code. The node, the front door, the dashboard, the baseline
//! and the metrics endpoint all serve through it; the buy API's own answers
//! live with the node.

#![warn(missing_docs)]

pub mod answer;
pub mod backlog;
pub mod connection;
pub mod forwarded;
pub mod grid;
pub mod handler;
pub mod in_flight;
pub mod lag;
mod memory;
pub mod metrics;
pub mod server;

pub use answer::{json_bytes, status_of, Answer, JsonData, RetryReason};
pub use connection::Connections;
pub use forwarded::{forwarded_for, TrustedProxies, X_FORWARDED_FOR};
pub use handler::Handler;
pub use in_flight::{InFlight, InFlightGate};
pub use lag::LoopLag;
pub use metrics::serve_metrics;
pub use server::{
    listen, serve, Server, ServerOptions, DEFAULT_BODY_TIMEOUT, DEFAULT_HEAD_TIMEOUT,
    DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_CONNECTIONS, DEFAULT_PARK_AFTER, LISTEN_BACKLOG,
};

/// Whether a request declares (`Content-Length`) a body longer than
/// `limit`: such a request is refused with 413 before its body is read.
pub fn declares_body_over(headers: &hyper::HeaderMap, limit: usize) -> bool {
    headers
        .get(hyper::header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok())
        .is_some_and(|length| length > limit as u64)
}

/// The first segments of the operators' surface (`/metrics`, `/stats`,
/// `/sale`, `/dashboard`): served only on admin listeners, and never
/// forwarded by a front door (`spike front`, `spike nginx-conf`).
pub const ADMIN_PATHS: [&str; 4] = ["metrics", "stats", "sale", "dashboard"];

/// The purchase route. A purchase may sell a seat before its answer is
/// lost, so a front door never sends it to a second node once it was sent
/// to a first; a client retries it itself, with the same `request_id`.
pub const PURCHASE_PATH: &str = "/buy/ticket";

/// Whether `path` belongs to the operators' surface.
pub fn is_admin_path(path: &str) -> bool {
    let first = path
        .trim_start_matches('/')
        .split('/')
        .next()
        .unwrap_or_default();
    ADMIN_PATHS.contains(&first)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_declared_length_over_the_limit_is_seen_before_the_body() {
        let mut headers = hyper::HeaderMap::new();
        assert!(!declares_body_over(&headers, 10), "no body declared");
        headers.insert(hyper::header::CONTENT_LENGTH, "10".parse().unwrap());
        assert!(!declares_body_over(&headers, 10));
        headers.insert(
            hyper::header::CONTENT_LENGTH,
            "1000000000000".parse().unwrap(),
        );
        assert!(declares_body_over(&headers, 10));
    }

    #[test]
    fn admin_paths_are_recognised_by_their_first_segment() {
        for path in [
            "/metrics",
            "/stats",
            "/sale",
            "/dashboard/data",
            "//metrics",
        ] {
            assert!(is_admin_path(path), "{path}");
        }
        for path in ["/buy/ticket", "/salesman", "/orders/G1-1", "/"] {
            assert!(!is_admin_path(path), "{path}");
        }
    }
}
