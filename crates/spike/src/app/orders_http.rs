//! The orders API over the order ledger: the node's routing table parses
//! the request and authenticates its caller, and [`OrdersHttp`] answers it
//! from an [`OrderDesk`], to a caller entitled to the order only. Every
//! answer carries a `code` (0 done, -4 refused, -5 try again) and, whenever
//! the order exists, the order as it now stands.

use hyper::StatusCode;
use serde_json::{json, Value};
use spike_core::order::{Order, Refusal, Transition};
use std::sync::Arc;

use spike_core::{
    CentralStock, EventId, OrderId, OrderStream, StreamEntry, Ticket, TrainLayout, UserId,
};
use spike_node::ticket_json;
use spike_node::{Answer, AnswerFuture, Caller, OrdersApi, OrdersRequest, RetryReason};
use spike_orders::{Found, Moved, OrderDesk, OrdersError};

/// Most orders `GET /users/{id}/orders` lists.
pub const MAX_USER_ORDERS: u32 = 100;

/// The orders API over an [`OrderDesk`].
#[derive(Debug)]
pub struct OrdersHttp<C> {
    desk: OrderDesk<C>,
}

impl<C> OrdersHttp<C> {
    /// The API over `desk`.
    pub fn new(desk: OrderDesk<C>) -> Self {
        Self { desk }
    }
}

/// An order as the API shows it; a train run's order with its `ticket`
/// (named seats when `layout` is known, else the ticket's wire form). Never
/// its request id: on an open or anonymous sale that id is what a replay
/// presents, so it is not shown, even to the order's holder.
pub fn order_json(order: &Order, layout: Option<&TrainLayout>) -> Value {
    let mut shown = json!({
        "order_id": order.id.as_str(),
        "event": order.event.as_str(),
        "user_id": order.user.as_ref().map(UserId::as_str),
        "node": order.node.as_str(),
        "state": order.state.as_str(),
        "sold_at_ms": order.sold_at_ms,
        "expires_at_ms": order.expires_at_ms,
        "updated_at_ms": order.updated_at_ms,
        "seat_returned_at_ms": order.seat_returned_at_ms,
        "written": true,
    });
    if let Some(ticket) = &order.ticket {
        shown["ticket"] = shown_ticket(ticket, layout);
    }
    shown
}

fn shown_ticket(ticket: &Ticket, layout: Option<&TrainLayout>) -> Value {
    match layout {
        Some(layout) => ticket_json(layout, ticket),
        None => Value::from(ticket.to_string()),
    }
}

/// An order still in the stream (not written yet), as the API shows it.
fn entry_json(entry: &StreamEntry, layout: Option<&TrainLayout>) -> Value {
    let mut shown = json!({
        "order_id": entry.order.as_str(),
        "event": entry.order.split().map(|(event, _)| event.to_string()),
        "user_id": entry.user.as_ref().map(UserId::as_str),
        "node": entry.node.as_str(),
        "state": "reserved",
        "sold_at_ms": entry.sold_at_ms,
        "written": false,
    });
    if let Some(ticket) = &entry.ticket {
        shown["ticket"] = shown_ticket(ticket, layout);
    }
    shown
}

fn done(message: Option<String>, data: Value) -> Answer {
    Answer::done(message, &data)
}

/// The ledger failed: logged in full, answered without details.
fn unavailable(error: &OrdersError) -> Answer {
    tracing::warn!(%error, "orders API: backend failed");
    Answer::try_again(RetryReason::LedgerUnavailable, None, None)
}

fn not_yours(id: &OrderId) -> Answer {
    Answer::refused(
        StatusCode::FORBIDDEN,
        format!("order {id} belongs to another buyer"),
    )
}

fn no_such_order(id: &OrderId) -> Answer {
    Answer::refused(StatusCode::NOT_FOUND, format!("no such order {id}"))
}

/// The answer to a pay, cancel or refund that reached the ledger.
fn moved_answer(id: &OrderId, moved: Moved, layout: Option<&TrainLayout>) -> Answer {
    let order_json = |order: &Order| order_json(order, layout);
    let (order, refusal) = match moved {
        Moved::Applied(order) => {
            return done(Some(format!("order {}", order.state)), order_json(&order))
        }
        Moved::Refused(order, Refusal::AlreadyDone(state)) => {
            return done(Some(format!("order already {state}")), order_json(&order))
        }
        Moved::Refused(order, Refusal::Finished(state)) => (order, format!("order is {state}")),
        Moved::Refused(order, Refusal::WindowClosed | Refusal::NotDue) => (
            order,
            "payment window closed; the order is expiring".to_owned(),
        ),
        Moved::Refused(order, Refusal::NotPaid) => (
            order,
            "the order is not paid: cancel it instead of refunding it".to_owned(),
        ),
        Moved::NotFound => return no_such_order(id),
    };
    Answer::refused_with(StatusCode::CONFLICT, refusal, order_json(&order))
}

impl<C: CentralStock + OrderStream + Clone> OrdersHttp<C> {
    /// Answers `request`. The node authenticated `caller` (and only the
    /// operator gets this far with a payment); here the caller must also be
    /// entitled to the order it names.
    async fn handle(&self, request: OrdersRequest, caller: Caller) -> Answer {
        match request {
            OrdersRequest::OfUser(owner) => self.of_user(&owner).await,
            OrdersRequest::Show(id) => self.show(&id, &caller).await,
            OrdersRequest::Pay(id) => self.settle(&id, &caller, Transition::Pay).await,
            OrdersRequest::Cancel(id) => self.settle(&id, &caller, Transition::Cancel).await,
            OrdersRequest::Refund(id) => self.settle(&id, &caller, Transition::Refund).await,
        }
    }

    /// The layout that names `event`'s seats, when it is a train run (a
    /// failed lookup shows tickets in their wire form instead).
    async fn layout(&self, event: &EventId) -> Option<Arc<TrainLayout>> {
        self.desk.layout(event).await.ok().flatten()
    }

    async fn of_user(&self, owner: &UserId) -> Answer {
        let orders = match self.desk.orders_of_user(owner, MAX_USER_ORDERS).await {
            Ok(orders) => orders,
            Err(error) => return unavailable(&error),
        };
        let mut shown = Vec::with_capacity(orders.len());
        for order in &orders {
            let layout = match order.ticket {
                Some(_) => self.layout(&order.event).await,
                None => None,
            };
            shown.push(order_json(order, layout.as_deref()));
        }
        done(None, Value::from(shown))
    }

    async fn show(&self, id: &OrderId, caller: &Caller) -> Answer {
        match self.desk.find(id).await {
            Ok(found) if !caller.may_touch(found.user()) => not_yours(id),
            Ok(Found::Written(order)) => {
                let layout = match order.ticket {
                    Some(_) => self.layout(&order.event).await,
                    None => None,
                };
                done(None, order_json(&order, layout.as_deref()))
            }
            Ok(Found::InStream(entry)) => {
                let layout = match (&entry.ticket, entry.order.split()) {
                    (Some(_), Some((event, _))) => self.layout(&event).await,
                    _ => None,
                };
                done(None, entry_json(&entry, layout.as_deref()))
            }
            Ok(Found::Missing) => no_such_order(id),
            Err(error) => unavailable(&error),
        }
    }

    /// Pays (the operator only: the node refused everyone else), cancels
    /// or refunds an order.
    async fn settle(&self, id: &OrderId, caller: &Caller, transition: Transition) -> Answer {
        match self.desk.find(id).await {
            Ok(Found::Missing) => return no_such_order(id),
            Ok(found) if !caller.may_touch(found.user()) => return not_yours(id),
            Ok(_) => {}
            Err(error) => return unavailable(&error),
        }
        let moved = match transition {
            Transition::Pay => self.desk.pay(id).await,
            Transition::Refund => self.desk.refund(id).await,
            Transition::Cancel | Transition::Expire => self.desk.cancel(id).await,
        };
        let has_ticket = match &moved {
            Ok(Moved::Applied(order) | Moved::Refused(order, _)) => order.ticket.is_some(),
            _ => false,
        };
        let layout = match (has_ticket, id.split()) {
            (true, Some((event, _))) => self.layout(&event).await,
            _ => None,
        };
        match moved {
            Ok(moved) => moved_answer(id, moved, layout.as_deref()),
            Err(error) => unavailable(&error),
        }
    }
}

impl<C: CentralStock + OrderStream + Clone + std::fmt::Debug> OrdersApi for OrdersHttp<C> {
    fn answer(&self, request: OrdersRequest, caller: Caller) -> AnswerFuture<'_> {
        Box::pin(self.handle(request, caller))
    }
}
