//! One event as a node serves it: the sale's rules, the node's local
//! stock, the waiting room and train memo it may have, and its lane to
//! central stock.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use crate::answer::Answer;
use spike_core::{BuyerPolicy, CentralStock, LocalStock, SaleConfig, UserId};
use spike_http::{InFlightGate, RetryReason};

use super::refusal::try_again;
use super::NodeConfig;
use crate::batcher::{BatchSizes, Lane, LaneSettings, DEFAULT_GATHER};
use crate::train::TrainState;
use crate::waiting_room::WaitingRoom;

/// One event as this node serves it.
#[derive(Debug)]
pub struct EventState {
    /// The sale's rules, as loaded from central stock.
    pub config: SaleConfig,
    /// This node's local stock for it.
    pub stock: Arc<LocalStock>,
    /// Central stock reported the sale missing; refuse until it is back.
    pub(super) missing: AtomicBool,
    /// The sale's waiting room, if it has one.
    pub queue: Option<WaitingRoom>,
    /// The sale's line to central stock, when purchases go in batches.
    pub(super) lane: Option<Lane>,
    /// A train run's memo and availability (`None` for other sales).
    pub train: Option<TrainState>,
}

impl EventState {
    /// Sales this node has made of it: seats of local stock, or orders of
    /// seats on a train run.
    pub fn local_sales(&self) -> u64 {
        match &self.train {
            Some(train) => train.sales(),
            None => self.stock.local_sales(),
        }
    }

    pub(super) fn new(config: SaleConfig, remaining: u64, lane: Option<Lane>) -> Self {
        let queue =
            (config.queue()).map(|queue| WaitingRoom::new(*queue, config.opens_at_millis()));
        Self {
            train: (config.train()).map(|layout| TrainState::new(Arc::clone(layout))),
            config,
            stock: Arc::new(LocalStock::new(remaining)),
            missing: AtomicBool::new(false),
            queue,
            lane,
        }
    }

    /// Whether central stock has lost this sale (the node refuses it).
    pub fn is_missing(&self) -> bool {
        self.missing.load(Ordering::Acquire)
    }

    pub(super) fn set_missing(&self, missing: bool) {
        self.missing.store(missing, Ordering::Release);
    }

    /// Why a purchase cannot go to central stock now, if it cannot: the
    /// checks that need no round trip.
    pub(super) fn refusal(
        &self,
        user: Option<&UserId>,
        shutting_down: bool,
        now: SystemTime,
    ) -> Option<Answer> {
        if self.config.policy() != BuyerPolicy::Anonymous && user.is_none() {
            return Some(Answer::bad_request("user_id is required"));
        }
        if shutting_down {
            return Some(try_again(RetryReason::ShuttingDown, None));
        }
        if self.is_missing() {
            return Some(try_again(RetryReason::SaleStateMissing, None));
        }
        if !self.config.is_open_at(now) {
            return Some(Answer::NotOpen);
        }
        None
    }
}

/// A sale's lane to central stock, unless purchases go one per call
/// (`max_batch` 1): a batch of one is sent as a single purchase. Each call
/// adapts `gate`'s limit with the time it took per purchase (a batch's call
/// takes longer the more it carries, which is no sign of trouble).
pub(super) fn open_lane<C: CentralStock>(
    central: &Arc<C>,
    config: &NodeConfig,
    sizes: &Arc<BatchSizes>,
    gate: &Arc<InFlightGate>,
) -> Option<Lane> {
    if config.max_batch.get() == 1 {
        return None;
    }
    let central = Arc::clone(central);
    let gate = Arc::clone(gate);
    let settings = LaneSettings {
        max_batch: config.max_batch,
        discipline: config.lane_discipline,
        gather: DEFAULT_GATHER,
        runtime: config.central_thread.runtime(),
    };
    let lane = Lane::start(settings, Arc::clone(sizes), move |batch| {
        let central = Arc::clone(&central);
        let gate = Arc::clone(&gate);
        async move {
            let sent = std::time::Instant::now();
            let carried = u32::try_from(batch.len()).unwrap_or(u32::MAX).max(1);
            let replies = match batch.purchases() {
                [alone] => central.buy(alone).await.map(|reply| vec![reply]),
                _ => central.buy_many(&batch).await,
            };
            gate.observe(sent.elapsed() / carried);
            replies
        }
    });
    Some(lane)
}
