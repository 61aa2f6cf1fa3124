//! `spike orders`, and what it shares with `spike node --orders-worker` and
//! the demo: opening the ledger and turning the pipeline flags into a
//! [`PipelineConfig`].

use anyhow::Context;
use spike_core::{EventId, NodeId};
use spike_orders::{OrderLedger, Pipeline, PipelineConfig, WriterConfig};

use super::{redact, redis, shutdown_signal};
use crate::cli::{OrdersArgs, PipelineArgs};

/// Connects to the order ledger, saying which URL failed.
pub(crate) async fn ledger(url: &str) -> anyhow::Result<OrderLedger> {
    OrderLedger::connect(url)
        .await
        .with_context(|| format!("cannot open the order ledger at {}", redact(url)))
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
    let mut writer = WriterConfig::new(consumer);
    writer.events = events;
    writer.batch = args.batch.get();
    writer.claim_idle = args.claim_idle;
    Ok(PipelineConfig {
        writer,
        lanes: args.lanes,
        expire_every: (!args.no_expiry).then_some(args.expire_every),
    })
}

/// `spike orders`: runs the pipeline until SIGINT/SIGTERM.
pub async fn run_orders(args: OrdersArgs) -> anyhow::Result<()> {
    let central = redis(&args.redis).await?;
    let ledger = ledger(&args.ledger.database_url).await?;
    if let Some(addr) = args.metrics_listen {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr}"))?;
        tracing::info!(%addr, "metrics at /metrics");
        tokio::spawn(spike_node::baseline::serve_metrics(listener));
    }
    let config = pipeline_config(&args.pipeline, args.events.clone())?;
    let pipeline = Pipeline::start(central, ledger, config)?;
    tracing::info!(events = ?args.events, expiry = !args.pipeline.no_expiry, "order pipeline running");
    shutdown_signal().await?;
    tracing::info!("stopping the order pipeline");
    pipeline.stop().await;
    Ok(())
}
