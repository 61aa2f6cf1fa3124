//! The order pipeline as one running thing: writer lanes from the order
//! stream into the ledger, the waitlist's mirror, the expiry loop and the
//! settler of stalled changes,
//! started and stopped together. `spike orders`, `spike node --orders-worker`, the demo and the
//! tests all run this.

use std::num::NonZeroUsize;
use std::time::Duration;

use spike_core::{CentralStock, EventId, IdError, NodeId, OrderStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::change::run_change_settler;
use crate::defaults;
use crate::expiry::run_expiry;
use crate::ledger::OrderLedger;
use crate::mirror::{run_waitlist_mirror, MIRROR_EVERY};
use crate::writer::{OrderWriter, WriterConfig};

/// How a pipeline runs.
#[derive(Debug, Clone)]
pub struct PipelineConfig {
    /// The writer's settings; lane 1 uses its consumer name as is.
    pub writer: WriterConfig,
    /// Writers in this process (consumers `NAME`, `NAME.2`, …), so that one
    /// batch's commit overlaps the next one's read.
    pub lanes: NonZeroUsize,
    /// How often to expire orders and return seats; `None`: not here.
    pub expire_every: Option<Duration>,
}

impl PipelineConfig {
    /// The defaults of [`crate::defaults`] for `consumer`, writing `events`
    /// (empty: every event central stock has) and expiring orders here.
    pub fn new(consumer: NodeId, events: Vec<EventId>) -> Self {
        let mut writer = WriterConfig::new(consumer);
        writer.events = events;
        Self {
            writer,
            lanes: defaults::LANES,
            expire_every: Some(defaults::EXPIRE_EVERY),
        }
    }
}

/// A running pipeline; [`Pipeline::stop`] ends it.
#[derive(Debug)]
pub struct Pipeline {
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Pipeline {
    /// Starts the writer lanes and, if configured, the expiry loop. Fails
    /// only if a lane's consumer name would be too long.
    pub fn start<C>(
        central: C,
        ledger: OrderLedger,
        config: PipelineConfig,
    ) -> Result<Self, IdError>
    where
        C: CentralStock + OrderStream + Clone,
    {
        let (stop, stopped) = watch::channel(false);
        let consumer = config.writer.consumer.clone();
        let mut tasks = Vec::new();
        for lane in 1..=config.lanes.get() {
            let mut writer = config.writer.clone();
            if lane > 1 {
                writer.consumer = NodeId::parse(format!("{consumer}.{lane}"))?;
            }
            let writer = OrderWriter::new(writer, central.clone(), ledger.clone());
            let stopped = stopped.clone();
            tasks.push(tokio::spawn(async move {
                let tally = writer.run(stopped).await;
                tracing::info!(lane, ?tally, "order writer stopped");
            }));
        }
        let events = config.writer.events.clone();
        let mirror = run_waitlist_mirror(
            central.clone(),
            ledger.clone(),
            events,
            MIRROR_EVERY,
            stopped.clone(),
        );
        tasks.push(tokio::spawn(mirror));
        if let Some(every) = config.expire_every {
            let settler =
                run_change_settler(central.clone(), ledger.clone(), every, stopped.clone());
            tasks.push(tokio::spawn(settler));
            tasks.push(tokio::spawn(run_expiry(central, ledger, every, stopped)));
        }
        Ok(Self { stop, tasks })
    }

    /// Finishes the batches in hand and stops (waiting at most 10 s a task).
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        for task in self.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
        }
    }
}
