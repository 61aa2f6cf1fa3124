//! Every answer a node gives, as a type, and its exact bytes on the wire:
//! the buy API's own answers (a sale, sold out, already purchased, not
//! open, not admitted) and, wrapped, the answers every Spike server gives
//! ([`spike_http::Answer`]: refusals, "try again", rate limits, documents).
//! The code of an answer comes from its variant alone; the hot answers are
//! static or formatted from validated identifiers (which need no escaping),
//! and free text goes through `serde_json`.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Response, StatusCode};
use serde::Serialize;
use serde_json::{json, Value};
use spike_core::{Code, EventId, OrderId, RequestId, SeatPreference, Ticket, TrainLayout};
use spike_http::{json_bytes, status_of, Answer as HttpAnswer, RetryReason};

/// Body of the sold-out answer; the baseline server answers these same bytes.
pub const SOLD_OUT_BODY: &[u8] = br#"{"code":-1,"msg":"sold out"}"#;

/// One answer of a node.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// Code 1: a seat was sold (or this request id had bought it before).
    Sold {
        /// The sale.
        event: EventId,
        /// The order holding the seat.
        order: OrderId,
        /// The secret that lets its buyer see and cancel it (open and
        /// anonymous sales; token sales use the buyer's token instead).
        order_key: Option<String>,
    },
    /// Code 1: this request id bought a seat before, and the caller has not
    /// proved that the order is theirs (on an open or anonymous sale, a
    /// request id proves nothing): the answer says so and withholds the
    /// order and its key. The order is kept for the stat log.
    ReplayWithheld {
        /// The sale.
        event: EventId,
        /// The order the request bought (never in the body).
        order: OrderId,
    },
    /// Code 1: seats on a train run were sold (or this request id had
    /// bought them before).
    SeatsSold {
        /// The order holding the seats.
        order: OrderId,
        /// The seats, and the answer's `data` ([`Answer::seats_sold`]).
        seats: Box<SoldSeats>,
    },
    /// Code -1.
    SoldOut,
    /// Code -1 on a train run: no seat (or no group of seats in one
    /// carriage) is free over the leg asked for.
    SoldOutForLeg {
        /// What was asked, and the order sequence it was true after.
        asked: Box<Value>,
    },
    /// Code -2: the user's limit is reached; their latest order.
    AlreadyPurchased {
        /// The user's latest order.
        order: OrderId,
    },
    /// Code -3.
    NotOpen,
    /// Code -7, 403: the sale has a waiting room and this buyer is not
    /// admitted; nothing changed.
    NotAdmitted {
        /// Why, and what to do.
        reason: String,
        /// Where the buyer stands, when known.
        standing: Option<Value>,
    },
    /// Any answer every Spike server gives (a refusal, "try again", a
    /// document, …).
    Plain(HttpAnswer),
}

impl From<HttpAnswer> for Answer {
    fn from(answer: HttpAnswer) -> Self {
        Self::Plain(answer)
    }
}

impl Answer {
    /// A 400 refusal.
    pub fn bad_request(message: impl Into<String>) -> Self {
        HttpAnswer::bad_request(message).into()
    }

    /// A refusal with `status`.
    pub fn refused(status: StatusCode, message: impl Into<String>) -> Self {
        HttpAnswer::refused(status, message).into()
    }

    /// A refusal with `status` and `data` about what it refers to.
    pub fn refused_with(status: StatusCode, message: impl Into<String>, data: Value) -> Self {
        HttpAnswer::Refused {
            status,
            message: message.into(),
            data: Some(data),
        }
        .into()
    }

    /// A 404 for a path nobody serves, naming the paths that exist.
    pub fn no_such_path(path: &str, known: &str) -> Self {
        HttpAnswer::no_such_path(path, known).into()
    }

    /// A code 0 answer carrying `data`, serialized once, here.
    pub fn done(message: Option<String>, data: &impl Serialize) -> Self {
        HttpAnswer::done(message, data).into()
    }

    /// 200: informational JSON, as is.
    pub fn info(value: Value) -> Self {
        HttpAnswer::Info(value).into()
    }

    /// 401: the request does not prove who sends it.
    pub fn unauthorized(reason: impl Into<String>) -> Self {
        HttpAnswer::Unauthorized {
            reason: reason.into(),
        }
        .into()
    }

    /// 429: over a rate limit until `retry_after`.
    pub fn rate_limited(retry_after: Duration) -> Self {
        HttpAnswer::RateLimited { retry_after }.into()
    }

    /// 405: the path takes only `allowed`.
    pub fn method_not_allowed(allowed: &'static str) -> Self {
        HttpAnswer::MethodNotAllowed { allowed }.into()
    }

    /// Code -5: try again, with the request id to retry with (and the key
    /// that proves it the caller's, for a request id the node made).
    pub fn try_again(
        reason: RetryReason,
        request: Option<RequestId>,
        request_key: Option<String>,
    ) -> Self {
        HttpAnswer::TryAgain {
            reason,
            request,
            request_key,
        }
        .into()
    }

    /// A train ticket was sold: its seats by name, the order and its key,
    /// and whether the seat preference was met (when there was one).
    pub fn seats_sold(layout: &TrainLayout, sold: SoldTicket<'_>) -> Self {
        let SoldTicket {
            event,
            order,
            order_key,
            ticket,
            preference,
        } = sold;
        let mut data = ticket_json(layout, &ticket);
        data["order_id"] = Value::from(order.as_str());
        data["event"] = Value::from(event.as_str());
        if let Some(key) = order_key {
            data["order_key"] = Value::from(key);
        }
        let met = (layout.classes().get(ticket.class))
            .and_then(|class| preference.met_by(class, &ticket.seats));
        if let Some(met) = met {
            data["seat_preference"] = Value::from(preference.name());
            data["preference_met"] = Value::from(met);
        }
        Self::SeatsSold {
            order,
            seats: Box::new(SoldSeats { ticket, data }),
        }
    }

    /// The answer's code.
    pub fn code(&self) -> Code {
        match self {
            Self::Sold { .. } | Self::SeatsSold { .. } | Self::ReplayWithheld { .. } => {
                Code::Success
            }
            Self::SoldOut | Self::SoldOutForLeg { .. } => Code::SoldOut,
            Self::AlreadyPurchased { .. } => Code::AlreadyPurchased,
            Self::NotOpen => Code::NotOpen,
            Self::NotAdmitted { .. } => Code::NotAdmitted,
            Self::Plain(answer) => answer.code(),
        }
    }

    /// The order this answer names, if any.
    pub fn order(&self) -> Option<&OrderId> {
        match self {
            Self::Sold { order, .. }
            | Self::SeatsSold { order, .. }
            | Self::ReplayWithheld { order, .. }
            | Self::AlreadyPurchased { order } => Some(order),
            _ => None,
        }
    }

    /// The seats this answer sold, on a train run.
    pub fn ticket(&self) -> Option<&Ticket> {
        match self {
            Self::SeatsSold { seats, .. } => Some(&seats.ticket),
            _ => None,
        }
    }

    /// HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Plain(answer) => answer.status(),
            other => status_of(other.code()),
        }
    }

    /// The body's bytes.
    pub fn body(&self) -> Bytes {
        let code = self.code();
        match self {
            Self::Sold {
                event,
                order,
                order_key: None,
            } => Bytes::from(format!(
                r#"{{"code":{code},"msg":"{}","data":{{"order_id":"{order}","event":"{event}"}}}}"#,
                code.label()
            )),
            // An order key is base64url: no escaping needed either.
            Self::Sold {
                event,
                order,
                order_key: Some(key),
            } => Bytes::from(format!(
                r#"{{"code":{code},"msg":"{}","data":{{"order_id":"{order}","event":"{event}","order_key":"{key}"}}}}"#,
                code.label()
            )),
            Self::ReplayWithheld { event, .. } => json_bytes(&json!({
                "code": code.number(),
                "msg": code.label(),
                "data": {
                    "event": event.as_str(),
                    "replayed": true,
                    "withheld": "this request id bought a seat before; its order is shown to whoever proves it holds it: send the request_key of this request's 503 answer, or the order_key (or, on a token sale, the buyer's token)",
                },
            })),
            Self::SeatsSold { seats, .. } => json_bytes(&json!({
                "code": code.number(),
                "msg": code.label(),
                "data": seats.data,
            })),
            Self::SoldOut => Bytes::from_static(SOLD_OUT_BODY),
            Self::SoldOutForLeg { asked } => json_bytes(&json!({
                "code": code.number(),
                "msg": "sold out for this segment",
                "data": asked,
            })),
            Self::AlreadyPurchased { order } => Bytes::from(format!(
                r#"{{"code":{code},"msg":"{}","data":{{"order_id":"{order}"}}}}"#,
                code.label()
            )),
            Self::NotOpen => json_bytes(&json!({ "code": code.number(), "msg": code.label() })),
            Self::NotAdmitted { reason, standing } => {
                let mut data = standing.clone().unwrap_or_else(|| json!({}));
                data["reason"] = Value::from(reason.as_str());
                json_bytes(&json!({ "code": code.number(), "msg": code.label(), "data": data }))
            }
            Self::Plain(answer) => answer.body(),
        }
    }

    /// The whole HTTP response.
    pub fn into_response(self) -> Response<Full<Bytes>> {
        if let Self::Plain(answer) = self {
            return answer.into_response();
        }
        let mut response = Response::new(Full::new(self.body()));
        *response.status_mut() = self.status();
        response
            .headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        response
    }
}

/// A ticket as answers show it: `{"class": "second", "from": "Jinan",
/// "to": "Shanghai", "seats": ["03-12A", "03-12B"]}` (the purchase answer
/// adds the order to it; the orders API shows it as the order's `ticket`).
pub fn ticket_json(layout: &TrainLayout, ticket: &Ticket) -> Value {
    let (from, to) = layout.leg_names(ticket.leg);
    json!({
        "class": layout.classes().get(ticket.class).map_or("?", |c| c.name()),
        "from": from,
        "to": to,
        "seats": layout.seat_names(ticket),
    })
}

/// A sale of seats, as [`Answer::seats_sold`] answers it.
#[derive(Debug)]
pub struct SoldTicket<'a> {
    /// The train run.
    pub event: &'a EventId,
    /// The order that holds the seats.
    pub order: OrderId,
    /// The order's key, for the buyer (none when withheld or unsigned).
    pub order_key: Option<String>,
    /// The seats central stock gave.
    pub ticket: Ticket,
    /// The seat the traveller asked for.
    pub preference: SeatPreference,
}

/// What [`Answer::SeatsSold`] carries: the seats (for the stat log) and
/// the answer's `data`.
#[derive(Debug, Clone, PartialEq)]
pub struct SoldSeats {
    /// The seats, as central stock gave them.
    pub ticket: Ticket,
    /// The answer's `data`: the seats by name, the order, its key.
    pub data: Value,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(answer: &Answer) -> Value {
        serde_json::from_slice(&answer.body()).expect("answers are valid JSON")
    }

    #[test]
    fn bodies_are_the_documented_json() {
        let event = EventId::parse("G1").expect("event");
        let order = OrderId::parse("G1-9").expect("order");
        let sold = Answer::Sold {
            event,
            order: order.clone(),
            order_key: None,
        };
        assert_eq!(
            parsed(&sold),
            json!({"code":1,"msg":"success","data":{"order_id":"G1-9","event":"G1"}})
        );
        assert_eq!(
            parsed(&Answer::SoldOut),
            json!({"code":-1,"msg":"sold out"})
        );
        assert_eq!(
            parsed(&Answer::AlreadyPurchased { order }),
            json!({"code":-2,"msg":"already purchased","data":{"order_id":"G1-9"}})
        );
        assert_eq!(
            parsed(&Answer::NotOpen),
            json!({"code":-3,"msg":"sale not open"})
        );
        let not_admitted = Answer::NotAdmitted {
            reason: "wait".into(),
            standing: None,
        };
        assert_eq!(parsed(&not_admitted)["data"]["reason"], "wait");
        assert_eq!(not_admitted.status(), StatusCode::FORBIDDEN);
    }

    #[test]
    fn every_body_carries_its_variants_code_and_status() {
        let answers = [
            Answer::SoldOut,
            Answer::NotOpen,
            Answer::bad_request("x"),
            Answer::method_not_allowed("GET"),
            Answer::try_again(RetryReason::Unavailable, None, None),
            Answer::unauthorized("a token is required"),
            Answer::rate_limited(Duration::from_millis(250)),
        ];
        for answer in answers {
            assert_eq!(
                parsed(&answer)["code"],
                i64::from(answer.code().number()),
                "{answer:?}"
            );
            assert_eq!(
                answer.clone().into_response().status(),
                answer.status(),
                "{answer:?}"
            );
        }
        assert_eq!(Answer::SoldOut.status(), StatusCode::OK);
    }
}
