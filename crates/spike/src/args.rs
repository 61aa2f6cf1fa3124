//! The argument groups several commands share (connection limits, a sale's
//! rules, a train run, the order pipeline, the ledger, output) and the
//! parsers of their values. Each command's own arguments sit beside it in
//! `commands/`.

use std::num::{NonZeroU32, NonZeroU64, NonZeroUsize};
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use clap::Args;
use spike_core::sale::BuyerAuth;
use spike_core::sale::DEFAULT_PAYMENT_WINDOW;
use spike_core::{BuyerPolicy, EventId, NodeId, QueueConfig, QueueMode, SaleConfig, SecretUrl};
use spike_orders::defaults;

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

/// How buyers prove who they are, as `--auth` spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AuthFlag {
    /// The user_id of a request is trusted (tests, demos, closed networks).
    Open,
    /// Buyers carry an HS256 token signed by the operator's login system.
    Token,
}

/// Who waits in a sale's waiting room, as `--queue` spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum QueueFlag {
    /// Every buyer joins and buys only once admitted (`--queue` alone).
    Always,
    /// Spillover: buyers pass straight through while demand stays under
    /// `--admit-rate`; beyond it they wait, admitted in arrival order.
    Auto,
}

impl From<QueueFlag> for QueueMode {
    fn from(flag: QueueFlag) -> Self {
        match flag {
            QueueFlag::Always => QueueMode::Always,
            QueueFlag::Auto => QueueMode::Spillover,
        }
    }
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
    /// are shuffled at the opening, and buy only once admitted. `--queue
    /// auto` (spillover): buyers pass straight through while demand stays
    /// under --admit-rate, and only the excess waits.
    #[arg(
        long,
        value_enum,
        num_args = 0..=1,
        default_missing_value = "always",
        requires = "admit_rate",
        conflicts_with = "anonymous"
    )]
    pub queue: Option<QueueFlag>,
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
            (Some(flag), Some(rate)) => Some(
                QueueConfig::new(rate)?
                    .with_mode(flag.into())
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
            || self.queue.is_some()
    }
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

pub(crate) fn parse_rfc3339(text: &str) -> Result<SystemTime, humantime::TimestampError> {
    humantime::parse_rfc3339_weak(text)
}

/// A rate (an admission rate, a rate limit): `200/s` or `200`.
/// A batch bound: 1 to [`spike_core::MAX_BATCH`].
pub(crate) fn parse_batch(text: &str) -> Result<NonZeroUsize, String> {
    let bound: NonZeroUsize = text.parse().map_err(|e| format!("{e}"))?;
    if bound.get() > spike_core::MAX_BATCH {
        return Err(format!("at most {}", spike_core::MAX_BATCH));
    }
    Ok(bound)
}

/// A rate, or `off`: no limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateOrOff(pub Option<NonZeroU32>);

pub(crate) fn parse_rate_or_off(text: &str) -> Result<RateOrOff, String> {
    match text {
        "off" => Ok(RateOrOff(None)),
        rate => parse_rate(rate).map(|rate| RateOrOff(Some(rate))),
    }
}

pub(crate) fn parse_rate(text: &str) -> Result<NonZeroU32, String> {
    let number = text.strip_suffix("/s").unwrap_or(text);
    number.parse().map_err(|_| {
        format!("{text:?} is not a rate like 200/s (a whole number above 0, per second)")
    })
}

pub(crate) fn parse_duration(text: &str) -> Result<Duration, humantime::DurationError> {
    humantime::parse_duration(text)
}

/// A duration that must be longer than zero (a zero head timeout would cut
/// off every client; a zero park period would park between every byte).
pub(crate) fn parse_positive_duration(text: &str) -> Result<humantime::Duration, String> {
    match humantime::parse_duration(text) {
        Ok(duration) if duration.is_zero() => Err("must be longer than 0".to_string()),
        Ok(duration) => Ok(duration.into()),
        Err(error) => Err(error.to_string()),
    }
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
