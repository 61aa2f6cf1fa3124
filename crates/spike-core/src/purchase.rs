//! One purchase attempt and the verdict central stock gives it.

use crate::ids::{EventId, NodeId, OrderId, RequestId, UserId};
use crate::train::{SeatRequest, Ticket};

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

/// What a request id bought, as central stock's request index holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestRecord {
    /// The order it bought.
    pub order: OrderId,
    /// The buyer it bought for (`None` on an anonymous sale).
    pub buyer: Option<UserId>,
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
    /// An operator paused the sale: nothing changed.
    Paused,
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

/// A request for seats on a train run, as sent to central stock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketPurchase {
    /// Who buys, with which request id, through which node.
    pub purchase: Purchase,
    /// Which class, which leg, how many seats.
    pub seats: SeatRequest,
    /// A change's new ticket: the order of the same run it replaces, which
    /// the per-user limit does not count (it is given back once the new
    /// ticket is had). `None` for a purchase.
    pub replacing: Option<OrderId>,
}

/// Central stock's answer to a [`TicketPurchase`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketReply {
    /// What happened; [`Verdict::SoldOut`] means sold out for this leg,
    /// class and group size. A train run sells nothing but seats, and a
    /// sale that is not a train run answers [`Verdict::NoSuchSale`].
    pub verdict: Verdict,
    /// The seats the order holds, when it sold (or replays a sale).
    pub ticket: Option<Ticket>,
    /// The last order sequence handed out when the verdict was given: a
    /// "sold out" was true with the orders up to it.
    pub as_of: u64,
}

/// The most purchases one batch may carry, and the default bound a node
/// uses: enough to absorb a burst while one central call is in flight, few
/// enough that one call stays short (it holds central stock's single
/// thread for every purchase in it).
pub const MAX_BATCH: usize = 256;

/// What a [`Batch`] holds: a purchase of some sale.
pub trait OfSale {
    /// The sale it is for.
    fn event(&self) -> &EventId;
}

impl OfSale for Purchase {
    fn event(&self) -> &EventId {
        &self.event
    }
}

impl OfSale for TicketPurchase {
    fn event(&self) -> &EventId {
        &self.purchase.event
    }
}

/// Purchases of one sale sent to central stock together, applied in order
/// in one atomic step: never empty, all of one event, at most
/// [`MAX_BATCH`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch<T> {
    purchases: Vec<T>,
}

/// A batch of single-counter purchases ([`CentralStock::buy_many`](crate::CentralStock::buy_many)).
pub type PurchaseBatch = Batch<Purchase>;

/// A batch of a train run's seat purchases
/// ([`CentralStock::buy_seats_many`](crate::CentralStock::buy_seats_many)).
pub type TicketBatch = Batch<TicketPurchase>;

/// Why a purchase cannot join a batch; it is handed back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchRefusal<T> {
    /// The purchase is for another sale.
    #[error("a batch holds one sale's purchases")]
    OtherEvent(T),
    /// The batch holds [`MAX_BATCH`] purchases.
    #[error("a batch holds at most {MAX_BATCH} purchases")]
    Full(T),
}

impl<T: OfSale> Batch<T> {
    /// A batch holding `first`.
    pub fn new(first: T) -> Self {
        Self {
            purchases: vec![first],
        }
    }

    /// Adds `purchase` at the end, unless it is for another sale or the
    /// batch is full.
    pub fn push(&mut self, purchase: T) -> Result<(), BatchRefusal<T>> {
        if purchase.event() != self.event() {
            return Err(BatchRefusal::OtherEvent(purchase));
        }
        if self.purchases.len() >= MAX_BATCH {
            return Err(BatchRefusal::Full(purchase));
        }
        self.purchases.push(purchase);
        Ok(())
    }

    /// The sale every purchase is for.
    pub fn event(&self) -> &EventId {
        self.purchases[0].event()
    }

    /// The purchases, in the order they are applied.
    pub fn purchases(&self) -> &[T] {
        &self.purchases
    }

    /// How many purchases it holds (at least one).
    pub fn len(&self) -> usize {
        self.purchases.len()
    }

    /// Always false: a batch holds at least one purchase.
    pub fn is_empty(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn purchase(event: &str, request: &str) -> Purchase {
        Purchase {
            event: EventId::parse(event).unwrap(),
            user: None,
            request: RequestId::parse(request).unwrap(),
            node: NodeId::parse("n").unwrap(),
            admission: None,
        }
    }

    #[test]
    fn a_batch_holds_one_events_purchases_in_order() {
        let mut batch = PurchaseBatch::new(purchase("e", "r0"));
        batch.push(purchase("e", "r1")).unwrap();
        let other = purchase("f", "r2");
        assert_eq!(
            batch.push(other.clone()),
            Err(BatchRefusal::OtherEvent(other))
        );
        let requests: Vec<&str> = batch
            .purchases()
            .iter()
            .map(|p| p.request.as_str())
            .collect();
        assert_eq!(requests, ["r0", "r1"]);
        assert_eq!(batch.event().as_str(), "e");
    }

    #[test]
    fn a_batch_is_bounded() {
        let mut batch = PurchaseBatch::new(purchase("e", "r0"));
        for i in 1..MAX_BATCH {
            batch.push(purchase("e", &format!("r{i}"))).unwrap();
        }
        let one_more = purchase("e", "over");
        assert_eq!(
            batch.push(one_more.clone()),
            Err(BatchRefusal::Full(one_more))
        );
        assert_eq!(batch.len(), MAX_BATCH);
    }
}
