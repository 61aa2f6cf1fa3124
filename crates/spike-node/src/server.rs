//! The HTTP/1.1 server around a [`Node`]: accepts connections, turns each
//! request into an [`Answer`], and shuts down gracefully (drain connections,
//! then flush the stat log).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, ALLOW, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use spike_core::CentralStock;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::answer::Answer;
use crate::node::Node;

/// Header naming the node that answered.
pub const NODE_HEADER: &str = "x-spike-node";

/// A running server; dropping it does not stop it, [`RunningServer::shutdown`] does.
#[derive(Debug)]
pub struct RunningServer {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl RunningServer {
    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, waits up to `grace` for open connections to finish,
    /// then closes the node (flushing its stat log).
    pub async fn shutdown(self, grace: Duration) {
        let _ = self.stop.send(true);
        let _ = tokio::time::timeout(grace + Duration::from_secs(1), self.task).await;
    }
}

/// Serves `node` on `listener` until shut down.
pub fn serve<C: CentralStock>(
    listener: TcpListener,
    node: Arc<Node<C>>,
    grace: Duration,
) -> RunningServer {
    let addr = listener
        .local_addr()
        .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
    let (stop, mut stopped) = watch::channel(false);
    let node_header = HeaderValue::from_str(node.id().as_str())
        .unwrap_or_else(|_| HeaderValue::from_static("node"));
    let task = tokio::spawn(async move {
        let graceful = GracefulShutdown::new();
        let mut http = http1::Builder::new();
        // Heads up to 64 KiB reach the node (an over-long query gets a JSON 414);
        // hyper answers 431 on its own for anything larger.
        http.keep_alive(true).max_buf_size(64 * 1024);
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    let (stream, _) = match accepted {
                        Ok(conn) => conn,
                        Err(error) => {
                            tracing::warn!(%error, "accept failed");
                            tokio::time::sleep(Duration::from_millis(10)).await;
                            continue;
                        }
                    };
                    let _ = stream.set_nodelay(true);
                    let node = Arc::clone(&node);
                    let header = node_header.clone();
                    let service = service_fn(move |request| {
                        let node = Arc::clone(&node);
                        let header = header.clone();
                        async move { Ok::<_, Infallible>(respond(&node, request, header).await) }
                    });
                    let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
                    tokio::spawn(async move {
                        let _ = connection.await;
                    });
                }
                _ = stopped.changed() => break,
            }
        }
        drop(listener);
        if tokio::time::timeout(grace, graceful.shutdown())
            .await
            .is_err()
        {
            tracing::warn!("connections still open after {grace:?}; closing anyway");
        }
        node.close();
    });
    RunningServer { addr, stop, task }
}

async fn respond<C: CentralStock>(
    node: &Node<C>,
    request: Request<Incoming>,
    node_header: HeaderValue,
) -> Response<Full<Bytes>> {
    let uri = request.uri();
    let answer = node.answer(request.method(), uri.path(), uri.query()).await;
    to_response(&answer, node_header)
}

/// Renders an answer as an HTTP response.
pub fn to_response(answer: &Answer, node_header: HeaderValue) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(answer.body()));
    *response.status_mut() = answer.status();
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static(answer.content_type()),
    );
    headers.insert(NODE_HEADER, node_header);
    if answer.status() == StatusCode::METHOD_NOT_ALLOWED {
        headers.insert(ALLOW, HeaderValue::from_static("GET, POST"));
    }
    response
}
