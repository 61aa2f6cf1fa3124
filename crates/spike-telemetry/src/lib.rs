//! Telemetry shared by every Spike process: one Prometheus recorder per
//! process (installed on first use) with real histogram buckets, so that
//! latency can be aggregated across nodes; the metric descriptions; and a
//! lock-free latency histogram the dashboard reads.

#![warn(missing_docs)]

use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Latency buckets in seconds: 50 µs to 5 s.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0,
];

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// The process's Prometheus handle, installing the recorder on first call.
/// `None` if another recorder was installed first (then nothing is exported).
pub fn prometheus() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
                .ok()?
                .build_recorder();
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder).ok()?;
            describe();
            // Histogram samples queue up until drained into their buckets;
            // drain them every second so memory stays flat between scrapes.
            let upkeep = handle.clone();
            let _ = std::thread::Builder::new()
                .name("metrics-upkeep".into())
                .spawn(move || loop {
                    std::thread::sleep(Duration::from_secs(1));
                    upkeep.run_upkeep();
                });
            Some(handle)
        })
        .as_ref()
}

/// Renders every metric of this process in the Prometheus text format.
pub fn render() -> String {
    prometheus()
        .map(PrometheusHandle::render)
        .unwrap_or_default()
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!(
        "spike_requests_total",
        "Requests answered, by node, route and answer code."
    );
    describe_histogram!(
        "spike_request_duration_seconds",
        Unit::Seconds,
        "Time to answer a request, by node and route."
    );
    describe_counter!(
        "spike_central_calls_total",
        "Purchases sent to central stock, by node."
    );
    describe_counter!(
        "spike_central_errors_total",
        "Central stock calls that failed, by node and kind (unavailable, unknown)."
    );
    describe_histogram!(
        "spike_central_call_duration_seconds",
        Unit::Seconds,
        "Time central stock took to answer a purchase, by node."
    );
    describe_gauge!(
        "spike_local_stock",
        "Seats a node may still try to sell, by node and event."
    );
    describe_gauge!(
        "spike_sold_out",
        "1 when central stock has said the event is sold out."
    );
    describe_gauge!(
        "spike_order_stream_entries",
        "Sold seats in the event's order stream not yet written to the ledger, as a node reads it at scrape time."
    );
    describe_gauge!(
        "spike_central_sold",
        "Seats central stock has sold for the event, as a node reads it at scrape time."
    );
    describe_gauge!(
        "spike_central_stock",
        "Seats the event's sale has in all (seat-segments on a train run), as a node reads it at scrape time."
    );
    describe_gauge!(
        "spike_sale_paused",
        "1 while an operator has paused the event's sale, as a node follows its operator log."
    );
    describe_gauge!(
        "spike_queue_joined",
        "Buyers who joined the event's waiting room, as a node last read it."
    );
    describe_gauge!(
        "spike_queue_admitted",
        "Positions the event's waiting room has admitted, as a node last read it."
    );
    describe_gauge!(
        "spike_local_sales",
        "Seats a node has sold, by node and event."
    );
    describe_counter!(
        "spike_stat_log_lines_written_total",
        "Stat-log lines on disk, by node."
    );
    describe_counter!(
        "spike_stat_log_lines_dropped_total",
        "Stat-log lines lost, by node (must stay 0)."
    );
    describe_counter!(
        "spike_stat_log_refusals_total",
        "Purchases refused with 503 because the stat log's queue was full (its disk stalled), by node."
    );
    describe_counter!(
        "spike_front_requests_total",
        "Requests the embedded front door forwarded, by upstream and outcome."
    );
    describe_counter!(
        "spike_front_retries_total",
        "Requests the front door sent to another node."
    );
    describe_counter!(
        "spike_orders_written_total",
        "Orders the order writers wrote to the ledger."
    );
    describe_counter!(
        "spike_orders_paid_total",
        "Orders paid through the orders API."
    );
    describe_counter!(
        "spike_orders_cancelled_total",
        "Orders cancelled through the orders API."
    );
    describe_counter!(
        "spike_orders_expired_total",
        "Reserved orders expired unpaid."
    );
    describe_counter!(
        "spike_seats_returned_total",
        "Seats of expired or cancelled orders given back to central stock."
    );
    describe_gauge!(
        "spike_order_stream_backlog",
        "Order stream entries not yet written to the ledger, by event."
    );
    describe_gauge!(
        "spike_order_stream_pending",
        "Order stream entries read by a writer and not yet acknowledged, by event."
    );
}

/// A lock-free latency histogram with the same buckets as Prometheus's,
/// read by the dashboard (`/stats`) to draw p50 and p99 per node.
#[derive(Debug)]
pub struct LatencyBuckets {
    counts: Vec<std::sync::atomic::AtomicU64>,
}

impl Default for LatencyBuckets {
    fn default() -> Self {
        Self {
            // One more bucket for everything above the last bound.
            counts: (0..=LATENCY_BUCKETS.len())
                .map(|_| std::sync::atomic::AtomicU64::new(0))
                .collect(),
        }
    }
}

impl LatencyBuckets {
    /// Counts one answer that took `took`.
    pub fn record(&self, took: Duration) {
        let seconds = took.as_secs_f64();
        let index = LATENCY_BUCKETS
            .iter()
            .position(|bound| seconds <= *bound)
            .unwrap_or(LATENCY_BUCKETS.len());
        if let Some(count) = self.counts.get(index) {
            count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// Answers per bucket (not cumulative); the last bucket is "above 5 s".
    pub fn snapshot(&self) -> Vec<u64> {
        self.counts
            .iter()
            .map(|c| c.load(std::sync::atomic::Ordering::Relaxed))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_lands_in_the_first_bucket_that_holds_it() {
        let buckets = LatencyBuckets::default();
        buckets.record(Duration::from_micros(10));
        buckets.record(Duration::from_micros(700));
        buckets.record(Duration::from_secs(9));
        let counts = buckets.snapshot();
        assert_eq!(counts.len(), LATENCY_BUCKETS.len() + 1);
        assert_eq!(counts[0], 1); // <= 50 µs
        assert_eq!(counts[4], 1); // <= 1 ms
        assert_eq!(counts[LATENCY_BUCKETS.len()], 1); // > 5 s
    }
}
