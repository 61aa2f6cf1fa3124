//! The contract of central stock: the single source of truth for how many
//! seats are sold and to whom. Implemented by Redis (`spike-redis`) and by the
//! in-process [`crate::MemoryCentral`]; both pass the same conformance suite.

use std::future::Future;

use crate::control::{ControlOutcome, OperatorEntry, OperatorOrder};
use crate::ids::{EventId, OrderId, RequestId, UserId};
use crate::purchase::{
    CentralReply, Purchase, PurchaseBatch, RequestRecord, TicketBatch, TicketPurchase, TicketReply,
};
use crate::queue::QueueCounters;
use crate::sale::{SaleConfig, SaleSnapshot};
use crate::train::{Occupancy, Ticket, WaitEntry, WaitJoin, WaitRequest, WaitStatus};

/// Why central stock could not answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CentralError {
    /// The request was never delivered (connection refused, not connected):
    /// nothing happened.
    #[error("central stock unavailable: {0}")]
    Unavailable(String),
    /// The request may have been delivered but no answer came back in time:
    /// the outcome must be resolved by request id, never guessed.
    #[error("central stock outcome unknown: {0}")]
    OutcomeUnknown(String),
    /// Central stock answered something this code does not understand.
    #[error("central stock protocol error: {0}")]
    Protocol(String),
}

/// Why a sale could not be created.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CreateSaleError {
    /// The event already has a sale; pass `force` to replace it.
    #[error("event {0} already has a sale (replacing it loses its orders)")]
    AlreadyExists(EventId),
    /// Central stock failed.
    #[error(transparent)]
    Central(#[from] CentralError),
}

/// What giving a seat back did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Release {
    /// The seat is back: first to the waitlist (on a train run), then for
    /// sale; `remaining` seats are left.
    Released {
        /// Seats for sale after the release.
        remaining: u64,
        /// Waitlist entries the returned seats filled (each became an order).
        filled: u64,
    },
    /// This order's seat had already been given back: nothing changed.
    AlreadyReleased,
    /// The sale never sold this order to this request: nothing changed.
    NotSold,
    /// Central stock has no such sale.
    NoSuchSale,
}

/// One order that holds a seat, as recovery re-enters it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holding {
    /// The order.
    pub order: OrderId,
    /// Its buyer (none in anonymous sales).
    pub user: Option<UserId>,
    /// The request that bought it.
    pub request: RequestId,
    /// On a train run, the seats it holds.
    pub ticket: Option<Ticket>,
}

/// Everything central stock needs to take up a sale again after it lost its
/// state: rebuilt from the order ledger plus the stream's unwritten entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restoration {
    /// The sale's configuration.
    pub config: SaleConfig,
    /// The highest order sequence ever handed out; new orders continue after it.
    pub last_sequence: u64,
    /// Orders that hold a seat (`sold` becomes their count).
    pub holding: Vec<Holding>,
    /// Orders whose seat was given back (their release must stay a no-op).
    pub released: Vec<OrderId>,
    /// A train run's waitlist, every entry (central stock's own, where it
    /// kept them, else the ledger's mirror of them).
    pub waitlist: Vec<WaitEntry>,
    /// The sale's operator log, oldest first: restored as it is, and what
    /// it leaves in force ([`crate::control::StandingControls`]) with it: a
    /// pause, and every revocation. (The config already carries the last
    /// admission change.)
    pub operator_log: Vec<OperatorEntry>,
}

/// What joining a sale's waiting room did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueJoin {
    /// The buyer holds the `join_index`-th place (the same on every join).
    Joined {
        /// The order this buyer joined in (0 is first).
        join_index: u64,
    },
    /// A spillover room let the buyer pass straight through (now, or when
    /// they first joined, within the admission window since): admitted at
    /// the position of their join index, with no wait and no admission
    /// token needed. Once the window has passed, a passer is `Joined`, and
    /// stands as expired.
    Passed {
        /// The order this buyer joined in, which is their position.
        join_index: u64,
    },
    /// Joining starts at `joins_open_at_ms` (Unix milliseconds).
    NotYetOpen {
        /// When joining starts.
        joins_open_at_ms: u64,
    },
    /// The sale has no waiting room.
    NoQueue,
    /// Central stock has no such sale.
    NoSuchSale,
}

/// A waiting room's whole record, for the audit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueRecord {
    /// The counters, with every admission step.
    pub counters: QueueCounters,
    /// Every buyer who joined and their join index.
    pub joiners: Vec<(UserId, u64)>,
    /// Every admitted position that bought, with its buyer.
    pub bought: Vec<(u64, UserId)>,
    /// Buyers who held seats when a recovery reset the waiting room: they
    /// were admitted in the room central stock lost, which no record keeps.
    pub carried: Vec<UserId>,
    /// The positions of the buyers who passed straight through a
    /// spillover room, in order.
    pub passed: Vec<u64>,
    /// When the room's rate is counted from ([`crate::queue::rate_origin_ms`];
    /// the opening until the seal).
    pub origin_ms: u64,
}

/// Central stock: atomic, shared by every node of a sale.
///
/// Every method is atomic with respect to every other call on the same event.
pub trait CentralStock: Send + Sync + 'static {
    /// Creates a sale. Refused if one exists, unless `force`, which wipes the old one.
    fn create_sale(
        &self,
        event: &EventId,
        config: &SaleConfig,
        force: bool,
    ) -> impl Future<Output = Result<(), CreateSaleError>> + Send;

    /// Tries to sell one seat: checks the sale is open, the user's limit, and
    /// `sold < total`; on success records the buyer, the request id and
    /// appends the order to the order stream, all in one step.
    fn buy(
        &self,
        purchase: &Purchase,
    ) -> impl Future<Output = Result<CentralReply, CentralError>> + Send;

    /// Tries to sell one seat to each purchase of `batch`, in order, in one
    /// atomic step: each gets exactly the verdict [`CentralStock::buy`]
    /// would have given it at that point (a later purchase sees what an
    /// earlier one sold), and the replies come back in the same order. A
    /// failure fails the whole batch.
    fn buy_many(
        &self,
        batch: &PurchaseBatch,
    ) -> impl Future<Output = Result<Vec<CentralReply>, CentralError>> + Send;

    /// Tries to sell seats on a train run: the same checks as
    /// [`CentralStock::buy`] (request id, opening, buyer, waiting room,
    /// per-user limit), then the seats [`crate::ClassOccupancy::find_seats`]
    /// picks, marked sold over the leg, recorded with the order and in its
    /// stream entry, all in one step.
    fn buy_seats(
        &self,
        purchase: &TicketPurchase,
    ) -> impl Future<Output = Result<TicketReply, CentralError>> + Send;

    /// Tries to sell seats to each purchase of `batch`, in order, in one
    /// atomic step: each gets exactly the reply [`CentralStock::buy_seats`]
    /// would have given it at that point, in the same order. A failure
    /// fails the whole batch.
    fn buy_seats_many(
        &self,
        batch: &TicketBatch,
    ) -> impl Future<Output = Result<Vec<TicketReply>, CentralError>> + Send;

    /// Which seat-segments of a train run are sold, read in one step, or
    /// `None` when there is no such sale or it is not a train run.
    fn occupancy(
        &self,
        event: &EventId,
    ) -> impl Future<Output = Result<Option<Occupancy>, CentralError>> + Send;

    /// The sale's current state, or `None` if there is no such sale.
    fn snapshot(
        &self,
        event: &EventId,
    ) -> impl Future<Output = Result<Option<SaleSnapshot>, CentralError>> + Send;

    /// What a request id bought, if it bought anything: its order and buyer
    /// (resolves unknown outcomes). A backend that confirms sales with
    /// replicas confirms this answer the same way: it is `Ok(Some)` only
    /// once as many replicas hold the sale as a new sale needs.
    fn request_record(
        &self,
        event: &EventId,
        request: &RequestId,
    ) -> impl Future<Output = Result<Option<RequestRecord>, CentralError>> + Send;

    /// Gives the seat of `order` (bought by `request`, for `user`) back to
    /// the sale, exactly once: the buyer may buy again, and a second release
    /// of the same order changes nothing. On a train run, exactly the bits
    /// the order set are cleared, and in the same step the waitlist is
    /// filled from them by the fill rule (`crate::train`'s waitlist).
    fn release(
        &self,
        event: &EventId,
        order: &OrderId,
        user: Option<&UserId>,
        request: &RequestId,
    ) -> impl Future<Output = Result<Release, CentralError>> + Send;

    /// Places a waitlist order on a train run, in one step: the request
    /// id's earlier entry ([`WaitJoin::Placed`] again), the traveller's
    /// waiting entry (one per run), the request id's earlier purchase
    /// (refused as bookable is not: [`WaitJoin::RequestIdTaken`]), the
    /// opening, the per-user limit, and that no seats are free for it
    /// ([`WaitJoin::Bookable`]); then it joins the end of the line.
    fn join_waitlist(
        &self,
        request: &WaitRequest,
    ) -> impl Future<Output = Result<WaitJoin, CentralError>> + Send;

    /// The traveller's latest waitlist entry on the run (its state as of
    /// now), and how many waiting entries were placed before it.
    fn waitlist_status(
        &self,
        event: &EventId,
        user: &UserId,
    ) -> impl Future<Output = Result<Option<WaitStatus>, CentralError>> + Send;

    /// Withdraws the traveller's waiting entry: the entry, now withdrawn,
    /// or `None` when nothing of theirs waits (then nothing changed).
    fn leave_waitlist(
        &self,
        event: &EventId,
        user: &UserId,
    ) -> impl Future<Output = Result<Option<WaitEntry>, CentralError>> + Send;

    /// Fills every waiting entry the free seats can serve, oldest first, by
    /// the fill rule (not only those a returned seat touches): what a
    /// recovery runs once it restored a run, whose free seats may serve
    /// entries the lost state had not filled. Returns how many it filled.
    fn refill_waitlist(
        &self,
        event: &EventId,
    ) -> impl Future<Output = Result<u64, CentralError>> + Send;

    /// Every waitlist entry of the run, in place order, for the audit.
    fn waitlist(
        &self,
        event: &EventId,
    ) -> impl Future<Output = Result<Vec<WaitEntry>, CentralError>> + Send;

    /// Replaces an event's sale, buyer index, request index and waitlist
    /// with `restoration`, leaving the order stream as it is. The sale is absent
    /// (nodes refuse it) until the last step, which makes it visible again.
    fn restore(
        &self,
        event: &EventId,
        restoration: &Restoration,
    ) -> impl Future<Output = Result<(), CentralError>> + Send;

    /// Every event that has a sale.
    fn events(&self) -> impl Future<Output = Result<Vec<EventId>, CentralError>> + Send;

    /// Puts `user` in the event's waiting room, or finds their place if
    /// they joined before: one place per buyer. Once the sale has opened,
    /// the queue is sealed first (with `seed`, unless it was sealed
    /// before), so that only who joined before the opening is shuffled. In
    /// a spillover room, a new buyer passes straight through when
    /// [`crate::QueueConfig::lets_through`] says so.
    fn join_queue(
        &self,
        event: &EventId,
        user: &UserId,
        seed: u64,
    ) -> impl Future<Output = Result<QueueJoin, CentralError>> + Send;

    /// The join index of `user`, if they joined.
    fn queue_place(
        &self,
        event: &EventId,
        user: &UserId,
    ) -> impl Future<Output = Result<Option<u64>, CentralError>> + Send;

    /// One admission step, which any node may take at any time: at the
    /// sale's opening it seals the queue (with `seed`, unless it was sealed
    /// before), then moves `admitted` as far as
    /// [`crate::QueueConfig::admission_target`] allows (not once the sale is
    /// sold out), and returns the counters with the admission steps taken
    /// after `steps_after_ms`. `None`: no such sale, or no waiting room.
    fn tick_queue(
        &self,
        event: &EventId,
        seed: u64,
        steps_after_ms: u64,
    ) -> impl Future<Output = Result<Option<QueueCounters>, CentralError>> + Send;

    /// Resets a sale's waiting room, for a recovery that rebuilt the sale
    /// after central stock lost it (joins are in no other record): every
    /// join, admission step and purchase position is dropped, and the
    /// buyers in `carried` (who hold seats bought in the lost room) are
    /// recorded as such. Buyers join again, the room is sealed anew at its
    /// next step, and nodes, seeing a new seal, follow (admission tokens are
    /// bound to the seal). The operator's revocations stand. `Ok(false)`
    /// when the sale has no waiting room.
    fn reset_queue(
        &self,
        event: &EventId,
        carried: &[UserId],
    ) -> impl Future<Output = Result<bool, CentralError>> + Send;

    /// The waiting room's whole record, for the audit (`None`: no such
    /// sale, or no waiting room).
    fn queue_record(
        &self,
        event: &EventId,
    ) -> impl Future<Output = Result<Option<QueueRecord>, CentralError>> + Send;

    /// Applies an operator's control to the sale and appends it to the
    /// sale's operator log, in one atomic step (see [`crate::control`]).
    fn control(
        &self,
        event: &EventId,
        order: &OperatorOrder,
    ) -> impl Future<Output = Result<ControlOutcome, CentralError>> + Send;

    /// The sale's operator log from entry `since` on, oldest first (empty
    /// for no such sale).
    fn operator_log(
        &self,
        event: &EventId,
        since: u64,
    ) -> impl Future<Output = Result<Vec<OperatorEntry>, CentralError>> + Send;
}
