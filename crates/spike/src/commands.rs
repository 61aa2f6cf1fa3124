//! What each subcommand does, once its arguments are parsed.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use spike_core::{CentralStock, MemoryCentral, NodeId, SaleSnapshot};
use spike_node::{serve, Node, NodeConfig, StatLog};
use spike_redis::{RedisCentral, RedisSettings};
use tokio::net::TcpListener;

use crate::cli::{BaselineArgs, NodeArgs, SaleCreateArgs, SaleShowArgs};

/// How long a stopping node waits for open connections.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

async fn redis(url: &str) -> anyhow::Result<RedisCentral> {
    RedisCentral::connect(&RedisSettings::new(url))
        .await
        .with_context(|| format!("cannot reach Redis at {url}"))
}

/// `spike sale create`: creates the sale, or explains why not.
pub async fn sale_create(args: SaleCreateArgs) -> anyhow::Result<()> {
    let config = args.rules.to_config()?;
    let central = redis(&args.redis).await?;
    central
        .create_sale(&args.event, &config, args.force)
        .await?;
    println!(
        "created sale {}: {} seats, {}",
        args.event,
        config.total(),
        match config.policy().per_user_limit() {
            Some(limit) => format!("{limit} per user"),
            None => "anonymous".to_string(),
        }
    );
    Ok(())
}

/// `spike sale show`: prints the sale's state.
pub async fn sale_show(args: SaleShowArgs) -> anyhow::Result<()> {
    let central = redis(&args.redis).await?;
    let Some(snapshot) = central.snapshot(&args.event).await? else {
        bail!("event {} has no sale in {}", args.event, args.redis);
    };
    if args.json {
        println!("{}", snapshot_json(args.event.as_str(), &snapshot));
    } else {
        print!("{}", snapshot_table(args.event.as_str(), &snapshot));
    }
    Ok(())
}

fn snapshot_json(event: &str, s: &SaleSnapshot) -> serde_json::Value {
    serde_json::json!({
        "event": event,
        "total": s.config.total(),
        "sold": s.sold,
        "remaining": s.remaining(),
        "buyers": s.buyers,
        "orders_in_stream": s.orders_in_stream,
        "per_user_limit": s.config.policy().per_user_limit().map(|l| l.get()),
        "opens_at": s.config.opens_at().map(|t| humantime::format_rfc3339(t).to_string()),
        "payment_window_secs": s.config.payment_window().as_secs_f64(),
    })
}

fn snapshot_table(event: &str, s: &SaleSnapshot) -> String {
    let limit = s
        .config
        .policy()
        .per_user_limit()
        .map_or("anonymous".to_string(), |l| l.to_string());
    let opens = s.config.opens_at().map_or("open".to_string(), |t| {
        humantime::format_rfc3339(t).to_string()
    });
    format!(
        "event            {event}\ntotal            {}\nsold             {}\nremaining        {}\n\
         buyers           {}\norders in stream {}\nper-user limit   {limit}\nopens at         {opens}\n\
         payment window   {}\n",
        s.config.total(),
        s.sold,
        s.remaining(),
        s.buyers,
        s.orders_in_stream,
        humantime::format_duration(s.config.payment_window()),
    )
}

/// `spike node`: serves until SIGINT/SIGTERM, then drains and flushes.
pub async fn run_node(args: NodeArgs) -> anyhow::Result<()> {
    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let addr = listener.local_addr()?;
    let node_id = match args.node_id {
        Some(id) => id,
        None => NodeId::parse(format!("node-{}", addr.port()))?,
    };
    let stat_log = if args.no_stat_log {
        None
    } else {
        Some(StatLog::open(&args.stat_log, node_id.clone())?)
    };
    let config = NodeConfig::new(node_id, args.events.clone());
    match &args.redis {
        Some(url) => {
            if args.rules.any_given() {
                bail!("with --redis the sale's rules live in Redis: set them with `spike sale create`");
            }
            let central = redis(url).await?;
            let node = Node::start(config, central, stat_log).await?;
            tracing::info!(node = %node.id(), %addr, central = %url, events = ?args.events, "node listening");
            serve_until_signal(listener, node).await
        }
        None => {
            let [event] = args.events.as_slice() else {
                bail!("an embedded node (no --redis) serves exactly one --event, with --stock");
            };
            let sale = args.rules.to_config()?;
            let central = MemoryCentral::new();
            central.create_sale(event, &sale, false).await?;
            let node = Node::start(config, central, stat_log).await?;
            tracing::info!(node = %node.id(), %addr, central = "embedded", %event, stock = sale.total(), "node listening");
            serve_until_signal(listener, node).await
        }
    }
}

async fn serve_until_signal<C: CentralStock>(
    listener: TcpListener,
    node: Arc<Node<C>>,
) -> anyhow::Result<()> {
    let server = serve(listener, Arc::clone(&node), SHUTDOWN_GRACE);
    shutdown_signal().await?;
    tracing::info!(node = %node.id(), "stopping: draining connections, flushing the stat log");
    server.shutdown(SHUTDOWN_GRACE).await;
    if let Some(log) = node.stat_log() {
        let counters = log.counters();
        tracing::info!(
            node = %node.id(),
            lines = counters.written.load(Ordering::Relaxed),
            dropped = counters.dropped.load(Ordering::Relaxed),
            "node stopped"
        );
    }
    Ok(())
}

async fn shutdown_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut terminate = signal(SignalKind::terminate())?;
    tokio::select! {
        result = tokio::signal::ctrl_c() => result?,
        _ = terminate.recv() => {}
    }
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
