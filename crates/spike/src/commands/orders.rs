//! `spike orders` and the order pipeline it shares with `spike node
//! --orders-worker` and the demo: a writer from the order stream into the
//! ledger, plus the expiry loop, stopped together.

use std::time::Duration;

use anyhow::Context;
use spike_core::{CentralStock, EventId, NodeId, OrderStream};
use spike_orders::{run_expiry, OrderLedger, OrderWriter, WriterConfig};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::{redis, shutdown_signal};
use crate::cli::{OrdersArgs, PipelineArgs};

/// Connects to the order ledger, saying which URL failed.
pub(crate) async fn ledger(url: &str) -> anyhow::Result<OrderLedger> {
    OrderLedger::connect(url)
        .await
        .with_context(|| format!("cannot open the order ledger at {}", redact_url(url)))
}

/// `postgres://user:secret@host/db` → `postgres://***@host/db`.
fn redact_url(url: &str) -> String {
    match (url.split_once("://"), url.rfind('@')) {
        (Some((scheme, _)), Some(at)) => format!("{scheme}://***{}", &url[at..]),
        _ => url.to_string(),
    }
}

/// A running order pipeline.
#[derive(Debug)]
pub(crate) struct Pipeline {
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Pipeline {
    /// Starts the writer (and, unless `--no-expiry`, the expiry loop).
    pub(crate) fn start<C>(
        central: C,
        ledger: OrderLedger,
        events: Vec<EventId>,
        args: &PipelineArgs,
    ) -> anyhow::Result<Self>
    where
        C: CentralStock + OrderStream + Clone,
    {
        let consumer = match &args.consumer {
            Some(name) => name.clone(),
            None => NodeId::parse(format!("orders-{}", std::process::id()))?,
        };
        let (stop, stopped) = watch::channel(false);
        let mut tasks = Vec::new();
        // Lanes overlap one batch's database commit with the next one's
        // stream read; each is a consumer of its own (`NAME`, `NAME.2`, …).
        for lane in 1..=args.lanes.get() {
            let name = match lane {
                1 => consumer.clone(),
                n => NodeId::parse(format!("{consumer}.{n}"))?,
            };
            let mut config = WriterConfig::new(name);
            config.events = events.clone();
            config.batch = args.batch.get();
            config.claim_idle = args.claim_idle;
            let writer = OrderWriter::new(config, central.clone(), ledger.clone());
            let stopped = stopped.clone();
            tasks.push(tokio::spawn(async move {
                let tally = writer.run(stopped).await;
                tracing::info!(lane, ?tally, "order writer stopped");
            }));
        }
        if !args.no_expiry {
            tasks.push(tokio::spawn(run_expiry(
                central,
                ledger,
                args.expire_every,
                stopped,
            )));
        }
        Ok(Self { stop, tasks })
    }

    /// Finishes the batches in hand and stops.
    pub(crate) async fn stop(self) {
        let _ = self.stop.send(true);
        for task in self.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
        }
    }
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
    let pipeline = Pipeline::start(central, ledger, args.events.clone(), &args.pipeline)?;
    tracing::info!(events = ?args.events, expiry = !args.pipeline.no_expiry, "order pipeline running");
    shutdown_signal().await?;
    tracing::info!("stopping the order pipeline");
    pipeline.stop().await;
    Ok(())
}
