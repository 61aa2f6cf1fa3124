//! The embedded front door (`spike front`): an HTTP/1.1 proxy doing smooth
//! weighted round robin over keep-alive connection pools to the nodes, with
//! passive health checks. Like the nginx configuration, it retries a request
//! on the next live node when a node refuses the connection (any request),
//! or fails mid-request (a read only: never a purchase, which the failing
//! node may have sold before its answer was lost). At most
//! `max_in_flight_per_upstream` requests wait on one node: a slow node's
//! share goes to the others, and when every node is full the front door
//! answers 503 with `Retry-After` at once (overload shedding). Each node's
//! bound adapts to how long it takes to answer (see
//! [`spike_http::in_flight`]), and while the front door's own loop has a
//! standing lag (see [`spike_http::lag`]) it answers 503 at once instead of
//! forwarding late.

use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{CONNECTION, HOST};
use hyper::{Method, Request, Response, StatusCode, Uri};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use spike_http::backlog::DEFAULT_LOOP_DISCIPLINE;
use spike_http::{
    declares_body_over, forwarded_for, is_admin_path, serve, Answer, Handler, InFlightGate,
    LoopLag, RetryReason, Server, ServerOptions, PURCHASE_PATH, X_FORWARDED_FOR,
};
use tokio::net::TcpListener;

use crate::upstream::Upstream;
use crate::weighted::Balancer;

/// How the embedded front door behaves.
#[derive(Debug, Clone)]
pub struct FrontConfig {
    /// The nodes and their weights.
    pub upstreams: Vec<Upstream>,
    /// How long a node that refused a connection is skipped.
    pub retry_after: Duration,
    /// Longest wait for a node's answer.
    pub upstream_timeout: Duration,
    /// Tries per request (first node plus fail-overs).
    pub tries: usize,
    /// Requests that may wait on one node at once; a full node is passed
    /// over, and when all are full the request is shed (503, `Retry-After`).
    pub max_in_flight_per_upstream: NonZeroUsize,
    /// How the front door treats its own clients' connections.
    pub server: ServerOptions,
}

impl FrontConfig {
    /// Defaults like the nginx configuration's: skip a failed node for 2 s,
    /// 5 s answer timeout, 3 tries.
    pub fn new(upstreams: Vec<Upstream>) -> Self {
        Self {
            upstreams,
            retry_after: Duration::from_secs(2),
            upstream_timeout: Duration::from_secs(5),
            tries: 3,
            max_in_flight_per_upstream: DEFAULT_MAX_IN_FLIGHT_PER_UPSTREAM,
            server: ServerOptions::default(),
        }
    }
}

/// Requests that may wait on one node at once, by default: a node's own
/// bound on purchases waiting on central stock
/// (`spike_node::node::DEFAULT_MAX_CENTRAL_IN_FLIGHT`), so that the front
/// door never queues more on a node than the node would accept.
pub const DEFAULT_MAX_IN_FLIGHT_PER_UPSTREAM: NonZeroUsize = NonZeroUsize::new(1024).unwrap();

struct Front {
    config: FrontConfig,
    gates: Vec<Arc<InFlightGate>>,
    balancer: Balancer,
    client: Client<HttpConnector, Full<Bytes>>,
    authorities: Vec<hyper::http::uri::Authority>,
    metrics: Vec<UpstreamMetrics>,
    retries: metrics::Counter,
    /// The front door's own loop's lag: requests are shed while it is congested.
    lag: Arc<LoopLag>,
}

/// Per-upstream counters, created once.
struct UpstreamMetrics {
    answered: metrics::Counter,
    refused: metrics::Counter,
    failed: metrics::Counter,
}

impl UpstreamMetrics {
    fn new(upstream: &Upstream) -> Self {
        let outcome = |outcome: &'static str| metrics::counter!("spike_front_requests_total", "upstream" => upstream.address.clone(), "outcome" => outcome);
        Self {
            answered: outcome("answered"),
            refused: outcome("refused"),
            failed: outcome("failed"),
        }
    }
}

/// Why the front door could not start.
#[derive(Debug, thiserror::Error)]
pub enum FrontError {
    /// No upstream given.
    #[error("the front door needs at least one upstream")]
    NoUpstreams,
    /// An upstream address is not usable in a URI.
    #[error("upstream {0} is not a valid URI authority")]
    BadAuthority(String),
}

/// Serves the front door on `listener` until [`Server::shutdown`].
pub fn serve_front(listener: TcpListener, config: FrontConfig) -> Result<Server, FrontError> {
    if config.upstreams.is_empty() {
        return Err(FrontError::NoUpstreams);
    }
    let authorities = config
        .upstreams
        .iter()
        .map(|u| {
            u.address
                .parse()
                .map_err(|_| FrontError::BadAuthority(u.address.clone()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(Duration::from_secs(1)));
    let client = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(1024)
        // Below the nodes' idle limit (30 s by default): never reuse a connection a node closes.
        .pool_idle_timeout(Duration::from_secs(20))
        .build(connector);
    let _ = spike_telemetry::prometheus();
    let front = Arc::new(Front {
        metrics: config.upstreams.iter().map(UpstreamMetrics::new).collect(),
        retries: metrics::counter!("spike_front_retries_total"),
        balancer: Balancer::new(&config.upstreams),
        gates: (config.upstreams.iter())
            .map(|_| InFlightGate::new(config.max_in_flight_per_upstream))
            .collect(),
        config,
        client,
        authorities,
        lag: LoopLag::start(DEFAULT_LOOP_DISCIPLINE),
    });
    let options = front.config.server.clone();
    Ok(serve(listener, front, options))
}

impl Handler for Front {
    async fn handle(&self, request: Request<Incoming>, peer: SocketAddr) -> Response<Full<Bytes>> {
        self.forward(request, peer).await
    }
}

impl Front {
    /// Sends `request`, from `peer`, to a node. The front door is an edge:
    /// the node is told the client is `peer` (`X-Forwarded-For`, replacing
    /// whatever the client wrote).
    async fn forward(&self, request: Request<Incoming>, peer: SocketAddr) -> Response<Full<Bytes>> {
        let path = request.uri().path();
        if is_admin_path(path) {
            // The operators' surface is never forwarded to the world (nodes
            // serve it on their admin listener only, the front door its own
            // metrics on its own).
            return Answer::no_such_path(path, "/buy/ticket, /buy/result, /orders/…")
                .into_response();
        }
        if self.lag.congested() {
            return Answer::TryAgain {
                reason: RetryReason::Congested,
                request: None,
                request_key: None,
            }
            .into_response();
        }
        let (parts, body) = request.into_parts();
        let limit = self.config.server.max_body_bytes;
        let too_large = || {
            Answer::refused(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("request body over {limit} bytes"),
            )
            .into_response()
        };
        if declares_body_over(&parts.headers, limit) {
            return too_large();
        }
        let reading = Limited::new(body, limit).collect();
        let body = match tokio::time::timeout(self.config.server.body_timeout, reading).await {
            Ok(Ok(collected)) => collected.to_bytes(),
            Ok(Err(_)) => return too_large(),
            Err(_) => {
                return Answer::refused(StatusCode::REQUEST_TIMEOUT, "request body too slow")
                    .into_response()
            }
        };
        let path = parts
            .uri
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| hyper::http::uri::PathAndQuery::from_static("/"));
        // Once sent, only a read goes to another node: a purchase may have
        // sold on the node that failed to answer.
        let retry_when_sent = parts.method == Method::GET && path.path() != PURCHASE_PATH;
        let mut tried = Vec::with_capacity(self.config.tries);
        let mut full = 0;
        while tried.len() - full < self.config.tries {
            let Some(index) = self.balancer.pick(&tried) else {
                break;
            };
            tried.push(index);
            // Nothing was sent to a full node: passing it over is not a retry.
            let Some(_in_flight) = self.gates[index].enter() else {
                full += 1;
                continue;
            };
            if tried.len() - full > 1 {
                self.retries.increment(1);
            }
            let counters = &self.metrics[index];
            let uri = Uri::builder()
                .scheme("http")
                .authority(self.authorities[index].clone())
                .path_and_query(path.clone())
                .build();
            let Ok(uri) = uri else {
                return Answer::bad_request("bad request URI").into_response();
            };
            let mut upstream = Request::new(Full::new(body.clone()));
            *upstream.method_mut() = parts.method.clone();
            *upstream.uri_mut() = uri;
            *upstream.headers_mut() = parts.headers.clone();
            upstream.headers_mut().remove(CONNECTION);
            upstream.headers_mut().remove(HOST);
            (upstream.headers_mut()).insert(X_FORWARDED_FOR, forwarded_for(peer));
            let asked = std::time::Instant::now();
            let sent =
                tokio::time::timeout(self.config.upstream_timeout, self.client.request(upstream));
            match sent.await {
                Ok(Ok(response)) => {
                    let (head, body) = response.into_parts();
                    match body.collect().await {
                        Ok(collected) => {
                            self.gates[index].observe(asked.elapsed());
                            counters.answered.increment(1);
                            return Response::from_parts(head, Full::new(collected.to_bytes()));
                        }
                        Err(error) => {
                            counters.failed.increment(1);
                            tracing::debug!(%error, upstream = index, "upstream broke mid-answer");
                            if !retry_when_sent {
                                break;
                            }
                        }
                    }
                }
                Ok(Err(error)) if error.is_connect() => {
                    counters.refused.increment(1);
                    tracing::warn!(upstream = %self.config.upstreams[index].address, "node refused the connection; skipping it");
                    self.balancer.mark_down(index, self.config.retry_after);
                }
                Ok(Err(error)) => {
                    counters.failed.increment(1);
                    tracing::debug!(%error, upstream = index, "upstream failed mid-request");
                    self.balancer.mark_down(index, self.config.retry_after);
                    if !retry_when_sent {
                        break;
                    }
                }
                Err(_) => {
                    counters.failed.increment(1);
                    if !retry_when_sent {
                        break;
                    }
                }
            }
        }
        let reason = if full > 0 && full == tried.len() {
            RetryReason::NodesBusy
        } else {
            RetryReason::NoNodeAnswered
        };
        Answer::TryAgain {
            reason,
            request: None,
            request_key: None,
        }
        .into_response()
    }
}
