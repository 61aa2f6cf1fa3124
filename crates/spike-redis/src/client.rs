//! [`RedisCentral`]'s connection: one multiplexed Redis connection that
//! concurrent calls pipeline on, to the primary (found through Sentinel for
//! a Sentinel URL) or to a whole Redis Cluster (a cluster URL), made again
//! after a failure, to whichever server is the primary then; the response deadline that turns silence into "outcome
//! unknown"; and the mapping of Redis failures onto [`CentralError`]. The contracts themselves are implemented in
//! `central.rs` (sales) and `stream.rs` (the order stream).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use redis::cluster::ClusterClient;
use redis::{AsyncConnectionConfig, RedisError};
use spike_core::{CentralError, SecretUrl};
use tokio::runtime::Handle;

use crate::confirm::Confirmer;
use crate::connection::{Link, RedisConnection};
use crate::scripts::Scripts;
use crate::target::RedisTarget;

/// How to reach Redis and how long to wait for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisSettings {
    /// `redis://[user:password@]host:port[/db]`,
    /// `redis+sentinel://HOST:PORT[,HOST:PORT…]/SERVICE` for the primary a
    /// Sentinel watches, or `redis+cluster://HOST:PORT[,HOST:PORT…]` for a
    /// Redis Cluster; shown without its password.
    pub url: SecretUrl,
    /// Longest wait for a (re)connection.
    pub connect_timeout: Duration,
    /// Longest wait for one answer; past it the outcome is unknown.
    pub response_timeout: Duration,
    /// Replicas that must hold a sale before it is answered (`WAIT`); 0:
    /// answer once the primary has it.
    pub confirm_replicas: u32,
}

impl RedisSettings {
    /// Settings for `url` with timeouts that answer a client within a second,
    /// confirming on no replica.
    pub fn new(url: impl Into<SecretUrl>) -> Self {
        Self {
            url: url.into(),
            connect_timeout: Duration::from_millis(300),
            response_timeout: Duration::from_millis(500),
            confirm_replicas: 0,
        }
    }
}

/// The current link and how to make the next one.
struct Primary {
    target: RedisTarget,
    config: AsyncConnectionConfig,
    connect_timeout: Duration,
    response_timeout: Duration,
    link: ArcSwap<Link>,
    /// The generation a failure last broke; new calls wait for its repair.
    broken: AtomicU64,
    /// One repair at a time, and not more often than [`REPAIR_EVERY`].
    repairing: tokio::sync::Mutex<Instant>,
    /// Counts finished repair attempts, for calls waiting on one.
    repairs: tokio::sync::watch::Sender<u64>,
    /// Where connections are made, and so where their reply readers run:
    /// the caller's runtime, or one of their own ([`RedisCentral::connect_on`]).
    io: Option<Handle>,
}

/// An instant far enough back that the first repair is never held back.
fn long_ago() -> Instant {
    let now = Instant::now();
    now.checked_sub(REPAIR_EVERY * 10).unwrap_or(now)
}

/// The shortest time between two repairs of the link.
const REPAIR_EVERY: Duration = Duration::from_millis(200);

/// [`connect_to`], run on `io` when given: the connection's reader task is
/// spawned where the connection is made, so its replies are read there.
async fn connect_on(
    io: Option<&Handle>,
    target: RedisTarget,
    config: AsyncConnectionConfig,
    (connect_timeout, response_timeout): (Duration, Duration),
) -> Result<RedisConnection, CentralError> {
    let Some(io) = io else {
        return connect_to(&target, &config, connect_timeout, response_timeout).await;
    };
    io.spawn(async move { connect_to(&target, &config, connect_timeout, response_timeout).await })
        .await
        .map_err(|_| CentralError::Unavailable("the Redis connection's runtime stopped".into()))?
}

/// Finds the primary `target` names now and connects to it; for a
/// cluster, learns its slots from the nodes given and connects to them.
async fn connect_to(
    target: &RedisTarget,
    config: &AsyncConnectionConfig,
    connect_timeout: Duration,
    response_timeout: Duration,
) -> Result<RedisConnection, CentralError> {
    if let Some(nodes) = target.cluster_nodes() {
        return connect_to_cluster(&nodes, connect_timeout, response_timeout).await;
    }
    // A sentinel answers in one round trip; the margin is for a busy machine.
    let url = target.resolve(connect_timeout * 3).await?;
    let client = redis::Client::open(url.expose())
        .map_err(|e| CentralError::Unavailable(format!("bad Redis URL {url}: {e}")))?;
    tokio::time::timeout(
        connect_timeout * 3,
        client.get_multiplexed_async_connection_with_config(config),
    )
    .await
    .map_err(|_| CentralError::Unavailable(format!("no answer from {url}")))?
    .map_err(|e| CentralError::Unavailable(format!("{url}: {e}")))
    .map(RedisConnection::Server)
}

/// Connects to the cluster `nodes` belong to. The cluster client follows
/// redirections and re-reads the slots after a failover by itself; within
/// one call it retries for at most `response_timeout`.
async fn connect_to_cluster(
    nodes: &[SecretUrl],
    connect_timeout: Duration,
    response_timeout: Duration,
) -> Result<RedisConnection, CentralError> {
    let named = nodes.first().map(ToString::to_string).unwrap_or_default();
    let client = ClusterClient::builder(nodes.iter().map(SecretUrl::expose))
        .connection_timeout(connect_timeout)
        .response_timeout(response_timeout)
        .build()
        .map_err(|e| CentralError::Unavailable(format!("bad cluster URL {named}: {e}")))?;
    tokio::time::timeout(connect_timeout * 3, client.get_async_connection())
        .await
        .map_err(|_| CentralError::Unavailable(format!("no answer from the cluster at {named}")))?
        .map_err(|e| CentralError::Unavailable(format!("cluster at {named}: {e}")))
        .map(RedisConnection::Cluster)
}

impl Primary {
    /// The link to use now. If the current one is known broken, waits (at
    /// most `connect_timeout`) for the repair under way, so that calls made
    /// after a failure go to the new connection rather than fail too.
    async fn current(&self) -> Arc<Link> {
        let link = self.link.load_full();
        if self.broken.load(Ordering::Acquire) != link.generation {
            return link;
        }
        let mut repairs = self.repairs.subscribe();
        let before = *repairs.borrow_and_update();
        let finished = repairs.wait_for(|&attempts| attempts != before);
        let _ = tokio::time::timeout(self.connect_timeout, finished).await;
        self.link.load_full()
    }

    /// Marks `generation` broken and repairs it in the background.
    fn broke(self: &Arc<Self>, generation: u64) {
        self.broken.store(generation, Ordering::Release);
        let primary = Arc::clone(self);
        tokio::spawn(async move { primary.repair(generation).await });
    }

    /// Finds the primary and connects to it.
    async fn connect(&self) -> Result<RedisConnection, CentralError> {
        connect_on(
            self.io.as_ref(),
            self.target.clone(),
            self.config.clone(),
            (self.connect_timeout, self.response_timeout),
        )
        .await
    }

    /// Replaces the link after a failure that `seen` (a generation) suffered,
    /// unless someone already did, or did so very recently.
    async fn repair(&self, seen: u64) {
        let Ok(mut last) = self.repairing.try_lock() else {
            return;
        };
        if self.link.load().generation != seen || last.elapsed() < REPAIR_EVERY {
            return;
        }
        *last = Instant::now();
        match self.connect().await {
            Ok(connection) => {
                // Only a repair makes a link, one at a time (`repairing`).
                let generation = self.link.load().generation + 1;
                self.link.store(Arc::new(Link {
                    generation,
                    connection,
                }));
                tracing::info!(generation, "connected to Redis again");
            }
            Err(error) => tracing::warn!(%error, "Redis still unreachable"),
        }
        self.repairs.send_modify(|attempts| *attempts += 1);
    }
}

/// Central stock in Redis.
#[derive(Clone)]
pub struct RedisCentral {
    primary: Arc<Primary>,
    scripts: Arc<Scripts>,
    response_timeout: Duration,
    confirmer: Option<Confirmer>,
    /// Each train run's seat-map shape (classes, segments) as last read:
    /// batched seat purchases declare every map without a read first
    /// (`ticket_many.lua` checks the shape and refuses a stale one).
    pub(crate) map_shapes:
        Arc<std::sync::Mutex<std::collections::HashMap<spike_core::EventId, (usize, u32)>>>,
}

impl std::fmt::Debug for RedisCentral {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisCentral").finish_non_exhaustive()
    }
}

/// Maps a Redis failure onto what it means for a purchase in flight.
pub(crate) fn classify(error: RedisError) -> CentralError {
    if error.is_connection_refusal() {
        CentralError::Unavailable(error.to_string())
    } else if error.is_timeout() || error.is_io_error() || error.is_connection_dropped() {
        CentralError::OutcomeUnknown(error.to_string())
    } else {
        CentralError::Protocol(error.to_string())
    }
}

/// Whether `error` says the link is no good (dropped, refused, timed out,
/// or talking to a server that is no longer the primary).
fn breaks_the_link(error: &RedisError) -> bool {
    connection_gone(error)
        || error.is_timeout()
        || error.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::ReadOnly)
}

/// Whether `error` says the connection itself is gone (dropped or refused),
/// rather than slow: a read may then run again on a new one.
fn connection_gone(error: &RedisError) -> bool {
    error.is_io_error() || error.is_connection_dropped() || error.is_connection_refusal()
}

impl RedisCentral {
    /// Connects to Redis (through the sentinels, for a Sentinel URL); fails
    /// if it cannot be reached now. Once connected, the connection is made
    /// again after a failure, to whichever server is then the primary.
    /// Errors name the URL without its password.
    pub async fn connect(settings: &RedisSettings) -> Result<Self, CentralError> {
        Self::connect_with(settings, None).await
    }

    /// [`Self::connect`], with every connection made on `io` (a runtime of
    /// its own, say), so that Redis replies are read there and never wait
    /// behind the caller's other tasks. The calls themselves may run
    /// anywhere.
    pub async fn connect_on(settings: &RedisSettings, io: Handle) -> Result<Self, CentralError> {
        Self::connect_with(settings, Some(io)).await
    }

    async fn connect_with(
        settings: &RedisSettings,
        io: Option<Handle>,
    ) -> Result<Self, CentralError> {
        let target = RedisTarget::parse(&settings.url)
            .map_err(|e| CentralError::Unavailable(e.to_string()))?;
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(settings.connect_timeout))
            .set_response_timeout(Some(settings.response_timeout));
        let connection = connect_on(
            io.as_ref(),
            target.clone(),
            config.clone(),
            (settings.connect_timeout, settings.response_timeout),
        )
        .await?;
        let primary = Arc::new(Primary {
            target,
            config,
            connect_timeout: settings.connect_timeout,
            response_timeout: settings.response_timeout,
            link: ArcSwap::from_pointee(Link {
                generation: 0,
                connection,
            }),
            broken: AtomicU64::new(u64::MAX),
            repairing: tokio::sync::Mutex::new(long_ago()),
            repairs: tokio::sync::watch::channel(0).0,
            io,
        });
        let confirmer = (settings.confirm_replicas > 0)
            .then(|| Confirmer::start(settings.confirm_replicas, settings.response_timeout));
        Ok(Self {
            primary,
            scripts: Arc::new(Scripts::load()),
            response_timeout: settings.response_timeout,
            confirmer,
            map_shapes: Arc::default(),
        })
    }

    /// A handle on the shared, multiplexed connection.
    pub(crate) async fn connection(&self) -> RedisConnection {
        self.primary.current().await.connection.clone()
    }

    /// The current link, with its generation.
    pub(crate) async fn link(&self) -> Arc<Link> {
        self.primary.current().await
    }

    /// The replica confirmation, when sales must be confirmed (`WAIT`).
    pub(crate) fn confirmer(&self) -> Option<&Confirmer> {
        self.confirmer.as_ref()
    }

    /// The loaded scripts.
    pub(crate) fn scripts(&self) -> &Scripts {
        &self.scripts
    }

    /// Runs `call` with the response deadline, handing back Redis's own
    /// error for the caller to inspect. A failure that says the link is no
    /// good starts its repair in the background: a new connection, to the
    /// server that is the primary by then.
    pub(crate) async fn deadline_raw<T, F>(
        &self,
        call: F,
    ) -> Result<Result<T, RedisError>, CentralError>
    where
        F: std::future::Future<Output = Result<T, RedisError>>,
    {
        let generation = self.primary.link.load().generation;
        let answered = tokio::time::timeout(self.response_timeout, call).await;
        let broken = match &answered {
            Err(_) => true,
            Ok(Err(error)) => breaks_the_link(error),
            Ok(Ok(_)) => false,
        };
        if broken {
            self.primary.broke(generation);
        }
        answered.map_err(|_| {
            CentralError::OutcomeUnknown(format!("no answer within {:?}", self.response_timeout))
        })
    }

    /// Runs a read (a call that changes nothing) on the current connection
    /// with the response deadline; if the connection turns out to be gone
    /// (dropped or refused, not slow), runs it once more on the repaired one.
    /// Only for reads: a write whose connection broke may have been applied.
    /// `HMGET key fields…` as a [`RedisCentral::read`]: one optional value
    /// per field, in their order.
    pub(crate) async fn read_fields<T: redis::FromRedisValue>(
        &self,
        key: &str,
        fields: &[&str],
    ) -> Result<T, CentralError> {
        self.read(|mut connection| async move {
            redis::cmd("HMGET")
                .arg(key)
                .arg(fields)
                .query_async(&mut connection)
                .await
        })
        .await
    }

    pub(crate) async fn read<T, F, Fut>(&self, call: F) -> Result<T, CentralError>
    where
        F: Fn(RedisConnection) -> Fut,
        Fut: std::future::Future<Output = Result<T, RedisError>>,
    {
        match self.deadline_raw(call(self.connection().await)).await? {
            Err(error) if connection_gone(&error) => {
                self.with_deadline(call(self.connection().await)).await
            }
            other => other.map_err(classify),
        }
    }

    /// Runs `call` on the shared connection with the response deadline.
    pub(crate) async fn with_deadline<T, F>(&self, call: F) -> Result<T, CentralError>
    where
        F: std::future::Future<Output = Result<T, RedisError>>,
    {
        self.deadline_raw(call).await?.map_err(classify)
    }
}
