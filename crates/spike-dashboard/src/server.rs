//! The dashboard's poller and HTTP server (which, like every Spike server,
//! sheds requests at once while its own loop has a standing lag).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CACHE_CONTROL};
use hyper::{Method, Request, Response};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};
use spike_core::train::GridLog;
use spike_core::Code;
use spike_http::backlog::DEFAULT_LOOP_DISCIPLINE;
use spike_http::grid::{grid_delta_json, parse_grid_delta};
use spike_http::{serve, Answer, Handler, LoopLag, RetryReason, Server, ServerOptions};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::history::{NodeHistory, Sample};

/// The page, embedded in the binary.
const PAGE: &str = include_str!("../assets/dashboard.html");

/// What the dashboard watches.
#[derive(Debug, Clone)]
pub struct DashboardConfig {
    /// Nodes to poll, as `host:port`.
    pub nodes: Vec<String>,
    /// The event whose progress is shown (default: the nodes' default event).
    pub event: Option<String>,
    /// How often nodes are polled.
    pub interval: Duration,
    /// How the dashboard treats its clients' connections.
    pub server: ServerOptions,
}

impl DashboardConfig {
    /// Polls `nodes` twice a second.
    pub fn new(nodes: Vec<String>) -> Self {
        Self {
            nodes,
            event: None,
            interval: Duration::from_millis(500),
            server: ServerOptions::with_grace(Duration::from_secs(1)),
        }
    }
}

struct Watched {
    address: String,
    name: Option<String>,
    up: bool,
    history: NodeHistory,
}

struct State {
    started: Instant,
    nodes: Vec<Watched>,
    sale: Value,
    /// A train run's grid legend, the freshest any node holds (`Null` for
    /// other sales).
    train: Value,
    /// The grid's masks, kept by the changes the followed node sends, and
    /// handed to the page by changes too.
    grid: GridLog,
    /// The node the grid follows, and its grid version this one holds.
    followed: Option<(String, u64)>,
}

/// A running dashboard: its server and its poller.
#[derive(Debug)]
pub struct RunningDashboard {
    server: Server,
    poller: JoinHandle<()>,
}

impl RunningDashboard {
    /// Where it listens; the page is at `http://ADDR/dashboard`.
    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// Stops polling and serving.
    pub async fn shutdown(self) {
        self.poller.abort();
        self.server.shutdown().await;
    }
}

/// Starts polling the nodes and serving the page on `listener`.
pub fn serve_dashboard(listener: TcpListener, config: DashboardConfig) -> RunningDashboard {
    let state = Arc::new(Mutex::new(State {
        started: Instant::now(),
        nodes: config
            .nodes
            .iter()
            .map(|address| Watched {
                address: address.clone(),
                name: None,
                up: false,
                history: NodeHistory::default(),
            })
            .collect(),
        sale: Value::Null,
        train: Value::Null,
        grid: GridLog::default(),
        followed: None,
    }));
    let options = config.server.clone();
    let poller = tokio::spawn(poll(Arc::clone(&state), config));
    let server = serve(
        listener,
        Arc::new(Pages {
            state,
            lag: LoopLag::start(DEFAULT_LOOP_DISCIPLINE),
        }),
        options,
    );
    RunningDashboard { server, poller }
}

async fn get_json(client: &Client<HttpConnector, Empty<Bytes>>, url: String) -> Option<Value> {
    let uri = url.parse().ok()?;
    let response = tokio::time::timeout(Duration::from_millis(400), client.get(uri))
        .await
        .ok()?
        .ok()?;
    if !response.status().is_success() {
        return None;
    }
    let body = response.into_body().collect().await.ok()?.to_bytes();
    serde_json::from_slice(&body).ok()
}

async fn poll(state: Arc<Mutex<State>>, config: DashboardConfig) {
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let mut ticker = tokio::time::interval(config.interval);
    let sale_query = config
        .event
        .as_ref()
        .map_or(String::new(), |event| format!("?event={event}"));
    loop {
        ticker.tick().await;
        let mut sale = Value::Null;
        let mut train = Value::Null;
        let mut freshest: Option<&str> = None;
        for (index, address) in config.nodes.iter().enumerate() {
            let stats = get_json(&client, format!("http://{address}/stats")).await;
            if sale.is_null() && stats.is_some() {
                sale = get_json(&client, format!("http://{address}/sale{sale_query}"))
                    .await
                    .unwrap_or(Value::Null);
            }
            if let Some(grid) = stats.as_ref().and_then(|s| train_grid(s, &sale["event"])) {
                if grid["as_of_order"].as_u64() >= train["as_of_order"].as_u64() {
                    train = grid.clone();
                    freshest = Some(address);
                }
            }
            let mut state = state.lock().unwrap_or_else(|p| p.into_inner());
            let at = state.started.elapsed().as_secs_f64();
            let Some(watched) = state.nodes.get_mut(index) else {
                continue;
            };
            watched.up = stats.is_some();
            if let Some(stats) = stats {
                watched.name = stats["node"].as_str().map(str::to_string);
                if let Some(sample) = Sample::from_stats(at, &stats) {
                    watched.history.push(sample);
                }
            }
        }
        let delta = match (freshest, sale["event"].as_str()) {
            (Some(address), Some(event)) => {
                let since = {
                    let state = state.lock().unwrap_or_else(|p| p.into_inner());
                    match &state.followed {
                        Some((followed, version)) if followed == address => *version,
                        _ => 0,
                    }
                };
                let url = format!("http://{address}/stats/grid?event={event}&since={since}");
                let answer = get_json(&client, url).await;
                (answer.as_ref().and_then(parse_grid_delta))
                    .map(|(version, delta)| (address.to_owned(), version, delta))
            }
            _ => None,
        };
        if !sale.is_null() {
            let mut state = state.lock().unwrap_or_else(|p| p.into_inner());
            state.sale = sale;
            state.train = train;
            if let Some((address, version, delta)) = delta {
                state.grid.apply(delta);
                state.followed = Some((address, version));
            }
        }
    }
}

/// The seat × segment grid a node's `/stats` holds for `event`, if it is
/// a train run.
fn train_grid<'a>(stats: &'a Value, event: &Value) -> Option<&'a Value> {
    let events = stats["events"].as_array()?;
    let entry = events.iter().find(|e| &e["event"] == event)?;
    Some(&entry["train"]).filter(|grid| grid.is_object())
}

/// The page's data; the grid as what changed since `grid_since`, the
/// version the page holds.
fn data(state: &State, grid_since: u64) -> Value {
    let nodes: Vec<Value> = state
        .nodes
        .iter()
        .map(|watched| {
            json!({
                "address": watched.address,
                "node": watched.name.clone().unwrap_or_else(|| watched.address.clone()),
                "up": watched.up,
                "answers": watched
                    .history
                    .answers
                    .iter()
                    .map(|(code, n)| (code.clone(), Value::from(*n)))
                    .collect::<serde_json::Map<_, _>>(),
                "points": watched.history.points,
            })
        })
        .collect();
    let codes: Vec<Value> = Code::BUY
        .iter()
        .map(|code| json!({ "code": code.number_text(), "label": code.label() }))
        .collect();
    json!({
        "elapsed": state.started.elapsed().as_secs_f64(),
        "sale": state.sale,
        "train": state.train,
        "grid": grid_delta_json(state.grid.version(), state.grid.since(grid_since)),
        "nodes": nodes,
        "codes": codes,
    })
}

/// The dashboard's pages: the page itself and its data.
struct Pages {
    state: Arc<Mutex<State>>,
    /// The dashboard's own loop's lag: requests are shed while it is
    /// congested (see [`spike_http::lag`]).
    lag: Arc<LoopLag>,
}

impl Handler for Pages {
    async fn handle(&self, request: Request<Incoming>, _peer: SocketAddr) -> Response<Full<Bytes>> {
        let path = request.uri().path();
        let known = matches!(path, "/" | "/dashboard" | "/dashboard/" | "/dashboard/data");
        let answer = match path {
            _ if self.lag.congested() => Answer::TryAgain {
                reason: RetryReason::Congested,
                request: None,
                request_key: None,
            },
            _ if known && request.method() != Method::GET => {
                Answer::MethodNotAllowed { allowed: "GET" }
            }
            "/" | "/dashboard" | "/dashboard/" => Answer::Page(PAGE),
            "/dashboard/data" => {
                let since = (request.uri().query().unwrap_or_default().split('&'))
                    .find_map(|pair| pair.strip_prefix("grid_since="))
                    .and_then(|version| version.parse().ok())
                    .unwrap_or(0);
                let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
                Answer::Info(data(&state, since))
            }
            path => Answer::no_such_path(path, "/dashboard"),
        };
        let mut response = answer.into_response();
        response
            .headers_mut()
            .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        response
    }
}
