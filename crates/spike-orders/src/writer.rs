//! The order writer: reads each event's order stream through the consumer
//! group, writes each batch to the ledger in one transaction, and
//! acknowledges it only after the commit. Entries a crashed writer left
//! pending are reclaimed after `claim_idle` and finished here. Any number of
//! writers may run at once; a replayed entry changes nothing.

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime};

use metrics::{counter, gauge};
use spike_core::time::unix_millis;
use spike_core::{CentralError, CentralStock, EventId, NodeId, OrderStream, StreamEntry};
use tokio::sync::watch;

use crate::defaults;
use crate::error::OrdersError;
use crate::ledger::OrderLedger;

/// Pause after a failed step before trying again.
const RETRY_PAUSE: Duration = Duration::from_millis(250);

/// How a writer works.
#[derive(Debug, Clone)]
pub struct WriterConfig {
    /// This writer's consumer name (unique per running writer).
    pub consumer: NodeId,
    /// Events to write; empty: every event central stock has, refreshed each second.
    pub events: Vec<EventId>,
    /// Entries per read and per transaction.
    pub batch: usize,
    /// How long an entry may stay pending in another writer before this one takes it.
    pub claim_idle: Duration,
    /// Pause when there was nothing to write.
    pub idle_pause: Duration,
}

impl WriterConfig {
    /// The defaults of [`crate::defaults`].
    pub fn new(consumer: NodeId) -> Self {
        Self {
            consumer,
            events: Vec::new(),
            batch: defaults::BATCH.get(),
            claim_idle: defaults::CLAIM_IDLE,
            idle_pause: defaults::IDLE_PAUSE,
        }
    }
}

/// What one event's writer remembers about it.
#[derive(Debug, Clone, Copy)]
struct EventRules {
    payment_window: Duration,
}

/// Counters of one writer's work.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriterTally {
    /// Orders this writer wrote.
    pub written: u64,
    /// Entries that were already in the ledger.
    pub replayed: u64,
    /// Entries taken over from another writer.
    pub reclaimed: u64,
    /// Entries refused because their order id was already used by another sale.
    pub conflicts: u64,
    /// Entries dropped because a recovery closed the life of central stock
    /// they came from without restoring them.
    pub fenced: u64,
}

/// Writes the order stream into the ledger.
#[derive(Debug)]
pub struct OrderWriter<C> {
    config: WriterConfig,
    central: C,
    ledger: OrderLedger,
    rules: HashMap<EventId, EventRules>,
    tally: WriterTally,
}

impl<C: CentralStock + OrderStream> OrderWriter<C> {
    /// A writer from `central`'s stream into `ledger`.
    pub fn new(config: WriterConfig, central: C, ledger: OrderLedger) -> Self {
        Self {
            config,
            central,
            ledger,
            rules: HashMap::new(),
            tally: WriterTally::default(),
        }
    }

    /// Runs until `stop` turns true, finishing the batch in hand first.
    pub async fn run(mut self, mut stop: watch::Receiver<bool>) -> WriterTally {
        let mut events = Vec::new();
        let mut listed_at: Option<Instant> = None;
        let mut claimed_at = Instant::now();
        let mut reported_at = Instant::now();
        while !*stop.borrow() {
            if listed_at.is_none_or(|at| at.elapsed() >= Duration::from_secs(1)) {
                match self.list_events().await {
                    Ok(listed) => events = listed,
                    Err(error) => tracing::warn!(%error, "order writer: cannot list events"),
                }
                listed_at = Some(Instant::now());
            }
            let reclaim = claimed_at.elapsed() >= self.config.claim_idle / 2;
            if reclaim {
                claimed_at = Instant::now();
            }
            let report = reported_at.elapsed() >= Duration::from_secs(1);
            if report {
                reported_at = Instant::now();
            }
            let mut busy = false;
            let mut failed = false;
            for event in &events {
                match self.step(event, reclaim, report).await {
                    Ok(full) => busy |= full,
                    Err(error) => {
                        tracing::warn!(%event, %error, "order writer: will retry");
                        self.rules.remove(event);
                        failed = true;
                    }
                }
            }
            // After a failure, back off rather than retry (and log) 200 times a second.
            let pause = if failed {
                RETRY_PAUSE
            } else {
                self.config.idle_pause
            };
            if failed || !busy {
                tokio::select! {
                    _ = tokio::time::sleep(pause) => {}
                    _ = stop.changed() => {}
                }
            }
        }
        self.tally
    }

    async fn list_events(&self) -> Result<Vec<EventId>, CentralError> {
        if self.config.events.is_empty() {
            self.central.events().await
        } else {
            Ok(self.config.events.clone())
        }
    }

    /// Learns an event's payment window and records its rules in the ledger.
    async fn rules(&mut self, event: &EventId) -> Result<Option<EventRules>, OrdersError> {
        if let Some(rules) = self.rules.get(event) {
            return Ok(Some(*rules));
        }
        let Some(snapshot) = self.central.snapshot(event).await? else {
            return Ok(None);
        };
        self.ledger.record_sale(event, &snapshot.config).await?;
        let rules = EventRules {
            payment_window: snapshot.config.payment_window(),
        };
        self.rules.insert(event.clone(), rules);
        Ok(Some(rules))
    }

    /// Reclaims stale entries (when `reclaim`) and writes one batch of new
    /// ones. Returns whether the batch was full (more may be waiting).
    async fn step(
        &mut self,
        event: &EventId,
        reclaim: bool,
        report: bool,
    ) -> Result<bool, OrdersError> {
        let Some(rules) = self.rules(event).await? else {
            return Ok(false);
        };
        let (consumer, batch) = (self.config.consumer.clone(), self.config.batch);
        if reclaim {
            let idle = self.config.claim_idle;
            let stale = self.central.reclaim(event, &consumer, idle, batch).await?;
            if !stale.is_empty() {
                tracing::info!(%event, entries = stale.len(), "order writer: took over entries left pending");
                self.tally.reclaimed += stale.len() as u64;
                self.write(event, rules, &stale).await?;
            }
        }
        let fresh = self.central.read_new(event, &consumer, batch).await?;
        self.write(event, rules, &fresh).await?;
        if report {
            let backlog = self.central.backlog(event).await?;
            let labels = [("event", event.to_string())];
            gauge!("spike_order_stream_backlog", &labels).set(backlog.entries as f64);
            gauge!("spike_order_stream_pending", &labels).set(backlog.pending as f64);
        }
        Ok(fresh.len() == batch)
    }

    /// Writes entries, then acknowledges every entry now in the ledger.
    async fn write(
        &mut self,
        event: &EventId,
        rules: EventRules,
        entries: &[StreamEntry],
    ) -> Result<(), OrdersError> {
        if entries.is_empty() {
            return Ok(());
        }
        let now = unix_millis(SystemTime::now());
        let inserted = self
            .ledger
            .insert(entries, rules.payment_window, now)
            .await?;
        let done: Vec<u64> = (entries.iter())
            .filter(|entry| !inserted.conflicts.contains(&entry.order))
            .map(|entry| entry.sequence)
            .collect();
        self.central.acknowledge(event, &done).await?;
        if !inserted.fenced.is_empty() {
            tracing::warn!(
                %event,
                orders = ?inserted.fenced,
                "entries read before central stock lost state, which `sale recover` did not \
                 restore: central stock does not count their seats; dropped"
            );
        }
        if !inserted.conflicts.is_empty() {
            tracing::error!(
                %event,
                orders = ?inserted.conflicts,
                "order ids already used by other sales: central stock lost state; \
                 stop selling and run `spike sale recover`; these entries stay in the stream"
            );
        }
        counter!("spike_orders_written_total").increment(inserted.written);
        self.tally.written += inserted.written;
        self.tally.replayed += inserted.replayed;
        self.tally.conflicts += inserted.conflicts.len() as u64;
        self.tally.fenced += inserted.fenced.len() as u64;
        Ok(())
    }
}
