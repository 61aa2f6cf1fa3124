//! The one accept loop every Spike server runs: HTTP/1.1 with keep-alive,
//! a bounded request head, a back-off when `accept` fails (out of file
//! descriptors), and a graceful shutdown that drains open connections for a
//! grace period and then closes the rest.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// What a server does with one request.
pub trait Handler: Send + Sync + 'static {
    /// Answers one request.
    fn handle(
        &self,
        request: Request<Incoming>,
    ) -> impl Future<Output = Response<Full<Bytes>>> + Send;
}

impl<F, Fut> Handler for F
where
    F: Fn(Request<Incoming>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Response<Full<Bytes>>> + Send,
{
    fn handle(
        &self,
        request: Request<Incoming>,
    ) -> impl Future<Output = Response<Full<Bytes>>> + Send {
        self(request)
    }
}

/// How a server treats its connections.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerOptions {
    /// Longest wait for open connections to finish when shutting down.
    pub grace: Duration,
    /// Largest request head read; hyper answers 431 past it.
    pub max_head_bytes: usize,
}

impl Default for ServerOptions {
    /// A 5 s grace period and 64 KiB heads.
    fn default() -> Self {
        Self {
            grace: Duration::from_secs(5),
            max_head_bytes: 64 * 1024,
        }
    }
}

impl ServerOptions {
    /// The defaults with another grace period.
    pub fn with_grace(grace: Duration) -> Self {
        Self {
            grace,
            ..Self::default()
        }
    }
}

/// Wait after a failed `accept` (usually: out of file descriptors), so that
/// the loop does not spin while connections close.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// A running server. Dropping it leaves it running; [`Server::shutdown`] stops it.
#[derive(Debug)]
pub struct Server {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Server {
    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, lets open connections finish their requests for up
    /// to the grace period, then closes whatever is left.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// Serves `handler` on `listener` until [`Server::shutdown`].
pub fn serve<H: Handler>(listener: TcpListener, handler: Arc<H>, options: ServerOptions) -> Server {
    let addr = listener
        .local_addr()
        .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
    let (stop, mut stopped) = watch::channel(false);
    let task = tokio::spawn(async move {
        let graceful = GracefulShutdown::new();
        let mut http = http1::Builder::new();
        http.keep_alive(true).max_buf_size(options.max_head_bytes);
        loop {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                _ = stopped.changed() => break,
            };
            let stream = match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    tracing::warn!(%error, %addr, "accept failed; backing off");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            let handler = Arc::clone(&handler);
            let service = service_fn(move |request| {
                let handler = Arc::clone(&handler);
                async move { Ok::<_, Infallible>(handler.handle(request).await) }
            });
            let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
            tokio::spawn(async move {
                let _ = connection.await;
            });
        }
        drop(listener);
        if tokio::time::timeout(options.grace, graceful.shutdown())
            .await
            .is_err()
        {
            tracing::warn!(%addr, "connections still open after {:?}; closing anyway", options.grace);
        }
    });
    Server { addr, stop, task }
}
