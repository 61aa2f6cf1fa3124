//! The order desk: what the orders API does, free of HTTP. It reads orders
//! from the ledger and, for an order still in the stream, from central stock;
//! it pays and cancels with the ledger's conditional updates, writing an
//! unwritten order into the ledger first so that a buyer who pays before the
//! writer caught up is answered correctly; and a cancelled or refunded
//! order's seat goes back at once (or, should that fail, on the next expiry pass).

use std::time::SystemTime;

use metrics::counter;
use spike_core::order::{Order, Transition};
use spike_core::time::unix_millis;
use std::sync::Arc;

use spike_core::{
    CentralStock, EventId, OrderId, OrderStream, SaleConfig, StreamEntry, TrainLayout, UserId,
};

use crate::error::OrdersError;
use crate::expiry::return_seats;
use crate::ledger::{Moved, OrderLedger};

/// An order as the desk found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// In the ledger.
    Written(Order),
    /// Still in the order stream: sold and reserved, not written yet.
    InStream(StreamEntry),
    /// Neither.
    Missing,
}

impl Found {
    /// The buyer, if the order exists and has one.
    pub fn user(&self) -> Option<&UserId> {
        match self {
            Self::Written(order) => order.user.as_ref(),
            Self::InStream(entry) => entry.user.as_ref(),
            Self::Missing => None,
        }
    }
}

/// The orders API's logic over a ledger and central stock.
#[derive(Debug, Clone)]
pub struct OrderDesk<C> {
    pub(crate) ledger: OrderLedger,
    pub(crate) central: C,
}

impl<C: CentralStock + OrderStream> OrderDesk<C> {
    /// A desk over `ledger` and `central`.
    pub fn new(ledger: OrderLedger, central: C) -> Self {
        Self { ledger, central }
    }

    /// The ledger.
    pub fn ledger(&self) -> &OrderLedger {
        &self.ledger
    }

    /// Finds an order in the ledger or, failing that, in the stream.
    pub async fn find(&self, id: &OrderId) -> Result<Found, OrdersError> {
        if let Some(order) = self.ledger.order(id).await? {
            return Ok(Found::Written(order));
        }
        let Some((event, sequence)) = id.split() else {
            return Ok(Found::Missing);
        };
        if let Some(entry) = self.central.entry(&event, sequence).await? {
            if entry.order == *id {
                return Ok(Found::InStream(entry));
            }
        }
        // The writer may have written and acknowledged it in between.
        Ok(match self.ledger.order(id).await? {
            Some(order) => Found::Written(order),
            None => Found::Missing,
        })
    }

    /// A train run's layout (to name an order's seats): central stock's,
    /// else the ledger's record of the sale; `None` for other sales.
    pub async fn layout(&self, event: &EventId) -> Result<Option<Arc<TrainLayout>>, OrdersError> {
        let config = self.sale(event).await?;
        Ok(config.and_then(|config| config.train().cloned()))
    }

    /// A sale's rules: central stock's, else (no such sale there, or
    /// central stock not answering) the ledger's record of them.
    pub async fn sale(&self, event: &EventId) -> Result<Option<SaleConfig>, OrdersError> {
        Ok(match self.central.snapshot(event).await {
            Ok(Some(snapshot)) => Some(snapshot.config),
            Ok(None) | Err(_) => self.ledger.sale(event).await?,
        })
    }

    /// A user's orders, newest first.
    pub async fn orders_of_user(
        &self,
        user: &UserId,
        limit: u32,
    ) -> Result<Vec<Order>, OrdersError> {
        Ok(self.ledger.orders_of_user(user, limit).await?)
    }

    /// Pays an order.
    pub async fn pay(&self, id: &OrderId) -> Result<Moved, OrdersError> {
        let moved = self.apply(id, Transition::Pay).await?;
        if let Moved::Applied(_) = moved {
            counter!("spike_orders_paid_total").increment(1);
        }
        Ok(moved)
    }

    /// Cancels an order and gives its seat back.
    pub async fn cancel(&self, id: &OrderId) -> Result<Moved, OrdersError> {
        self.give_up(id, Transition::Cancel).await
    }

    /// Refunds a paid order and gives its seat back: to the waitlist
    /// first, in central stock's release.
    pub async fn refund(&self, id: &OrderId) -> Result<Moved, OrdersError> {
        self.give_up(id, Transition::Refund).await
    }

    /// Cancels or refunds an order, then gives its seat back at once.
    async fn give_up(&self, id: &OrderId, transition: Transition) -> Result<Moved, OrdersError> {
        let moved = self.apply(id, transition).await?;
        if let Moved::Applied(order) = &moved {
            match transition {
                Transition::Refund => counter!("spike_orders_refunded_total").increment(1),
                _ => counter!("spike_orders_cancelled_total").increment(1),
            }
            // The seat is owed now; return it without waiting for the next
            // expiry pass. A failure here leaves it owed, and the pass retries.
            let owed = std::slice::from_ref(order);
            if let Err(error) = return_seats(&self.central, &self.ledger, owed).await {
                tracing::warn!(order = %id, %error, "seat return deferred to the next expiry pass");
            }
            if let Some(order) = self.ledger.order(id).await? {
                return Ok(Moved::Applied(order));
            }
        }
        Ok(moved)
    }

    /// Applies a buyer's transition, writing the order from the stream first
    /// if the writer has not yet.
    async fn apply(&self, id: &OrderId, transition: Transition) -> Result<Moved, OrdersError> {
        let now = unix_millis(SystemTime::now());
        let moved = self.ledger.apply(id, transition, now).await?;
        if moved != Moved::NotFound {
            return Ok(moved);
        }
        // From the stream, if it is there; if not, the writer may have
        // written it meanwhile.
        write_unwritten(&self.central, &self.ledger, id, now).await?;
        Ok(self.ledger.apply(id, transition, now).await?)
    }
}

/// Writes order `id` into the ledger from the stream, exactly as the writer
/// would (its own insert becomes a replay), if it is there; `Ok(false)`
/// when the stream does not hold it (written and acknowledged already, or
/// never sold).
pub(crate) async fn write_unwritten<C: CentralStock + OrderStream>(
    central: &C,
    ledger: &OrderLedger,
    id: &OrderId,
    now_ms: u64,
) -> Result<bool, OrdersError> {
    let Some((event, sequence)) = id.split() else {
        return Ok(false);
    };
    let in_stream = central.entry(&event, sequence).await?;
    let Some(entry) = in_stream.filter(|entry| entry.order == *id) else {
        return Ok(false);
    };
    let Some(snapshot) = central.snapshot(&event).await? else {
        return Ok(false);
    };
    let window = snapshot.config.payment_window();
    ledger
        .insert(std::slice::from_ref(&entry), window, now_ms)
        .await?;
    Ok(true)
}
