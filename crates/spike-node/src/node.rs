//! The node: decides every answer. [`Node::answer`] looks the path up in
//! the routing table and hands it to its handler. A purchase ([`Node::buy`])
//! first takes a seat from the event's local stock (none: "sold out" from
//! memory, no round trip), then asks central stock, settles the seat with
//! central's reply (`Reservation::settle`, in spike-core), and answers
//! exactly what central decided.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant, SystemTime};

use arc_swap::ArcSwap;
use hyper::{Method, StatusCode};
use spike_core::stat::StatRecord;
use spike_core::{
    Admission, BuyerPolicy, CentralError, CentralReply, CentralStock, Code, EventId, LocalStock,
    NodeId, OrderId, Passengers, Purchase, QueueJoin, RequestId, Reservation, SaleConfig,
    SeatRequest, Settlement, TicketPurchase, TrainLayout, TrainRun, UserId, Verdict,
};
use spike_http::{Answer, InFlight, InFlightGate, RetryReason};

use spike_auth::{
    AdmissionError, AdmissionKeys, OperatorKey, OrderKeys, TokenError, TokenVerifier,
};

use crate::batcher::{BatchSizes, Lane, DEFAULT_MAX_BATCH};
use crate::orders::{Caller, OrdersApi};
use crate::proof::{one_credential, Proof, Replayed};
use crate::query::{BuyParams, ParamError, TicketParams};
use crate::rate_limit::{RateLimiters, RateLimits, FORGET_IDLE_EVERY};
use crate::routes::{OrdersRequest, QueueRequest, Route, Surface};
use crate::stat_log::{StatLog, StatSlot};
use crate::stats::NodeStats;
use crate::telemetry::{LatencyBuckets, NodeMetrics, LATENCY_BUCKETS};
use crate::train::TrainState;
use crate::waiting_room::{Place, WaitingRoom, QUEUE_TICK_INTERVAL};

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
    /// Purchases that may wait on central stock at once; past it, new ones
    /// are answered "try again" at once (see [`spike_http::in_flight`]).
    pub max_central_in_flight: std::num::NonZeroUsize,
    /// Requests a second per buyer and per client address (none by default).
    pub rate_limits: RateLimits,
    /// The most purchases of one sale sent to central stock in one call
    /// (see [`crate::batcher`]); 1 sends each purchase on its own call, all
    /// of them at once.
    pub max_batch: std::num::NonZeroUsize,
}

/// The waiting-room page, served at `/queue?event=E`.
pub const QUEUE_PAGE: &str = include_str!("../queue.html");

/// The OpenAPI 3.1 document of both surfaces, served at `/openapi.json`.
pub const OPENAPI: &str = include_str!("../openapi.json");

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
            metrics: true,
            max_central_in_flight: DEFAULT_MAX_CENTRAL_IN_FLIGHT,
            rate_limits: RateLimits::default(),
            max_batch: DEFAULT_MAX_BATCH,
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
    #[error("event {0} has no sale in central stock (create it with `spike sale create`)")]
    NoSuchSale(EventId),
    /// A sale needs buyer tokens and the node has no key to verify them.
    #[error("event {0} is a token sale (--auth token); start the node with --token-key-file")]
    NoTokenKey(EventId),
    /// A sale has a waiting room and the node has no key for admission tokens.
    #[error("event {0} has a waiting room (--queue); start the node with --order-key-file")]
    NoAdmissionKey(EventId),
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
    pub stock: Arc<LocalStock>,
    /// Central stock reported the sale missing; refuse until it is back.
    missing: AtomicBool,
    /// The sale's waiting room, if it has one.
    pub queue: Option<WaitingRoom>,
    /// The sale's line to central stock, when purchases go in batches.
    lane: Option<Lane>,
    /// A train run's memo and availability (`None` for other sales).
    pub train: Option<TrainState>,
}

impl EventState {
    /// Sales this node has made of it: seats of local stock, or orders of
    /// seats on a train run.
    pub fn local_sales(&self) -> u64 {
        match &self.train {
            Some(train) => train.sales(),
            None => self.stock.local_sales(),
        }
    }

    fn new(config: SaleConfig, remaining: u64, lane: Option<Lane>) -> Self {
        let queue =
            (config.queue()).map(|queue| WaitingRoom::new(*queue, config.opens_at_millis()));
        Self {
            train: (config.train()).map(|layout| TrainState::new(Arc::clone(layout))),
            config,
            stock: Arc::new(LocalStock::new(remaining)),
            missing: AtomicBool::new(false),
            queue,
            lane,
        }
    }

    /// Whether central stock has lost this sale (the node refuses it).
    pub fn is_missing(&self) -> bool {
        self.missing.load(Ordering::Acquire)
    }

    fn set_missing(&self, missing: bool) {
        self.missing.store(missing, Ordering::Release);
    }

    /// Why a purchase cannot go to central stock now, if it cannot: the
    /// checks that need no round trip.
    fn refusal(
        &self,
        user: Option<&UserId>,
        shutting_down: bool,
        now: SystemTime,
    ) -> Option<Answer> {
        if self.config.policy() != BuyerPolicy::Anonymous && user.is_none() {
            return Some(Answer::bad_request("user_id is required"));
        }
        if shutting_down {
            return Some(try_again(RetryReason::ShuttingDown, None));
        }
        if self.is_missing() {
            return Some(try_again(RetryReason::SaleStateMissing, None));
        }
        if !self.config.is_open_at(now) {
            return Some(Answer::NotOpen);
        }
        None
    }
}

/// What a `/buy/ticket` request produced, for the answer and the stat log.
struct Outcome {
    answer: Answer,
    event: Option<EventId>,
    user: Option<UserId>,
    /// The request id, once the purchase asked central stock.
    request: Option<RequestId>,
    local_sales: u64,
}

impl Outcome {
    /// An answer given before the request named a known event.
    fn early(answer: Answer, user: Option<UserId>) -> Self {
        Self {
            answer,
            event: None,
            user,
            request: None,
            local_sales: 0,
        }
    }

    /// An answer about `event`, with the node's sales of it so far.
    fn about(answer: Answer, event: EventId, user: Option<UserId>, state: &EventState) -> Self {
        Self {
            answer,
            event: Some(event),
            user,
            request: None,
            local_sales: state.local_sales(),
        }
    }

    /// The same outcome, for the purchase with `request` id.
    fn of_request(self, request: RequestId) -> Self {
        Self {
            request: Some(request),
            ..self
        }
    }
}

/// What an admitted purchase holds until central stock answers.
enum Hold {
    /// One seat of the node's local stock (a sale).
    Seat(Reservation),
    /// Nothing local: seats on a train run, as asked for.
    Seats(SeatRequest),
}

/// A purchase admitted to ask central stock, owning all it needs, so that
/// it can finish on its own task.
struct Admitted {
    purchase: Purchase,
    hold: Hold,
    state: Arc<EventState>,
    proof: Proof,
    /// Its place among the purchases waiting on central stock.
    _in_flight: InFlight,
}

/// A sale's lane to central stock, unless purchases go one per call
/// (`max_batch` 1): a batch of one is sent as a single purchase.
fn open_lane<C: CentralStock>(
    central: &Arc<C>,
    config: &NodeConfig,
    sizes: &Arc<BatchSizes>,
) -> Option<Lane> {
    if config.max_batch.get() == 1 {
        return None;
    }
    let central = Arc::clone(central);
    let lane = Lane::start(config.max_batch, Arc::clone(sizes), move |batch| {
        let central = Arc::clone(&central);
        async move {
            match batch.purchases() {
                [alone] => central.buy(alone).await.map(|reply| vec![reply]),
                _ => central.buy_many(&batch).await,
            }
        }
    });
    Some(lane)
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
    stats: NodeStats,
    /// The start of every request id this node makes: its name, cut short.
    request_tag: String,
    shutting_down: AtomicBool,
    central_gate: Arc<InFlightGate>,
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
            let lane = open_lane(&central, &config, &batch_sizes);
            let state = EventState::new(snapshot.config, remaining, lane);
            events.insert(event, Arc::new(state));
        }
        if config.metrics {
            let _ = spike_telemetry::prometheus();
        }
        let short_name: String = config.node_id.as_str().chars().take(24).collect();
        let central_gate = InFlightGate::new(config.max_central_in_flight);
        let config_limits = config.rate_limits.clone();
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
            stats: NodeStats::default(),
            shutting_down: AtomicBool::new(false),
            central_gate,
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
        let (route, methods) = match Route::parse(path, surface) {
            Ok(found) => found,
            Err(refusal) => return self.answered("other", refusal, started),
        };
        // Buyers' routes: the client address's bucket first, from memory.
        let address_limited = match surface == Surface::Public && route.rate_limited() {
            true => self.limiters.check_address(client).err(),
            false => None,
        };
        if let (Some(retry_after), false) = (address_limited, route == Route::BuyTicket) {
            return self.answered(route.name(), Answer::RateLimited { retry_after }, started);
        }
        // Routes that cost a central or ledger call whatever the stock.
        if surface == Surface::Public && route.costly() {
            if let Err(retry_after) = self.limiters.check_costly(client) {
                return self.answered(route.name(), Answer::RateLimited { retry_after }, started);
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
                if !methods.allow(method) {
                    let refusal = Answer::MethodNotAllowed {
                        allowed: methods.header(),
                    };
                    return self.purchase_answered(Outcome::early(refusal, None), started, slot);
                }
                if let Some(retry_after) = address_limited {
                    let limited = Answer::RateLimited { retry_after };
                    return self.purchase_answered(Outcome::early(limited, None), started, slot);
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
            _ if !methods.allow(method) => Answer::MethodNotAllowed {
                allowed: methods.header(),
            },
            Route::BuyResult => self.result(query, bearer).await,
            Route::Sale => self.sale(query).await,
            Route::Healthz => self.health(surface),
            Route::Stats => self.stats_json(),
            Route::Metrics => Answer::Metrics(self.metrics_text().await),
            Route::OpenApi => Answer::Document(OPENAPI),
            Route::Orders(ref request) => self.orders(request.clone(), query, bearer).await,
            Route::Queue(QueueRequest::Join) => {
                self.stats.count_queue_answer();
                self.queue_join(query, bearer).await
            }
            Route::Queue(QueueRequest::Status) => {
                self.stats.count_queue_answer();
                self.queue_status(query, bearer).await
            }
            Route::Queue(QueueRequest::Page) => Answer::Page(QUEUE_PAGE),
            Route::Availability {
                ref train,
                ref date,
            } => self.availability(train, date),
        };
        self.answered(route.name(), answer, started)
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
            Ok((route, _)) => self.answered(route.name(), refusal, started),
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

    /// A purchase's first steps, all in memory: read the parameters, find
    /// the event, identify the buyer, refuse what needs no round trip, take a
    /// local seat. `Err` is the answer already decided (sold out from memory
    /// among them); `Ok` is a purchase that must ask central stock.
    ///
    /// A request carrying its own `request_id` is never told "sold out" from
    /// memory: it may be a retry of a purchase that sold (its first answer
    /// lost), so it asks central stock, whose request index knows (a
    /// read-only call when the sale is sold out).
    fn admit(
        &self,
        query: Option<&str>,
        bearer: Option<&str>,
        client: IpAddr,
    ) -> Result<Admitted, Outcome> {
        let params = self
            .read_params(query, bearer)
            .map_err(|refusal| Outcome::early(refusal, None))?;
        let (event, state) = requested_event(params.event.clone(), &params.ticket)
            .and_then(|requested| self.resolve_event(requested))
            .map_err(|answer| Outcome::early(answer, params.user.clone()))?;
        let seats = seat_request(&event, &state, &params.ticket)
            .map_err(|answer| Outcome::about(answer, event.clone(), params.user.clone(), &state))?;
        let user = self
            .buyer(&event, &state, params.user, params.token.as_deref())
            .map_err(|refusal| Outcome::about(refusal, event.clone(), None, &state))?;
        if let Some(buyer) = &user {
            if let Err(retry_after) = self.limiters.check_buyer(buyer) {
                let limited = Answer::RateLimited { retry_after };
                return Err(Outcome::about(limited, event, user, &state));
            }
        }
        let shutting_down = self.shutting_down.load(Ordering::Acquire);
        if let Some(refusal) = state.refusal(user.as_ref(), shutting_down, SystemTime::now()) {
            return Err(Outcome::about(refusal, event, user, &state));
        }
        let admission =
            match self.admission(&event, &state, user.as_ref(), params.admission.as_deref()) {
                Ok(admission) => admission,
                Err(refusal) => return Err(Outcome::about(refusal, event, user, &state)),
            };
        let hold = match (seats, &state.train) {
            (Some(request), Some(train)) => {
                // As for a sale, a request with its own id may be a retry
                // of a purchase that sold: only central stock knows.
                match (train.sold_out(&request), &params.request) {
                    (Some(as_of), None) => {
                        let sold_out = leg_sold_out(train.layout(), &request, as_of);
                        return Err(Outcome::about(sold_out, event, user, &state));
                    }
                    (Some(_), Some(_)) => {
                        if let Err(retry_after) = self.limiters.check_costly(client) {
                            let limited = Answer::RateLimited { retry_after };
                            return Err(Outcome::about(limited, event, user, &state));
                        }
                    }
                    (None, _) => {}
                }
                Hold::Seats(request)
            }
            _ => match (state.stock.admit(), &params.request) {
                (Admission::Ask(seat), _) => Hold::Seat(seat),
                (Admission::SoldOut, Some(_)) => {
                    // Sold out, and only central stock knows whether this
                    // request bought: a call each time, so a costly request.
                    if let Err(retry_after) = self.limiters.check_costly(client) {
                        let limited = Answer::RateLimited { retry_after };
                        return Err(Outcome::about(limited, event, user, &state));
                    }
                    Hold::Seat(state.stock.ask_unreserved())
                }
                (Admission::SoldOut, None) => {
                    return Err(Outcome::about(Answer::SoldOut, event, user, &state))
                }
            },
        };
        let Some(in_flight) = self.central_gate.enter() else {
            drop(hold);
            let busy = try_again(RetryReason::CentralBusy, None);
            return Err(Outcome::about(busy, event, user, &state));
        };
        let proof = Proof {
            order_key: params.order_key,
            request_key: params.request_key,
            request_made_here: params.request.is_none(),
        };
        let purchase = Purchase {
            event,
            user,
            request: params.request.unwrap_or_else(|| self.next_request_id()),
            node: self.config.node_id.clone(),
            admission,
        };
        Ok(Admitted {
            purchase,
            hold,
            state,
            proof,
            _in_flight: in_flight,
        })
    }

    /// A purchase's last steps: ask central stock, settle the seat with its
    /// reply, answer what central decided.
    async fn complete(&self, admitted: Admitted) -> Outcome {
        let Admitted {
            purchase,
            hold,
            state,
            proof,
            _in_flight,
        } = admitted;
        let seat = match hold {
            Hold::Seat(seat) => seat,
            Hold::Seats(request) => {
                return self.complete_ticket(purchase, request, state, proof).await
            }
        };
        let answer = match self.ask_central(&purchase, &state).await {
            Ok(reply) => {
                if seat.settle(&reply) == Settlement::SaleMissing {
                    state.set_missing(true);
                    tracing::error!(event = %purchase.event, "central stock has no state for this sale; refusing to sell it");
                }
                match self.withheld(&reply.verdict, &purchase, &state, &proof) {
                    Some(withheld) => withheld,
                    None => {
                        verdict_answer(reply, &purchase, |order| self.order_key_for(&state, order))
                    }
                }
            }
            Err(error) => {
                drop(seat);
                self.undecided(error, &purchase, &state, &proof)
            }
        };
        Outcome::about(answer, purchase.event, purchase.user, &state).of_request(purchase.request)
    }

    /// A train ticket's last steps: ask central stock for the seats, learn
    /// a "sold out" into the memo, answer the seats central gave.
    async fn complete_ticket(
        &self,
        purchase: Purchase,
        request: SeatRequest,
        state: Arc<EventState>,
        proof: Proof,
    ) -> Outcome {
        self.stats.count_central_call();
        let asked = Instant::now();
        let ticket = TicketPurchase {
            purchase,
            seats: request,
        };
        // Boxed, as in ask_central: only purchases that reach central pay for it.
        let reply = Box::pin(self.central.buy_seats(&ticket)).await;
        self.metrics
            .central_duration
            .record(asked.elapsed().as_secs_f64());
        let TicketPurchase { purchase, .. } = ticket;
        let order_key = |order: &OrderId| self.order_key_for(&state, order);
        let answer = match (reply, &state.train) {
            (Ok(reply), Some(train)) => match (reply.verdict, reply.ticket) {
                (verdict @ Verdict::Sold { .. }, Some(ticket)) => {
                    train.count_sale();
                    match self.withheld(&verdict, &purchase, &state, &proof) {
                        Some(withheld) => withheld,
                        None => {
                            let Verdict::Sold { order, .. } = verdict else {
                                unreachable!("matched as a sale")
                            };
                            let key = order_key(&order);
                            Answer::seats_sold(train.layout(), &purchase.event, order, key, ticket)
                        }
                    }
                }
                (Verdict::Sold { .. }, None) => self.undecided(
                    CentralError::Protocol("a sale of seats without its seats".into()),
                    &purchase,
                    &state,
                    &proof,
                ),
                (Verdict::SoldOut, _) => {
                    train.learn(&request, reply.as_of);
                    leg_sold_out(train.layout(), &request, reply.as_of)
                }
                (verdict, _) => {
                    if verdict == Verdict::NoSuchSale {
                        state.set_missing(true);
                    }
                    let reply = CentralReply {
                        verdict,
                        remaining: 0,
                    };
                    verdict_answer(reply, &purchase, order_key)
                }
            },
            (Ok(_), None) => try_again(RetryReason::SaleStateMissing, None),
            (Err(error), _) => self.undecided(error, &purchase, &state, &proof),
        };
        Outcome::about(answer, purchase.event, purchase.user, &state).of_request(purchase.request)
    }

    /// `GET /trains/{train}/{date}/availability`: free seats per station
    /// pair and class, from the node's memory (refreshed from central
    /// stock every refresh period; 503 when the last refresh is older
    /// than two periods).
    fn availability(&self, train: &str, date: &str) -> Answer {
        let run = match TrainRun::parse(train, date) {
            Ok(run) => run,
            Err(error) => return Answer::bad_request(error.to_string()),
        };
        let event = run.event();
        let state = self.event(&event);
        let Some(train_state) = state.as_ref().and_then(|state| state.train.as_ref()) else {
            return Answer::refused(
                StatusCode::NOT_FOUND,
                format!("no train run {train} on {date} is served here"),
            );
        };
        match train_state.availability(self.config.refresh_interval * 2) {
            Some(mut table) => {
                table["train"] = run.train().into();
                table["date"] = run.date().into();
                table["event"] = event.as_str().into();
                Answer::done(None, &table)
            }
            None => try_again(RetryReason::Unavailable, None),
        }
    }

    /// The admitted position a purchase of a queued sale carries, from its
    /// admission token (`None` on a sale without a waiting room), or the
    /// refusal: 403, code -7, "not admitted yet".
    fn admission(
        &self,
        event: &EventId,
        state: &EventState,
        user: Option<&UserId>,
        token: Option<&str>,
    ) -> Result<Option<u64>, Answer> {
        let (Some(room), Some(user)) = (&state.queue, user) else {
            return Ok(None);
        };
        let Some(keys) = &self.admissions else {
            return Err(try_again(RetryReason::NoAdmissionKey, None));
        };
        let now_ms = spike_core::sale::unix_millis(SystemTime::now());
        // Unsealed, nobody is admitted: no token can be right.
        let seal = room.seal_seed().unwrap_or(0);
        match keys.verify(event, seal, user, token, now_ms) {
            Ok(admitted) => Ok(Some(admitted.position)),
            Err(error) => Err(not_admitted(error)),
        }
    }

    /// A "not admitted yet" refusal, completed with where the buyer stands
    /// (a buyer this node has not seen costs one read of central stock).
    async fn with_standing(&self, mut refused: Outcome) -> Outcome {
        let (
            Answer::NotAdmitted {
                standing: slot @ None,
                ..
            },
            Some(event),
            Some(user),
        ) = (&mut refused.answer, &refused.event, &refused.user)
        else {
            return refused;
        };
        if let Some(state) = self.event(event) {
            *slot = self.standing_of(event, &state, user).await.ok().flatten();
        }
        refused
    }

    /// `POST /queue/join`: puts the buyer in the sale's waiting room (or
    /// finds their place) and says where they stand.
    async fn queue_join(&self, query: Option<&str>, bearer: Option<&str>) -> Answer {
        let (event, state, user) = match self.queue_caller(query, bearer) {
            Ok(found) => found,
            Err(refusal) => return refusal,
        };
        let Some(room) = &state.queue else {
            return no_queue(&event);
        };
        self.stats.count_queue_central_call();
        let join_index = match self.central.join_queue(&event, &user, unguessable()).await {
            Ok(QueueJoin::Joined { join_index }) => join_index,
            Ok(QueueJoin::NotYetOpen { joins_open_at_ms }) => {
                return Answer::Refused {
                    status: StatusCode::CONFLICT,
                    message: "the waiting room is not open yet".into(),
                    data: Some(serde_json::json!({ "joins_open_at_ms": joins_open_at_ms })),
                }
            }
            Ok(QueueJoin::NoQueue) => return no_queue(&event),
            Ok(QueueJoin::NoSuchSale) => return try_again(RetryReason::SaleStateMissing, None),
            Err(_) => return try_again(RetryReason::Unavailable, None),
        };
        room.remember(&user, join_index);
        self.standing_answer(&event, &state, room, &user, join_index)
    }

    /// `GET /queue/status`: where the buyer stands, from this node's memory
    /// (a buyer this node has not seen costs one read of central stock).
    async fn queue_status(&self, query: Option<&str>, bearer: Option<&str>) -> Answer {
        let (event, state, user) = match self.queue_caller(query, bearer) {
            Ok(found) => found,
            Err(refusal) => return refusal,
        };
        let Some(room) = &state.queue else {
            return no_queue(&event);
        };
        match self.place_of(&event, room, &user).await {
            Ok(Some(join_index)) => self.standing_answer(&event, &state, room, &user, join_index),
            Ok(None) => Answer::refused(
                StatusCode::NOT_FOUND,
                format!("{user} is not in the waiting room of {event}: POST /queue/join first"),
            ),
            Err(answer) => answer,
        }
    }

    /// The event and buyer of a waiting-room request, identified as a
    /// purchase would be.
    fn queue_caller(
        &self,
        query: Option<&str>,
        bearer: Option<&str>,
    ) -> Result<(EventId, Arc<EventState>, UserId), Answer> {
        let params = self.read_params(query, bearer)?;
        let (event, state) = self.resolve_event(params.event)?;
        let user = self.buyer(&event, &state, params.user, params.token.as_deref())?;
        let user = user.ok_or_else(|| Answer::bad_request("user_id is required"))?;
        if let Err(retry_after) = self.limiters.check_buyer(&user) {
            return Err(Answer::RateLimited { retry_after });
        }
        Ok((event, state, user))
    }

    /// The buyer's join index: from memory, else from central stock (then
    /// remembered).
    async fn place_of(
        &self,
        event: &EventId,
        room: &WaitingRoom,
        user: &UserId,
    ) -> Result<Option<u64>, Answer> {
        if let Some(join_index) = room.place(user) {
            return Ok(Some(join_index));
        }
        self.stats.count_queue_central_call();
        match self.central.queue_place(event, user).await {
            Ok(Some(join_index)) => {
                room.remember(user, join_index);
                Ok(Some(join_index))
            }
            Ok(None) => Ok(None),
            Err(_) => Err(try_again(RetryReason::Unavailable, None)),
        }
    }

    /// Where a buyer stands, as JSON, if the sale has a waiting room.
    async fn standing_of(
        &self,
        event: &EventId,
        state: &EventState,
        user: &UserId,
    ) -> Result<Option<serde_json::Value>, Answer> {
        let (Some(room), Some(keys)) = (&state.queue, &self.admissions) else {
            return Ok(None);
        };
        let Some(join_index) = self.place_of(event, room, user).await? else {
            return Ok(serde_json::to_value(Place::NotJoined).ok());
        };
        let now_ms = spike_core::sale::unix_millis(SystemTime::now());
        let standing = room.standing(join_index, now_ms, state.stock.is_sold_out());
        Ok(serde_json::to_value(room.describe(standing, event, user, keys)).ok())
    }

    fn standing_answer(
        &self,
        event: &EventId,
        state: &EventState,
        room: &WaitingRoom,
        user: &UserId,
        join_index: u64,
    ) -> Answer {
        let Some(keys) = &self.admissions else {
            return try_again(RetryReason::NoAdmissionKey, None);
        };
        let now_ms = spike_core::sale::unix_millis(SystemTime::now());
        let standing = room.standing(join_index, now_ms, state.stock.is_sold_out());
        Answer::done(None, &room.describe(standing, event, user, keys))
    }

    /// One admission step for each queued sale this node serves; what it
    /// reads updates the node's waiting rooms (and lowers local stock to
    /// central's count, so that a sellout reaches every waiting buyer).
    async fn tick_queues(&self) {
        let events = self.events.load_full();
        for (event, state) in events.iter() {
            let Some(room) = &state.queue else { continue };
            let since = room.steps_known_until_ms();
            self.stats.count_queue_tick();
            match self.central.tick_queue(event, unguessable(), since).await {
                Ok(Some(counters)) => {
                    state.stock.lower_to(counters.remaining);
                    room.apply(counters);
                }
                Ok(None) => {}
                Err(error) => tracing::debug!(%error, %event, "queue tick failed"),
            }
        }
    }

    /// Who is buying: on a token sale, the token's `sub` (a `user_id`, if
    /// given, must be the same); otherwise the `user_id` as given.
    fn buyer(
        &self,
        event: &EventId,
        state: &EventState,
        claimed: Option<UserId>,
        token: Option<&str>,
    ) -> Result<Option<UserId>, Answer> {
        if !state.config.policy().needs_token() {
            return Ok(claimed);
        }
        let Some(tokens) = &self.tokens else {
            // Node::start refuses this; a sale re-created as a token sale
            // while the node runs is refused here rather than sold open.
            return Err(try_again(RetryReason::NoTokenKey, None));
        };
        let unauthorized = |error: TokenError| Answer::Unauthorized {
            reason: error.to_string(),
        };
        let token = token.ok_or_else(|| unauthorized(TokenError::Missing))?;
        let claims = tokens
            .verify(token, event, SystemTime::now())
            .map_err(unauthorized)?;
        match claimed {
            Some(user) if user != claims.sub => Err(unauthorized(TokenError::UserMismatch)),
            _ => Ok(Some(claims.sub)),
        }
    }

    /// Sends one purchase to central stock (in its sale's next batch, when
    /// purchases go in batches), counting it and timing its wait.
    async fn ask_central(
        &self,
        purchase: &Purchase,
        state: &EventState,
    ) -> Result<CentralReply, CentralError> {
        self.stats.count_central_call();
        let asked = Instant::now();
        // Boxed so that the (large) central future is only paid for by requests
        // that reach central stock, not by every sold-out answer.
        let reply = match &state.lane {
            Some(lane) => lane.buy(purchase.clone()).await,
            None => Box::pin(self.central.buy(purchase)).await,
        };
        self.metrics
            .central_duration
            .record(asked.elapsed().as_secs_f64());
        reply
    }

    /// The answer when central stock gave none: try again, with the request
    /// id that resolves it.
    fn undecided(
        &self,
        error: CentralError,
        purchase: &Purchase,
        state: &EventState,
        proof: &Proof,
    ) -> Answer {
        tracing::warn!(%error, event = %purchase.event, request = %purchase.request, "purchase not decided");
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
        // A request id this node made was told to this caller alone: its
        // key lets them prove it on a retry (open and anonymous sales).
        let request_key = (self.order_keys.as_ref())
            .filter(|_| proof.request_made_here && !state.config.policy().needs_token())
            .map(|keys| keys.request_key(state.config.life(), &purchase.event, &purchase.request));
        Answer::TryAgain {
            reason,
            request: Some(purchase.request.clone()),
            request_key,
        }
    }

    /// The order key a success answer carries: on open and anonymous sales,
    /// when the node has order keys.
    fn order_key_for(&self, state: &EventState, order: &OrderId) -> Option<String> {
        let keys = self.order_keys.as_ref()?;
        (!state.config.policy().needs_token()).then(|| keys.key_for(state.config.life(), order))
    }

    /// Whether the caller proved that a replayed `order` of `request` is
    /// theirs (see [`crate::proof`]).
    fn proves_replay(
        &self,
        state: &EventState,
        event: &EventId,
        request: &RequestId,
        order: &OrderId,
        proof: &Proof,
    ) -> bool {
        let replayed = Replayed {
            policy: state.config.policy(),
            life: state.config.life(),
            event,
            request,
            order,
        };
        proof.proves(&replayed, self.order_keys.as_ref())
    }

    /// The answer to a replayed sale whose caller has not proved it theirs:
    /// "success", with the order withheld; `None` for any other verdict.
    fn withheld(
        &self,
        verdict: &Verdict,
        purchase: &Purchase,
        state: &EventState,
        proof: &Proof,
    ) -> Option<Answer> {
        let Verdict::Sold {
            order,
            replayed: true,
        } = verdict
        else {
            return None;
        };
        let proved = self.proves_replay(state, &purchase.event, &purchase.request, order, proof);
        (!proved).then(|| Answer::ReplayWithheld {
            event: purchase.event.clone(),
            order: order.clone(),
        })
    }

    /// The Prometheus exposition, with gauges brought up to date first
    /// (including one central read per event for the order stream's length).
    async fn metrics_text(&self) -> String {
        self.sync_metrics();
        let events = self.events.load_full();
        for (event, state) in events.iter() {
            let gauge = |name| self.metrics.event_gauge(name, event.as_str());
            gauge("spike_local_stock").set(state.stock.remaining() as f64);
            gauge("spike_local_sales").set(state.local_sales() as f64);
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
            self.metrics
                .node_counter("spike_stat_log_refusals_total")
                .absolute(counters.refused.load(Ordering::Relaxed));
        }
        crate::telemetry::render()
    }

    /// Copies the node's own counters into the metrics.
    fn sync_metrics(&self) {
        self.metrics.sync_counts(
            |code| self.stats.answers_with(code),
            self.stats.central_calls(),
        );
    }

    /// Cumulative counters for the dashboard, which turns them into rates.
    fn stats_json(&self) -> Answer {
        let answers: serde_json::Map<String, serde_json::Value> = Code::BUY
            .iter()
            .map(|code| {
                (
                    code.number_text().to_owned(),
                    self.stats.answers_with(*code).into(),
                )
            })
            .collect();
        Answer::Info(serde_json::json!({
            "node": self.config.node_id.as_str(),
            "answers": answers,
            "central_calls": self.stats.central_calls(),
            "central_batches": self.batch_sizes.json(),
            "central_in_flight": {
                "now": self.central_gate.in_flight(),
                "peak": self.central_gate.peak(),
                "limit": self.central_gate.limit(),
                "shed": self.central_gate.shed(),
            },
            "queue": self.stats.queue_json(),
            "rate_limits": self.limiters.stats(),
            "latency_bounds_seconds": LATENCY_BUCKETS,
            "latency_counts": self.latency.snapshot(),
            "events": self.events_json(),
        }))
    }

    /// Central stock's view of a sale (one read).
    async fn sale(&self, query: Option<&str>) -> Answer {
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
        Answer::Info(serde_json::json!({
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

    /// What a request id bought (resolves "outcome unknown"), shown only
    /// to whoever proves it theirs: on a token sale the buyer's token (any
    /// other buyer is told "no order", as if it had bought nothing); on an
    /// open or anonymous sale its request key or its order's key, without
    /// which the answer says the request bought and withholds the order.
    /// Confirmed by replicas like a sale, on nodes that confirm sales.
    async fn result(&self, query: Option<&str>, bearer: Option<&str>) -> Answer {
        let params = match self.read_params(query, bearer) {
            Ok(params) => params,
            Err(answer) => return answer,
        };
        let (event, state) = match self.resolve_event(params.event.clone()) {
            Ok(found) => found,
            Err(answer) => return answer,
        };
        let Some(request) = params.request.clone() else {
            return Answer::bad_request("request_id is required");
        };
        // On a token sale, the buyer the token proves (401 without one);
        // on other sales nobody is proved by who they say they are.
        let asker = match self.buyer(&event, &state, None, params.token.as_deref()) {
            Ok(asker) => asker,
            Err(refusal) => return refusal,
        };
        let no_order = || {
            Answer::refused(
                StatusCode::NOT_FOUND,
                format!("no order for request_id {request}"),
            )
        };
        let record = match self.central.request_record(&event, &request).await {
            Ok(Some(record)) => record,
            Ok(None) => return no_order(),
            Err(CentralError::OutcomeUnknown(why)) => {
                tracing::warn!(%event, %request, %why, "result not confirmed");
                return try_again(RetryReason::OutcomeUnknown, Some(request));
            }
            Err(_) => return try_again(RetryReason::Unavailable, Some(request)),
        };
        if let Some(subject) = asker {
            return match record.buyer.as_ref() == Some(&subject) {
                true => Answer::Sold {
                    event,
                    order: record.order,
                    order_key: None,
                },
                false => no_order(),
            };
        }
        let proof = Proof {
            order_key: params.order_key,
            request_key: params.request_key,
            request_made_here: false,
        };
        match self.proves_replay(&state, &event, &request, &record.order, &proof) {
            true => Answer::Sold {
                event,
                order_key: self.order_key_for(&state, &record.order),
                order: record.order,
            },
            false => Answer::ReplayWithheld {
                event,
                order: record.order,
            },
        }
    }

    /// Hands an orders request to the orders API, if this node has one,
    /// once it knows who is asking.
    async fn orders(
        &self,
        request: OrdersRequest,
        query: Option<&str>,
        bearer: Option<&str>,
    ) -> Answer {
        let Some(orders) = &self.orders else {
            return Answer::refused(
                StatusCode::NOT_FOUND,
                "the orders API is off; start the node with --database-url",
            );
        };
        let params = match self.read_params(query, bearer) {
            Ok(params) => params,
            Err(refusal) => return refusal,
        };
        // The operator key only counts from the header (a key in a URL ends
        // up in access logs); a buyer token may also come as `token=`.
        let operator = bearer
            .filter(|key| (self.operator.as_ref()).is_some_and(|operator| operator.accepts(key)));
        if operator.is_some() {
            return orders.answer(request, Caller::Operator).await;
        }
        match self.caller(
            &request,
            params.order_key.as_deref(),
            params.token.as_deref(),
        ) {
            Ok(caller) => orders.answer(request, caller).await,
            Err(refusal) => refusal,
        }
    }

    /// Who is asking the orders API, when it is not the operator, or why
    /// they may not. A payment needs the operator key. A buyer lists their
    /// orders with their token. One order is reached with its buyer's token
    /// on a token sale, and with its order key on an open or anonymous sale.
    fn caller(
        &self,
        request: &OrdersRequest,
        order_key: Option<&str>,
        bearer: Option<&str>,
    ) -> Result<Caller, Answer> {
        let now = SystemTime::now();
        match request {
            OrdersRequest::Pay(_) => Err(match bearer {
                None => unauthorized(
                    "a payment is confirmed by the payment service: send the operator key as Authorization: Bearer",
                ),
                Some(_) => forbidden("only the payment service (the operator key) may confirm a payment"),
            }),
            OrdersRequest::OfUser(owner) => {
                let token = bearer.ok_or_else(|| {
                    unauthorized("listing a buyer's orders needs their token (Authorization: Bearer)")
                })?;
                let tokens = self.tokens.as_ref().ok_or_else(|| {
                    forbidden("this node verifies no buyer tokens (no --token-key-file)")
                })?;
                let claims = tokens
                    .verify_identity(token, now)
                    .map_err(|e| unauthorized(&e.to_string()))?;
                if claims.sub != *owner {
                    return Err(forbidden("these are another buyer's orders"));
                }
                Ok(Caller::Buyer(claims.sub))
            }
            OrdersRequest::Show(order) | OrdersRequest::Cancel(order) => {
                let no_such_order =
                    || Answer::refused(StatusCode::NOT_FOUND, format!("no such order {order}"));
                let (event, _) = order.split().ok_or_else(no_such_order)?;
                let state = self.event(&event).ok_or_else(no_such_order)?;
                if state.config.policy().needs_token() {
                    let token = bearer.ok_or_else(|| {
                        unauthorized("this order is reached with its buyer's token (Authorization: Bearer)")
                    })?;
                    let tokens = self
                        .tokens
                        .as_ref()
                        .ok_or_else(|| try_again(RetryReason::NoTokenKey, None))?;
                    let claims = tokens
                        .verify(token, &event, now)
                        .map_err(|e| unauthorized(&e.to_string()))?;
                    return Ok(Caller::Buyer(claims.sub));
                }
                let key = order_key.ok_or_else(|| {
                    unauthorized("this order is reached with the order_key its purchase answer carried")
                })?;
                match &self.order_keys {
                    Some(keys) if keys.verify(state.config.life(), order, key) => {
                        Ok(Caller::OrderKeyHolder)
                    }
                    _ => Err(forbidden("this order_key does not open this order")),
                }
            }
        }
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

    /// Parses a request's parameters, with the credential it carries: the
    /// `Authorization: Bearer` token, or `token=`; both at once is refused
    /// (RFC 6750, section 2: one method per request).
    fn read_params(&self, query: Option<&str>, bearer: Option<&str>) -> Result<BuyParams, Answer> {
        let mut params = BuyParams::parse(query).map_err(|error| param_error(&error))?;
        params.token = one_credential(bearer, params.token)?;
        Ok(params)
    }

    /// A request id for a purchase that came without one: the node's name
    /// and 128 random bits (from a generator seeded by the operating
    /// system), so that no one can guess another buyer's.
    fn next_request_id(&self) -> RequestId {
        let id = format!("{}:{:032x}", self.request_tag, rand::random::<u128>());
        // A validated node id (at most 24 characters), a colon, 32 hex digits.
        RequestId::parse(id).unwrap_or_else(|e| unreachable!("generated request id: {e}"))
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
                    "local_sales": state.local_sales(),
                    "sold_out": state.stock.is_sold_out(),
                    "missing": state.is_missing(),
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
    fn health(&self, surface: Surface) -> Answer {
        if surface == Surface::Public {
            return Answer::Info(serde_json::json!({
                "status": "ok",
                "node": self.config.node_id.as_str(),
            }));
        }
        Answer::Info(serde_json::json!({
            "status": "ok",
            "node": self.config.node_id.as_str(),
            "central_calls": self.stats.central_calls(),
            "central_in_flight": {
                "now": self.central_gate.in_flight(),
                "peak": self.central_gate.peak(),
                "limit": self.central_gate.limit(),
                "shed": self.central_gate.shed(),
            },
            "events": self.events_json(),
        }))
    }

    /// One refresh pass: sold-out or missing events ask central for their
    /// state (picking up returned seats), and new events are discovered.
    async fn refresh(&self) {
        self.sync_metrics();
        let events = self.events.load_full();
        for (event, state) in events.iter() {
            if let Some(train) = &state.train {
                self.refresh_train(event, state, train).await;
                continue;
            }
            let missing = state.is_missing();
            if !missing && !state.stock.is_sold_out() {
                continue;
            }
            match self.central.snapshot(event).await {
                Ok(Some(snapshot)) => {
                    if missing {
                        tracing::info!(%event, "sale state is back in central stock");
                        state.stock.reset(snapshot.remaining());
                        state.set_missing(false);
                    } else {
                        state.stock.raise_to(snapshot.remaining());
                    }
                }
                Ok(None) => state.set_missing(true),
                Err(error) => tracing::debug!(%error, %event, "refresh failed"),
            }
        }
        if self.config.events.is_empty() {
            self.discover(&events).await;
        }
    }

    /// A train run's refresh, every period whatever it sold: central's
    /// occupancy becomes the memo and the availability table.
    async fn refresh_train(&self, event: &EventId, state: &EventState, train: &TrainState) {
        match self.central.occupancy(event).await {
            Ok(Some(occupancy)) => {
                train.refreshed(occupancy);
                state.set_missing(false);
            }
            Ok(None) => state.set_missing(true),
            Err(error) => tracing::debug!(%error, %event, "train refresh failed"),
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
                let remaining = snapshot.remaining();
                let lane = open_lane(&self.central, &self.config, &self.batch_sizes);
                let state = EventState::new(snapshot.config, remaining, lane);
                grown.insert(event, Arc::new(state));
            }
        }
        if grown.len() != known.len() {
            self.events.store(Arc::new(grown));
        }
    }
}

/// What the buyer is told about central stock's verdict. A sale (new or a
/// replay of this request) carries the order's key when `order_key` gives
/// one; "already purchased" never does (on an open sale anyone can claim a
/// user id).
fn verdict_answer(
    reply: CentralReply,
    purchase: &Purchase,
    order_key: impl Fn(&OrderId) -> Option<String>,
) -> Answer {
    match reply.verdict {
        Verdict::Sold { order, .. } => Answer::Sold {
            event: purchase.event.clone(),
            order_key: order_key(&order),
            order,
        },
        Verdict::SoldOut => Answer::SoldOut,
        Verdict::AlreadyPurchased { order } => Answer::AlreadyPurchased { order },
        Verdict::NotOpen => Answer::NotOpen,
        Verdict::UserRequired => Answer::bad_request("user_id is required"),
        Verdict::NotAdmitted => Answer::NotAdmitted {
            reason: "central stock has not admitted this position".into(),
            standing: None,
        },
        Verdict::RequestIdTaken => Answer::refused(
            StatusCode::CONFLICT,
            "request_id already bought a seat for another buyer; use a new one",
        ),
        Verdict::NoSuchSale => try_again(
            RetryReason::SaleStateMissing,
            Some(purchase.request.clone()),
        ),
    }
}

/// Runs `step` on the node every `period`, the first time after
/// `first_in`, until the node is dropped or shuts down.
async fn repeat<C, F, Fut>(node: Weak<Node<C>>, first_in: Duration, period: Duration, step: F)
where
    C: CentralStock,
    F: Fn(Arc<Node<C>>) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + first_in, period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let Some(node) = node.upgrade() else { return };
        if node.shutting_down.load(Ordering::Acquire) {
            return;
        }
        step(node).await;
    }
}

/// 64 bits no one can predict (from a generator the operating system
/// seeds): a waiting room's shuffle seed.
fn unguessable() -> u64 {
    rand::random()
}

fn unauthorized(reason: &str) -> Answer {
    Answer::Unauthorized {
        reason: reason.to_owned(),
    }
}

fn forbidden(reason: &str) -> Answer {
    Answer::refused(StatusCode::FORBIDDEN, reason)
}

fn try_again(reason: RetryReason, request: Option<RequestId>) -> Answer {
    Answer::TryAgain {
        reason,
        request,
        request_key: None,
    }
}

fn no_queue(event: &EventId) -> Answer {
    Answer::refused(
        StatusCode::NOT_FOUND,
        format!("event {event} has no waiting room"),
    )
}

fn not_admitted(error: AdmissionError) -> Answer {
    Answer::NotAdmitted {
        reason: error.to_string(),
        standing: None,
    }
}

fn no_event() -> Answer {
    Answer::bad_request("event is required (this node serves several events)")
}

fn param_error(error: &ParamError) -> Answer {
    let status = match error {
        ParamError::QueryTooLong => StatusCode::URI_TOO_LONG,
        _ => StatusCode::BAD_REQUEST,
    };
    Answer::refused(status, error.to_string())
}

/// The event a purchase names: `event`, or a train run's `train` and
/// `date` (both, and not with a different `event`).
fn requested_event(
    event: Option<EventId>,
    ticket: &TicketParams,
) -> Result<Option<EventId>, Answer> {
    let run = match (&ticket.train, &ticket.date) {
        (None, None) => return Ok(event),
        (Some(train), Some(date)) => {
            TrainRun::parse(train, date).map_err(|e| Answer::bad_request(e.to_string()))?
        }
        _ => return Err(Answer::bad_request("train and date go together")),
    };
    match event {
        Some(event) if event != run.event() => Err(Answer::bad_request(format!(
            "event {event} is not train {} on {}",
            run.train(),
            run.date()
        ))),
        _ => Ok(Some(run.event())),
    }
}

/// What a purchase of a train run asks for (`None` for other sales), or
/// why it is refused: every part must name the run's stations and classes.
fn seat_request(
    event: &EventId,
    state: &EventState,
    ticket: &TicketParams,
) -> Result<Option<SeatRequest>, Answer> {
    let Some(train) = &state.train else {
        return match ticket.any() {
            true => Err(Answer::bad_request(format!(
                "event {event} is not a train run: it takes no train, from, to, class or passengers"
            ))),
            false => Ok(None),
        };
    };
    let (Some(from), Some(to), Some(class)) = (&ticket.from, &ticket.to, &ticket.class) else {
        return Err(Answer::bad_request(format!(
            "{event} is a train run: give from, to and class (stations {}; classes {})",
            train.layout().stations().join(", "),
            (train.layout().classes().iter())
                .map(|c| c.name())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    };
    let bad = |e: spike_core::TrainError| Answer::bad_request(e.to_string());
    let layout = train.layout();
    let passengers = match &ticket.passengers {
        None => Passengers::ONE,
        Some(count) => count
            .parse()
            .map_err(|_| spike_core::TrainError::Passengers)
            .and_then(Passengers::new)
            .map_err(bad)?,
    };
    Ok(Some(SeatRequest {
        class: layout.class_index(class).map_err(bad)?,
        leg: layout.leg(from, to).map_err(bad)?,
        passengers,
    }))
}

/// "Sold out for this segment": what was asked, and the order sequence
/// after which it was true.
fn leg_sold_out(layout: &TrainLayout, request: &SeatRequest, as_of: u64) -> Answer {
    let (from, to) = layout.leg_names(request.leg);
    let class = layout
        .classes()
        .get(request.class)
        .map_or("?", |c| c.name());
    Answer::SoldOutForLeg {
        asked: Box::new(serde_json::json!({
            "from": from,
            "to": to,
            "class": class,
            "passengers": request.passengers.get(),
            "as_of_order": as_of,
        })),
    }
}
