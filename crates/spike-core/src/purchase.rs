//! One purchase attempt and the verdict central stock gives it.

use crate::ids::{EventId, NodeId, OrderId, RequestId, UserId};

/// A request to buy one seat, as sent to central stock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Purchase {
    /// The sale.
    pub event: EventId,
    /// The buyer; required unless the sale is anonymous.
    pub user: Option<UserId>,
    /// Idempotency key: the same key always gets the same order.
    pub request: RequestId,
    /// The node that took the request (recorded with the order).
    pub node: NodeId,
    /// On a sale with a waiting room: the buyer's admitted position, from
    /// an admission token the node verified.
    pub admission: Option<u64>,
}

/// Central stock's answer to a [`Purchase`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// A seat was sold. `replayed` is true when this request id had already
    /// bought it and the original order is returned again.
    Sold {
        /// The order holding the seat.
        order: OrderId,
        /// Whether this is a replay of an earlier success.
        replayed: bool,
    },
    /// No seat left.
    SoldOut,
    /// The user already holds as many orders as the sale allows; `order` is the latest.
    AlreadyPurchased {
        /// The user's most recent order.
        order: OrderId,
    },
    /// The sale has not opened yet.
    NotOpen,
    /// The sale needs a user id and the purchase had none.
    UserRequired,
    /// Central stock has no such sale (never created, or lost: see `spike sale recover`).
    NoSuchSale,
    /// This request id already bought a seat for another buyer: nothing changed.
    RequestIdTaken,
    /// The sale has a waiting room and this purchase carries no admitted
    /// position: nothing changed.
    NotAdmitted,
}

/// A verdict plus central stock's remaining seats right after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CentralReply {
    /// What happened.
    pub verdict: Verdict,
    /// Seats left after this purchase, as central stock counted them.
    pub remaining: u64,
}
