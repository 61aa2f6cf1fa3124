//! `spike node` and `spike baseline`: serve until SIGINT/SIGTERM.

use std::sync::atomic::Ordering;

use anyhow::{bail, Context};
use spike_auth::KeyRing;
use spike_core::{CentralStock, MemoryCentral, NodeId, OrderStream};
use spike_http::{ServerOptions, TrustedProxies};
use spike_node::rate_limit::RateLimits;
use spike_node::NodeConfig;
use spike_redis::RedisSettings;
use tokio::net::TcpListener;

use super::orders::pipeline_config;
use super::{connect_redis, shutdown_signal};
use crate::app::{LedgerSource, NodeApp, NodeSettings, OrdersSettings, DEFAULT_GRACE};
use crate::cli::{BaselineArgs, NodeArgs};

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
            let central = connect_redis(redis).await?;
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
    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let server =
        spike_node::baseline::serve_baseline(listener, ServerOptions::with_grace(DEFAULT_GRACE));
    tracing::info!(addr = %server.addr(), "baseline listening");
    shutdown_signal().await?;
    server.shutdown().await;
    Ok(())
}
