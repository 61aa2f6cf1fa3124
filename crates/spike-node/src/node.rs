//! The node: decides every answer. A purchase first takes a seat from the
//! event's local stock (no seat: "sold out" from memory, no round trip),
//! then asks central stock, and answers exactly what central decided.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, Instant, SystemTime};

use arc_swap::ArcSwap;
use hyper::{Method, StatusCode};
use spike_core::stat::StatRecord;
use spike_core::{
    Admission, BuyerPolicy, CentralError, CentralStock, EventId, LocalStock, NodeId, Purchase,
    RequestId, SaleConfig, UserId, Verdict,
};

use crate::answer::{Answer, RetryReason};
use crate::orders_api::OrdersApi;
use crate::query::{BuyParams, ParamError};
use crate::stat_log::StatLog;
use crate::telemetry::{LatencyBuckets, NodeMetrics, BUY_CODES, LATENCY_BUCKETS};

/// What a node serves and how it behaves.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// This node's name (`X-Spike-Node` header, stat log, orders).
    pub node_id: NodeId,
    /// Events served; empty means every event central stock has (new ones are
    /// picked up by the refresh). The first is the default for requests
    /// without `event`.
    pub events: Vec<EventId>,
    /// How often sold-out events ask central stock for returned seats.
    pub refresh_interval: Duration,
    /// Export Prometheus metrics (installs the process's recorder).
    pub metrics: bool,
}

impl NodeConfig {
    /// A node named `node_id` serving `events`, refreshing once a second.
    pub fn new(node_id: NodeId, events: Vec<EventId>) -> Self {
        Self {
            node_id,
            events,
            refresh_interval: Duration::from_secs(1),
            metrics: true,
        }
    }
}

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// A configured event has no sale in central stock.
    #[error("event {0} has no sale in central stock (create it with `spike sale create`)")]
    NoSuchSale(EventId),
    /// Central stock failed while loading sales.
    #[error(transparent)]
    Central(#[from] CentralError),
}

/// One event as this node serves it.
#[derive(Debug)]
pub struct EventState {
    /// The sale's rules, as loaded from central stock.
    pub config: SaleConfig,
    /// This node's local stock for it.
    pub stock: LocalStock,
    /// Central stock reported the sale missing; refuse until it is back.
    missing: AtomicBool,
}

/// Counters a node keeps about its own answers.
#[derive(Debug, Default)]
pub struct NodeStats {
    /// Purchases sent to central stock.
    pub central_calls: AtomicU64,
    /// `/buy/ticket` answers by code: index 0 is code 1, index `k` is code `-k`.
    answers: [AtomicU64; 6],
}

impl NodeStats {
    /// The counter of answers with `code` (index 0 is code 1, index `k` is code `-k`).
    fn counter(&self, code: i8) -> Option<&AtomicU64> {
        let index = if code == 1 {
            0
        } else {
            usize::from(code.unsigned_abs())
        };
        self.answers.get(index)
    }

    fn count(&self, code: i8) {
        if let Some(counter) = self.counter(code) {
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// How many `/buy/ticket` answers carried `code` (1, -1 … -5).
    pub fn answers_with(&self, code: i8) -> u64 {
        self.counter(code).map_or(0, |c| c.load(Ordering::Relaxed))
    }
}

/// What a `/buy/ticket` request produced, for the answer and the stat log.
struct Outcome {
    answer: Answer,
    event: Option<EventId>,
    user: Option<UserId>,
    local_sales: u64,
}

impl Outcome {
    fn new(answer: Answer, event: Option<EventId>, user: Option<UserId>) -> Self {
        Self {
            answer,
            event,
            user,
            local_sales: 0,
        }
    }

    fn counting(mut self, state: &EventState) -> Self {
        self.local_sales = state.stock.local_sales();
        self
    }
}

/// A node serving purchases in front of central stock `C`.
#[derive(Debug)]
pub struct Node<C> {
    config: NodeConfig,
    central: C,
    events: ArcSwap<HashMap<EventId, Arc<EventState>>>,
    stat_log: Option<StatLog>,
    stats: NodeStats,
    request_prefix: String,
    request_seq: AtomicU64,
    shutting_down: AtomicBool,
    metrics: NodeMetrics,
    latency: LatencyBuckets,
    orders: OnceLock<Arc<dyn OrdersApi>>,
}

impl<C: CentralStock> Node<C> {
    /// Loads the configured sales from central stock and starts the
    /// background refresh. Fails if a configured event has no sale.
    pub async fn start(
        config: NodeConfig,
        central: C,
        stat_log: Option<StatLog>,
    ) -> Result<Arc<Self>, NodeError> {
        let names = if config.events.is_empty() {
            central.events().await?
        } else {
            config.events.clone()
        };
        let mut events = HashMap::new();
        for event in names {
            let snapshot = central
                .snapshot(&event)
                .await?
                .ok_or_else(|| NodeError::NoSuchSale(event.clone()))?;
            let state = EventState {
                stock: LocalStock::new(snapshot.remaining()),
                config: snapshot.config,
                missing: AtomicBool::new(false),
            };
            events.insert(event, Arc::new(state));
        }
        if config.metrics {
            let _ = spike_telemetry::prometheus();
        }
        let boot = spike_core::sale::unix_millis(SystemTime::now());
        let config_node_name = config.node_id.clone();
        let short_name: String = config.node_id.as_str().chars().take(24).collect();
        let node = Arc::new(Self {
            request_prefix: format!("{short_name}:{boot:x}:"),
            config,
            central,
            events: ArcSwap::from_pointee(events),
            stat_log,
            stats: NodeStats::default(),
            request_seq: AtomicU64::new(0),
            shutting_down: AtomicBool::new(false),
            metrics: NodeMetrics::new(config_node_name.as_str()),
            latency: LatencyBuckets::default(),
            orders: OnceLock::new(),
        });
        tokio::spawn(refresh_forever(Arc::downgrade(&node)));
        Ok(node)
    }

    /// This node's name.
    pub fn id(&self) -> &NodeId {
        &self.config.node_id
    }

    /// Counters about this node's answers.
    pub fn stats(&self) -> &NodeStats {
        &self.stats
    }

    /// The stat log, if one is configured.
    pub fn stat_log(&self) -> Option<&StatLog> {
        self.stat_log.as_ref()
    }

    /// The state of one served event.
    pub fn event(&self, event: &EventId) -> Option<Arc<EventState>> {
        self.events.load().get(event).cloned()
    }

    /// Serves the orders API from now on (once; later calls are ignored).
    pub fn attach_orders(&self, api: Arc<dyn OrdersApi>) {
        let _ = self.orders.set(api);
    }

    /// Stops taking purchases and flushes the stat log. Called once the
    /// server has drained its connections.
    pub fn close(&self) {
        self.shutting_down.store(true, Ordering::Release);
        if let Some(log) = &self.stat_log {
            log.close();
        }
    }

    /// Answers one HTTP request.
    pub async fn answer(&self, method: &Method, path: &str, query: Option<&str>) -> Answer {
        let started = Instant::now();
        let (route, answer) = match path {
            "/buy/ticket" => {
                let outcome = if matches!(*method, Method::GET | Method::POST) {
                    self.buy(query).await
                } else {
                    Outcome::new(method_not_allowed("GET, POST"), None, None)
                };
                let code = outcome.answer.code();
                self.stats.count(code);
                let answer = self.log(outcome);
                let took = started.elapsed();
                self.metrics.buy_answered(took);
                self.latency.record(took);
                return answer;
            }
            _ if path.starts_with("/orders/") || path.starts_with("/users/") => match self.orders.get() {
                Some(orders) => ("orders", orders.answer(method, path, query).await),
                None => (
                    "orders",
                    Answer::BadRequest {
                        status: StatusCode::NOT_FOUND,
                        message: "the orders API is off; start the node with --database-url".into(),
                    },
                ),
            },
            _ if *method != Method::GET => ("other", method_not_allowed("GET")),
            "/buy/result" => ("result", self.result(query).await),
            "/healthz" => ("healthz", self.health()),
            "/metrics" => ("metrics", Answer::Metrics(self.metrics_text().await)),
            "/stats" => ("stats", self.stats_json()),
            "/sale" => ("sale", self.sale(query).await),
            _ => (
                "other",
                Answer::BadRequest {
                    status: StatusCode::NOT_FOUND,
                    message: format!(
                        "no such path {path}; see /buy/ticket, /buy/result, /sale, /healthz, /stats, /metrics"
                    ),
                },
            ),
        };
        self.metrics
            .other_answered(route, answer.code(), started.elapsed());
        answer
    }

    /// The Prometheus exposition, with gauges brought up to date first
    /// (including one central read per event for the order stream's length).
    async fn metrics_text(&self) -> String {
        self.metrics.sync_counts(
            |code| self.stats.answers_with(code),
            self.stats.central_calls.load(Ordering::Relaxed),
        );
        let events = self.events.load_full();
        for (event, state) in events.iter() {
            let gauge = |name| self.metrics.event_gauge(name, event.as_str());
            gauge("spike_local_stock").set(state.stock.remaining() as f64);
            gauge("spike_local_sales").set(state.stock.local_sales() as f64);
            gauge("spike_sold_out").set(if state.stock.is_sold_out() { 1.0 } else { 0.0 });
            if let Ok(Some(snapshot)) = self.central.snapshot(event).await {
                gauge("spike_order_stream_entries").set(snapshot.orders_in_stream as f64);
                gauge("spike_central_sold").set(snapshot.sold as f64);
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
        }
        crate::telemetry::render()
    }

    /// Cumulative counters for the dashboard, which turns them into rates.
    fn stats_json(&self) -> Answer {
        let answers: serde_json::Map<String, serde_json::Value> = BUY_CODES
            .iter()
            .map(|code| (code.to_string(), self.stats.answers_with(*code).into()))
            .collect();
        let events = self.events_json();
        Answer::Info(serde_json::json!({
            "node": self.config.node_id.as_str(),
            "answers": answers,
            "central_calls": self.stats.central_calls.load(Ordering::Relaxed),
            "latency_bounds_seconds": LATENCY_BUCKETS,
            "latency_counts": self.latency.snapshot(),
            "events": events,
        }))
    }

    /// Central stock's view of a sale (one read).
    async fn sale(&self, query: Option<&str>) -> Answer {
        let (event, _) = match self.read_params(query) {
            Ok(found) => found,
            Err(answer) => return answer,
        };
        match self.central.snapshot(&event).await {
            Ok(Some(snapshot)) => Answer::Info(serde_json::json!({
                "event": event.as_str(),
                "total": snapshot.config.total(),
                "sold": snapshot.sold,
                "remaining": snapshot.remaining(),
                "buyers": snapshot.buyers,
                "orders_in_stream": snapshot.orders_in_stream,
            })),
            Ok(None) => Answer::TryAgain {
                reason: RetryReason::SaleStateMissing,
                request: None,
            },
            Err(_) => Answer::TryAgain {
                reason: RetryReason::Unavailable,
                request: None,
            },
        }
    }

    /// Records the outcome in the stat log and returns its answer.
    fn log(&self, outcome: Outcome) -> Answer {
        if let Some(log) = &self.stat_log {
            log.record(StatRecord {
                at: SystemTime::now(),
                code: outcome.answer.code(),
                local_sales: outcome.local_sales,
                event: outcome.event,
                user: outcome.user,
                order: outcome.answer.order().cloned(),
            });
        }
        outcome.answer
    }

    /// The event a request is about: its `event` parameter, else the node's default.
    fn resolve_event(
        &self,
        requested: Option<EventId>,
    ) -> Result<(EventId, Arc<EventState>), Answer> {
        let events = self.events.load();
        let event = match requested {
            Some(event) => event,
            None => match (self.config.events.first(), events.len()) {
                (Some(first), _) => first.clone(),
                (None, 1) => events.keys().next().cloned().ok_or_else(no_event)?,
                _ => return Err(no_event()),
            },
        };
        match events.get(&event) {
            Some(state) => Ok((event, Arc::clone(state))),
            None => Err(Answer::bad_request(format!("unknown event {event}"))),
        }
    }

    fn next_request_id(&self) -> RequestId {
        let seq = self.request_seq.fetch_add(1, Ordering::Relaxed);
        let id = format!("{}{seq:x}", self.request_prefix);
        // The prefix is a validated node id plus hex digits and colons.
        RequestId::parse(id).unwrap_or_else(|e| unreachable!("generated request id: {e}"))
    }

    async fn buy(&self, query: Option<&str>) -> Outcome {
        let params = match BuyParams::parse(query) {
            Ok(params) => params,
            Err(error) => return Outcome::new(param_error(&error), None, None),
        };
        let (event, state) = match self.resolve_event(params.event) {
            Ok(found) => found,
            Err(answer) => return Outcome::new(answer, None, params.user),
        };
        let user = params.user;
        let refuse =
            |answer, user| Outcome::new(answer, Some(event.clone()), user).counting(&state);
        if state.config.policy() != BuyerPolicy::Anonymous && user.is_none() {
            return refuse(Answer::bad_request("user_id is required"), None);
        }
        if self.shutting_down.load(Ordering::Acquire) {
            let answer = Answer::TryAgain {
                reason: RetryReason::ShuttingDown,
                request: None,
            };
            return refuse(answer, user);
        }
        if state.missing.load(Ordering::Acquire) {
            let answer = Answer::TryAgain {
                reason: RetryReason::SaleStateMissing,
                request: None,
            };
            return refuse(answer, user);
        }
        let not_yet_open = state
            .config
            .opens_at()
            .is_some_and(|opens_at| SystemTime::now() < opens_at);
        if not_yet_open {
            return refuse(Answer::NotOpen, user);
        }
        let seat = match state.stock.admit() {
            Admission::Ask(seat) => seat,
            Admission::SoldOut => return refuse(Answer::SoldOut, user),
        };
        let request = params.request.unwrap_or_else(|| self.next_request_id());
        let purchase = Purchase {
            event: event.clone(),
            user,
            request,
            node: self.config.node_id.clone(),
        };
        self.stats.central_calls.fetch_add(1, Ordering::Relaxed);
        let asked = Instant::now();
        // Boxed so that the (large) central future is only paid for by requests
        // that reach central stock, not by every sold-out answer.
        let reply = Box::pin(self.central.buy(&purchase)).await;
        self.metrics
            .central_duration
            .record(asked.elapsed().as_secs_f64());
        let answer = match reply {
            Ok(reply) => match reply.verdict {
                Verdict::Sold { order, replayed } => {
                    if replayed {
                        seat.refused(reply.remaining);
                    } else {
                        seat.sold(reply.remaining);
                    }
                    Answer::Sold {
                        event: event.clone(),
                        order,
                    }
                }
                Verdict::SoldOut => {
                    seat.sold_out();
                    Answer::SoldOut
                }
                Verdict::AlreadyPurchased { order } => {
                    seat.refused(reply.remaining);
                    Answer::AlreadyPurchased { order }
                }
                Verdict::NotOpen => {
                    seat.refused(reply.remaining);
                    Answer::NotOpen
                }
                Verdict::UserRequired => {
                    seat.refused(reply.remaining);
                    Answer::bad_request("user_id is required")
                }
                Verdict::RequestIdTaken => {
                    seat.refused(reply.remaining);
                    Answer::BadRequest {
                        status: StatusCode::CONFLICT,
                        message:
                            "request_id already bought a seat for another buyer; use a new one"
                                .to_string(),
                    }
                }
                Verdict::NoSuchSale => {
                    drop(seat);
                    state.missing.store(true, Ordering::Release);
                    tracing::error!(%event, "central stock has no state for this sale; refusing to sell it");
                    Answer::TryAgain {
                        reason: RetryReason::SaleStateMissing,
                        request: Some(purchase.request.clone()),
                    }
                }
            },
            Err(error) => {
                drop(seat);
                tracing::warn!(%error, %event, request = %purchase.request, "purchase not decided");
                let reason = match error {
                    CentralError::Unavailable(_) => {
                        self.metrics.central_unavailable.increment(1);
                        RetryReason::Unavailable
                    }
                    CentralError::OutcomeUnknown(_) | CentralError::Protocol(_) => {
                        self.metrics.central_unknown.increment(1);
                        RetryReason::OutcomeUnknown
                    }
                };
                Answer::TryAgain {
                    reason,
                    request: Some(purchase.request.clone()),
                }
            }
        };
        Outcome::new(answer, Some(event), purchase.user).counting(&state)
    }

    /// Parses a read-only request's parameters: its event and request id.
    fn read_params(&self, query: Option<&str>) -> Result<(EventId, Option<RequestId>), Answer> {
        let params = BuyParams::parse(query).map_err(|error| param_error(&error))?;
        let (event, _) = self.resolve_event(params.event)?;
        Ok((event, params.request))
    }

    async fn result(&self, query: Option<&str>) -> Answer {
        let (event, request) = match self.read_params(query) {
            Ok(found) => found,
            Err(answer) => return answer,
        };
        let Some(request) = request else {
            return Answer::bad_request("request_id is required");
        };
        match self.central.order_for_request(&event, &request).await {
            Ok(Some(order)) => Answer::Sold { event, order },
            Ok(None) => Answer::BadRequest {
                status: StatusCode::NOT_FOUND,
                message: format!("no order for request_id {request}"),
            },
            Err(_) => Answer::TryAgain {
                reason: RetryReason::Unavailable,
                request: Some(request),
            },
        }
    }

    /// Every served event's local state, sorted by event.
    fn events_json(&self) -> Vec<serde_json::Value> {
        let mut events: Vec<_> = self
            .events
            .load()
            .iter()
            .map(|(event, state)| {
                serde_json::json!({
                    "event": event.as_str(),
                    "total": state.config.total(),
                    "local_stock": state.stock.remaining(),
                    "local_sales": state.stock.local_sales(),
                    "sold_out": state.stock.is_sold_out(),
                    "missing": state.missing.load(Ordering::Acquire),
                })
            })
            .collect();
        events.sort_by(|a, b| a["event"].as_str().cmp(&b["event"].as_str()));
        events
    }

    fn health(&self) -> Answer {
        let list = self.events_json();
        Answer::Info(serde_json::json!({
            "status": "ok",
            "node": self.config.node_id.as_str(),
            "central_calls": self.stats.central_calls.load(Ordering::Relaxed),
            "events": list,
        }))
    }

    /// One refresh pass: sold-out or missing events ask central for their
    /// state (picking up returned seats), and new events are discovered.
    async fn refresh(&self) {
        self.metrics.sync_counts(
            |code| self.stats.answers_with(code),
            self.stats.central_calls.load(Ordering::Relaxed),
        );
        let events = self.events.load_full();
        for (event, state) in events.iter() {
            let missing = state.missing.load(Ordering::Acquire);
            if !missing && !state.stock.is_sold_out() {
                continue;
            }
            match self.central.snapshot(event).await {
                Ok(Some(snapshot)) => {
                    if missing {
                        tracing::info!(%event, "sale state is back in central stock");
                        state.stock.reset(snapshot.remaining());
                        state.missing.store(false, Ordering::Release);
                    } else {
                        state.stock.raise_to(snapshot.remaining());
                    }
                }
                Ok(None) => state.missing.store(true, Ordering::Release),
                Err(error) => tracing::debug!(%error, %event, "refresh failed"),
            }
        }
        if self.config.events.is_empty() {
            self.discover(&events).await;
        }
    }

    async fn discover(&self, known: &HashMap<EventId, Arc<EventState>>) {
        let Ok(names) = self.central.events().await else {
            return;
        };
        let mut grown = known.clone();
        for event in names.into_iter().filter(|e| !known.contains_key(e)) {
            if let Ok(Some(snapshot)) = self.central.snapshot(&event).await {
                tracing::info!(%event, total = snapshot.config.total(), "serving new event");
                let state = EventState {
                    stock: LocalStock::new(snapshot.remaining()),
                    config: snapshot.config,
                    missing: AtomicBool::new(false),
                };
                grown.insert(event, Arc::new(state));
            }
        }
        if grown.len() != known.len() {
            self.events.store(Arc::new(grown));
        }
    }
}

async fn refresh_forever<C: CentralStock>(node: Weak<Node<C>>) {
    let interval = match node.upgrade() {
        Some(node) => node.config.refresh_interval,
        None => return,
    };
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await;
    loop {
        ticker.tick().await;
        let Some(node) = node.upgrade() else { return };
        if node.shutting_down.load(Ordering::Acquire) {
            return;
        }
        node.refresh().await;
    }
}

fn no_event() -> Answer {
    Answer::bad_request("event is required (this node serves several events)")
}

fn method_not_allowed(allowed: &str) -> Answer {
    Answer::BadRequest {
        status: StatusCode::METHOD_NOT_ALLOWED,
        message: format!("method not allowed; use {allowed}"),
    }
}

fn param_error(error: &ParamError) -> Answer {
    let status = match error {
        ParamError::QueryTooLong => StatusCode::URI_TOO_LONG,
        _ => StatusCode::BAD_REQUEST,
    };
    Answer::BadRequest {
        status,
        message: error.to_string(),
    }
}
