//! The dashboard's poller and HTTP server.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::watch;
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
}

impl DashboardConfig {
    /// Polls `nodes` twice a second.
    pub fn new(nodes: Vec<String>) -> Self {
        Self {
            nodes,
            event: None,
            interval: Duration::from_millis(500),
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
}

/// A running dashboard.
#[derive(Debug)]
pub struct RunningDashboard {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl RunningDashboard {
    /// Where it listens; the page is at `http://ADDR/dashboard`.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops polling and serving.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

/// Starts polling the nodes and serving the page on `listener`.
pub fn serve_dashboard(listener: TcpListener, config: DashboardConfig) -> RunningDashboard {
    let addr = listener
        .local_addr()
        .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
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
    }));
    let (stop, stopped) = watch::channel(false);
    let poller = tokio::spawn(poll(Arc::clone(&state), config, stopped.clone()));
    let server = tokio::spawn(accept(listener, state, stopped));
    RunningDashboard {
        addr,
        stop,
        tasks: vec![poller, server],
    }
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

async fn poll(
    state: Arc<Mutex<State>>,
    config: DashboardConfig,
    mut stopped: watch::Receiver<bool>,
) {
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let mut ticker = tokio::time::interval(config.interval);
    let sale_query = config
        .event
        .as_ref()
        .map_or(String::new(), |event| format!("?event={event}"));
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = stopped.changed() => return,
        }
        let mut sale = Value::Null;
        for (index, address) in config.nodes.iter().enumerate() {
            let stats = get_json(&client, format!("http://{address}/stats")).await;
            if sale.is_null() && stats.is_some() {
                sale = get_json(&client, format!("http://{address}/sale{sale_query}"))
                    .await
                    .unwrap_or(Value::Null);
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
        if !sale.is_null() {
            state.lock().unwrap_or_else(|p| p.into_inner()).sale = sale;
        }
    }
}

fn data(state: &State) -> Value {
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
    json!({
        "elapsed": state.started.elapsed().as_secs_f64(),
        "sale": state.sale,
        "nodes": nodes,
    })
}

async fn accept(
    listener: TcpListener,
    state: Arc<Mutex<State>>,
    mut stopped: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stopped.changed() => return,
        };
        let Ok((stream, _)) = accepted else { continue };
        let state = Arc::clone(&state);
        tokio::spawn(async move {
            let service = service_fn(move |request: Request<hyper::body::Incoming>| {
                let state = Arc::clone(&state);
                async move { Ok::<_, Infallible>(respond(request.uri().path(), &state)) }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn respond(path: &str, state: &Mutex<State>) -> Response<Full<Bytes>> {
    let (status, content_type, body) = match path {
        "/" | "/dashboard" | "/dashboard/" => (
            StatusCode::OK,
            "text/html; charset=utf-8",
            Bytes::from_static(PAGE.as_bytes()),
        ),
        "/dashboard/data" => {
            let state = state.lock().unwrap_or_else(|p| p.into_inner());
            (
                StatusCode::OK,
                "application/json",
                Bytes::from(data(&state).to_string()),
            )
        }
        _ => (
            StatusCode::NOT_FOUND,
            "application/json",
            Bytes::from_static(br#"{"code":-4,"msg":"see /dashboard"}"#),
        ),
    };
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
        .headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
