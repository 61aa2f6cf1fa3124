//! `spike bench`: drive a load, then print the report (text or JSON) and
//! optionally a plot. Returns whether every invariant held.

use anyhow::bail;
use spike_bench::{BenchConfig, CentralView, Report, Target, Users};
use spike_core::{CentralStock, EventId, SaleSnapshot};

use super::redis;
use crate::args::{parse_duration, OutputArgs};
use clap::Args;
use spike_core::SecretUrl;
use std::time::Duration;

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
    /// A connection storm: open the connections after the clock starts, as
    /// fast as this process can (at most 256 handshakes at once), so that
    /// each connection's opening counts in its first request's latency,
    /// counted from when that connection began to open (by default they
    /// are all opened before).
    #[arg(long)]
    pub storm: bool,
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

/// Runs the benchmark; `Ok(false)` when an invariant failed.
pub async fn run_bench(args: BenchArgs) -> anyhow::Result<bool> {
    let target: Target = args.url.parse()?;
    let mut config = BenchConfig::new(target, args.users, args.connections);
    config.rate = args.rate;
    config.storm = args.storm;
    config.timeout = args.timeout;
    config.progress = !args.output.no_progress;
    if let Some(seed) = args.seed {
        config.user_ids = Users::Seeded(seed);
    }
    let data = spike_bench::run(&config).await?;
    let central = match (&args.redis, &args.event) {
        (Some(url), Some(event)) => Some(central_view(&redis(url).await?, event).await?),
        _ => None,
    };
    let report = Report::new(&config, &data, central, args.expect_sell_out);
    print_report(&report, &args.output)?;
    Ok(report.all_checks_passed())
}

/// What central stock says about `event`, for the invariant checks.
pub(super) async fn central_view<C: CentralStock>(
    central: &C,
    event: &EventId,
) -> anyhow::Result<CentralView> {
    let Some(snapshot) = central.snapshot(event).await? else {
        bail!("event {event} has no sale in central stock");
    };
    Ok(view_of(&snapshot))
}

fn view_of(snapshot: &SaleSnapshot) -> CentralView {
    let one_per_user = snapshot
        .config
        .policy()
        .per_user_limit()
        .is_some_and(|limit| limit.get() == 1);
    CentralView {
        total: snapshot.config.total(),
        sold: snapshot.sold,
        buyers: one_per_user.then_some(snapshot.buyers),
    }
}

/// Prints `report` as text or JSON, and draws the plot if asked.
pub(super) fn print_report(report: &Report, output: &OutputArgs) -> anyhow::Result<()> {
    if output.json {
        println!("{}", serde_json::to_string_pretty(report)?);
    } else {
        print!("{report}");
    }
    if let Some(path) = &output.plot {
        spike_bench::plot::draw(report, path)?;
        eprintln!("plot written to {}", path.display());
    }
    Ok(())
}
