//! The orders API over the order ledger: the node's routing table parses
//! the request and authenticates its caller, and [`OrdersHttp`] answers it
//! from an [`OrderDesk`], to a caller entitled to the order only. Every
//! answer carries a `code` (0 done, -4 refused, -5 try again) and, whenever
//! the order exists, the order as it now stands.

use hyper::StatusCode;
use serde_json::{json, Value};
use spike_core::order::{Order, Refusal, Transition};
use std::sync::Arc;

use spike_auth::OrderKeys;
use spike_core::{
    CentralStock, EventId, OrderId, OrderStream, Passengers, SeatPreference, SeatRequest,
    StreamEntry, Ticket, TrainError, TrainLayout, TrainRun, UserId, Verdict,
};
use spike_node::ticket_json;
use spike_node::{
    Answer, AnswerFuture, Caller, ChangeWanted, OrdersApi, OrdersRequest, RetryReason,
};
use spike_orders::{Change, ChangeTo, Found, Moved, OrderDesk, OrdersError};

/// Most orders `GET /users/{id}/orders` lists.
pub const MAX_USER_ORDERS: u32 = 100;

/// The orders API over an [`OrderDesk`].
#[derive(Debug)]
pub struct OrdersHttp<C> {
    desk: OrderDesk<C>,
    /// The node's order keys: a change's new order on an open sale is
    /// answered with its key.
    order_keys: Option<OrderKeys>,
}

impl<C> OrdersHttp<C> {
    /// The API over `desk`; `order_keys` make the keys of the new orders
    /// changes make (none: answered without).
    pub fn new(desk: OrderDesk<C>, order_keys: Option<OrderKeys>) -> Self {
        Self { desk, order_keys }
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
            OrdersRequest::Change(id, wanted) => self.change(&id, &caller, &wanted).await,
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
            Transition::Cancel => self.desk.cancel(id).await,
            Transition::Expire
            | Transition::BeginChange
            | Transition::FinishChange
            | Transition::UndoChange => {
                unreachable!("the orders API pays, cancels and refunds; changes go through change")
            }
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

impl<C: CentralStock + OrderStream + Clone> OrdersHttp<C> {
    /// `POST /orders/{id}/change`: exchanges a paid ticket, all or nothing
    /// (see `spike_orders::change`).
    async fn change(&self, id: &OrderId, caller: &Caller, wanted: &ChangeWanted) -> Answer {
        let old = match self.desk.find(id).await {
            Ok(Found::Missing) => return no_such_order(id),
            Ok(found) if !caller.may_touch(found.user()) => return not_yours(id),
            Ok(Found::Written(order)) => order,
            Ok(Found::InStream(_)) => {
                return Answer::refused(StatusCode::CONFLICT, "the order is not paid: pay it first")
            }
            Err(error) => return unavailable(&error),
        };
        let to = match self.change_target(&old, wanted).await {
            Ok(to) => to,
            Err(refusal) => return refusal,
        };
        let layout = self.layout(&to.event).await;
        let old_layout = self.layout(&old.event).await;
        let shown = |order: &Order| {
            let layout = match order.event == to.event {
                true => layout.as_deref(),
                false => old_layout.as_deref(),
            };
            order_json(order, layout)
        };
        match self.desk.change(id, &to).await {
            Ok(Change::Done { old, new }) => {
                let mut data = json!({ "old": shown(&old), "new": shown(&new) });
                if let Some(key) = self.new_order_key(&new).await {
                    data["new"]["order_key"] = key.into();
                }
                done(Some("order changed".into()), data)
            }
            Ok(Change::NotStarted(Moved::Refused(order, Refusal::NotPaid))) => {
                Answer::refused_with(
                    StatusCode::CONFLICT,
                    "the order is not paid: pay it first",
                    shown(&order),
                )
            }
            Ok(Change::NotStarted(moved)) => moved_answer(id, moved, old_layout.as_deref()),
            Ok(Change::Refused { old, verdict }) => {
                let why = match verdict {
                    Verdict::SoldOut => "no seats for that change",
                    Verdict::AlreadyPurchased { .. } => "you already hold a ticket on that run",
                    Verdict::NotOpen => "that run is not on sale yet",
                    Verdict::Paused => "that run's sale is paused by its operator",
                    _ => "that run refused the change",
                };
                Answer::refused_with(
                    StatusCode::CONFLICT,
                    format!("{why}; your ticket is unchanged"),
                    shown(&old),
                )
            }
            Ok(Change::Unsettled(_)) => Answer::try_again(RetryReason::Unavailable, None, None),
            Err(error) => unavailable(&error),
        }
    }

    /// The run and seats a change of `old` asks for: each of `wanted`'s
    /// parts, or the old ticket's; the party stays the old ticket's.
    async fn change_target(&self, old: &Order, wanted: &ChangeWanted) -> Result<ChangeTo, Answer> {
        let bad = |message: String| Answer::bad_request(message);
        let Some(ticket) = &old.ticket else {
            return Err(bad(format!("order {} is not a train ticket", old.id)));
        };
        let Some(old_layout) = self.layout(&old.event).await else {
            return Err(Answer::try_again(RetryReason::Unavailable, None, None));
        };
        let event = match &wanted.date {
            None => old.event.clone(),
            Some(date) => {
                let train = (old.event.as_str().rsplit_once('_'))
                    .map(|(train, _)| train)
                    .ok_or_else(|| bad(format!("{} is not a train run", old.event)))?;
                TrainRun::parse(train, date)
                    .map_err(|e| bad(e.to_string()))?
                    .event()
            }
        };
        let layout = match event == old.event {
            true => Arc::clone(&old_layout),
            false => self.layout(&event).await.ok_or_else(|| {
                Answer::refused(
                    StatusCode::NOT_FOUND,
                    format!("no train run {event} is on sale"),
                )
            })?,
        };
        let (old_from, old_to) = old_layout.leg_names(ticket.leg);
        let old_class = (old_layout.classes().get(ticket.class)).map_or("?", |c| c.name());
        let from = wanted.from.as_deref().unwrap_or(old_from);
        let to = wanted.to.as_deref().unwrap_or(old_to);
        let class = wanted.class.as_deref().unwrap_or(old_class);
        let train_error = |e: TrainError| bad(e.to_string());
        let preference = match &wanted.seat {
            Some(seat) => SeatPreference::parse(seat).map_err(train_error)?,
            None => SeatPreference::ANY,
        };
        let passengers = u32::try_from(ticket.seats.len()).unwrap_or(u32::MAX);
        let seats = SeatRequest {
            class: layout.class_index(class).map_err(train_error)?,
            leg: layout.leg(from, to).map_err(train_error)?,
            passengers: Passengers::new(passengers).map_err(train_error)?,
            preference,
        };
        let same = event == old.event && seats.class == ticket.class && seats.leg == ticket.leg;
        if same && wanted.seat.is_none() {
            return Err(bad(
                "a change needs another date, from, to, class or seat than the ticket's".into(),
            ));
        }
        Ok(ChangeTo { event, seats })
    }

    /// The key of a change's new order on an open or anonymous sale.
    async fn new_order_key(&self, new: &Order) -> Option<String> {
        let keys = self.order_keys.as_ref()?;
        let sale = self.desk.sale(&new.event).await.ok().flatten()?;
        (!sale.policy().needs_token()).then(|| keys.key_for(sale.life(), &new.id))
    }
}

impl<C: CentralStock + OrderStream + Clone + std::fmt::Debug> OrdersApi for OrdersHttp<C> {
    fn answer(&self, request: OrdersRequest, caller: Caller) -> AnswerFuture<'_> {
        Box::pin(self.handle(request, caller))
    }
}
