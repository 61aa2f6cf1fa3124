//! Shared helpers for the integration tests: start real nodes on random
//! ports (in this process, or as the `spike` binary), and drive them with a
//! keep-alive HTTP client.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use spike::app::{LedgerSource, NodeApp, NodeSettings, OrdersSettings};
use spike_auth::KeyRing;
use spike_core::{CentralStock, EventId, NodeId, OrderStream, SaleConfig};
use spike_node::{Node, NodeConfig};
use spike_orders::{OrderLedger, Pipeline, PipelineConfig, WriterConfig};
use spike_redis::{RedisCentral, RedisSettings};

pub use spike_core::Code;

/// Every central stock a test node can run on: Redis or embedded.
pub trait Central: CentralStock + OrderStream + Clone + std::fmt::Debug {}

impl<C: CentralStock + OrderStream + Clone + std::fmt::Debug> Central for C {}

/// The payment service's key on every test node.
pub const OPERATOR_KEY: &str = "the-operator-key-of-the-test-payment-service";

/// The order-key secret every test node shares.
pub const ORDER_SECRET: &str = "the-secret-every-test-node-makes-order-keys-with";

/// `user`'s buyer token, valid for an hour, signed with `key` (as the
/// operator's login system would mint it).
pub fn token_signed_with(key: &str, user: &str) -> String {
    let user = spike_core::UserId::parse(user).expect("valid test user");
    spike_auth::mint(
        ring(key).signing(),
        &user,
        std::time::SystemTime::now(),
        Duration::from_secs(3600),
        None,
    )
}

/// A ring holding one key.
pub fn ring(key: &str) -> KeyRing {
    KeyRing::new(
        spike_auth::SecretKey::new(key).expect("long enough"),
        Vec::new(),
    )
}

/// How long a test node waits between refreshes unless told otherwise: an
/// hour, so that only the purchases under test reach central stock.
pub const QUIET: Duration = Duration::from_secs(3600);

/// What a test node is: its name, events, refresh period, stat log and
/// orders API. Built with [`named`] and its methods.
#[derive(Debug, Clone)]
pub struct NodeSpec {
    name: String,
    events: Vec<EventId>,
    refresh: Duration,
    stat_log: Option<PathBuf>,
    orders: Option<OrderLedger>,
    tokens: Option<KeyRing>,
    server: Option<spike_http::ServerOptions>,
    stat_log_queue: Option<u64>,
    max_central_in_flight: Option<std::num::NonZeroUsize>,
    rate_limits: spike_node::rate_limit::RateLimits,
    join_work: Option<u8>,
    control_follow: Option<Duration>,
}

/// A node named `name`, serving every event, refreshing hourly.
pub fn named(name: &str) -> NodeSpec {
    NodeSpec {
        name: name.to_owned(),
        events: Vec::new(),
        refresh: QUIET,
        stat_log: None,
        orders: None,
        tokens: None,
        server: None,
        stat_log_queue: None,
        max_central_in_flight: None,
        rate_limits: Default::default(),
        join_work: None,
        control_follow: None,
    }
}

impl NodeSpec {
    /// Reads the operator log every `period` (a node's default otherwise).
    pub fn following_controls_every(mut self, period: Duration) -> Self {
        self.control_follow = Some(period);
        self
    }

    /// Asks waiting-room joins for `bits` of proof of work.
    pub fn join_work(mut self, bits: u8) -> Self {
        self.join_work = Some(bits);
        self
    }

    /// Serves `event` (the first one given is the default).
    pub fn serving(mut self, event: &EventId) -> Self {
        self.events.push(event.clone());
        self
    }

    /// Refreshes sold-out and missing events this often.
    pub fn refreshing_every(mut self, period: Duration) -> Self {
        self.refresh = period;
        self
    }

    /// Writes its stat log to `path`.
    pub fn stat_log(mut self, path: &Path) -> Self {
        self.stat_log = Some(path.to_owned());
        self
    }

    /// Queues at most `lines` stat-log lines before refusing purchases.
    pub fn stat_log_queue(mut self, lines: u64) -> Self {
        self.stat_log_queue = Some(lines);
        self
    }

    /// Lets at most `limit` purchases wait on central stock at once.
    pub fn max_central_in_flight(mut self, limit: usize) -> Self {
        self.max_central_in_flight = std::num::NonZeroUsize::new(limit);
        self
    }

    /// Enforces these rate limits.
    pub fn rate_limits(mut self, limits: spike_node::rate_limit::RateLimits) -> Self {
        self.rate_limits = limits;
        self
    }

    /// Serves with these connection limits.
    pub fn server(mut self, options: spike_http::ServerOptions) -> Self {
        self.server = Some(options);
        self
    }

    /// Verifies buyer tokens with `keys`.
    pub fn tokens(mut self, keys: &KeyRing) -> Self {
        self.tokens = Some(keys.clone());
        self
    }

    /// Serves the orders API from `ledger`.
    pub fn orders_from(mut self, ledger: &OrderLedger) -> Self {
        self.orders = Some(ledger.clone());
        self
    }
}

/// A node built by the application's own builder, on a random loopback port.
pub struct TestNode<C> {
    pub app: NodeApp<C>,
    http: Http,
}

/// Builds and starts a node as `spec` says, on `central`.
pub async fn spawn_node<C: Central>(central: C, spec: NodeSpec) -> TestNode<C> {
    let mut config = NodeConfig::new(NodeId::parse(spec.name).unwrap(), spec.events);
    config.refresh_interval = spec.refresh;
    if let Some(period) = spec.control_follow {
        config.control_follow_interval = period;
    }
    config.rate_limits = spec.rate_limits;
    if let Some(limit) = spec.max_central_in_flight {
        config.max_central_in_flight = limit;
    }
    let mut settings = NodeSettings::new(SocketAddr::from(([127, 0, 0, 1], 0)), config);
    settings.stat_log = spec.stat_log;
    if let Some(lines) = spec.stat_log_queue {
        settings.stat_log_queue = lines;
    }
    settings.server.grace = Duration::from_secs(2);
    if let Some(options) = spec.server {
        settings.server = options;
    }
    settings.token_keys = spec.tokens;
    settings.order_keys = Some(ring(ORDER_SECRET));
    settings.operator_keys = Some(ring(OPERATOR_KEY));
    settings.join_work_bits = spec.join_work;
    settings.orders = spec.orders.map(|ledger| OrdersSettings {
        ledger: LedgerSource::Open(ledger),
        pipeline: None,
    });
    // Keep pooled connections well below the server's idle limit, so the
    // client never reuses one the server is closing.
    let http = match settings.server.head_timeout {
        Some(idle_limit) => Http::keeping_idle(idle_limit / 4),
        None => Http::new(),
    };
    let app = NodeApp::build(settings, central)
        .await
        .expect("node starts");
    TestNode { app, http }
}

impl<C: CentralStock> TestNode<C> {
    pub fn addr(&self) -> SocketAddr {
        self.app.addr()
    }

    pub fn url(&self, path_and_query: &str) -> String {
        format!("http://{}{}", self.addr(), path_and_query)
    }

    /// A URL on the node's admin surface (metrics, stats, sale).
    pub fn admin_url(&self, path_and_query: &str) -> String {
        format!("http://{}{}", self.app.admin_addr(), path_and_query)
    }

    pub fn node(&self) -> &Arc<Node<C>> {
        self.app.node()
    }

    pub fn central_calls(&self) -> u64 {
        self.node().stats().central_calls()
    }

    /// `user` buys a seat of the node's default event.
    pub async fn buy(&self, user: &str) -> Reply {
        self.get(&format!("/buy/ticket?user_id={user}")).await
    }

    /// A purchase with `Authorization: Bearer token` and `query`.
    pub async fn buy_with_token(&self, token: &str, query: &str) -> Reply {
        let url = self.url(&format!("/buy/ticket?{query}"));
        self.http.send_as(Method::GET, &url, Some(token)).await
    }

    /// The payment service confirms `order`'s payment.
    pub async fn pay(&self, order: &str) -> Reply {
        let url = self.url(&format!("/orders/{order}/pay"));
        self.http
            .send_as(Method::POST, &url, Some(OPERATOR_KEY))
            .await
    }

    /// The buyer holding `order_key` cancels `order`.
    pub async fn cancel(&self, order: &str, order_key: &str) -> Reply {
        let url = self.url(&format!("/orders/{order}/cancel?order_key={order_key}"));
        self.http.send(Method::POST, &url).await
    }

    /// GETs `path_and_query` from this node.
    pub async fn get(&self, path_and_query: &str) -> Reply {
        self.http.get(&self.url(path_and_query)).await
    }

    /// POSTs to `path_and_query` on this node.
    pub async fn post(&self, path_and_query: &str) -> Reply {
        self.http
            .send(Method::POST, &self.url(path_and_query))
            .await
    }

    /// DELETEs `path_and_query` on this node.
    pub async fn delete(&self, path_and_query: &str) -> Reply {
        self.http
            .send(Method::DELETE, &self.url(path_and_query))
            .await
    }

    pub async fn stop(self) -> Arc<Node<C>> {
        self.app.stop().await
    }
}

/// A Redis central stock connected with `settings`.
pub async fn redis_central_with(settings: RedisSettings) -> RedisCentral {
    RedisCentral::connect(&settings)
        .await
        .expect("connect to Redis")
}

/// A Redis central stock connected to `url`.
pub async fn redis_central(url: &str) -> RedisCentral {
    RedisCentral::connect(&RedisSettings::new(url))
        .await
        .expect("connect to Redis")
}

/// Creates `event` with `config` on `central`.
pub async fn create_sale<C: CentralStock>(central: &C, event: &EventId, config: SaleConfig) {
    central
        .create_sale(event, &config, false)
        .await
        .expect("create sale");
}

/// Buyers who prove who they are with a token, one purchase each: what a
/// waiting room needs.
pub const TOKEN_BUYERS: spike_core::BuyerPolicy = spike_core::BuyerPolicy::Identified {
    per_user_limit: std::num::NonZeroU32::MIN,
    auth: spike_core::sale::BuyerAuth::Token,
};

/// A token sale of `seats` behind the waiting room `room`, opening at
/// `opens_at` (`None`: open now).
pub fn token_sale_behind(
    seats: u64,
    room: spike_core::QueueConfig,
    opens_at: Option<std::time::SystemTime>,
) -> SaleConfig {
    SaleConfig::new(seats)
        .expect("seats")
        .with_policy(TOKEN_BUYERS)
        .opening_at(opens_at)
        .with_queue(Some(room))
        .expect("a token sale may have a waiting room")
}

/// An HTTP answer: status, JSON body, and the node header.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: StatusCode,
    pub body: Value,
    pub node: Option<String>,
}

impl Reply {
    /// The answer's code; a body without a known code fails the test.
    pub fn code(&self) -> Code {
        let number = self.body["code"].as_i64();
        number
            .and_then(Code::from_number)
            .unwrap_or_else(|| panic!("no answer code in {:?} ({})", self.body, self.status))
    }

    /// The answer's code, if the body has one (a proxy's own 502 has none).
    pub fn code_if_any(&self) -> Option<Code> {
        self.body["code"].as_i64().and_then(Code::from_number)
    }

    pub fn order(&self) -> Option<String> {
        self.body["data"]["order_id"].as_str().map(str::to_string)
    }
}

/// A keep-alive HTTP client for tests.
#[derive(Clone)]
pub struct Http {
    client: Client<HttpConnector, Empty<Bytes>>,
}

impl Http {
    pub fn new() -> Self {
        // Below the servers' default idle limit, so a closed connection is never reused.
        Self::keeping_idle(Duration::from_secs(10))
    }

    /// A client that drops pooled connections idle for longer than `idle`.
    pub fn keeping_idle(idle: Duration) -> Self {
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(512)
            .pool_idle_timeout(idle)
            .build_http();
        Self { client }
    }

    /// A client connecting from `address` (any of 127.0.0.0/8 is this
    /// machine: distinct clients on loopback).
    pub fn from_address(address: std::net::IpAddr) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_local_address(Some(address));
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(10))
            .build(connector);
        Self { client }
    }

    /// Sends a request with an empty body; returns status, headers and body.
    pub async fn exchange(
        &self,
        method: Method,
        url: &str,
    ) -> (StatusCode, hyper::HeaderMap, Bytes) {
        self.exchange_as(method, url, None).await
    }

    /// [`Http::exchange`] with `Authorization: Bearer token`.
    pub async fn exchange_as(
        &self,
        method: Method,
        url: &str,
        token: Option<&str>,
    ) -> (StatusCode, hyper::HeaderMap, Bytes) {
        let bearer = token.map(|token| format!("Bearer {token}"));
        let headers: Vec<(&str, &str)> = bearer
            .iter()
            .map(|b| ("authorization", b.as_str()))
            .collect();
        self.exchange_with(method, url, &headers).await
    }

    /// [`Http::exchange`] with these request headers.
    pub async fn exchange_with(
        &self,
        method: Method,
        url: &str,
        headers: &[(&str, &str)],
    ) -> (StatusCode, hyper::HeaderMap, Bytes) {
        let mut request = Request::builder().method(method).uri(url);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request.body(Empty::new()).expect("request");
        let response = tokio::time::timeout(Duration::from_secs(10), self.client.request(request))
            .await
            .expect("answer within 10 s")
            .expect("HTTP exchange");
        let (parts, body) = response.into_parts();
        let bytes = body.collect().await.expect("body").to_bytes();
        (parts.status, parts.headers, bytes)
    }

    pub async fn send(&self, method: Method, url: &str) -> Reply {
        self.send_as(method, url, None).await
    }

    /// [`Http::send`] with `Authorization: Bearer token`.
    pub async fn send_as(&self, method: Method, url: &str, token: Option<&str>) -> Reply {
        let (status, headers, bytes) = self.exchange_as(method, url, token).await;
        let node = headers
            .get("x-spike-node")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        // Null when the body is not JSON (hyper's own 431 has no body).
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Reply { status, body, node }
    }

    pub async fn get(&self, url: &str) -> Reply {
        self.send(Method::GET, url).await
    }

    /// A GET that may fail: `None` when no whole HTTP answer came within
    /// `limit` (refused, reset, timed out), for clients that retry.
    pub async fn try_get(&self, url: &str, limit: Duration) -> Option<Reply> {
        let request = Request::get(url).body(Empty::new()).ok()?;
        let exchange = async {
            let response = self.client.request(request).await.ok()?;
            let (parts, body) = response.into_parts();
            let bytes = body.collect().await.ok()?.to_bytes();
            Some((parts, bytes))
        };
        let (parts, bytes) = tokio::time::timeout(limit, exchange).await.ok()??;
        let node = (parts.headers.get("x-spike-node"))
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Some(Reply {
            status: parts.status,
            body,
            node,
        })
    }
}

/// Sends one GET per URL with at most `in_flight` outstanding; returns the
/// replies in the order of `urls`.
pub async fn get_all(http: &Http, urls: Vec<String>, in_flight: usize) -> Vec<Reply> {
    let requests = urls
        .into_iter()
        .map(|url| (Method::GET, url, None))
        .collect();
    send_all(http, requests, in_flight).await
}

/// Like [`get_all`], but a request the node shed under load (it answered
/// "try again in a second" and changed nothing) is sent again, as a buyer's
/// client would, until every request has an answer that is not a shed one.
/// Shedding is the node protecting itself on a loaded machine, not the
/// behaviour a spec that uses this is about.
pub async fn get_all_past_shedding(http: &Http, urls: Vec<String>, in_flight: usize) -> Vec<Reply> {
    let mut replies = get_all(http, urls.clone(), in_flight).await;
    for _ in 0..60 {
        let shed: Vec<usize> = (0..replies.len())
            .filter(|&i| was_shed(&replies[i]))
            .collect();
        if shed.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        let again = shed.iter().map(|&i| urls[i].clone()).collect();
        for (i, reply) in shed.into_iter().zip(get_all(http, again, in_flight).await) {
            replies[i] = reply;
        }
    }
    replies
}

/// Whether the node shed this request: load shedding answers "try again"
/// with one of the reasons that promise nothing changed.
pub fn was_shed(reply: &Reply) -> bool {
    use spike_http::RetryReason::{CentralBusy, Congested, Overloaded};
    reply.code_if_any() == Some(Code::TryAgain)
        && [CentralBusy, Congested, Overloaded]
            .iter()
            .any(|reason| reply.body["data"]["reason"] == reason.text())
}

/// Sends each request (method, URL, bearer) with at most `in_flight`
/// outstanding; returns the replies in their order.
pub async fn send_all(
    http: &Http,
    requests: Vec<(Method, String, Option<&'static str>)>,
    in_flight: usize,
) -> Vec<Reply> {
    let limit = Arc::new(tokio::sync::Semaphore::new(in_flight));
    let mut tasks = Vec::with_capacity(requests.len());
    for (method, url, bearer) in requests {
        let http = http.clone();
        let permit = Arc::clone(&limit).acquire_owned().await.expect("semaphore");
        tasks.push(tokio::spawn(async move {
            let reply = http.send_as(method, &url, bearer).await;
            drop(permit);
            reply
        }));
    }
    let mut replies = Vec::with_capacity(tasks.len());
    for task in tasks {
        replies.push(task.await.expect("request task"));
    }
    replies
}

/// Counts replies with `code`.
pub fn count(replies: &[Reply], code: Code) -> usize {
    replies.iter().filter(|r| r.code() == code).count()
}

/// Sends raw bytes as one HTTP/1.1 request and returns the status code, for
/// requests no well-behaved client would build (e.g. a 200 KiB URI).
pub async fn raw_status(addr: SocketAddr, request: &[u8]) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    // The server may answer and close before reading everything we send.
    let _ = stream.write_all(request).await;
    let mut head = vec![0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut head))
        .await
        .expect("answer within 5 s")
        .expect("read status line");
    let line = String::from_utf8_lossy(&head[..read]);
    line.split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0)
}

/// GETs a Prometheus exposition (checking its content type) as text.
pub async fn get_prometheus_text(url: &str) -> String {
    let (status, headers, bytes) = Http::new().exchange(Method::GET, url).await;
    assert_eq!(status, StatusCode::OK);
    let content_type = headers.get("content-type").and_then(|v| v.to_str().ok());
    assert_eq!(content_type, Some("text/plain; version=0.0.4"));
    String::from_utf8(bytes.to_vec()).expect("UTF-8")
}

/// The order pipeline (one writer lane and expiry every 50 ms) in this
/// process, reclaiming after 1 s.
pub fn start_pipeline<C: CentralStock + OrderStream + Clone>(
    central: &C,
    ledger: &OrderLedger,
    event: &EventId,
) -> Pipeline {
    let mut writer = WriterConfig::new(NodeId::parse(spike_testkit::unique("writer")).expect("id"));
    writer.events = vec![event.clone()];
    writer.claim_idle = Duration::from_secs(1);
    let config = PipelineConfig {
        writer,
        lanes: std::num::NonZeroUsize::MIN,
        expire_every: Some(Duration::from_millis(50)),
    };
    Pipeline::start(central.clone(), ledger.clone(), config).expect("pipeline")
}

/// Waits until every stream entry of `event` is written and acknowledged.
pub async fn drained<C: OrderStream>(central: &C, event: &EventId) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let backlog = central.backlog(event).await.expect("backlog");
        if backlog.entries == 0 && backlog.pending == 0 {
            return;
        }
        assert!(Instant::now() < deadline, "stream not drained: {backlog:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until no expired or cancelled order still owes its seat.
pub async fn seats_settled(ledger: &OrderLedger, event: &EventId) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while ledger.counts(event).await.expect("counts").seats_owed > 0 {
        assert!(Instant::now() < deadline, "seats still owed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Runs `spike demo` with `args` (plus `--json --no-progress`), checks
/// that it succeeded, and returns its JSON report.
pub fn demo_report(args: &[&str]) -> serde_json::Value {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_spike"))
        .arg("demo")
        .args(args)
        .args(["--json", "--no-progress"])
        .output()
        .expect("run spike demo");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("a JSON report")
}

/// Runs the `spike` binary with `args`: whether it succeeded, and what it
/// printed (stdout, then stderr).
pub fn spike(args: &[&str]) -> (bool, String) {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_spike"))
        .args(args)
        .output()
        .expect("run spike");
    let said = String::from_utf8_lossy(&output.stdout).to_string()
        + &String::from_utf8_lossy(&output.stderr);
    (output.status.success(), said)
}

/// A child process killed (and reaped) on drop.
pub struct Running(pub std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits (up to 10 s) until something listens on `port` on loopback.
pub async fn wait_for(port: u16) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "port {port} never opened"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
