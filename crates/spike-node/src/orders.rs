//! The seam between a node and its orders API: the routing table parses
//! `/orders/…` and `/users/…/orders` into an [`OrdersRequest`], the node
//! establishes who the [`Caller`] is (or refuses with 401/403), and whatever
//! implements [`OrdersApi`] answers, checking that the caller may touch that
//! order. The implementation over the order ledger lives with the
//! application (`spike::app`), so that the buy path never links a database
//! driver.

use std::future::Future;
use std::pin::Pin;

use crate::answer::Answer;
use spike_core::UserId;

pub use crate::routes::OrdersRequest;

/// A boxed answer in the making.
pub type AnswerFuture<'a> = Pin<Box<dyn Future<Output = Answer> + Send + 'a>>;

/// Who is asking the orders API, as the node established it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// A buyer proved by their token: may see, list and cancel their own orders.
    Buyer(UserId),
    /// Holds the order key of the order asked about (open and anonymous sales):
    /// may see and cancel that order.
    OrderKeyHolder,
    /// The payment service, by the operator key: may do everything, and is
    /// the only caller that may confirm a payment.
    Operator,
}

impl Caller {
    /// Whether this caller may touch an order bought by `owner`.
    pub fn may_touch(&self, owner: Option<&UserId>) -> bool {
        match self {
            Caller::Buyer(user) => owner == Some(user),
            Caller::OrderKeyHolder | Caller::Operator => true,
        }
    }
}

/// Answers the orders API (object-safe, so that a node need not know the
/// ledger or its central stock's stream type).
pub trait OrdersApi: Send + Sync + std::fmt::Debug + 'static {
    /// Answers `request` from `caller`, whom the node has authenticated.
    fn answer(&self, request: OrdersRequest, caller: Caller) -> AnswerFuture<'_>;
}
