//! One client connection's life. With parking on
//! ([`ServerOptions::park_after`](crate::ServerOptions::park_after)) a
//! connection alternates between two states:
//!
//! - **parked**: a bare socket watched for its next bytes, holding no
//!   buffers — how it starts, and where an idle keep-alive connection waits;
//! - **served**: handed to hyper, which reads heads and answers requests.
//!
//! Once a served connection has answered a request and then been idle for
//! `park_after` (no request in flight, none started, no byte read), it is
//! taken back from hyper without closing the socket (hyper's read and write
//! buffers, about 16 KiB, are freed) and parked again. Bytes hyper had read
//! but not used (a head that was only begun) are replayed to the next hyper
//! connection. Every hyper session counts its head deadline from the
//! connection's last answer (or its accept), as hyper itself does, so
//! neither parking nor idling first extends the head timeout. A connection
//! idle for [`ServerOptions::head_timeout`](crate::ServerOptions::head_timeout)
//! since its last answer (or since it was accepted) is closed, parked or not.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::{Instant, MissedTickBehavior};

use crate::handler::Handler;

/// Where the server is in its life; every connection watches it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Accepting and serving.
    Serving,
    /// Shutting down: finish the request in hand, then close.
    Draining,
    /// The grace period is over: close now.
    Closing,
}

/// How many connections a server holds open, and how many of those are
/// parked; a snapshot of [`ConnectionCounts`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Connections {
    /// Connections open (served or parked).
    pub open: usize,
    /// Open connections parked: idle, holding no buffers.
    pub parked: usize,
}

/// The live counts behind [`Connections`], shared by a server's connections.
#[derive(Debug, Default)]
pub(crate) struct ConnectionCounts {
    open: AtomicUsize,
    parked: AtomicUsize,
    /// Hand-backs (hyper's buffers freed) since [`Self::take_handed_back`].
    handed_back: AtomicUsize,
}

impl ConnectionCounts {
    /// The counts now.
    pub(crate) fn snapshot(&self) -> Connections {
        Connections {
            open: self.open.load(Ordering::Relaxed),
            parked: self.parked.load(Ordering::Relaxed),
        }
    }

    /// How many connections were handed back since the last call.
    pub(crate) fn take_handed_back(&self) -> usize {
        self.handed_back.swap(0, Ordering::Relaxed)
    }

    /// Counts one open connection for as long as the guard lives.
    pub(crate) fn open(&self) -> Counted<'_> {
        Counted::new(&self.open)
    }
}

/// Adds one to a count while it lives.
pub(crate) struct Counted<'a>(&'a AtomicUsize);

impl<'a> Counted<'a> {
    fn new(count: &'a AtomicUsize) -> Self {
        count.fetch_add(1, Ordering::Relaxed);
        Self(count)
    }
}

impl Drop for Counted<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The limits one connection runs under.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// Deadline for a request head; also how long a parked connection waits.
    pub head_timeout: Option<Duration>,
    /// Idle time after which a served connection is parked.
    pub park_after: Option<Duration>,
}

/// Spawns the task that serves one client connection until it closes or
/// the server stops; `held` (the connection's slot under the cap, say) is
/// dropped when it ends. Each mode is its own task, sized for itself: a
/// parked connection's task is small.
pub(crate) fn spawn_client<H: Handler, T: Send + 'static>(
    (stream, peer): (TcpStream, SocketAddr),
    handler: Arc<H>,
    http: Arc<http1::Builder>,
    limits: Limits,
    counts: Arc<ConnectionCounts>,
    phase: watch::Receiver<Phase>,
    held: T,
) {
    match limits.park_after {
        Some(park_after) => {
            tokio::spawn(async move {
                let _open = counts.open();
                serve_parking(
                    (stream, peer),
                    handler,
                    &http,
                    limits,
                    park_after,
                    &counts,
                    phase,
                )
                .await;
                drop(held);
            });
        }
        None => {
            tokio::spawn(async move {
                let _open = counts.open();
                serve_unparked(stream, peer, handler, &http, phase).await;
                drop(held);
            });
        }
    }
}

/// Plain hyper, the connection held for its whole life (the baseline).
async fn serve_unparked<H: Handler>(
    stream: TcpStream,
    peer: SocketAddr,
    handler: Arc<H>,
    http: &http1::Builder,
    mut phase: watch::Receiver<Phase>,
) {
    let service = service_fn(move |request| {
        let handler = Arc::clone(&handler);
        async move { Ok::<_, Infallible>(handler.handle(request, peer).await) }
    });
    let mut connection = std::pin::pin!(http.serve_connection(TokioIo::new(stream), service));
    let mut draining = false;
    loop {
        tokio::select! {
            biased;
            _ = connection.as_mut() => return,
            changed = phase.changed() => match (changed.is_ok(), *phase.borrow()) {
                (true, Phase::Serving) => {}
                (true, Phase::Draining) if !draining => {
                    draining = true;
                    connection.as_mut().graceful_shutdown();
                }
                (true, Phase::Draining) => {}
                _ => return,
            },
        }
    }
}

/// What a connection's requests and reads have been, for telling whether it
/// is idle. Shared by the connection's task, its service and its socket.
#[derive(Debug)]
struct Activity {
    /// When the connection was accepted; `last_answer` counts from it.
    accepted: Instant,
    /// When the handler last answered, in nanoseconds after `accepted`:
    /// hyper starts waiting for the next head then.
    last_answer: AtomicU64,
    /// Reads that returned bytes.
    reads: AtomicU64,
    /// Requests handed to the handler.
    started: AtomicU64,
    /// Requests the handler has answered.
    finished: AtomicU64,
    /// Set while the connection is being taken back from hyper: its socket
    /// must stay open when hyper shuts it down.
    parking: AtomicBool,
}

/// One reading of [`Activity`]'s counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Reading {
    reads: u64,
    started: u64,
    finished: u64,
}

impl Activity {
    fn new() -> Self {
        Self {
            accepted: Instant::now(),
            last_answer: AtomicU64::new(0),
            reads: AtomicU64::new(0),
            started: AtomicU64::new(0),
            finished: AtomicU64::new(0),
            parking: AtomicBool::new(false),
        }
    }

    /// Counts an answered request.
    fn answered(&self) {
        let after = u64::try_from(self.accepted.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.last_answer.store(after, Ordering::Relaxed);
        self.finished.fetch_add(1, Ordering::Relaxed);
    }

    /// When the handler last answered.
    fn last_answer(&self) -> Instant {
        self.accepted + Duration::from_nanos(self.last_answer.load(Ordering::Relaxed))
    }

    fn read(&self) -> Reading {
        Reading {
            reads: self.reads.load(Ordering::Relaxed),
            started: self.started.load(Ordering::Relaxed),
            finished: self.finished.load(Ordering::Relaxed),
        }
    }
}

impl Reading {
    /// Nothing happened between `self` and `later`, nothing is in flight,
    /// and a request was answered since `session` (until then hyper cannot
    /// hand a connection back: it closes it instead).
    fn idle_until(self, later: Reading, session: Reading) -> bool {
        self == later && later.started == later.finished && later.finished > session.finished
    }
}

/// The socket as hyper sees it: bytes handed back by a previous hyper
/// connection first, then the stream. Its shutdown leaves the socket open
/// while the connection is being parked.
#[derive(Debug)]
struct ClientIo {
    stream: TcpStream,
    replay: Bytes,
    activity: Arc<Activity>,
}

impl AsyncRead for ClientIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.replay.is_empty() {
            let n = this.replay.len().min(buf.remaining());
            buf.put_slice(&this.replay[..n]);
            this.replay.advance(n);
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.stream).poll_read(cx, buf);
        if buf.filled().len() > before {
            this.activity.reads.fetch_add(1, Ordering::Relaxed);
        }
        polled
    }
}

impl AsyncWrite for ClientIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.activity.parking.load(Ordering::Relaxed) {
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.stream).poll_shutdown(cx)
    }
}

/// How a hyper session on a connection ended.
enum Session {
    /// Taken back idle: park the socket, replaying these unread bytes.
    HandedBack(ClientIo),
    /// Closed: by the client, by hyper (an error, `Connection: close`, the
    /// head timeout) or by the server stopping.
    Closed,
}

/// The connection's life with parking: park, serve, take back, repeat.
async fn serve_parking<H: Handler>(
    (stream, peer): (TcpStream, SocketAddr),
    handler: Arc<H>,
    http: &http1::Builder,
    limits: Limits,
    park_after: Duration,
    counts: &ConnectionCounts,
    mut phase: watch::Receiver<Phase>,
) {
    let activity = Arc::new(Activity::new());
    let mut io = ClientIo {
        stream,
        replay: Bytes::new(),
        activity: Arc::clone(&activity),
    };
    loop {
        if io.replay.is_empty() {
            let _parked = Counted::new(&counts.parked);
            // Idle since the last answer (or since it was accepted).
            let idle_until = limits
                .head_timeout
                .map(|limit| activity.last_answer() + limit);
            if !park(&io.stream, idle_until, &mut phase).await {
                return;
            }
        }
        // As in hyper, the wait for a head counts from the last answer (or
        // the accept), across parking and hand-backs: idling first never
        // earns a client more time for its head.
        let mut session = http.clone();
        if let Some(timeout) = limits.head_timeout {
            match timeout.checked_sub(activity.last_answer().elapsed()) {
                Some(left) if !left.is_zero() => {
                    session.header_read_timeout(left);
                }
                _ => return,
            }
        }
        match boxed_session(
            io, peer, &handler, session, &activity, park_after, &mut phase,
        )
        .await
        {
            Session::Closed => return,
            Session::HandedBack(back) => {
                counts.handed_back.fetch_add(1, Ordering::Relaxed);
                io = back;
            }
        }
    }
}

/// Waits, holding no buffers, until the socket has bytes. False when the
/// connection should close instead: the client closed it, `idle_until`
/// passed, or the server is stopping.
async fn park(
    stream: &TcpStream,
    idle_until: Option<Instant>,
    phase: &mut watch::Receiver<Phase>,
) -> bool {
    if *phase.borrow() != Phase::Serving {
        return false;
    }
    // A peek, not `readable()`: tokio reports a fresh socket readable
    // before it has any bytes.
    let readable = async {
        let mut first = [0u8; 1];
        let peeked = match idle_until {
            Some(deadline) => tokio::time::timeout_at(deadline, stream.peek(&mut first))
                .await
                .unwrap_or(Ok(0)),
            None => stream.peek(&mut first).await,
        };
        matches!(peeked, Ok(1..))
    };
    tokio::select! {
        ready = readable => ready,
        _ = phase.changed() => false,
    }
}

/// [`serve_session`] on the heap, built outside any async state: a parked
/// connection's task then holds only the small parking state.
fn boxed_session<'a, H: Handler>(
    io: ClientIo,
    peer: SocketAddr,
    handler: &'a Arc<H>,
    http: http1::Builder,
    activity: &'a Arc<Activity>,
    park_after: Duration,
    phase: &'a mut watch::Receiver<Phase>,
) -> Pin<Box<dyn Future<Output = Session> + Send + 'a>> {
    Box::pin(serve_session(
        io, peer, handler, http, activity, park_after, phase,
    ))
}

/// Serves requests with hyper until the connection closes or has been idle
/// for `park_after`; then takes the socket back.
async fn serve_session<H: Handler>(
    io: ClientIo,
    peer: SocketAddr,
    handler: &Arc<H>,
    http: http1::Builder,
    activity: &Arc<Activity>,
    park_after: Duration,
    phase: &mut watch::Receiver<Phase>,
) -> Session {
    activity.parking.store(false, Ordering::Relaxed);
    let service = {
        let handler = Arc::clone(handler);
        let activity = Arc::clone(activity);
        service_fn(move |request| {
            activity.started.fetch_add(1, Ordering::Relaxed);
            let handler = Arc::clone(&handler);
            let activity = Arc::clone(&activity);
            async move {
                let response = handler.handle(request, peer).await;
                activity.answered();
                Ok::<_, Infallible>(response)
            }
        })
    };
    let mut connection = Box::pin(http.serve_connection(TokioIo::new(io), service));
    let mut tick = tokio::time::interval_at(Instant::now() + park_after, park_after);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let session = activity.read();
    let mut seen = session;
    let mut stopping = false;
    let ended = loop {
        tokio::select! {
            biased;
            ended = connection.as_mut() => break ended,
            _ = tick.tick(), if !stopping => {
                let now = activity.read();
                if seen.idle_until(now, session) {
                    stopping = true;
                    activity.parking.store(true, Ordering::Relaxed);
                    connection.as_mut().graceful_shutdown();
                }
                seen = now;
            }
            changed = phase.changed() => match (changed.is_ok(), *phase.borrow()) {
                (true, Phase::Serving) => {}
                (true, Phase::Draining) => {
                    stopping = true;
                    activity.parking.store(false, Ordering::Relaxed);
                    connection.as_mut().graceful_shutdown();
                }
                _ => return Session::Closed,
            },
        }
    };
    if ended.is_err() || !activity.parking.load(Ordering::Relaxed) {
        return Session::Closed;
    }
    let parts = Pin::into_inner(connection).into_parts();
    let mut io = parts.io.into_inner();
    if !parts.read_buf.is_empty() {
        let mut replay = BytesMut::from(parts.read_buf);
        replay.extend_from_slice(&io.replay);
        io.replay = replay.freeze();
    }
    Session::HandedBack(io)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn reading(reads: u64, started: u64, finished: u64) -> Reading {
        Reading {
            reads,
            started,
            finished,
        }
    }

    #[test]
    fn idle_means_quiet_answered_and_nothing_in_flight() {
        let session = reading(0, 0, 0);
        let quiet = reading(3, 1, 1);
        assert!(quiet.idle_until(quiet, session));
        assert!(
            !quiet.idle_until(reading(4, 1, 1), session),
            "a byte was read"
        );
        assert!(
            !quiet.idle_until(reading(3, 2, 1), session),
            "a request started"
        );
        let stuck = reading(3, 2, 1);
        assert!(!stuck.idle_until(stuck, session), "a request in flight");
        let fresh = reading(1, 0, 0);
        assert!(
            !fresh.idle_until(fresh, session),
            "nothing answered in this session: hyper would close, not hand back"
        );
    }

    /// A connected client and the server side's [`ClientIo`], replaying
    /// `replay` first.
    async fn connected(replay: &'static [u8]) -> (TcpStream, ClientIo, Arc<Activity>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (stream, _) = listener.accept().await.unwrap();
        let activity = Arc::new(Activity::new());
        let io = ClientIo {
            stream,
            replay: Bytes::from_static(replay),
            activity: Arc::clone(&activity),
        };
        (client, io, activity)
    }

    #[tokio::test]
    async fn client_io_replays_handed_back_bytes_before_the_socket() {
        let (mut client, mut io, activity) = connected(b"GET / HT").await;
        client.write_all(b"TP/1.1\r\n").await.unwrap();
        let mut seen = Vec::new();
        let mut buf = [0u8; 5];
        while seen.len() < 16 {
            let n = io.read(&mut buf).await.unwrap();
            seen.extend_from_slice(&buf[..n]);
        }
        assert_eq!(seen, b"GET / HTTP/1.1\r\n");
        assert!(activity.read().reads >= 1, "socket reads are counted");
    }

    #[tokio::test]
    async fn a_parking_shutdown_leaves_the_socket_open() {
        let (mut client, mut io, activity) = connected(b"").await;
        activity.parking.store(true, Ordering::Relaxed);
        io.shutdown().await.unwrap();
        io.write_all(b"still open").await.unwrap();
        let mut buf = [0u8; 10];
        client.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"still open");

        activity.parking.store(false, Ordering::Relaxed);
        io.shutdown().await.unwrap();
        assert_eq!(client.read(&mut buf).await.unwrap(), 0, "closed for real");
    }
}
