//! The one accept loop every Spike server runs: HTTP/1.1 with keep-alive,
//! hardened against slow and greedy clients — a bounded request head, a
//! deadline for it (also the idle limit of a keep-alive connection waiting
//! for its next request), idle connections parked without buffers (see
//! the `connection` module), a cap on open connections (past it a new
//! connection gets a 503 and is closed), a back-off when `accept` fails —
//! and a graceful shutdown that drains open connections for a grace period
//! and then closes the rest. Body limits are the handlers'
//! ([`ServerOptions::max_body_bytes`], [`ServerOptions::body_timeout`]).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper_util::rt::TokioTimer;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::task::JoinHandle;

use crate::answer::{Answer, RetryReason};
use crate::connection::{spawn_client, ConnectionCounts, Connections, Limits, Phase};
use crate::handler::Handler;
use crate::memory::{give_back_freed_memory, TRIM_AFTER_HAND_BACKS};

/// How a server treats its connections.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerOptions {
    /// Longest wait for open connections to finish when shutting down.
    pub grace: Duration,
    /// Largest request head read; hyper answers 431 past it.
    pub max_head_bytes: usize,
    /// Longest wait for a whole request head, counted from when the
    /// connection starts waiting for it (its last answer, or its accept):
    /// cuts off a client sending its head byte by byte, and closes a
    /// keep-alive connection idle this long.
    /// `None` only for the benchmark baseline.
    pub head_timeout: Option<Duration>,
    /// Idle time after which a keep-alive connection is taken back from
    /// hyper and parked: its buffers freed, its socket watched for the next
    /// request (so 10,000 idle connections cost little memory). `None`
    /// only for the benchmark baseline.
    pub park_after: Option<Duration>,
    /// Most connections open at once; past it, a new connection is answered
    /// 503 and closed at once. `None` only for the benchmark baseline.
    pub max_connections: Option<usize>,
    /// Largest request body a handler reads (413 past it, or at once when
    /// the declared length is larger).
    pub max_body_bytes: usize,
    /// Longest wait for a request body (408 past it).
    pub body_timeout: Duration,
}

/// Default [`ServerOptions::head_timeout`]: generous for a phone on a bad
/// network, and longer than the idle timeout the nginx configuration keeps
/// upstream connections for (so nginx never reuses one a node is closing).
pub const DEFAULT_HEAD_TIMEOUT: Duration = Duration::from_secs(30);

/// Default [`ServerOptions::park_after`]: far longer than the gap between a
/// busy connection's requests (a client's next click, nginx's upstream pool
/// under load), short enough that a crowd's connections, once idle, do not
/// hold their buffers together (measured in BENCHMARKS.md).
pub const DEFAULT_PARK_AFTER: Duration = Duration::from_millis(250);

/// Default [`ServerOptions::max_connections`].
pub const DEFAULT_MAX_CONNECTIONS: usize = 16_384;

/// Default [`ServerOptions::body_timeout`].
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(10);

/// Default [`ServerOptions::max_body_bytes`]: no route of Spike takes more.
pub const DEFAULT_MAX_BODY_BYTES: usize = 64 * 1024;

impl Default for ServerOptions {
    /// A 5 s grace period, 64 KiB heads and bodies, and the defaults above.
    fn default() -> Self {
        Self {
            grace: Duration::from_secs(5),
            max_head_bytes: 64 * 1024,
            head_timeout: Some(DEFAULT_HEAD_TIMEOUT),
            park_after: Some(DEFAULT_PARK_AFTER),
            max_connections: Some(DEFAULT_MAX_CONNECTIONS),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            body_timeout: DEFAULT_BODY_TIMEOUT,
        }
    }
}

impl ServerOptions {
    /// No head timer, no parking and no connection cap: the benchmark
    /// baseline, a bare hyper server that carries none of Spike's own costs.
    pub fn bare() -> Self {
        Self {
            head_timeout: None,
            park_after: None,
            max_connections: None,
            ..Self::default()
        }
    }

    /// The defaults with another grace period.
    pub fn with_grace(grace: Duration) -> Self {
        Self {
            grace,
            ..Self::default()
        }
    }
}

/// The listen backlog every Spike server asks for: connections the kernel
/// has completed and the server not yet accepted. tokio's own default is
/// 1,024; a crowd opening 4,000 connections in the same second overflows
/// it, and the kernel then drops the clients' handshakes, which stall for a
/// second or more before they try again. The kernel caps it at
/// `net.core.somaxconn` (4,096 on this Debian); raise that too for bigger
/// storms (docs/OPERATIONS.md).
pub const LISTEN_BACKLOG: u32 = 65_535;

/// Binds `addr` with [`LISTEN_BACKLOG`] (and `SO_REUSEADDR`, so that a
/// restarted server can bind again at once).
pub fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Wait after a failed `accept` (usually: out of file descriptors), so that
/// the loop does not spin while connections close.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// A running server. [`Server::shutdown`] stops it; dropping it starts the
/// same shutdown without waiting for it.
#[derive(Debug)]
pub struct Server {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
    counts: Arc<ConnectionCounts>,
}

impl Server {
    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// How many connections it holds open now, and how many are parked.
    pub fn connections(&self) -> Connections {
        self.counts.snapshot()
    }

    /// Stops accepting, lets open connections finish their requests for up
    /// to the grace period, then closes whatever is left.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// The shortest [`ServerOptions::park_after`] used; shorter ones are raised to it.
const MIN_PARK_AFTER: Duration = Duration::from_millis(1);

/// How often the accept loop considers giving parked connections' freed
/// buffers back to the system.
const TRIM_EVERY: Duration = Duration::from_secs(1);

/// How long a turned-away client gets to take its 503.
const TURN_AWAY_WRITE: Duration = Duration::from_secs(1);

/// Answers a connection over the cap with a 503 and closes it, without
/// reading its request.
async fn turn_away(mut stream: TcpStream) {
    use tokio::io::AsyncWriteExt;
    let answer = Answer::TryAgain {
        reason: RetryReason::Overloaded,
        request: None,
        request_key: None,
    };
    let body = answer.body();
    let head = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nretry-after: 1\r\nconnection: close\r\n\r\n",
        body.len()
    );
    let write = async {
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(&body).await?;
        stream.shutdown().await
    };
    let _ = tokio::time::timeout(TURN_AWAY_WRITE, write).await;
}

/// Serves `handler` on `listener` until [`Server::shutdown`].
pub fn serve<H: Handler>(listener: TcpListener, handler: Arc<H>, options: ServerOptions) -> Server {
    let addr = listener
        .local_addr()
        .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
    let (stop, mut stopped) = watch::channel(false);
    let counts = Arc::new(ConnectionCounts::default());
    let shared_counts = Arc::clone(&counts);
    let task = tokio::spawn(async move {
        let mut http = http1::Builder::new();
        http.keep_alive(true).max_buf_size(options.max_head_bytes);
        if let Some(timeout) = options.head_timeout {
            http.timer(TokioTimer::new()).header_read_timeout(timeout);
        }
        let http = Arc::new(http);
        let limits = Limits {
            head_timeout: options.head_timeout,
            // A zero period would park between every byte (and tokio's
            // interval refuses it).
            park_after: options.park_after.map(|period| period.max(MIN_PARK_AFTER)),
        };
        let open = options
            .max_connections
            .map(|cap| Arc::new(Semaphore::new(cap)));
        let (phase, watching) = watch::channel(Phase::Serving);
        // Every connection task holds a sender; `recv` ends when all are gone.
        let (alive, mut all_closed) = mpsc::channel::<()>(1);
        let mut trim = tokio::time::interval(TRIM_EVERY);
        trim.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                _ = stopped.changed() => break,
                _ = trim.tick(), if options.park_after.is_some() => {
                    if shared_counts.take_handed_back() >= TRIM_AFTER_HAND_BACKS {
                        tokio::task::spawn_blocking(give_back_freed_memory);
                    }
                    continue;
                }
            };
            let (stream, peer) = match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, %addr, "accept failed; backing off");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            };
            let slot = match &open {
                Some(open) => match Arc::clone(open).try_acquire_owned() {
                    Ok(slot) => Some(slot),
                    Err(_) => {
                        tokio::spawn(turn_away(stream));
                        continue;
                    }
                },
                None => None,
            };
            let _ = stream.set_nodelay(true);
            spawn_client(
                (stream, peer),
                Arc::clone(&handler),
                Arc::clone(&http),
                limits,
                Arc::clone(&shared_counts),
                watching.clone(),
                (slot, alive.clone()),
            );
        }
        drop(listener);
        drop(alive);
        let _ = phase.send(Phase::Draining);
        if tokio::time::timeout(options.grace, all_closed.recv())
            .await
            .is_err()
        {
            tracing::warn!(%addr, "connections still open after {:?}; closing them", options.grace);
            let _ = phase.send(Phase::Closing);
        }
    });
    Server {
        addr,
        stop,
        task,
        counts,
    }
}
