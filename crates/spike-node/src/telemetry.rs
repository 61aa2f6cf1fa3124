//! The metric handles a node records into on its hot path, created once so
//! that recording is an atomic add, not a registry lookup.

use std::time::Duration;

use metrics::{Counter, Gauge, Histogram};
use spike_core::Code;

use crate::routes::route_name;

pub use spike_telemetry::{render, LatencyBuckets, LATENCY_BUCKETS};

/// The handles one node records into. Counts the node already keeps
/// (answers by code, central calls) are copied in at scrape time by
/// [`NodeMetrics::sync_counts`] rather than counted twice on the hot path.
#[derive(Debug, Clone)]
pub struct NodeMetrics {
    /// One counter per [`Code::BUY`] code, in its order.
    buy_answers: [Counter; Code::BUY.len()],
    buy_duration: Histogram,
    central_calls: Counter,
    /// Time central stock took.
    pub central_duration: Histogram,
    /// Central stock unreachable.
    pub central_unavailable: Counter,
    /// Central stock outcome unknown.
    pub central_unknown: Counter,
    /// `/queue/status`: polled by every waiting buyer, so it records into
    /// handles too.
    polled: RouteMetrics,
    node: String,
}

/// One route's answer counters (one per [`Code::ALL`] code) and latency.
#[derive(Debug, Clone)]
struct RouteMetrics {
    route: &'static str,
    answers: [Counter; Code::ALL.len()],
    duration: Histogram,
}

impl RouteMetrics {
    fn new(node: &str, route: &'static str) -> Self {
        let answer = |code: Code| metrics::counter!("spike_requests_total", "node" => node.to_string(), "route" => route, "code" => code.number_text());
        Self {
            route,
            answers: Code::ALL.map(answer),
            duration: metrics::histogram!("spike_request_duration_seconds", "node" => node.to_string(), "route" => route),
        }
    }

    fn record(&self, code: Code, took: Duration) {
        if let Some(counter) =
            (Code::ALL.iter().position(|c| *c == code)).and_then(|index| self.answers.get(index))
        {
            counter.increment(1);
        }
        self.duration.record(took.as_secs_f64());
    }
}

impl NodeMetrics {
    /// Handles for node `node`. Without an installed recorder (see
    /// [`spike_telemetry::prometheus`]) recording does nothing.
    pub fn new(node: &str) -> Self {
        let node = node.to_string();
        let answer = |code: Code| metrics::counter!("spike_requests_total", "node" => node.clone(), "route" => route_name("/buy/ticket"), "code" => code.number_text());
        Self {
            buy_answers: Code::BUY.map(answer),
            buy_duration: metrics::histogram!("spike_request_duration_seconds", "node" => node.clone(), "route" => route_name("/buy/ticket")),
            central_calls: metrics::counter!("spike_central_calls_total", "node" => node.clone()),
            central_duration: metrics::histogram!("spike_central_call_duration_seconds", "node" => node.clone()),
            central_unavailable: metrics::counter!("spike_central_errors_total", "node" => node.clone(), "kind" => "unavailable"),
            central_unknown: metrics::counter!("spike_central_errors_total", "node" => node.clone(), "kind" => "unknown"),
            polled: RouteMetrics::new(&node, route_name("/queue/status")),
            node,
        }
    }

    /// Records how long one `/buy/ticket` answer took.
    pub fn buy_answered(&self, took: Duration) {
        self.buy_duration.record(took.as_secs_f64());
    }

    /// Sets the answer and central-call counters from the node's own counts.
    pub fn sync_counts(&self, answers_with: impl Fn(Code) -> u64, central_calls: u64) {
        for (counter, code) in self.buy_answers.iter().zip(Code::BUY) {
            counter.absolute(answers_with(code));
        }
        self.central_calls.absolute(central_calls);
    }

    /// Records an answer on another route (a registry lookup, except on
    /// the polled route).
    pub fn other_answered(&self, route: &'static str, code: Code, took: Duration) {
        if route == self.polled.route {
            return self.polled.record(code, took);
        }
        metrics::counter!("spike_requests_total", "node" => self.node.clone(), "route" => route, "code" => code.number_text())
            .increment(1);
        metrics::histogram!("spike_request_duration_seconds", "node" => self.node.clone(), "route" => route)
            .record(took.as_secs_f64());
    }

    /// A gauge for this node and `event`.
    pub fn event_gauge(&self, name: &'static str, event: &str) -> Gauge {
        metrics::gauge!(name, "node" => self.node.clone(), "event" => event.to_string())
    }

    /// A counter for this node, set to an absolute value at scrape time.
    pub fn node_counter(&self, name: &'static str) -> Counter {
        metrics::counter!(name, "node" => self.node.clone())
    }
}
