//! `spike node` and `spike baseline`: serve until SIGINT/SIGTERM.

use std::sync::atomic::Ordering;

use anyhow::{bail, Context};
use spike_auth::KeyRing;
use spike_core::{CentralStock, MemoryCentral, NodeId, OrderStream};
use spike_http::{ServerOptions, TrustedProxies};
use spike_node::rate_limit::RateLimits;
use spike_node::NodeConfig;
use spike_redis::RedisSettings;

use super::orders::pipeline_config;
use super::{connect_redis, shutdown_signal};
use crate::app::{LedgerSource, NodeApp, NodeSettings, OrdersSettings, DEFAULT_GRACE};
use crate::args::{
    parse_batch, parse_rate, parse_rate_or_off, PipelineArgs, RateOrOff, SaleRules, ServerArgs,
    TrainArgs,
};
use clap::Args;
use spike_core::EventId;
use spike_core::SecretUrl;
use spike_node::central_thread::CentralThread;
use std::net::IpAddr;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::num::NonZeroUsize;
use std::path::PathBuf;

/// `spike node`
#[derive(Debug, Args)]
pub struct NodeArgs {
    /// Address buyers reach the node on (the front door forwards here).
    #[arg(long, default_value = "127.0.0.1:3005")]
    pub listen: SocketAddr,
    /// Address of the admin surface (/metrics, /stats, /sale, /healthz):
    /// keep it off the public network. Port 0: any free port (logged).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub admin_listen: SocketAddr,
    /// Central stock in Redis: redis://HOST:PORT, the primary Sentinel
    /// watches (redis+sentinel://HOST:PORT[,…]/SERVICE), or a Redis Cluster
    /// (redis+cluster://HOST:PORT[,…]). Without it the node runs embedded,
    /// with the sale given by --event and --stock.
    #[arg(
        long,
        env = "SPIKE_REDIS",
        hide_env_values = true,
        help_heading = "Central stock in Redis"
    )]
    pub redis: Option<SecretUrl>,
    /// Answer a sale only once this many Redis replicas hold it (`WAIT`,
    /// grouped); past the response timeout the outcome is "unknown" (503
    /// with the request id). 0: once the primary holds it.
    #[arg(
        long,
        default_value_t = 0,
        requires = "redis",
        help_heading = "Central stock in Redis"
    )]
    pub confirm_replicas: u32,
    /// Events to serve (repeatable; the first is the default). With Redis and
    /// none given: every event in Redis.
    #[arg(long = "event")]
    pub events: Vec<EventId>,
    /// This node's name (X-Spike-Node header, stat log); default node-PORT.
    #[arg(long)]
    pub node_id: Option<NodeId>,
    /// Where to append one line per answered purchase.
    #[arg(long, default_value = "stat.log")]
    pub stat_log: PathBuf,
    /// Don't write a stat log.
    #[arg(long, conflicts_with = "stat_log")]
    pub no_stat_log: bool,
    /// Stat-log lines queued for the disk before purchases are refused with
    /// 503 (the disk stalls): nothing is lost and memory stays bounded.
    #[arg(long, default_value_t = spike_node::stat_log::DEFAULT_QUEUE_LINES)]
    pub stat_log_queue: u64,
    /// Purchases that may wait on central stock at once; past it, new ones
    /// are answered 503 (code -5, Retry-After: 1) at once instead of
    /// queueing (overload shedding). About 50 ms of queue at the measured
    /// buy-path rate.
    #[arg(long, default_value_t = spike_node::node::DEFAULT_MAX_CENTRAL_IN_FLIGHT)]
    pub max_central_in_flight: NonZeroUsize,
    /// Where the lanes to central stock and the Redis connection run: on a
    /// thread of their own, so replies never wait behind thousands of
    /// connections, or `shared` with the connections (the old way, kept to
    /// measure against).
    #[arg(long, value_enum, default_value = "own")]
    pub central_thread: CentralThreadFlag,
    /// The most purchases of one sale sent to central stock in one call:
    /// purchases arriving while the sale's call is in flight go out
    /// together with the next (one Lua call, one WAIT), up to this many; a
    /// purchase that finds nothing in flight goes out at once. 1 sends
    /// every purchase on its own call. At most 256.
    #[arg(long, default_value_t = spike_node::batcher::DEFAULT_MAX_BATCH,
          value_parser = parse_batch)]
    pub central_batch: NonZeroUsize,
    /// Requests a second one buyer may send to the buyers' routes
    /// (/buy/ticket, /buy/result, /queue/join, /queue/status, the orders API
    /// but pay), in bursts of as many; past it, 429 (code -8) with
    /// Retry-After, answered from memory. No limit if absent.
    #[arg(long, value_parser = parse_rate)]
    pub rate_limit_per_buyer: Option<NonZeroU32>,
    /// The same, per client address (behind a --trusted-proxy, the address
    /// it forwards).
    #[arg(long, value_parser = parse_rate)]
    pub rate_limit_per_ip: Option<NonZeroU32>,
    /// Costly requests a second one client address may send: those that
    /// cost central stock or the ledger a call whatever the stock
    /// (/buy/result, /queue/join, the orders API but pay, a purchase with a
    /// request_id once the sale sold out) and the availability table; `off`
    /// for no limit. Behind a proxy, pass --trusted-proxy, or every client
    /// shares the proxy's bucket.
    #[arg(long, value_parser = parse_rate_or_off, default_value = "1000/s")]
    pub rate_limit_costly_per_ip: RateOrOff,
    /// A proxy (spike front, nginx) whose X-Forwarded-For names the client
    /// (repeatable). From any other peer the header is ignored.
    #[arg(long = "trusted-proxy", value_name = "IP")]
    pub trusted_proxies: Vec<IpAddr>,
    /// Worker threads (default: the CPUs this process may run on).
    #[arg(long)]
    pub threads: Option<NonZeroUsize>,
    /// Don't record Prometheus metrics (/metrics answers empty; for measuring their cost).
    #[arg(long)]
    pub no_metrics: bool,
    /// Serve the orders API (/orders/…, /users/…/orders) from this ledger:
    /// postgres://… or sqlite://path.
    #[arg(long, env = "SPIKE_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<SecretUrl>,
    /// The keys buyer tokens are signed with, one per line (several while
    /// rotating); needed to serve sales created with --auth token.
    #[arg(long, env = "SPIKE_TOKEN_KEY_FILE")]
    pub token_key_file: Option<PathBuf>,
    /// The secret order keys are made with (one per line, the first makes
    /// them); give every node of a sale the same file. Without it, a random
    /// one: this node's order keys then open orders on this node only.
    #[arg(long, env = "SPIKE_ORDER_KEY_FILE")]
    pub order_key_file: Option<PathBuf>,
    /// The operator's keys: `POST /orders/{id}/pay` (the payment service)
    /// and the live controls on the admin surface (`spike sale pause`,
    /// `spike queue set`, …) need one as `Authorization: Bearer`. Without
    /// it, neither is possible on this node.
    #[arg(long, env = "SPIKE_OPERATOR_KEY_FILE")]
    pub operator_key_file: Option<PathBuf>,
    /// Ask every waiting-room join for proof of work: a hash of the
    /// challenge this node gives (GET /queue/challenge) with BITS leading
    /// zero bits (1-32; 18 costs a browser about a quarter of a second).
    /// Give every node of a sale the same.
    #[arg(long, value_name = "BITS", value_parser = clap::value_parser!(u8).range(1..=32))]
    pub join_work: Option<u8>,
    /// Also run the order pipeline (writer and expiry) inside this node.
    #[arg(long, requires = "database_url")]
    pub orders_worker: bool,
    /// How the in-node pipeline works.
    #[command(
        flatten,
        next_help_heading = "Order pipeline (--orders-worker, or an embedded node)"
    )]
    pub pipeline: PipelineArgs,
    /// The embedded sale's rules (only without --redis).
    #[command(flatten, next_help_heading = "Embedded sale (only without --redis)")]
    pub rules: SaleRules,
    /// Serve a train run instead of --event/--stock (only without --redis;
    /// with Redis, make it with `spike train create`).
    #[command(
        flatten,
        next_help_heading = "Embedded train run (only without --redis)"
    )]
    pub train: TrainArgs,
    /// Connection limits.
    #[command(flatten, next_help_heading = "Connections")]
    pub server: ServerArgs,
}

/// `spike baseline`
#[derive(Debug, Args)]
pub struct BaselineArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:3000")]
    pub listen: SocketAddr,
    /// Worker threads (default: the CPUs this process may run on).
    #[arg(long)]
    pub threads: Option<NonZeroUsize>,
}

/// `--central-thread`: see [`CentralThread`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CentralThreadFlag {
    /// A thread of its own.
    Own,
    /// The connections' runtime.
    Shared,
}

impl From<CentralThreadFlag> for CentralThread {
    fn from(flag: CentralThreadFlag) -> Self {
        match flag {
            CentralThreadFlag::Own => Self::Own,
            CentralThreadFlag::Shared => Self::Shared,
        }
    }
}

/// The settings `spike node`'s flags describe. `worker`: run the order
/// pipeline in the node (always, when central stock is embedded: only this
/// process can read its stream).
fn settings(args: &NodeArgs, worker: bool) -> anyhow::Result<NodeSettings> {
    let placeholder = NodeId::parse("node")?;
    let mut node = NodeConfig::new(
        args.node_id.clone().unwrap_or(placeholder),
        args.events.clone(),
    );
    node.metrics = !args.no_metrics;
    node.max_central_in_flight = args.max_central_in_flight;
    node.max_batch = args.central_batch;
    node.central_thread = args.central_thread.into();
    node.rate_limits = RateLimits {
        per_buyer: args.rate_limit_per_buyer,
        per_ip: args.rate_limit_per_ip,
        costly_per_ip: args.rate_limit_costly_per_ip.0,
        trusted_proxies: TrustedProxies::new(args.trusted_proxies.clone()),
    };
    let mut settings = NodeSettings::new(args.listen, node);
    settings.admin_listen = args.admin_listen;
    settings.server = args.server.options(DEFAULT_GRACE);
    settings.name_after_port = args.node_id.is_none();
    settings.stat_log = (!args.no_stat_log).then(|| args.stat_log.clone());
    settings.stat_log_queue = args.stat_log_queue;
    let keys =
        |file: &Option<std::path::PathBuf>| file.as_deref().map(KeyRing::from_file).transpose();
    settings.token_keys = keys(&args.token_key_file)?;
    settings.order_keys = keys(&args.order_key_file)?;
    settings.operator_keys = keys(&args.operator_key_file)?;
    settings.join_work_bits = args.join_work;
    settings.orders = match &args.database_url {
        Some(ledger) => Some(OrdersSettings {
            ledger: LedgerSource::Url(ledger.clone()),
            pipeline: match worker {
                true => Some(pipeline_config(&args.pipeline, args.events.clone())?),
                false => None,
            },
        }),
        None => None,
    };
    Ok(settings)
}

/// `spike node`: serves until SIGINT/SIGTERM, then drains and flushes.
pub async fn run_node(args: NodeArgs) -> anyhow::Result<()> {
    match &args.redis {
        Some(url) => {
            if args.rules.any_given() {
                bail!("with --redis the sale's rules live in Redis: set them with `spike sale create`");
            }
            if args.train.train.is_some() {
                bail!("with --redis a train run lives in Redis: make it with `spike train create`");
            }
            let redis = RedisSettings {
                confirm_replicas: args.confirm_replicas,
                ..RedisSettings::new(url.clone())
            };
            let io = CentralThread::from(args.central_thread).runtime();
            let central = connect_redis(redis, Some(io)).await?;
            let app = NodeApp::build(settings(&args, args.orders_worker)?, central).await?;
            tracing::info!(node = %app.node().id(), addr = %app.addr(), admin = %app.admin_addr(), central = %url, confirm_replicas = args.confirm_replicas, events = ?args.events, "node listening");
            serve_until_signal(app).await
        }
        None => {
            let (event, sale) = match (args.train.to_config(&args.rules)?, args.events.as_slice()) {
                (Some((run, sale)), []) => (run.event(), sale),
                (None, [event]) => (event.clone(), args.rules.to_config()?),
                _ => bail!(
                    "an embedded node (no --redis) serves exactly one sale: --event with --stock, \
                     or a train run (--train, --date, --stations, --class)"
                ),
            };
            let mut args = args;
            args.events = vec![event.clone()];
            let central = MemoryCentral::new();
            central.create_sale(&event, &sale, false).await?;
            let app = NodeApp::build(settings(&args, true)?, central).await?;
            tracing::info!(node = %app.node().id(), addr = %app.addr(), admin = %app.admin_addr(), central = "embedded", %event, stock = sale.total(), "node listening");
            serve_until_signal(app).await
        }
    }
}

async fn serve_until_signal<C>(app: NodeApp<C>) -> anyhow::Result<()>
where
    C: CentralStock + OrderStream + Clone + std::fmt::Debug,
{
    shutdown_signal().await?;
    tracing::info!(node = %app.node().id(), "stopping: draining connections, flushing the stat log");
    let node = app.stop().await;
    let (lines, dropped) = node.stat_log().map_or((0, 0), |log| {
        let counters = log.counters();
        (
            counters.written.load(Ordering::Relaxed),
            counters.dropped.load(Ordering::Relaxed),
        )
    });
    tracing::info!(node = %node.id(), stat_lines = lines, stat_lines_dropped = dropped, "node stopped");
    Ok(())
}

/// `spike baseline`: the bare hyper server benchmarks compare against.
pub async fn run_baseline(args: BaselineArgs) -> anyhow::Result<()> {
    let listener = spike_http::listen(args.listen)
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let server =
        spike_node::baseline::serve_baseline(listener, ServerOptions::with_grace(DEFAULT_GRACE));
    tracing::info!(addr = %server.addr(), "baseline listening");
    shutdown_signal().await?;
    server.shutdown().await;
    Ok(())
}
