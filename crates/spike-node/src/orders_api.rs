//! The orders API over HTTP (`--database-url`): `GET /orders/{id}`,
//! `GET /users/{id}/orders`, `POST /orders/{id}/pay`, `POST /orders/{id}/cancel`.
//! Every answer is JSON with a `code` (0 done, -4 refused, -5 try again) and,
//! whenever the order exists, the order as it now stands.

use std::future::Future;
use std::pin::Pin;

use hyper::{Method, StatusCode};
use serde_json::{json, Value};
use spike_core::order::{Order, Refusal};
use spike_core::{CentralStock, OrderId, OrderStream, StreamEntry, UserId};
use spike_orders::{Found, Moved, OrderDesk, OrdersError};

use crate::answer::Answer;
use crate::query::{decode, BuyParams};

/// Most orders `GET /users/{id}/orders` lists.
pub const MAX_USER_ORDERS: u32 = 100;

/// A boxed answer in the making.
pub type AnswerFuture<'a> = Pin<Box<dyn Future<Output = Answer> + Send + 'a>>;

/// Something that answers the orders API's paths (object-safe, so a node
/// need not know its central stock's stream type).
pub trait OrdersApi: Send + Sync + std::fmt::Debug + 'static {
    /// Answers one request under `/orders/` or `/users/`.
    fn answer<'a>(
        &'a self,
        method: &'a Method,
        path: &'a str,
        query: Option<&'a str>,
    ) -> AnswerFuture<'a>;
}

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

/// What an orders request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
enum OrdersRequest {
    Show(OrderId),
    Pay(OrderId),
    Cancel(OrderId),
    OfUser(UserId),
}

fn refused(status: StatusCode, message: impl Into<String>) -> Answer {
    Answer::Json {
        status,
        body: json!({ "code": -4, "msg": message.into() }),
    }
}

fn route(method: &Method, path: &str) -> Result<OrdersRequest, Answer> {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let bad_id = |e: &dyn std::fmt::Display| refused(StatusCode::BAD_REQUEST, e.to_string());
    let order = |raw: &str| {
        OrderId::parse(decode(raw, "order_id").map_err(|e| bad_id(&e))?).map_err(|e| bad_id(&e))
    };
    let allowed = |want: Method, request: OrdersRequest| {
        if *method == want {
            Ok(request)
        } else {
            Err(refused(
                StatusCode::METHOD_NOT_ALLOWED,
                format!("method not allowed; use {want}"),
            ))
        }
    };
    match segments.as_slice() {
        ["orders", id] => allowed(Method::GET, OrdersRequest::Show(order(id)?)),
        ["orders", id, "pay"] => allowed(Method::POST, OrdersRequest::Pay(order(id)?)),
        ["orders", id, "cancel"] => allowed(Method::POST, OrdersRequest::Cancel(order(id)?)),
        ["users", id, "orders"] => {
            let user = UserId::parse(decode(id, "user_id").map_err(|e| bad_id(&e))?).map_err(|e| bad_id(&e))?;
            allowed(Method::GET, OrdersRequest::OfUser(user))
        }
        _ => Err(refused(
            StatusCode::NOT_FOUND,
            format!("no such path {path}; see /orders/{{id}}, /orders/{{id}}/pay, /orders/{{id}}/cancel, /users/{{id}}/orders"),
        )),
    }
}

/// An order as the API shows it.
pub fn order_json(order: &Order) -> Value {
    json!({
        "order_id": order.id.as_str(),
        "event": order.event.as_str(),
        "user_id": order.user.as_ref().map(UserId::as_str),
        "request_id": order.request.as_str(),
        "node": order.node.as_str(),
        "state": order.state.as_str(),
        "sold_at_ms": order.sold_at_ms,
        "expires_at_ms": order.expires_at_ms,
        "updated_at_ms": order.updated_at_ms,
        "seat_returned_at_ms": order.seat_returned_at_ms,
        "written": true,
    })
}

fn entry_json(entry: &StreamEntry) -> Value {
    json!({
        "order_id": entry.order.as_str(),
        "event": entry.order.split().map(|(event, _)| event.to_string()),
        "user_id": entry.user.as_ref().map(UserId::as_str),
        "request_id": entry.request.as_str(),
        "node": entry.node.as_str(),
        "state": "reserved",
        "sold_at_ms": entry.sold_at_ms,
        "written": false,
    })
}

fn unavailable(error: &OrdersError) -> Answer {
    tracing::warn!(%error, "orders API: backend failed");
    Answer::Json {
        status: StatusCode::SERVICE_UNAVAILABLE,
        body: json!({ "code": -5, "msg": "try again", "data": { "reason": error.to_string() } }),
    }
}

fn no_such_order(id: &OrderId) -> Answer {
    refused(StatusCode::NOT_FOUND, format!("no such order {id}"))
}

/// The answer to a pay or cancel that reached the ledger.
fn moved_answer(id: &OrderId, moved: Moved) -> Answer {
    let (status, code, message, order) = match moved {
        Moved::Applied(order) => (StatusCode::OK, 0, format!("order {}", order.state), order),
        Moved::Refused(order, Refusal::AlreadyDone(state)) => {
            (StatusCode::OK, 0, format!("order already {state}"), order)
        }
        Moved::Refused(order, Refusal::Finished(state)) => {
            (StatusCode::CONFLICT, -4, format!("order is {state}"), order)
        }
        Moved::Refused(order, Refusal::WindowClosed | Refusal::NotDue) => (
            StatusCode::CONFLICT,
            -4,
            "payment window closed; the order is expiring".to_owned(),
            order,
        ),
        Moved::NotFound => return no_such_order(id),
    };
    Answer::Json {
        status,
        body: json!({ "code": code, "msg": message, "data": order_json(&order) }),
    }
}

impl<C: CentralStock + OrderStream + Clone> OrdersHttp<C> {
    async fn handle(&self, method: &Method, path: &str, query: Option<&str>) -> Answer {
        let request = match route(method, path) {
            Ok(request) => request,
            Err(answer) => return answer,
        };
        let (id, pay) = match request {
            OrdersRequest::OfUser(user) => {
                return match self.desk.orders_of_user(&user, MAX_USER_ORDERS).await {
                    Ok(orders) => Answer::Json {
                        status: StatusCode::OK,
                        body: json!({ "code": 0, "data": orders.iter().map(order_json).collect::<Vec<_>>() }),
                    },
                    Err(error) => unavailable(&error),
                }
            }
            OrdersRequest::Show(id) => {
                return match self.desk.find(&id).await {
                    Ok(Found::Written(order)) => Answer::Json {
                        status: StatusCode::OK,
                        body: json!({ "code": 0, "data": order_json(&order) }),
                    },
                    Ok(Found::InStream(entry)) => Answer::Json {
                        status: StatusCode::OK,
                        body: json!({ "code": 0, "data": entry_json(&entry) }),
                    },
                    Ok(Found::Missing) => no_such_order(&id),
                    Err(error) => unavailable(&error),
                }
            }
            OrdersRequest::Pay(id) => (id, true),
            OrdersRequest::Cancel(id) => (id, false),
        };
        // Only the buyer may pay for or cancel their order.
        let user = match BuyParams::parse(query) {
            Ok(params) => params.user,
            Err(error) => return refused(StatusCode::BAD_REQUEST, error.to_string()),
        };
        match self.desk.find(&id).await {
            Ok(Found::Missing) => return no_such_order(&id),
            Ok(found) if found.user().is_some() && user.is_none() => {
                return refused(
                    StatusCode::BAD_REQUEST,
                    "user_id is required to pay for or cancel an order",
                );
            }
            Ok(found) if found.user().is_some() && found.user() != user.as_ref() => {
                return refused(
                    StatusCode::FORBIDDEN,
                    format!("order {id} belongs to another user_id"),
                );
            }
            Ok(_) => {}
            Err(error) => return unavailable(&error),
        }
        let moved = if pay {
            self.desk.pay(&id).await
        } else {
            self.desk.cancel(&id).await
        };
        match moved {
            Ok(moved) => moved_answer(&id, moved),
            Err(error) => unavailable(&error),
        }
    }
}

impl<C: CentralStock + OrderStream + Clone + std::fmt::Debug> OrdersApi for OrdersHttp<C> {
    fn answer<'a>(
        &'a self,
        method: &'a Method,
        path: &'a str,
        query: Option<&'a str>,
    ) -> AnswerFuture<'a> {
        Box::pin(self.handle(method, path, query))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_map_to_requests_and_wrong_ones_to_4xx() {
        let id = OrderId::parse("G1-3").unwrap();
        assert_eq!(
            route(&Method::GET, "/orders/G1-3"),
            Ok(OrdersRequest::Show(id.clone()))
        );
        assert_eq!(
            route(&Method::POST, "/orders/G1-3/pay"),
            Ok(OrdersRequest::Pay(id.clone()))
        );
        assert_eq!(
            route(&Method::POST, "/orders/G1-3/cancel"),
            Ok(OrdersRequest::Cancel(id))
        );
        assert_eq!(
            route(&Method::GET, "/users/%E5%BC%A0/orders"),
            Ok(OrdersRequest::OfUser(UserId::parse("张").unwrap()))
        );
        let status = |method: Method, path: &str| route(&method, path).unwrap_err().status();
        assert_eq!(
            status(Method::GET, "/orders/G1-3/pay"),
            StatusCode::METHOD_NOT_ALLOWED
        );
        assert_eq!(
            status(Method::GET, "/orders/bad%20id"),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            status(Method::GET, "/orders/G1-3/refund"),
            StatusCode::NOT_FOUND
        );
    }
}
