//! One event as a node serves it: the sale's rules, the node's local
//! stock, the waiting room and train memo it may have, and its lane to
//! central stock.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use crate::answer::Answer;
use spike_core::control::OperatorEntry;
use spike_core::{
    BuyerPolicy, CentralError, CentralStock, LocalStock, PurchaseBatch, SaleConfig, TicketBatch,
    TicketPurchase, TicketReply, UserId,
};
use spike_http::{InFlightGate, RetryReason};

use super::refusal::try_again;
use super::NodeConfig;
use crate::batcher::{BatchSizes, Lane, LaneSettings, DEFAULT_GATHER};
use crate::train::TrainState;
use crate::waiting_room::WaitingRoom;

/// How far a node has followed a sale's operator log: how many entries it
/// applied, and the last of them, by which it sees the log replaced (a sale
/// recreated under its name starts a new log; a recovery that found only
/// part of it restores a shorter one).
#[derive(Debug, Default)]
pub(super) struct FollowedLog {
    /// Entries applied, from the first.
    pub(super) applied: u64,
    /// The last entry applied.
    pub(super) last: Option<OperatorEntry>,
}

/// One event as this node serves it.
#[derive(Debug)]
pub struct EventState {
    /// The sale's rules, as loaded from central stock.
    pub config: SaleConfig,
    /// This node's local stock for it.
    pub stock: Arc<LocalStock>,
    /// Central stock reported the sale missing; refuse until it is back.
    pub(super) missing: AtomicBool,
    /// An operator paused the sale (as its operator log says): refuse.
    pub(super) paused: AtomicBool,
    /// How far this node has followed the sale's operator log (held while
    /// reading and applying more, so entries apply in order).
    pub(super) log_followed: tokio::sync::Mutex<FollowedLog>,
    /// The sale's waiting room, if it has one.
    pub queue: Option<WaitingRoom>,
    /// The sale's line to central stock, when purchases go in batches.
    pub(super) lane: Option<CentralLane>,
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

    pub(super) fn new(config: SaleConfig, remaining: u64, lane: Option<CentralLane>) -> Self {
        let queue =
            (config.queue()).map(|queue| WaitingRoom::new(*queue, config.opens_at_millis()));
        Self {
            train: (config.train()).map(|layout| TrainState::new(Arc::clone(layout))),
            config,
            stock: Arc::new(LocalStock::new(remaining)),
            missing: AtomicBool::new(false),
            paused: AtomicBool::new(false),
            log_followed: tokio::sync::Mutex::new(FollowedLog::default()),
            queue,
            lane,
        }
    }

    /// Whether central stock has lost this sale (the node refuses it).
    pub fn is_missing(&self) -> bool {
        self.missing.load(Ordering::Acquire)
    }

    /// Whether an operator paused the sale, as far as this node knows.
    pub fn is_paused(&self) -> bool {
        self.paused.load(Ordering::Acquire)
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
        if self.is_paused() {
            return Some(try_again(RetryReason::Paused, None));
        }
        if !self.config.is_open_at(now) {
            return Some(Answer::NotOpen);
        }
        None
    }
}

/// A sale's lane to central stock: single-counter purchases, or a train
/// run's seat purchases.
#[derive(Debug)]
pub(super) enum CentralLane {
    /// A single counter's.
    Purchases(Lane),
    /// A train run's.
    Seats(Lane<TicketPurchase, TicketReply>),
}

/// A sale's lane to central stock, unless purchases go one per call
/// (`max_batch` 1): a batch of one is sent as a single purchase. Each call
/// adapts `gate`'s limit with the time it took per purchase (a batch's call
/// takes longer the more it carries, which is no sign of trouble).
pub(super) fn open_lane<C: CentralStock>(
    central: &Arc<C>,
    sale: &SaleConfig,
    config: &NodeConfig,
    sizes: &Arc<BatchSizes>,
    gate: &Arc<InFlightGate>,
) -> Option<CentralLane> {
    if config.max_batch.get() == 1 {
        return None;
    }
    let settings = LaneSettings {
        max_batch: config.max_batch,
        discipline: config.lane_discipline,
        gather: DEFAULT_GATHER,
        runtime: config.central_thread.runtime(),
    };
    let (central, gate, sizes) = (Arc::clone(central), Arc::clone(gate), Arc::clone(sizes));
    if sale.train().is_some() {
        let lane = Lane::start(settings, sizes, move |batch: TicketBatch| {
            let (central, gate) = (Arc::clone(&central), Arc::clone(&gate));
            timed(gate, batch.len(), async move {
                match batch.purchases() {
                    [alone] => central.buy_seats(alone).await.map(|reply| vec![reply]),
                    _ => central.buy_seats_many(&batch).await,
                }
            })
        });
        return Some(CentralLane::Seats(lane));
    }
    let lane = Lane::start(settings, sizes, move |batch: PurchaseBatch| {
        let (central, gate) = (Arc::clone(&central), Arc::clone(&gate));
        timed(gate, batch.len(), async move {
            match batch.purchases() {
                [alone] => central.buy(alone).await.map(|reply| vec![reply]),
                _ => central.buy_many(&batch).await,
            }
        })
    });
    Some(CentralLane::Purchases(lane))
}

/// `call`, carrying `carried` purchases, with the time it took per purchase
/// told to `gate`.
async fn timed<R>(
    gate: Arc<InFlightGate>,
    carried: usize,
    call: impl std::future::Future<Output = Result<Vec<R>, CentralError>>,
) -> Result<Vec<R>, CentralError> {
    let sent = std::time::Instant::now();
    let replies = call.await;
    let carried = u32::try_from(carried).unwrap_or(u32::MAX).max(1);
    gate.observe(sent.elapsed() / carried);
    replies
}
