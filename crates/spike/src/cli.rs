//! Command-line arguments, as types. Every flag documented here is a
//! contract users script against.

use std::net::{IpAddr, SocketAddr};
use std::num::{NonZeroU32, NonZeroU64, NonZeroUsize};
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use spike_core::sale::BuyerAuth;
use spike_core::sale::DEFAULT_PAYMENT_WINDOW;
use spike_core::{BuyerPolicy, EventId, NodeId, QueueConfig, SaleConfig, SecretUrl, UserId};
use spike_front::Upstream;
use spike_orders::defaults;

/// Spike: a flash-sale ticketing engine that sells exactly its stock.
#[derive(Debug, Parser)]
#[command(name = "spike", version, about)]
pub struct Cli {
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value = "human")]
    pub log_format: LogFormat,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// How a server treats its clients' connections; shared by `node`, `front`
/// and `dashboard`.
#[derive(Debug, Clone, Args)]
pub struct ServerArgs {
    /// Longest wait for a request head (cuts off slow clients), also the
    /// idle time after which a keep-alive connection is closed.
    #[arg(long, value_parser = parse_positive_duration,
          default_value_t = spike_http::DEFAULT_HEAD_TIMEOUT.into())]
    pub head_timeout: humantime::Duration,
    /// Idle time after which a keep-alive connection gives its buffers back
    /// and waits as a bare socket for its next request.
    #[arg(long, value_parser = parse_positive_duration,
          default_value_t = spike_http::DEFAULT_PARK_AFTER.into())]
    pub park_after: humantime::Duration,
    /// Longest wait for a request body.
    #[arg(long, value_parser = parse_positive_duration,
          default_value_t = spike_http::DEFAULT_BODY_TIMEOUT.into())]
    pub body_timeout: humantime::Duration,
    /// Largest request body, in bytes (413 past it).
    #[arg(long, default_value_t = spike_http::DEFAULT_MAX_BODY_BYTES)]
    pub max_body_bytes: usize,
    /// Most connections open at once; past it new ones get a 503 and are closed.
    #[arg(long, default_value_t = spike_http::DEFAULT_MAX_CONNECTIONS)]
    pub max_connections: usize,
}

impl ServerArgs {
    /// The server options these flags describe, with `grace` for shutdown.
    pub fn options(&self, grace: Duration) -> spike_http::ServerOptions {
        spike_http::ServerOptions {
            grace,
            head_timeout: Some(self.head_timeout.into()),
            park_after: Some(self.park_after.into()),
            body_timeout: self.body_timeout.into(),
            max_body_bytes: self.max_body_bytes,
            max_connections: Some(self.max_connections),
            ..spike_http::ServerOptions::default()
        }
    }
}

/// How log lines look.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Readable lines.
    Human,
    /// One JSON object per line.
    Json,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create or inspect a sale in Redis.
    #[command(subcommand)]
    Sale(SaleCommand),
    /// Create a train run: seats on route segments, sold by /buy/ticket?train=….
    #[command(subcommand)]
    Train(TrainCommand),
    /// Run a node serving GET|POST /buy/ticket.
    Node(Box<NodeArgs>),
    /// Run the benchmark baseline: a bare hyper server answering the sold-out bytes.
    Baseline(BaselineArgs),
    /// Print an nginx configuration for weighted round robin over nodes.
    NginxConf(NginxConfArgs),
    /// Run the embedded front door: weighted round robin over nodes.
    Front(FrontArgs),
    /// Simulate many users buying through a URL, then report and check invariants.
    Bench(BenchArgs),
    /// The articles' scenario in one process: 4 nodes (1:2:3:4), front door, 1M users, 10k tickets.
    Demo(DemoArgs),
    /// Serve the live sale dashboard for a set of nodes.
    Dashboard(DashboardArgs),
    /// Run the order pipeline: write the order stream into the ledger and expire unpaid orders.
    Orders(OrdersArgs),
    /// Reconcile central stock, the order stream, the ledger and stat logs; exit 1 on any mismatch.
    Audit(AuditArgs),
    /// Print the Lua scripts central stock runs in Redis, exactly as Redis receives them.
    Scripts(ScriptsArgs),
    /// Print a signed buyer token (HS256 JWT) for a sale created with --auth token.
    Token(TokenArgs),
}

/// `spike token`
#[derive(Debug, Args)]
pub struct TokenArgs {
    /// The key file the nodes verify with (its first key signs).
    #[arg(long, env = "SPIKE_TOKEN_KEY_FILE")]
    pub key_file: PathBuf,
    /// The buyer (the token's `sub`).
    #[arg(long)]
    pub user: UserId,
    /// How long the token is valid (longer than zero).
    #[arg(long, default_value = "1h", value_parser = parse_positive_duration)]
    pub ttl: humantime::Duration,
    /// Bind the token to one sale (its `aud`).
    #[arg(long)]
    pub event: Option<EventId>,
}

/// How buyers prove who they are, as `--auth` spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AuthFlag {
    /// The user_id of a request is trusted (tests, demos, closed networks).
    Open,
    /// Buyers carry an HS256 token signed by the operator's login system.
    Token,
}

/// `spike scripts`
#[derive(Debug, Args)]
pub struct ScriptsArgs {
    /// The script to print (buy, release, create, snapshot, ack); none: list their names.
    pub name: Option<String>,
}

/// Where the order ledger lives: `postgres://…` or `sqlite:…`.
#[derive(Debug, Clone, Args)]
pub struct LedgerArgs {
    /// Order ledger URL: postgres://user@host:port/db, or sqlite://path (created if missing).
    #[arg(long, env = "SPIKE_DATABASE_URL", hide_env_values = true)]
    pub database_url: SecretUrl,
}

/// How the order pipeline works, shared by `spike orders` and `spike node --orders-worker`.
#[derive(Debug, Clone, Args, PartialEq, Eq)]
pub struct PipelineArgs {
    /// This writer's consumer name in the stream's group (default: orders-PID).
    #[arg(long)]
    pub consumer: Option<NodeId>,
    /// Stream entries per read and per database transaction.
    #[arg(long, default_value_t = defaults::BATCH)]
    pub batch: NonZeroUsize,
    /// Concurrent writers in this process (consumers NAME, NAME.2, …).
    #[arg(long, default_value_t = defaults::LANES)]
    pub lanes: NonZeroUsize,
    /// Take over entries another writer left pending this long (it crashed or stalled).
    #[arg(long, default_value_t = defaults::CLAIM_IDLE.into())]
    pub claim_idle: humantime::Duration,
    /// How often unpaid orders are expired and owed seats returned.
    #[arg(long, default_value_t = defaults::EXPIRE_EVERY.into())]
    pub expire_every: humantime::Duration,
    /// Don't expire orders or return seats in this process (another one does).
    #[arg(long)]
    pub no_expiry: bool,
}

/// `spike orders`
#[derive(Debug, Args)]
pub struct OrdersArgs {
    /// Redis URL (central stock and its order stream).
    #[arg(long, env = "SPIKE_REDIS", hide_env_values = true)]
    pub redis: SecretUrl,
    /// The order ledger.
    #[command(flatten)]
    pub ledger: LedgerArgs,
    /// Events to write (repeatable); default: every event in Redis.
    #[arg(long = "event")]
    pub events: Vec<EventId>,
    /// Serve Prometheus metrics (orders written, expired, returned; stream backlog) here.
    #[arg(long)]
    pub metrics_listen: Option<SocketAddr>,
    /// How the pipeline works.
    #[command(flatten)]
    pub pipeline: PipelineArgs,
}

/// `spike audit`
#[derive(Debug, Args)]
pub struct AuditArgs {
    /// The sale's records.
    #[command(flatten)]
    pub records: SaleRecords,
    /// Stat logs of every node of the sale (repeatable); checks that each
    /// logged sale has its order and each order its logged sale.
    #[arg(long = "stat-log")]
    pub stat_logs: Vec<PathBuf>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// `spike dashboard`
#[derive(Debug, Args)]
pub struct DashboardArgs {
    /// Address to listen on; the page is at /dashboard.
    #[arg(long, default_value = "127.0.0.1:9000")]
    pub listen: SocketAddr,
    /// A node's admin address to watch, HOST:PORT (its --admin-listen; repeatable).
    #[arg(long = "node", required = true)]
    pub nodes: Vec<String>,
    /// The event whose progress is shown (default: the nodes' default event).
    #[arg(long)]
    pub event: Option<EventId>,
    /// Connection limits.
    #[command(flatten)]
    pub server: ServerArgs,
}

/// `spike sale …`
#[derive(Debug, Subcommand)]
pub enum SaleCommand {
    /// Create a sale (refused if the event exists, unless --force).
    Create(SaleCreateArgs),
    /// Print a sale's state: total, sold, remaining, buyers, orders.
    Show(SaleShowArgs),
    /// Rebuild a sale's central stock from the order ledger and the stream after Redis lost it.
    Recover(SaleRecoverArgs),
}

/// `spike sale recover`
#[derive(Debug, Args)]
pub struct SaleRecoverArgs {
    /// The sale's records.
    #[command(flatten)]
    pub records: SaleRecords,
    /// How long a sale still in central stock must stay unchanged (no seat
    /// sold or given back) before it is rebuilt: a change means nodes are
    /// still selling it, and recovery refuses.
    #[arg(long, value_parser = parse_duration, default_value = "2s")]
    pub quiet_for: Duration,
    /// Rebuild even if nodes are still selling (their sales in flight may
    /// then be lost from central stock).
    #[arg(long)]
    pub while_selling: bool,
    /// Stat logs of every node of the sale (repeatable): sales they report
    /// that neither the ledger nor the stream holds (told to buyers, then
    /// lost with Redis) are written into the ledger and keep their seats.
    #[arg(long = "stat-log")]
    pub stat_logs: Vec<PathBuf>,
}

/// Where one sale's records are: central stock and its stream in Redis, and
/// the order ledger.
#[derive(Debug, Args)]
pub struct SaleRecords {
    /// Redis URL.
    #[arg(long, env = "SPIKE_REDIS", hide_env_values = true)]
    pub redis: SecretUrl,
    /// The order ledger.
    #[command(flatten)]
    pub ledger: LedgerArgs,
    /// The event.
    #[arg(long)]
    pub event: EventId,
}

/// The rules of a sale, shared by `sale create` and the embedded `node`.
#[derive(Debug, Clone, Args)]
pub struct SaleRules {
    /// Seats for sale.
    #[arg(long)]
    pub stock: Option<u64>,
    /// Orders one user may hold.
    #[arg(long, default_value = "1")]
    pub per_user_limit: NonZeroU32,
    /// When the sale opens (RFC 3339, e.g. 2026-12-01T08:00:00Z); open now if absent.
    #[arg(long, value_parser = parse_rfc3339)]
    pub opens_at: Option<SystemTime>,
    /// How long a buyer has to pay (e.g. 15m, 3s).
    #[arg(long, value_parser = parse_duration, default_value = "15m")]
    pub payment_window: Duration,
    /// The articles' mode: no user id needed, no per-user limit.
    #[arg(long, conflicts_with = "auth")]
    pub anonymous: bool,
    /// How buyers prove who they are: `token` (a signed token, see `spike
    /// token`) or `open` (the user_id is trusted).
    #[arg(long, value_enum, default_value = "open")]
    pub auth: AuthFlag,
    /// Put the sale behind a waiting room: buyers join (POST /queue/join),
    /// are shuffled at the opening, and buy only once admitted.
    #[arg(long, requires = "admit_rate", conflicts_with = "anonymous")]
    pub queue: bool,
    /// Waiting room: positions admitted per second (e.g. 200/s).
    #[arg(long, value_parser = parse_rate, requires = "queue")]
    pub admit_rate: Option<NonZeroU32>,
    /// Waiting room: most admitted buyers who have neither bought nor let
    /// their admission expire, at once (no cap if absent).
    #[arg(long, requires = "queue")]
    pub max_active: Option<NonZeroU64>,
    /// Waiting room: how long an admitted buyer may buy (e.g. 10m).
    #[arg(long, value_parser = parse_duration, default_value = "10m")]
    pub admit_window: Duration,
    /// Waiting room: when joining starts (RFC 3339; before --opens-at);
    /// from the sale's creation if absent.
    #[arg(long, value_parser = parse_rfc3339, requires = "queue")]
    pub queue_opens_at: Option<SystemTime>,
}

impl SaleRules {
    /// The sale these flags describe; `--stock` is required.
    pub fn to_config(&self) -> anyhow::Result<SaleConfig> {
        let stock = self.stock.context("--stock is required")?;
        self.apply(SaleConfig::new(stock)?)
    }

    /// `base` (a sale's stock, or a train run's seats) with these flags'
    /// buyers, opening, payment window and waiting room.
    pub fn apply(&self, base: SaleConfig) -> anyhow::Result<SaleConfig> {
        let policy = if self.anonymous {
            BuyerPolicy::Anonymous
        } else {
            BuyerPolicy::Identified {
                per_user_limit: self.per_user_limit,
                auth: match self.auth {
                    AuthFlag::Open => BuyerAuth::Open,
                    AuthFlag::Token => BuyerAuth::Token,
                },
            }
        };
        let queue = match (self.queue, self.admit_rate) {
            (true, Some(rate)) => Some(
                QueueConfig::new(rate)?
                    .with_max_active(self.max_active)
                    .with_admit_window(self.admit_window)?
                    .joining_from(self.queue_opens_at),
            ),
            _ => None,
        };
        Ok(base
            .with_policy(policy)
            .opening_at(self.opens_at)
            .with_payment_window(self.payment_window)?
            .with_queue(queue)?)
    }

    /// Whether any rule flag was given (they only make sense for a new sale).
    pub fn any_given(&self) -> bool {
        self.stock.is_some()
            || self.anonymous
            || self.auth != AuthFlag::Open
            || self.opens_at.is_some()
            || self.per_user_limit != NonZeroU32::MIN
            || self.payment_window != DEFAULT_PAYMENT_WINDOW
            || self.queue
    }
}

/// `spike sale create`
#[derive(Debug, Args)]
pub struct SaleCreateArgs {
    /// Redis URL, e.g. redis://127.0.0.1:6379 (also redis+sentinel://…/SERVICE
    /// or redis+cluster://HOST:PORT[,…]).
    #[arg(long, env = "SPIKE_REDIS", hide_env_values = true)]
    pub redis: SecretUrl,
    /// The event (train, concert, drop): [A-Za-z0-9_.-]{1,64}.
    #[arg(long)]
    pub event: EventId,
    /// The sale's rules.
    #[command(flatten)]
    pub rules: SaleRules,
    /// Replace an existing sale, deleting its buyers and orders.
    #[arg(long)]
    pub force: bool,
    /// Also record the sale's rules in this order ledger (`sale recover` needs them).
    #[arg(long, env = "SPIKE_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<SecretUrl>,
}

/// `spike train …`
#[derive(Debug, Subcommand)]
pub enum TrainCommand {
    /// Create a train run (refused if it exists, unless --force).
    Create(TrainCreateArgs),
}

/// A train run's stops and seats: `spike train create`'s, and an embedded
/// `spike node`'s when it serves a run.
#[derive(Debug, Clone, Args)]
pub struct TrainArgs {
    /// The train number, such as G1.
    #[arg(long)]
    pub train: Option<String>,
    /// The date it runs, YYYY-MM-DD.
    #[arg(long, requires = "train")]
    pub date: Option<String>,
    /// Its stations in route order, comma-separated (2 to 64).
    #[arg(long, value_delimiter = ',', requires = "train")]
    pub stations: Vec<String>,
    /// A seat class, NAME:CARRIAGESxSEATS such as second:8x80 (repeatable;
    /// carriages are numbered across classes in this order, seats in rows
    /// of five lettered A B C D F).
    #[arg(long = "class", requires = "train")]
    pub classes: Vec<String>,
}

impl TrainArgs {
    /// The run and its sale with `rules` (buyers, opening, payment window,
    /// waiting room), or `None` when no --train was given.
    pub fn to_config(
        &self,
        rules: &SaleRules,
    ) -> anyhow::Result<Option<(spike_core::TrainRun, SaleConfig)>> {
        let Some(train) = &self.train else {
            return Ok(None);
        };
        if rules.stock.is_some() {
            anyhow::bail!("--stock does not apply to a train: its seats are its classes'");
        }
        let date = self
            .date
            .as_deref()
            .context("--date is required with --train")?;
        if self.stations.is_empty() || self.classes.is_empty() {
            anyhow::bail!("a train needs --stations and at least one --class");
        }
        let run = spike_core::TrainRun::parse(train, date)?;
        let layout = spike_core::TrainLayout::new(&self.stations, &self.classes)?;
        Ok(Some((run, rules.apply(SaleConfig::for_train(layout)?)?)))
    }
}

/// `spike train create`
#[derive(Debug, Args)]
pub struct TrainCreateArgs {
    /// Redis URL (as for `sale create`).
    #[arg(long, env = "SPIKE_REDIS", hide_env_values = true)]
    pub redis: SecretUrl,
    /// The run: --train, --date, --stations and --class are required.
    #[command(flatten)]
    pub run: TrainArgs,
    /// Buyers, opening, payment window and waiting room, as for a sale
    /// (--stock does not apply: a train's seats are its classes').
    #[command(flatten)]
    pub rules: SaleRules,
    /// Replace an existing run, deleting its buyers and orders.
    #[arg(long)]
    pub force: bool,
    /// Also record the run in this order ledger (`sale recover` needs it).
    #[arg(long, env = "SPIKE_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<SecretUrl>,
}

impl TrainCreateArgs {
    /// The run and its sale's configuration.
    pub fn to_config(&self) -> anyhow::Result<(spike_core::TrainRun, SaleConfig)> {
        self.run
            .to_config(&self.rules)?
            .context("--train is required")
    }
}

/// `spike sale show`
#[derive(Debug, Args)]
pub struct SaleShowArgs {
    /// Redis URL.
    #[arg(long, env = "SPIKE_REDIS", hide_env_values = true)]
    pub redis: SecretUrl,
    /// The event.
    #[arg(long)]
    pub event: EventId,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

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
    #[arg(long, env = "SPIKE_REDIS", hide_env_values = true)]
    pub redis: Option<SecretUrl>,
    /// Answer a sale only once this many Redis replicas hold it (`WAIT`,
    /// grouped); past the response timeout the outcome is "unknown" (503
    /// with the request id). 0: once the primary holds it.
    #[arg(long, default_value_t = 0, requires = "redis")]
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
    /// The payment service's keys: `POST /orders/{id}/pay` needs one as
    /// `Authorization: Bearer`. Without it, no payment can be confirmed here.
    #[arg(long, env = "SPIKE_OPERATOR_KEY_FILE")]
    pub operator_key_file: Option<PathBuf>,
    /// Also run the order pipeline (writer and expiry) inside this node.
    #[arg(long, requires = "database_url")]
    pub orders_worker: bool,
    /// How the in-node pipeline works.
    #[command(flatten)]
    pub pipeline: PipelineArgs,
    /// The embedded sale's rules (only without --redis).
    #[command(flatten)]
    pub rules: SaleRules,
    /// Serve a train run instead of --event/--stock (only without --redis;
    /// with Redis, make it with `spike train create`).
    #[command(flatten)]
    pub train: TrainArgs,
    /// Connection limits.
    #[command(flatten)]
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

/// `spike nginx-conf`
#[derive(Debug, Args)]
pub struct NginxConfArgs {
    /// nginx `listen` value, e.g. 127.0.0.1:8080 or 80.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// A node and its weight, HOST:PORT=WEIGHT (repeatable).
    #[arg(long = "upstream", required = true)]
    pub upstreams: Vec<Upstream>,
    /// nginx worker_processes: auto or a number (1 makes the split exact request by request).
    #[arg(long, default_value = "auto")]
    pub workers: String,
    /// Write an access log (off by default).
    #[arg(long)]
    pub access_log: bool,
}

/// `spike front`
#[derive(Debug, Args)]
pub struct FrontArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Address of the front door's own /metrics (loopback by default; port 0: any free port, logged).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub admin_listen: SocketAddr,
    /// A node and its weight, HOST:PORT=WEIGHT (repeatable).
    #[arg(long = "upstream", required = true)]
    pub upstreams: Vec<Upstream>,
    /// Requests that may wait on one node at once; a full node is passed
    /// over, and when every node is full the request is answered 503 with
    /// Retry-After at once (overload shedding). Default: a node's own bound.
    #[arg(long, default_value_t = spike_front::DEFAULT_MAX_IN_FLIGHT_PER_UPSTREAM)]
    pub max_in_flight_per_upstream: NonZeroUsize,
    /// Worker threads (default: the CPUs this process may run on).
    #[arg(long)]
    pub threads: Option<NonZeroUsize>,
    /// Connection limits.
    #[command(flatten)]
    pub server: ServerArgs,
}

/// How results are printed.
#[derive(Debug, Clone, Args)]
pub struct OutputArgs {
    /// Print the report as JSON (on stdout) instead of text.
    #[arg(long)]
    pub json: bool,
    /// Draw throughput and latency over time to this SVG file.
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// No progress bar.
    #[arg(long)]
    pub no_progress: bool,
}

/// `spike bench`
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Where to buy, e.g. http://127.0.0.1:8080/buy/ticket (a fixed query such as ?event=G1 is kept).
    #[arg(long)]
    pub url: String,
    /// Simulated users; each sends one request (user ids 1..N).
    #[arg(long, default_value = "10000")]
    pub users: u64,
    /// Draw user ids at random from 1..N with this seed instead (some users retry).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Keep-alive connections.
    #[arg(long, default_value = "100")]
    pub connections: usize,
    /// Fixed total request rate per second (default: as fast as possible).
    #[arg(long)]
    pub rate: Option<f64>,
    /// Longest wait for one answer.
    #[arg(long, value_parser = parse_duration, default_value = "5s")]
    pub timeout: Duration,
    /// Check the run against central stock in this Redis (needs --event).
    #[arg(long, env = "SPIKE_REDIS", hide_env_values = true, requires = "event")]
    pub redis: Option<SecretUrl>,
    /// The event, for the central check.
    #[arg(long)]
    pub event: Option<EventId>,
    /// Fail unless every seat was sold (buyers outnumbered seats).
    #[arg(long)]
    pub expect_sell_out: bool,
    /// Output.
    #[command(flatten)]
    pub output: OutputArgs,
}

/// `spike demo`
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Simulated users, each buying once.
    #[arg(long, default_value = "1000000")]
    pub users: u64,
    /// Tickets for sale.
    #[arg(long, default_value = "10000")]
    pub stock: u64,
    /// Sell a train run instead (--stock does not apply): 10 stations,
    /// 1,000 seats (first:2x50, second:9x100); each user buys a random
    /// station pair, class and party of 1 to 5. The report counts
    /// seat-segments sold against the run's 9,000.
    #[arg(long, conflicts_with = "queue")]
    pub train: bool,
    /// Nodes; node i gets weight i (1:2:3:4 for four).
    #[arg(long, default_value = "4")]
    pub nodes: NonZeroU32,
    /// Keep-alive connections of the simulated users.
    #[arg(long, default_value = "100")]
    pub connections: usize,
    /// Run on real Redis instead of the embedded central stock.
    #[arg(long)]
    pub redis: Option<SecretUrl>,
    /// The order ledger the sold seats are written to (default: SQLite in memory).
    #[arg(long, default_value = "sqlite::memory:")]
    pub database_url: SecretUrl,
    /// Fixed total request rate per second (default: as fast as possible).
    #[arg(long, conflicts_with = "queue")]
    pub rate: Option<f64>,
    /// Put the sale behind a waiting room: the users join, those who joined
    /// before the opening are shuffled, positions are admitted at
    /// --admit-rate, and admitted users buy with their admission token.
    #[arg(long)]
    pub queue: bool,
    /// Waiting room: positions admitted per second.
    #[arg(long, value_parser = parse_rate, default_value = "2000/s", requires = "queue")]
    pub admit_rate: NonZeroU32,
    /// Waiting room: the sale opens this long after the demo starts.
    #[arg(long, value_parser = parse_duration, default_value = "5s", requires = "queue")]
    pub opens_in: Duration,
    /// Serve the live dashboard while the demo runs, and print its address.
    #[arg(long)]
    pub dashboard: bool,
    /// Where the dashboard listens.
    #[arg(long, default_value = "127.0.0.1:9000")]
    pub dashboard_listen: SocketAddr,
    /// Keep the nodes and the dashboard up this long after the sale (e.g. 30s).
    #[arg(long, value_parser = parse_duration, default_value = "0s")]
    pub linger: Duration,
    /// Output.
    #[command(flatten)]
    pub output: OutputArgs,
}

fn parse_rfc3339(text: &str) -> Result<SystemTime, humantime::TimestampError> {
    humantime::parse_rfc3339_weak(text)
}

/// A rate (an admission rate, a rate limit): `200/s` or `200`.
/// A batch bound: 1 to [`spike_core::MAX_BATCH`].
fn parse_batch(text: &str) -> Result<NonZeroUsize, String> {
    let bound: NonZeroUsize = text.parse().map_err(|e| format!("{e}"))?;
    if bound.get() > spike_core::MAX_BATCH {
        return Err(format!("at most {}", spike_core::MAX_BATCH));
    }
    Ok(bound)
}

/// A rate, or `off`: no limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateOrOff(pub Option<NonZeroU32>);

fn parse_rate_or_off(text: &str) -> Result<RateOrOff, String> {
    match text {
        "off" => Ok(RateOrOff(None)),
        rate => parse_rate(rate).map(|rate| RateOrOff(Some(rate))),
    }
}

fn parse_rate(text: &str) -> Result<NonZeroU32, String> {
    let number = text.strip_suffix("/s").unwrap_or(text);
    number.parse().map_err(|_| {
        format!("{text:?} is not a rate like 200/s (a whole number above 0, per second)")
    })
}

fn parse_duration(text: &str) -> Result<Duration, humantime::DurationError> {
    humantime::parse_duration(text)
}

/// A duration that must be longer than zero (a zero head timeout would cut
/// off every client; a zero park period would park between every byte).
fn parse_positive_duration(text: &str) -> Result<humantime::Duration, String> {
    match humantime::parse_duration(text) {
        Ok(duration) if duration.is_zero() => Err("must be longer than 0".to_string()),
        Ok(duration) => Ok(duration.into()),
        Err(error) => Err(error.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_durations_must_be_longer_than_zero() {
        for flag in ["--head-timeout", "--park-after", "--body-timeout"] {
            let parsed =
                Cli::try_parse_from(["spike", "front", "--upstream", "127.0.0.1:1", flag, "0s"]);
            let error = parsed.expect_err(flag).to_string();
            assert!(error.contains("must be longer than 0"), "{flag}: {error}");
        }
        let parsed = Cli::try_parse_from([
            "spike",
            "front",
            "--upstream",
            "127.0.0.1:1",
            "--park-after",
            "100ms",
        ]);
        assert!(parsed.is_ok(), "{parsed:?}");
    }

    #[test]
    fn rate_limits_and_trusted_proxies_parse_and_bad_ones_are_refused() {
        let cli = Cli::try_parse_from([
            "spike",
            "node",
            "--event",
            "G1",
            "--stock",
            "5",
            "--rate-limit-per-buyer",
            "10/s",
            "--rate-limit-per-ip",
            "200",
            "--trusted-proxy",
            "127.0.0.1",
            "--trusted-proxy",
            "::1",
        ])
        .unwrap();
        let Command::Node(args) = cli.command else {
            panic!("node")
        };
        assert_eq!(args.rate_limit_per_buyer, NonZeroU32::new(10));
        assert_eq!(args.rate_limit_per_ip, NonZeroU32::new(200));
        assert_eq!(args.trusted_proxies.len(), 2);
        for bad in [
            ["--rate-limit-per-buyer", "0/s"],
            ["--rate-limit-per-ip", "fast"],
            ["--trusted-proxy", "proxy.example"],
        ] {
            let parsed = Cli::try_parse_from(["spike", "node", "--event", "G1", bad[0], bad[1]]);
            assert!(parsed.is_err(), "{bad:?} refused");
        }
        let parsed = Cli::try_parse_from(["spike", "demo", "--admit-rate", "10/s"]);
        assert!(parsed.is_err(), "--admit-rate needs --queue");
        let parsed = Cli::try_parse_from(["spike", "demo"]);
        assert!(parsed.is_ok(), "its defaults need nothing: {parsed:?}");
    }

    #[test]
    fn pipeline_flags_default_to_the_pipelines_defaults() {
        let cli = Cli::try_parse_from([
            "spike",
            "orders",
            "--redis",
            "r",
            "--database-url",
            "sqlite::memory:",
        ])
        .unwrap();
        let Command::Orders(args) = cli.command else {
            panic!("orders")
        };
        assert_eq!(args.pipeline.batch, defaults::BATCH);
        assert_eq!(args.pipeline.lanes, defaults::LANES);
        assert_eq!(
            Duration::from(args.pipeline.claim_idle),
            defaults::CLAIM_IDLE
        );
        assert_eq!(
            Duration::from(args.pipeline.expire_every),
            defaults::EXPIRE_EVERY
        );
        assert!(!args.pipeline.no_expiry);
    }

    #[test]
    fn help_never_shows_a_url_from_the_environment() {
        use clap::CommandFactory;
        // Help output is rendered without touching the process environment:
        // every argument that reads a URL from it hides the value.
        let command = Cli::command();
        for sub in command
            .get_subcommands()
            .flat_map(|c| std::iter::once(c).chain(c.get_subcommands()))
        {
            for arg in sub.get_arguments() {
                let from_env = arg.get_env().and_then(|name| name.to_str());
                if matches!(from_env, Some("SPIKE_REDIS" | "SPIKE_DATABASE_URL")) {
                    assert!(
                        arg.is_hide_env_values_set(),
                        "{} --{:?} would print its URL in --help",
                        sub.get_name(),
                        arg.get_long()
                    );
                }
            }
        }
    }

    #[test]
    fn sale_flags_become_a_config() {
        let cli = Cli::try_parse_from([
            "spike",
            "sale",
            "create",
            "--redis",
            "redis://x",
            "--event",
            "G1",
            "--stock",
            "10",
            "--per-user-limit",
            "2",
            "--payment-window",
            "3s",
            "--opens-at",
            "2026-12-01T08:00:00Z",
        ])
        .unwrap();
        let Command::Sale(SaleCommand::Create(args)) = cli.command else {
            panic!("parsed as another command");
        };
        let config = args.rules.to_config().unwrap();
        assert_eq!(config.total(), 10);
        assert_eq!(config.payment_window(), Duration::from_secs(3));
        assert_eq!(
            config.policy().per_user_limit().map(NonZeroU32::get),
            Some(2)
        );
        assert!(config.opens_at().is_some());
    }

    #[test]
    fn bad_flags_are_refused_by_the_parser() {
        for args in [
            vec![
                "spike", "sale", "create", "--redis", "r", "--event", "a b", "--stock", "1",
            ],
            vec![
                "spike",
                "sale",
                "create",
                "--redis",
                "r",
                "--event",
                "e",
                "--per-user-limit",
                "0",
            ],
            vec!["spike", "node", "--payment-window", "soon"],
        ] {
            assert!(Cli::try_parse_from(&args).is_err(), "{args:?}");
        }
    }
}
