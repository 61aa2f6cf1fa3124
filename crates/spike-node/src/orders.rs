//! The seam between a node and its orders API: the routing table parses
//! `/orders/…` and `/users/…/orders` into an [`OrdersRequest`], and whatever
//! implements [`OrdersApi`] answers it. The implementation over the order
//! ledger lives with the application (`spike::app`), so that the buy path
//! never links a database driver.

use std::future::Future;
use std::pin::Pin;

use spike_core::UserId;
use spike_http::Answer;

pub use crate::routes::OrdersRequest;

/// A boxed answer in the making.
pub type AnswerFuture<'a> = Pin<Box<dyn Future<Output = Answer> + Send + 'a>>;

/// Answers the orders API (object-safe, so that a node need not know the
/// ledger or its central stock's stream type).
pub trait OrdersApi: Send + Sync + std::fmt::Debug + 'static {
    /// Answers `request`, made by `user` (the `user_id` parameter, if given).
    fn answer(&self, request: OrdersRequest, user: Option<UserId>) -> AnswerFuture<'_>;
}
