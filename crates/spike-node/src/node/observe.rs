//! Observation: `/metrics`, `/stats`, `/healthz` and `/sale`, the node's
//! counters and central stock's figures, for operators and dashboards.

use std::sync::atomic::Ordering;

use crate::answer::Answer;
use spike_core::{CentralStock, Code, EventId};
use spike_http::RetryReason;

use super::refusal::{param_error, try_again};
use super::Node;
use crate::query::BuyParams;
use crate::routes::Surface;
use crate::telemetry::LATENCY_BUCKETS;
use crate::train::TrainState;
use crate::waiting_room::WaitingRoom;

impl<C: CentralStock> Node<C> {
    /// The Prometheus exposition, with gauges brought up to date first
    /// (including one central read per event for the order stream's length).
    pub(super) async fn metrics_text(&self) -> String {
        self.sync_metrics();
        let events = self.events.load_full();
        for (event, state) in events.iter() {
            let gauge = |name| self.metrics.event_gauge(name, event.as_str());
            gauge("spike_local_stock").set(state.stock.remaining() as f64);
            gauge("spike_local_sales").set(state.local_sales() as f64);
            gauge("spike_sold_out").set(if state.stock.is_sold_out() { 1.0 } else { 0.0 });
            gauge("spike_sale_paused").set(if state.is_paused() { 1.0 } else { 0.0 });
            if let Ok(Some(snapshot)) = self.central.snapshot(event).await {
                gauge("spike_order_stream_entries").set(snapshot.orders_in_stream as f64);
                gauge("spike_central_sold").set(snapshot.sold as f64);
                gauge("spike_central_stock").set(snapshot.config.total() as f64);
            }
            if let Some(room) = &state.queue {
                let (joined, admitted) = room.joined_and_admitted();
                gauge("spike_queue_joined").set(joined as f64);
                gauge("spike_queue_admitted").set(admitted as f64);
            }
        }
        if let Some(log) = &self.stat_log {
            let counters = log.counters();
            self.metrics
                .node_counter("spike_stat_log_lines_written_total")
                .absolute(counters.written.load(Ordering::Relaxed));
            self.metrics
                .node_counter("spike_stat_log_lines_dropped_total")
                .absolute(counters.dropped.load(Ordering::Relaxed));
            self.metrics
                .node_counter("spike_stat_log_refusals_total")
                .absolute(counters.refused.load(Ordering::Relaxed));
        }
        crate::telemetry::render()
    }

    /// Copies the node's own counters into the metrics.
    pub(super) fn sync_metrics(&self) {
        self.metrics.sync_counts(
            |code| self.stats.answers_with(code),
            self.stats.central_calls(),
        );
    }

    /// Cumulative counters for the dashboard, which turns them into rates.
    pub(super) fn stats_json(&self) -> Answer {
        let answers: serde_json::Map<String, serde_json::Value> = Code::BUY
            .iter()
            .map(|code| {
                (
                    code.number_text().to_owned(),
                    self.stats.answers_with(*code).into(),
                )
            })
            .collect();
        Answer::info(serde_json::json!({
            "node": self.config.node_id.as_str(),
            "answers": answers,
            "central_calls": self.stats.central_calls(),
            "central_batches": self.batch_sizes.json(),
            "central_in_flight": self.in_flight_json(),
            "congestion": self.congestion_json(),
            "queue": self.stats.queue_json(),
            "rate_limits": self.limiters.stats(),
            "latency_bounds_seconds": LATENCY_BUCKETS,
            "latency_counts": self.latency.snapshot(),
            "events": self.events_json(),
        }))
    }

    /// Central stock's view of a sale (one read).
    pub(super) async fn sale(&self, query: Option<&str>) -> Answer {
        let params = match BuyParams::parse(query) {
            Ok(params) => params,
            Err(error) => return param_error(&error),
        };
        let event = match self.resolve_event(params.event) {
            Ok((event, _)) => event,
            Err(answer) => return answer,
        };
        let snapshot = match self.central.snapshot(&event).await {
            Ok(Some(snapshot)) => snapshot,
            Ok(None) => return try_again(RetryReason::SaleStateMissing, None),
            Err(_) => return try_again(RetryReason::Unavailable, None),
        };
        // A train run counts seat-segments: one more read, of its seats.
        let occupancy = match snapshot.config.train() {
            None => None,
            Some(_) => match self.central.occupancy(&event).await {
                Ok(Some(occupancy)) => Some(occupancy),
                Ok(None) => return try_again(RetryReason::SaleStateMissing, None),
                Err(_) => return try_again(RetryReason::Unavailable, None),
            },
        };
        let figures = snapshot.figures(occupancy.as_ref());
        Answer::info(serde_json::json!({
            "event": event.as_str(),
            "unit": figures.unit.name(),
            "total": figures.total,
            "sold": figures.sold,
            "remaining": figures.remaining,
            "orders": figures.orders,
            "buyers": snapshot.buyers,
            "orders_in_stream": snapshot.orders_in_stream,
        }))
    }

    /// `GET /stats/grid?event=E[&since=V]`: what changed in a train run's
    /// seat grid since version `V` (every mask without it, or when this
    /// node no longer keeps that far back).
    pub(super) fn grid_changes(&self, query: Option<&str>) -> Answer {
        let (mut event, mut since) = (None, 0);
        for pair in query
            .unwrap_or_default()
            .split('&')
            .filter(|p| !p.is_empty())
        {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            match name {
                "event" => match EventId::parse(value) {
                    Ok(id) => event = Some(id),
                    Err(error) => return Answer::bad_request(error.to_string()),
                },
                "since" => match value.parse() {
                    Ok(version) => since = version,
                    Err(_) => return Answer::bad_request("since must be a grid version"),
                },
                _ => {}
            }
        }
        let Some(event) = event else {
            return Answer::bad_request("event is required");
        };
        match self
            .event(&event)
            .as_ref()
            .and_then(|state| state.train.as_ref())
        {
            Some(train) => Answer::info(train.grid_since(since)),
            None => Answer::refused(
                hyper::StatusCode::NOT_FOUND,
                format!("no train run {event} is served here"),
            ),
        }
    }

    /// Every served event's local state, sorted by event.
    pub(super) fn events_json(&self) -> Vec<serde_json::Value> {
        let mut events: Vec<_> = self
            .events
            .load()
            .iter()
            .map(|(event, state)| {
                serde_json::json!({
                    "event": event.as_str(),
                    "total": state.config.total(),
                    "local_stock": state.stock.remaining(),
                    "local_sales": state.local_sales(),
                    "sold_out": state.stock.is_sold_out(),
                    "missing": state.is_missing(),
                    "paused": state.is_paused(),
                    "queue": state.queue.as_ref().map(WaitingRoom::stats),
                    "train": state.train.as_ref().map(TrainState::grid),
                })
            })
            .collect();
        events.sort_by(|a, b| a["event"].as_str().cmp(&b["event"].as_str()));
        events
    }

    /// `/healthz`: on the public surface a few bytes that say the node
    /// answers (any stranger may ask: nothing costly, nothing about the
    /// sales); on the admin surface, the detail.
    pub(super) fn health(&self, surface: Surface) -> Answer {
        if surface == Surface::Public {
            return Answer::info(serde_json::json!({
                "status": "ok",
                "node": self.config.node_id.as_str(),
            }));
        }
        Answer::info(serde_json::json!({
            "status": "ok",
            "node": self.config.node_id.as_str(),
            "central_calls": self.stats.central_calls(),
            "central_in_flight": self.in_flight_json(),
            "congestion": self.congestion_json(),
            "events": self.events_json(),
        }))
    }

    /// The purchases waiting on central stock, and the adaptive limit.
    fn in_flight_json(&self) -> serde_json::Value {
        serde_json::json!({
            "now": self.central_gate.in_flight(),
            "peak": self.central_gate.peak(),
            "limit": self.central_gate.limit(),
            "ceiling": self.central_gate.ceiling(),
            "shed": self.central_gate.shed(),
        })
    }

    /// The node's own loop: its lag, whether it is congested, and what
    /// congestion shed.
    fn congestion_json(&self) -> serde_json::Value {
        serde_json::json!({
            "congested": self.lag.congested(),
            "lag_ms": self.lag.lag().as_secs_f64() * 1000.0,
            "episodes": self.lag.episodes(),
            "shed": self.stats.congestion_shed(),
        })
    }
}
