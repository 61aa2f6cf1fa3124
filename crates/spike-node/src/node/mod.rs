//! The node: what it is given ([`NodeConfig`], [`NodeParts`]), how it
//! starts ([`Node::start`]), and the dispatch: [`Node::answer`] looks the
//! path up in the routing table and hands it to the room that answers it.
//!
//! The rooms, one job each:
//! - [`purchase`]: `/buy/ticket` and `/buy/result`;
//! - [`tickets`]: seats on a train run and its availability;
//! - [`waitlist`]: a train run's waitlist orders;
//! - [`queue`]: the waiting room;
//! - [`order_access`]: who may reach the orders API;
//! - [`control`]: operators' live controls and the operator log;
//! - [`observe`]: health, stats, metrics and the sale's figures;
//! - [`refresh`]: the background loops;
//! - [`caller`]: who is asking, worked out once for all of them.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crate::answer::Answer;
use arc_swap::ArcSwap;
use hyper::Method;
use spike_core::stat::StatRecord;
use spike_core::{CentralError, CentralStock, Code, EventId, NodeId};
use spike_http::{InFlightGate, LoopLag, RetryReason};

use spike_auth::{AdmissionKeys, JoinWork, OperatorKey, OrderKeys, TokenVerifier};

use crate::batcher::{BatchSizes, DEFAULT_MAX_BATCH};
use crate::central_thread::CentralThread;
use crate::orders::OrdersApi;
use crate::rate_limit::{RateLimiters, RateLimits, FORGET_IDLE_EVERY};
use crate::routes::{QueueRequest, Route, Surface};
use crate::stat_log::{StatLog, StatSlot};
use crate::stats::NodeStats;
use crate::telemetry::{LatencyBuckets, NodeMetrics};
use crate::waiting_room::QUEUE_TICK_INTERVAL;
use spike_http::backlog::{Discipline, DEFAULT_DISCIPLINE, DEFAULT_LOOP_DISCIPLINE};

mod caller;
mod control;
mod event;
mod observe;
mod order_access;
mod outcome;
mod purchase;
mod queue;
mod refresh;
mod refusal;
mod tickets;
mod waitlist;

pub use control::{entry_json, CONTROL_FOLLOW_INTERVAL};
use event::open_lane;
pub use event::EventState;
use outcome::Outcome;
use refresh::repeat;
use refusal::try_again;

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
    /// How often each sale's operator log is read for controls given
    /// through another node ([`CONTROL_FOLLOW_INTERVAL`] by default).
    pub control_follow_interval: Duration,
    /// Export Prometheus metrics (installs the process's recorder).
    pub metrics: bool,
    /// Purchases that may wait on central stock at once; past it, new ones
    /// are answered "try again" at once (see [`spike_http::in_flight`]).
    pub max_central_in_flight: std::num::NonZeroUsize,
    /// Requests a second per buyer and per client address (none by default).
    pub rate_limits: RateLimits,
    /// The most purchases of one sale sent to central stock in one call
    /// (see [`crate::batcher`]); 1 sends each purchase on its own call, all
    /// of them at once.
    pub max_batch: std::num::NonZeroUsize,
    /// Where the lanes to central stock run (see [`crate::central_thread`]).
    pub central_thread: CentralThread,
    /// How long a purchase may wait in its lane to central stock (see
    /// [`spike_http::backlog`]).
    pub lane_discipline: Discipline,
    /// How far behind the node's own loop may run (see [`spike_http::lag`]):
    /// purchases are shed at once while it is congested.
    pub loop_discipline: Discipline,
}

/// The waiting-room page, served at `/queue?event=E`.
pub const QUEUE_PAGE: &str = include_str!("../../queue.html");

/// The OpenAPI 3.1 document of both surfaces, served at `/openapi.json`.
pub const OPENAPI: &str = include_str!("../../openapi.json");

/// How many purchases may wait on central stock at once, by default.
///
/// Little's law: in flight = throughput × time in flight. The node's buy
/// path measured about 20,000 central calls a second (BENCHMARKS.md), so
/// 1,024 in flight is about 50 ms of queue at full speed: a purchase
/// admitted behind the whole queue still gets its answer well inside the
/// 500 ms response deadline, and a slowed central stock sheds load instead
/// of growing the queue.
pub const DEFAULT_MAX_CENTRAL_IN_FLIGHT: std::num::NonZeroUsize =
    std::num::NonZeroUsize::new(1024).unwrap();

/// How often a node refreshes sold-out and missing events by default.
pub const DEFAULT_REFRESH_INTERVAL: Duration = Duration::from_secs(1);

impl NodeConfig {
    /// A node named `node_id` serving `events`, refreshing once a second.
    pub fn new(node_id: NodeId, events: Vec<EventId>) -> Self {
        Self {
            node_id,
            events,
            refresh_interval: DEFAULT_REFRESH_INTERVAL,
            control_follow_interval: CONTROL_FOLLOW_INTERVAL,
            metrics: true,
            max_central_in_flight: DEFAULT_MAX_CENTRAL_IN_FLIGHT,
            rate_limits: RateLimits::default(),
            max_batch: DEFAULT_MAX_BATCH,
            central_thread: CentralThread::default(),
            lane_discipline: DEFAULT_DISCIPLINE,
            loop_discipline: DEFAULT_LOOP_DISCIPLINE,
        }
    }
}

/// What a node is given besides its configuration and central stock.
#[derive(Debug, Default)]
pub struct NodeParts {
    /// Where answered purchases are logged.
    pub stat_log: Option<StatLog>,
    /// Who answers the orders API (without it, those paths say how to turn it on).
    pub orders: Option<Arc<dyn OrdersApi>>,
    /// Verifies buyer tokens; required to serve a sale created with `--auth token`.
    pub tokens: Option<TokenVerifier>,
    /// Makes the order keys of open and anonymous sales (every node of a
    /// sale must share them); without them, success answers carry none.
    pub order_keys: Option<OrderKeys>,
    /// Recognises the payment service.
    pub operator: Option<OperatorKey>,
    /// Makes and checks the admission tokens of sales with a waiting room
    /// (every node of a sale must share them); required to serve one.
    pub admissions: Option<AdmissionKeys>,
    /// The proof of work a waiting room's join must carry, if any.
    pub join_work: Option<JoinWork>,
}

/// One request, as the node needs it.
#[derive(Debug, Clone, Copy)]
pub struct NodeRequest<'a> {
    /// Its method.
    pub method: &'a Method,
    /// Its path.
    pub path: &'a str,
    /// Its query string, without `?`.
    pub query: Option<&'a str>,
    /// The token of an `Authorization: Bearer` header.
    pub bearer: Option<&'a str>,
    /// The listener it came in on.
    pub surface: Surface,
    /// The client's address (behind a trusted proxy, the one it forwarded).
    pub client: IpAddr,
}

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// A configured event has no sale in central stock.
    #[error("event {0} has no sale in central stock")]
    NoSuchSale(EventId),
    /// A sale needs buyer tokens and the node has no key to verify them.
    #[error("event {0} is a token sale and this node has no key to verify buyer tokens")]
    NoTokenKey(EventId),
    /// A sale has a waiting room and the node has no key for admission tokens.
    #[error("event {0} has a waiting room and this node has no key for admission tokens")]
    NoAdmissionKey(EventId),
    /// Central stock failed while loading sales.
    #[error(transparent)]
    Central(#[from] CentralError),
}

/// A node serving purchases in front of central stock `C`.
#[derive(Debug)]
pub struct Node<C> {
    config: NodeConfig,
    central: Arc<C>,
    batch_sizes: Arc<BatchSizes>,
    events: ArcSwap<HashMap<EventId, Arc<EventState>>>,
    stat_log: Option<Arc<StatLog>>,
    orders: Option<Arc<dyn OrdersApi>>,
    tokens: Option<TokenVerifier>,
    order_keys: Option<OrderKeys>,
    operator: Option<OperatorKey>,
    admissions: Option<AdmissionKeys>,
    join_work: Option<JoinWork>,
    stats: NodeStats,
    /// The start of every request id this node makes: its name, cut short.
    request_tag: String,
    shutting_down: AtomicBool,
    central_gate: Arc<InFlightGate>,
    /// The node's own loop's lag: purchases are shed while it is congested.
    lag: Arc<LoopLag>,
    limiters: RateLimiters,
    metrics: NodeMetrics,
    latency: LatencyBuckets,
}

impl<C: CentralStock> Node<C> {
    /// Loads the configured sales from central stock and starts the
    /// background refresh. Fails if a configured event has no sale, or is a
    /// token sale and `parts` has no token verifier.
    pub async fn start(
        config: NodeConfig,
        central: C,
        parts: NodeParts,
    ) -> Result<Arc<Self>, NodeError> {
        let names = if config.events.is_empty() {
            central.events().await?
        } else {
            config.events.clone()
        };
        let central = Arc::new(central);
        let batch_sizes = Arc::new(BatchSizes::default());
        let central_gate = InFlightGate::new(config.max_central_in_flight);
        let mut events = HashMap::new();
        for event in names {
            let snapshot = central
                .snapshot(&event)
                .await?
                .ok_or_else(|| NodeError::NoSuchSale(event.clone()))?;
            if snapshot.config.policy().needs_token() && parts.tokens.is_none() {
                return Err(NodeError::NoTokenKey(event));
            }
            if snapshot.config.queue().is_some() && parts.admissions.is_none() {
                return Err(NodeError::NoAdmissionKey(event));
            }
            let auth = snapshot.config.policy().auth_name();
            tracing::info!(%event, total = snapshot.config.total(), auth, "serving event");
            let remaining = snapshot.remaining();
            let lane = open_lane(
                &central,
                &snapshot.config,
                &config,
                &batch_sizes,
                &central_gate,
            );
            let state = EventState::new(snapshot.config, remaining, lane);
            events.insert(event, Arc::new(state));
        }
        if config.metrics {
            let _ = spike_telemetry::prometheus();
        }
        let short_name: String = config.node_id.as_str().chars().take(24).collect();
        let config_limits = config.rate_limits.clone();
        let lag = LoopLag::start(config.loop_discipline);
        let node = Arc::new(Self {
            request_tag: short_name,
            metrics: NodeMetrics::new(config.node_id.as_str()),
            config,
            central,
            batch_sizes,
            events: ArcSwap::from_pointee(events),
            stat_log: parts.stat_log.map(Arc::new),
            orders: parts.orders,
            tokens: parts.tokens,
            order_keys: parts.order_keys,
            operator: parts.operator,
            admissions: parts.admissions,
            join_work: parts.join_work,
            stats: NodeStats::default(),
            shutting_down: AtomicBool::new(false),
            central_gate,
            lag,
            limiters: RateLimiters::new(&config_limits),
            latency: LatencyBuckets::default(),
        });
        let events = node.events.load_full();
        for (event, state) in events.iter() {
            if let Some(train) = &state.train {
                node.refresh_train(event, state, train).await;
            }
        }
        let (weak, refresh) = (Arc::downgrade(&node), node.config.refresh_interval);
        tokio::spawn(repeat(weak, refresh, refresh, |node| async move {
            node.refresh().await;
        }));
        let weak = Arc::downgrade(&node);
        tokio::spawn(repeat(
            weak,
            Duration::ZERO,
            QUEUE_TICK_INTERVAL,
            |node| async move {
                node.tick_queues().await;
            },
        ));
        let (weak, follow) = (Arc::downgrade(&node), node.config.control_follow_interval);
        tokio::spawn(repeat(weak, follow, follow, |node| async move {
            node.follow_operator_logs().await;
        }));
        if node.limiters.any() {
            let weak = Arc::downgrade(&node);
            tokio::spawn(repeat(
                weak,
                FORGET_IDLE_EVERY,
                FORGET_IDLE_EVERY,
                |node| async move {
                    node.limiters.forget_idle();
                },
            ));
        }
        Ok(node)
    }

    /// The client behind a connection from `peer`: `peer`, or, when it is a
    /// trusted proxy, the address its `X-Forwarded-For` names.
    pub fn client(&self, peer: SocketAddr, headers: &hyper::HeaderMap) -> IpAddr {
        self.config
            .rate_limits
            .trusted_proxies
            .client(peer, headers)
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
        self.stat_log.as_deref()
    }

    /// The state of one served event.
    pub fn event(&self, event: &EventId) -> Option<Arc<EventState>> {
        self.events.load().get(event).cloned()
    }

    /// Stops taking purchases and flushes the stat log. Called once the
    /// server has drained its connections.
    pub fn close(&self) {
        self.shutting_down.store(true, Ordering::Release);
        if let Some(log) = &self.stat_log {
            log.close();
        }
    }

    /// Answers one HTTP request: the route table says what it is, and one
    /// handler per route answers it.
    pub async fn answer(self: &Arc<Self>, request: NodeRequest<'_>) -> Answer {
        let started = Instant::now();
        let NodeRequest {
            method,
            path,
            query,
            bearer,
            surface,
            client,
        } = request;
        let (route, spec) = match Route::parse(path, surface) {
            Ok(found) => found,
            Err(refusal) => return self.answered("other", refusal, started),
        };
        // Buyers' routes: the client address's bucket first, from memory.
        let address_limited = match surface == Surface::Public && spec.rate_limited() {
            true => self.limiters.check_address(client).err(),
            false => None,
        };
        if let (Some(retry_after), false) = (address_limited, route == Route::BuyTicket) {
            return self.answered(spec.name, Answer::rate_limited(retry_after), started);
        }
        // Routes that cost a central or ledger call whatever the stock.
        if surface == Surface::Public && spec.costly() {
            if let Err(retry_after) = self.limiters.check_costly(client) {
                return self.answered(spec.name, Answer::rate_limited(retry_after), started);
            }
        }
        let answer = match route {
            Route::BuyTicket => {
                // A place for this answer's stat-log line comes first: with
                // none, nothing is decided (the disk stalls).
                let slot = match self.stat_log.as_ref().map(StatLog::reserve) {
                    Some(None) => {
                        self.stats.count(Code::TryAgain);
                        return try_again(RetryReason::StatLogFull, None);
                    }
                    Some(Some(slot)) => Some(slot),
                    None => None,
                };
                if !spec.methods.allow(method) {
                    let refusal = Answer::method_not_allowed(spec.methods.header());
                    return self.purchase_answered(Outcome::early(refusal, None), started, slot);
                }
                if let Some(retry_after) = address_limited {
                    let limited = Answer::rate_limited(retry_after);
                    return self.purchase_answered(Outcome::early(limited, None), started, slot);
                }
                // A standing queue in the node's own loop: answer now, at
                // the cost of a sold-out answer, rather than late.
                if self.lag.congested() {
                    self.stats.count_congestion_shed();
                    let shed = try_again(RetryReason::Congested, None);
                    return self.purchase_answered(Outcome::early(shed, None), started, slot);
                }
                let admitted = match self.admit(query, bearer, client) {
                    Ok(admitted) => admitted,
                    Err(refused) => {
                        let refused = self.with_standing(refused).await;
                        return self.purchase_answered(refused, started, slot);
                    }
                };
                // From here the purchase reaches central stock: it finishes on
                // its own task, stat-log line included, whether or not the
                // client is still there to read the answer.
                let request = admitted.purchase.request.clone();
                let node = Arc::clone(self);
                let finished = tokio::spawn(async move {
                    let outcome = node.complete(admitted).await;
                    node.purchase_answered(outcome, started, slot)
                });
                return match finished.await {
                    Ok(answer) => answer,
                    Err(error) => {
                        tracing::error!(%error, %request, "purchase task failed");
                        try_again(RetryReason::OutcomeUnknown, Some(request))
                    }
                };
            }
            _ if !spec.methods.allow(method) => Answer::method_not_allowed(spec.methods.header()),
            Route::BuyResult => self.result(query, bearer).await,
            Route::Sale => self.sale(query).await,
            Route::Healthz => self.health(surface),
            Route::Stats => self.stats_json(),
            Route::StatsGrid => self.grid_changes(query),
            Route::Metrics => Answer::from(spike_http::Answer::Metrics(self.metrics_text().await)),
            Route::OpenApi => Answer::from(spike_http::Answer::Document(OPENAPI)),
            Route::Orders(ref request) => self.orders(request.clone(), query, bearer).await,
            Route::Queue(QueueRequest::Join) => {
                self.stats.count_queue_answer();
                self.queue_join(query, bearer).await
            }
            Route::Queue(QueueRequest::Status) => {
                self.stats.count_queue_answer();
                self.queue_status(query, bearer).await
            }
            Route::Queue(QueueRequest::Page) => Answer::from(spike_http::Answer::Page(QUEUE_PAGE)),
            Route::Queue(QueueRequest::Challenge) => self.queue_challenge(query, bearer),
            Route::Availability {
                ref train,
                ref date,
            } => self.availability(train, date),
            Route::Waitlist if method == Method::DELETE => {
                self.waitlist_withdraw(query, bearer).await
            }
            Route::Waitlist => self.waitlist_place(query, bearer).await,
            Route::WaitlistStatus => self.waitlist_status(query, bearer).await,
            Route::Control(request) => self.control(request, query, bearer).await,
        };
        self.answered(spec.name, answer, started)
    }

    /// An answer given before the request was read (its body is over the
    /// limit): counted like any answer to its route, and a purchase's
    /// refusal gets its stat-log line like every purchase answer.
    pub fn refused_unread(&self, path: &str, surface: Surface, refusal: Answer) -> Answer {
        let started = Instant::now();
        match Route::parse(path, surface) {
            Ok((Route::BuyTicket, _)) => {
                let slot = self.stat_log.as_ref().and_then(StatLog::reserve);
                self.purchase_answered(Outcome::early(refusal, None), started, slot)
            }
            Ok((_, spec)) => self.answered(spec.name, refusal, started),
            Err(_) => self.answered("other", refusal, started),
        }
    }

    /// Records a non-purchase answer in the metrics.
    fn answered(&self, route: &'static str, answer: Answer, started: Instant) -> Answer {
        self.metrics
            .other_answered(route, answer.code(), started.elapsed());
        answer
    }

    /// Counts a purchase's answer, writes its stat-log line in its reserved
    /// place, and records its latency.
    fn purchase_answered(
        &self,
        outcome: Outcome,
        started: Instant,
        slot: Option<StatSlot>,
    ) -> Answer {
        let code = outcome.answer.code();
        self.stats.count(code);
        if let Some(slot) = slot {
            slot.record(StatRecord {
                at: SystemTime::now(),
                code,
                local_sales: outcome.local_sales,
                event: outcome.event,
                user: outcome.user,
                order: outcome.answer.order().cloned(),
                request: outcome.request,
                ticket: outcome.answer.ticket().cloned(),
            });
        }
        let took = started.elapsed();
        self.metrics.buy_answered(took);
        self.latency.record(took);
        outcome.answer
    }
}
