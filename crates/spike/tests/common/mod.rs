//! Shared helpers for the integration tests: start real nodes on random
//! ports (in this process, or as the `spike` binary), and drive them with a
//! keep-alive HTTP client.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use spike_core::{CentralStock, EventId, NodeId, SaleConfig};
use spike_node::{serve, Node, NodeConfig, RunningServer, StatLog};
use spike_redis::{RedisCentral, RedisSettings};
use tokio::net::TcpListener;

/// A node running in this process on a random loopback port.
pub struct TestNode<C: CentralStock> {
    pub node: Arc<Node<C>>,
    pub server: RunningServer,
}

impl<C: CentralStock> TestNode<C> {
    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    pub fn url(&self, path_and_query: &str) -> String {
        format!("http://{}{}", self.addr(), path_and_query)
    }

    pub fn central_calls(&self) -> u64 {
        self.node
            .stats()
            .central_calls
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    pub async fn stop(self) -> Arc<Node<C>> {
        self.server.shutdown(Duration::from_secs(2)).await;
        self.node
    }
}

/// Starts a node named `name` on `central`, serving `events`.
pub async fn start_node<C: CentralStock>(
    central: C,
    name: &str,
    events: Vec<EventId>,
    stat_log: Option<StatLog>,
    refresh: Duration,
) -> TestNode<C> {
    let mut config = NodeConfig::new(NodeId::parse(name).unwrap(), events);
    config.refresh_interval = refresh;
    let node = Node::start(config, central, stat_log)
        .await
        .expect("node starts");
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = serve(listener, Arc::clone(&node), Duration::from_secs(2));
    TestNode { node, server }
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

/// An HTTP answer: status, JSON body, and the node header.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: StatusCode,
    pub body: Value,
    pub node: Option<String>,
}

impl Reply {
    pub fn code(&self) -> i64 {
        self.body["code"].as_i64().unwrap_or(i64::MIN)
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
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(512)
            .build_http();
        Self { client }
    }

    /// Sends a request with an empty body; returns status, headers and body.
    pub async fn exchange(
        &self,
        method: Method,
        url: &str,
    ) -> (StatusCode, hyper::HeaderMap, Bytes) {
        let request = Request::builder()
            .method(method)
            .uri(url)
            .body(Empty::new())
            .expect("request");
        let response = tokio::time::timeout(Duration::from_secs(10), self.client.request(request))
            .await
            .expect("answer within 10 s")
            .expect("HTTP exchange");
        let (parts, body) = response.into_parts();
        let bytes = body.collect().await.expect("body").to_bytes();
        (parts.status, parts.headers, bytes)
    }

    pub async fn send(&self, method: Method, url: &str) -> Reply {
        let (status, headers, bytes) = self.exchange(method, url).await;
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
}

/// Sends one GET per URL with at most `in_flight` outstanding; returns the
/// replies in the order of `urls`.
pub async fn get_all(http: &Http, urls: Vec<String>, in_flight: usize) -> Vec<Reply> {
    let limit = Arc::new(tokio::sync::Semaphore::new(in_flight));
    let mut tasks = Vec::with_capacity(urls.len());
    for url in urls {
        let http = http.clone();
        let permit = Arc::clone(&limit).acquire_owned().await.expect("semaphore");
        tasks.push(tokio::spawn(async move {
            let reply = http.get(&url).await;
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
pub fn count(replies: &[Reply], code: i64) -> usize {
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
