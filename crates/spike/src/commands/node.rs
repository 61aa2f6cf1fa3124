//! `spike node` and `spike baseline`: serve until SIGINT/SIGTERM.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use spike_core::{CentralStock, MemoryCentral, NodeId, OrderStream};
use spike_node::{serve, Node, NodeConfig, OrdersHttp, StatLog};
use spike_orders::{OrderDesk, Pipeline};
use tokio::net::TcpListener;

use super::orders::{ledger, pipeline_config};
use super::{redact, redis, shutdown_signal};
use crate::cli::{BaselineArgs, NodeArgs};

/// How long a stopping node waits for open connections.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// `spike node`: serves until SIGINT/SIGTERM, then drains and flushes.
pub async fn run_node(args: NodeArgs) -> anyhow::Result<()> {
    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let addr = listener.local_addr()?;
    let node_id = match args.node_id.clone() {
        Some(id) => id,
        None => NodeId::parse(format!("node-{}", addr.port()))?,
    };
    let stat_log = if args.no_stat_log {
        None
    } else {
        Some(StatLog::open(&args.stat_log, node_id.clone())?)
    };
    let mut config = NodeConfig::new(node_id, args.events.clone());
    config.metrics = !args.no_metrics;
    match &args.redis {
        Some(url) => {
            if args.rules.any_given() {
                bail!("with --redis the sale's rules live in Redis: set them with `spike sale create`");
            }
            let central = redis(url).await?;
            let node = Node::start(config, central.clone(), stat_log).await?;
            let pipeline = attach_orders(&node, central, &args, args.orders_worker).await?;
            tracing::info!(node = %node.id(), %addr, central = %redact(url), events = ?args.events, "node listening");
            serve_until_signal(listener, node, pipeline).await
        }
        None => {
            let [event] = args.events.as_slice() else {
                bail!("an embedded node (no --redis) serves exactly one --event, with --stock");
            };
            let sale = args.rules.to_config()?;
            let central = MemoryCentral::new();
            central.create_sale(event, &sale, false).await?;
            let node = Node::start(config, central.clone(), stat_log).await?;
            // Embedded, the stream lives in this process: only it can write it.
            let pipeline = attach_orders(&node, central, &args, true).await?;
            tracing::info!(node = %node.id(), %addr, central = "embedded", %event, stock = sale.total(), "node listening");
            serve_until_signal(listener, node, pipeline).await
        }
    }
}

/// With `--database-url`: serves the orders API and, when `worker`, runs the
/// order pipeline in this process.
async fn attach_orders<C>(
    node: &Node<C>,
    central: C,
    args: &NodeArgs,
    worker: bool,
) -> anyhow::Result<Option<Pipeline>>
where
    C: CentralStock + OrderStream + Clone + std::fmt::Debug,
{
    let Some(url) = &args.database_url else {
        return Ok(None);
    };
    let ledger = ledger(url).await?;
    let desk = OrderDesk::new(ledger.clone(), central.clone());
    node.attach_orders(Arc::new(OrdersHttp::new(desk)));
    if !worker {
        return Ok(None);
    }
    let config = pipeline_config(&args.pipeline, args.events.clone())?;
    Ok(Some(Pipeline::start(central, ledger, config)?))
}

async fn serve_until_signal<C: CentralStock>(
    listener: TcpListener,
    node: Arc<Node<C>>,
    pipeline: Option<Pipeline>,
) -> anyhow::Result<()> {
    let server = serve(listener, Arc::clone(&node), SHUTDOWN_GRACE);
    shutdown_signal().await?;
    tracing::info!(node = %node.id(), "stopping: draining connections, flushing the stat log");
    server.shutdown(SHUTDOWN_GRACE).await;
    if let Some(pipeline) = pipeline {
        pipeline.stop().await;
    }
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
    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    tracing::info!(addr = %listener.local_addr()?, "baseline listening");
    tokio::select! {
        result = spike_node::baseline::serve_baseline(listener) => result?,
        result = shutdown_signal() => result?,
    }
    Ok(())
}
