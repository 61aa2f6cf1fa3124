//! The refresh loop: sold-out and missing sales ask central stock again,
//! train runs reload their occupancy, and new sales are discovered; plus
//! the timer every background step of a node runs on.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

use spike_core::{CentralStock, EventId, TrainRun};

use super::event::{open_lane, EventState};
use super::Node;
use crate::train::TrainState;

impl<C: CentralStock> Node<C> {
    /// One refresh pass: sold-out or missing events ask central for their
    /// state (picking up returned seats), and new events are discovered.
    pub(super) async fn refresh(&self) {
        self.sync_metrics();
        let events = self.events.load_full();
        for (event, state) in events.iter() {
            if let Some(train) = &state.train {
                self.refresh_train(event, state, train).await;
                continue;
            }
            let missing = state.is_missing();
            if !missing && !state.stock.is_sold_out() {
                continue;
            }
            match self.central.snapshot(event).await {
                Ok(Some(snapshot)) => {
                    if missing {
                        tracing::info!(%event, "sale state is back in central stock");
                        state.stock.reset(snapshot.remaining());
                        state.set_missing(false);
                    } else {
                        state.stock.raise_to(snapshot.remaining());
                    }
                }
                Ok(None) => state.set_missing(true),
                Err(error) => tracing::debug!(%error, %event, "refresh failed"),
            }
        }
        if self.config.events.is_empty() {
            self.discover(&events).await;
        }
    }

    /// A train run's refresh, every period whatever it sold: central's
    /// occupancy becomes the memo and the availability table.
    pub(super) async fn refresh_train(
        &self,
        event: &EventId,
        state: &EventState,
        train: &TrainState,
    ) {
        match self.central.occupancy(event).await {
            Ok(Some(occupancy)) => {
                train.refreshed(occupancy, TrainRun::of_event(event).as_ref());
                state.set_missing(false);
            }
            Ok(None) => state.set_missing(true),
            Err(error) => tracing::debug!(%error, %event, "train refresh failed"),
        }
    }

    pub(super) async fn discover(&self, known: &HashMap<EventId, Arc<EventState>>) {
        let Ok(names) = self.central.events().await else {
            return;
        };
        let mut grown = known.clone();
        for event in names.into_iter().filter(|e| !known.contains_key(e)) {
            if let Ok(Some(snapshot)) = self.central.snapshot(&event).await {
                tracing::info!(%event, total = snapshot.config.total(), "serving new event");
                let remaining = snapshot.remaining();
                let lane = open_lane(
                    &self.central,
                    &snapshot.config,
                    &self.config,
                    &self.batch_sizes,
                    &self.central_gate,
                );
                let state = EventState::new(snapshot.config, remaining, lane);
                grown.insert(event, Arc::new(state));
            }
        }
        if grown.len() != known.len() {
            self.events.store(Arc::new(grown));
        }
    }
}

/// Runs `step` on the node every `period`, the first time after
/// `first_in`, until the node is dropped or shuts down.
pub(super) async fn repeat<C, F, Fut>(
    node: Weak<Node<C>>,
    first_in: Duration,
    period: Duration,
    step: F,
) where
    C: CentralStock,
    F: Fn(Arc<Node<C>>) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + first_in, period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let Some(node) = node.upgrade() else { return };
        if node.shutting_down.load(Ordering::Acquire) {
            return;
        }
        step(node).await;
    }
}
