//! `spike orders`, and what it shares with `spike node --orders-worker` and
//! the demo: opening the ledger and turning the pipeline flags into a
//! [`PipelineConfig`].

use anyhow::Context;
use spike_core::{EventId, NodeId, SecretUrl};
use spike_http::ServerOptions;
use spike_orders::{OrderLedger, Pipeline, PipelineConfig};

use super::{redis, shutdown_signal};
use crate::app::open_ledger;
use crate::args::{LedgerArgs, PipelineArgs};
use clap::Args;
use std::net::SocketAddr;

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

/// Connects to the order ledger, saying which URL failed (without its password).
pub(crate) async fn ledger(url: &SecretUrl) -> anyhow::Result<OrderLedger> {
    Ok(open_ledger(url).await?)
}

/// The pipeline the flags describe, for `events` (empty: every event).
pub(crate) fn pipeline_config(
    args: &PipelineArgs,
    events: Vec<EventId>,
) -> anyhow::Result<PipelineConfig> {
    let consumer = match &args.consumer {
        Some(name) => name.clone(),
        None => NodeId::parse(format!("orders-{}", std::process::id()))?,
    };
    let mut config = PipelineConfig::new(consumer, events);
    config.writer.batch = args.batch.get();
    config.writer.claim_idle = args.claim_idle.into();
    config.lanes = args.lanes;
    config.expire_every = (!args.no_expiry).then_some(args.expire_every.into());
    Ok(config)
}

/// `spike orders`: runs the pipeline until SIGINT/SIGTERM.
pub async fn run_orders(args: OrdersArgs) -> anyhow::Result<()> {
    let central = redis(&args.redis).await?;
    let ledger = ledger(&args.ledger.database_url).await?;
    let metrics = match args.metrics_listen {
        Some(addr) => {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on {addr}"))?;
            tracing::info!(%addr, "metrics at /metrics");
            Some(spike_http::serve_metrics(
                listener,
                ServerOptions::default(),
            ))
        }
        None => None,
    };
    let config = pipeline_config(&args.pipeline, args.events.clone())?;
    let pipeline = Pipeline::start(central, ledger, config)?;
    tracing::info!(events = ?args.events, expiry = !args.pipeline.no_expiry, "order pipeline running");
    shutdown_signal().await?;
    tracing::info!("stopping the order pipeline");
    pipeline.stop().await;
    if let Some(metrics) = metrics {
        metrics.shutdown().await;
    }
    Ok(())
}
