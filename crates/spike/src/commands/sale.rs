//! `spike sale create`, `spike train create`, `spike sale show` and
//! `spike sale recover`.

use std::time::{Duration, Instant};

use anyhow::bail;
use spike_core::sale::BuyerAuth;
use spike_core::{
    BuyerPolicy, CentralStock, CreateSaleError, EventId, SaleConfig, SaleFigures, SaleLife,
    SaleSnapshot, SecretUrl,
};
use spike_orders::recover_sale;
use spike_redis::RedisCentral;

use super::audit::logged_answers;
use super::orders::ledger;
use super::redis;
use crate::args::{parse_duration, SaleRecords, SaleRules, TrainArgs};
use anyhow::Context;
use clap::Args;
use clap::Subcommand;
use std::path::PathBuf;

/// `spike sale …`
#[derive(Debug, Subcommand)]
pub enum SaleCommand {
    /// Create a sale (refused if the event exists, unless --force).
    Create(SaleCreateArgs),
    /// Print a sale's state: total, sold, remaining, buyers, orders.
    Show(SaleShowArgs),
    /// Rebuild a sale's central stock from the order ledger and the stream after Redis lost it.
    Recover(SaleRecoverArgs),
    /// Pause a running sale on every node (through one node's admin surface, operator key).
    Pause(super::control::PauseArgs),
    /// Resume a paused sale.
    Resume(super::control::PauseArgs),
    /// Print a sale's operator log: who paused, resumed, changed or revoked what, and when.
    Log(super::control::LogArgs),
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

/// Creates `event` with `config` in Redis (replacing it with `force`), and
/// records it in the ledger at `database_url` if given, in a new life (a
/// number drawn now: order keys of an earlier life open nothing in it).
/// The ledger goes first: a sale that nodes can sell always has its rules
/// recorded, and a create that fails (the ledger unreachable, say) leaves
/// no sale live.
async fn create(
    redis_url: &SecretUrl,
    event: &EventId,
    config: &SaleConfig,
    force: bool,
    database_url: Option<&SecretUrl>,
) -> anyhow::Result<()> {
    let ledger = match database_url {
        Some(url) => Some(ledger(url).await?),
        None => None,
    };
    let config = &config
        .clone()
        .in_life(SaleLife::from_random(rand::random()));
    let central = redis(redis_url).await?;
    if !force && central.snapshot(event).await?.is_some() {
        return Err(CreateSaleError::AlreadyExists(event.clone()).into());
    }
    if let Some(ledger) = ledger {
        ledger.record_sale(event, config).await?;
    }
    central.create_sale(event, config, force).await?;
    Ok(())
}

/// `spike sale create`: creates the sale, or explains why not.
pub async fn sale_create(args: SaleCreateArgs) -> anyhow::Result<()> {
    let config = args.rules.to_config()?;
    create(
        &args.redis,
        &args.event,
        &config,
        args.force,
        args.database_url.as_ref(),
    )
    .await?;
    println!(
        "created sale {}: {} seats, {}, buyers {}",
        args.event,
        config.total(),
        match config.policy().per_user_limit() {
            Some(limit) => format!("{limit} per user"),
            None => "anonymous".to_string(),
        },
        match config.policy() {
            BuyerPolicy::Identified {
                auth: BuyerAuth::Token,
                ..
            } => "prove who they are with a signed token (--auth token)",
            BuyerPolicy::Identified {
                auth: BuyerAuth::Open,
                ..
            } => "are trusted by the user_id they give (--auth open)",
            BuyerPolicy::Anonymous => "are anonymous",
        },
    );
    Ok(())
}

/// `spike train create`: creates the train run's sale, or explains why not.
pub async fn train_create(args: TrainCreateArgs) -> anyhow::Result<()> {
    let (run, config) = args.to_config()?;
    let event = run.event();
    create(
        &args.redis,
        &event,
        &config,
        args.force,
        args.database_url.as_ref(),
    )
    .await?;
    if let Some(layout) = config.train() {
        let classes: Vec<String> = (layout.classes().iter())
            .map(|c| format!("{} {} seats", c.name(), c.seats()))
            .collect();
        println!(
            "created train {} on {} as event {event}: {} stations ({}), {}; buy with \
             /buy/ticket?train={}&date={}&from=…&to=…&class=…",
            run.train(),
            run.date(),
            layout.stations().len(),
            layout.stations().join(" → "),
            classes.join(", "),
            run.train(),
            run.date(),
        );
    }
    Ok(())
}

/// `spike sale recover`: rebuilds central stock from the ledger and the
/// stream's unwritten entries. Nodes refuse the sale while it is missing,
/// and sell again from the rebuilt state within a second.
pub async fn sale_recover(args: SaleRecoverArgs) -> anyhow::Result<()> {
    let records = &args.records;
    let central = redis(&records.redis).await?;
    let ledger = ledger(&records.ledger.database_url).await?;
    let event = &records.event;
    if !args.while_selling {
        refuse_while_selling(&central, event, args.quiet_for).await?;
    }
    let logged = settled_logged_answers(event, &args.stat_logs).await?;
    let recovered = recover_sale(&central, &ledger, event, &logged).await?;
    let restored = &recovered.restoration;
    if recovered.waitlist > 0 {
        let waiting = (restored.waitlist.iter())
            .filter(|entry| entry.state == spike_core::WaitState::Waiting)
            .count();
        println!(
            "waitlist of {event} restored: {} orders, {waiting} waiting before the refill, {} \
             filled by it from the rebuilt run's free seats",
            recovered.waitlist, recovered.refilled
        );
    }
    if !restored.operator_log.is_empty() {
        let standing = spike_core::control::StandingControls::of(&restored.operator_log);
        println!(
            "operator log of {event} restored: {} {}; the sale is {}, {} buyers revoked",
            restored.operator_log.len(),
            if restored.operator_log.len() == 1 {
                "entry"
            } else {
                "entries"
            },
            if standing.paused {
                "paused"
            } else {
                "not paused"
            },
            standing.revoked.len(),
        );
    }
    if recovered.queue_reset {
        println!(
            "waiting room of {event} reset: buyers join again (their admissions were lost with \
             central stock); buyers holding seats are recorded as admitted before the reset"
        );
    }
    println!(
        "recovered sale {event}: {} seats held ({} orders in the ledger, {} of them written now \
         from the stat logs only, {} from the stream's unwritten entries), {} given back, next \
         order after sequence {}",
        restored.holding.len(),
        recovered.ledger_orders,
        recovered.from_stat_logs,
        recovered.from_stream,
        restored.released.len(),
        restored.last_sequence,
    );
    Ok(())
}

/// Fails if central stock still has the sale and it changes within
/// `quiet_for`: nodes are selling it, and a rebuild would drop their sales.
async fn refuse_while_selling(
    central: &RedisCentral,
    event: &EventId,
    quiet_for: Duration,
) -> anyhow::Result<()> {
    let activity = |snapshot: Option<SaleSnapshot>| snapshot.map(|s| (s.sold, s.orders_in_stream));
    let Some(first) = activity(central.snapshot(event).await?) else {
        return Ok(()); // the sale is gone from central stock: no node sells it
    };
    let deadline = Instant::now() + quiet_for;
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = activity(central.snapshot(event).await?);
        if now != Some(first) {
            bail!(
                "sale {event} is still changing in central stock (sold {} → {}): nodes are \
                 selling it; stop them first, or pass --while-selling",
                first.0,
                now.map_or(0, |(sold, _)| sold)
            );
        }
    }
    Ok(())
}

/// How long the sales the stat logs report must stay the same before a
/// recovery takes them: longer than a loaded machine may keep a node's
/// stat-log writer from running (500 ms was not, once, in CI).
const STAT_LOGS_SETTLED: Duration = Duration::from_secs(2);

/// The longest a recovery waits for the stat logs' sales to settle.
const STAT_LOGS_WAIT: Duration = Duration::from_secs(20);

/// The answers the stat logs at `paths` report about `event`, once the
/// sales among them have stayed the same for [`STAT_LOGS_SETTLED`] (at most
/// [`STAT_LOGS_WAIT`]): a node writes its answers' lines from a queue, so
/// the last sales told before central stock was lost may still be on their
/// way to the disk when a recovery starts, and a sale read too late is a
/// seat restored too few. (The nodes' "try again" answers to a missing
/// sale keep coming meanwhile; only sales count.)
async fn settled_logged_answers(
    event: &EventId,
    paths: &[std::path::PathBuf],
) -> anyhow::Result<spike_core::reconcile::LoggedAnswers> {
    let mut answers = logged_answers(event, paths)?;
    if paths.is_empty() {
        return Ok(answers);
    }
    let deadline = Instant::now() + STAT_LOGS_WAIT;
    let mut since = Instant::now();
    while Instant::now() < deadline && since.elapsed() < STAT_LOGS_SETTLED {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = logged_answers(event, paths)?;
        if now.sales.len() != answers.sales.len() {
            since = Instant::now();
        }
        answers = now;
    }
    Ok(answers)
}

/// `spike sale show`: prints the sale's state.
pub async fn sale_show(args: SaleShowArgs) -> anyhow::Result<()> {
    let central = redis(&args.redis).await?;
    let Some(snapshot) = central.snapshot(&args.event).await? else {
        bail!("event {} has no sale in {}", args.event, args.redis);
    };
    let occupancy = match snapshot.config.train() {
        Some(_) => central.occupancy(&args.event).await?,
        None => None,
    };
    let figures = snapshot.figures(occupancy.as_ref());
    if args.json {
        println!(
            "{}",
            snapshot_json(args.event.as_str(), &snapshot, &figures)
        );
    } else {
        print!(
            "{}",
            snapshot_table(args.event.as_str(), &snapshot, &figures)
        );
    }
    Ok(())
}

fn snapshot_json(event: &str, s: &SaleSnapshot, figures: &SaleFigures) -> serde_json::Value {
    serde_json::json!({
        "event": event,
        "unit": figures.unit.name(),
        "total": figures.total,
        "sold": figures.sold,
        "remaining": figures.remaining,
        "orders": figures.orders,
        "train": s.config.train().map(|layout| serde_json::json!({
            "stations": layout.stations(),
            "classes": (layout.classes().iter())
                .map(|c| serde_json::json!({"class": c.name(), "carriages": c.carriages(), "seats": c.seats()}))
                .collect::<Vec<_>>(),
        })),
        "buyers": s.buyers,
        "orders_in_stream": s.orders_in_stream,
        "per_user_limit": s.config.policy().per_user_limit().map(|l| l.get()),
        "auth": s.config.policy().auth_name(),
        "opens_at": s.config.opens_at().map(|t| humantime::format_rfc3339(t).to_string()),
        "payment_window_secs": s.config.payment_window().as_secs_f64(),
        "queue": s.config.queue().map(|q| serde_json::json!({
            "mode": q.mode().name(),
            "admit_rate_per_s": q.admit_rate().get(),
            "max_active": q.max_active().map(|m| m.get()),
            "admit_window_secs": q.admit_window().as_secs_f64(),
            "joins_open_at": q.joins_open_at().map(|t| humantime::format_rfc3339(t).to_string()),
        })),
    })
}

fn snapshot_table(event: &str, s: &SaleSnapshot, figures: &SaleFigures) -> String {
    let limit = s
        .config
        .policy()
        .per_user_limit()
        .map_or("anonymous".to_string(), |l| l.to_string());
    let opens = s.config.opens_at().map_or("open".to_string(), |t| {
        humantime::format_rfc3339(t).to_string()
    });
    let unit = figures.unit.name();
    let train = s.config.train().map_or(String::new(), |layout| {
        let classes: Vec<String> = (layout.classes().iter())
            .map(|c| format!("{} {}×{}", c.name(), c.carriages(), c.seats_per_carriage()))
            .collect();
        format!(
            "stations         {}\nclasses          {}\n",
            layout.stations().join(" → "),
            classes.join(", ")
        )
    });
    format!(
        "event            {event}\n{train}total            {} {unit}\nsold             {} {unit}\n\
         remaining        {} {unit}\norders           {}\n\
         buyers           {}\norders in stream {}\nper-user limit   {limit}\nauth             {}\n\
         opens at         {opens}\npayment window   {}\n",
        figures.total,
        figures.sold,
        figures.remaining,
        figures.orders,
        s.buyers,
        s.orders_in_stream,
        s.config.policy().auth_name(),
        humantime::format_duration(s.config.payment_window()),
    ) + &queue_lines(s)
}

fn queue_lines(s: &SaleSnapshot) -> String {
    let Some(queue) = s.config.queue() else {
        return "waiting room     none\n".to_owned();
    };
    let cap = queue
        .max_active()
        .map_or("no cap".to_owned(), |m| m.to_string());
    let joins = queue
        .joins_open_at()
        .map_or("from creation".to_string(), |t| {
            humantime::format_rfc3339(t).to_string()
        });
    format!(
        "waiting room     {}, {}/s, max active {cap}, admission window {}, joining {joins}\n",
        queue.mode().name(),
        queue.admit_rate(),
        humantime::format_duration(queue.admit_window()),
    )
}
