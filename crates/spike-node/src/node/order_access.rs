//! Order access: who may reach the orders API (the payment service by the
//! operator key, a buyer by their token, the holder of an order key) before
//! the request is handed to it. A refund is the buyer's or the payment
//! service's; a payment is the payment service's alone.

use crate::answer::Answer;
use hyper::StatusCode;
use spike_core::CentralStock;

use super::caller::TokenScope;
use super::refusal::{forbidden, unauthorized};
use super::Node;
use crate::orders::Caller;
use crate::routes::{ChangeWanted, OrdersRequest};

impl<C: CentralStock> Node<C> {
    /// Hands an orders request to the orders API, if this node has one,
    /// once it knows who is asking.
    pub(super) async fn orders(
        &self,
        mut request: OrdersRequest,
        query: Option<&str>,
        bearer: Option<&str>,
    ) -> Answer {
        let Some(orders) = &self.orders else {
            return Answer::refused(
                StatusCode::NOT_FOUND,
                "the orders API is off; start the node with --database-url",
            );
        };
        let params = match self.read_params(query, bearer) {
            Ok(params) => params,
            Err(refusal) => return refusal,
        };
        if let OrdersRequest::Change(_, wanted) = &mut request {
            let ticket = params.ticket.clone();
            *wanted = ChangeWanted {
                date: ticket.date,
                from: ticket.from,
                to: ticket.to,
                class: ticket.class,
                seat: ticket.seat,
            };
        }
        // The operator key only counts from the header (a key in a URL ends
        // up in access logs); a buyer token may also come as `token=`.
        let operator = bearer
            .filter(|key| (self.operator.as_ref()).is_some_and(|operator| operator.accepts(key)));
        if operator.is_some() {
            return orders.answer(request, Caller::Operator).await;
        }
        match self.caller(
            &request,
            params.order_key.as_deref(),
            params.token.as_deref(),
        ) {
            Ok(caller) => orders.answer(request, caller).await,
            Err(refusal) => refusal,
        }
    }

    /// Who is asking the orders API, when it is not the operator, or why
    /// they may not. A payment needs the operator key. A buyer lists their
    /// orders with their token. One order is reached with its buyer's token
    /// on a token sale, and with its order key on an open or anonymous sale.
    pub(super) fn caller(
        &self,
        request: &OrdersRequest,
        order_key: Option<&str>,
        bearer: Option<&str>,
    ) -> Result<Caller, Answer> {
        match request {
            OrdersRequest::Pay(_) => Err(match bearer {
                None => unauthorized(
                    "a payment is confirmed by the payment service: send the operator key as Authorization: Bearer",
                ),
                Some(_) => forbidden("only the payment service (the operator key) may confirm a payment"),
            }),
            OrdersRequest::OfUser(owner) => {
                let subject = self.token_subject(
                    bearer,
                    TokenScope::Identity,
                    Some("listing a buyer's orders needs their token (Authorization: Bearer)"),
                )?;
                if subject != *owner {
                    return Err(forbidden("these are another buyer's orders"));
                }
                Ok(Caller::Buyer(subject))
            }
            OrdersRequest::Show(order)
            | OrdersRequest::Cancel(order)
            | OrdersRequest::Refund(order)
            | OrdersRequest::Change(order, _) => {
                let no_such_order =
                    || Answer::refused(StatusCode::NOT_FOUND, format!("no such order {order}"));
                let (event, _) = order.split().ok_or_else(no_such_order)?;
                let state = self.event(&event).ok_or_else(no_such_order)?;
                if state.config.policy().needs_token() {
                    let subject = self.token_subject(
                        bearer,
                        TokenScope::Event(&event),
                        Some("this order is reached with its buyer's token (Authorization: Bearer)"),
                    )?;
                    return Ok(Caller::Buyer(subject));
                }
                let key = order_key.ok_or_else(|| {
                    unauthorized("this order is reached with the order_key its purchase answer carried")
                })?;
                match &self.order_keys {
                    Some(keys) if keys.verify(state.config.life(), order, key) => {
                        Ok(Caller::OrderKeyHolder)
                    }
                    _ => Err(forbidden("this order_key does not open this order")),
                }
            }
        }
    }
}
