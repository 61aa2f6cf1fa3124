//! Every answer a node gives, as a type, and its exact JSON bytes. The hot
//! answers are static or formatted from validated identifiers (which need no
//! escaping); free-text messages go through `serde_json`.

use bytes::Bytes;
use hyper::StatusCode;
use spike_core::{EventId, OrderId, RequestId};

/// Body of the sold-out answer; the baseline server answers these same bytes.
pub const SOLD_OUT_BODY: &[u8] = br#"{"code":-1,"msg":"sold out"}"#;

/// Why a purchase could not be decided right now (code -5, HTTP 503).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryReason {
    /// Central stock could not be reached; nothing was sold.
    Unavailable,
    /// Central stock may have sold the seat; retry with the same request id.
    OutcomeUnknown,
    /// Central stock has lost this sale's state; an operator must restore it.
    SaleStateMissing,
    /// The node is shutting down.
    ShuttingDown,
}

impl RetryReason {
    fn text(self) -> &'static str {
        match self {
            Self::Unavailable => "central stock unavailable; nothing was sold",
            Self::OutcomeUnknown => {
                "outcome unknown; retry with the same request_id or ask /buy/result"
            }
            Self::SaleStateMissing => {
                "central stock has no state for this sale; it must be restored before selling"
            }
            Self::ShuttingDown => "node is shutting down",
        }
    }
}

/// One answer to one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// 200, code 1: a seat was sold (or this request id had bought it before).
    Sold {
        /// The sale.
        event: EventId,
        /// The order holding the seat.
        order: OrderId,
    },
    /// 200, code -1.
    SoldOut,
    /// 200, code -2: the user's limit is reached; their latest order.
    AlreadyPurchased {
        /// The user's latest order.
        order: OrderId,
    },
    /// 200, code -3.
    NotOpen,
    /// 4xx, code -4: the request is wrong; nothing changed.
    BadRequest {
        /// 400, 404, 405, 409 or 414.
        status: StatusCode,
        /// What is wrong.
        message: String,
    },
    /// 503, code -5: try again.
    TryAgain {
        /// Why.
        reason: RetryReason,
        /// The request id to retry with, when a purchase was attempted.
        request: Option<RequestId>,
    },
    /// 200: `/healthz` and other informational JSON.
    Info(serde_json::Value),
    /// 200: the Prometheus text exposition.
    Metrics(String),
    /// The orders API's answers: any status, a JSON body with a `code`.
    Json {
        /// HTTP status.
        status: StatusCode,
        /// The body, which carries `code` (0 ok, -4 refused, -5 try again).
        body: serde_json::Value,
    },
}

impl Answer {
    /// A 400 answer.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::BadRequest {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
        }
    }

    /// The articles' result code (0 for informational answers).
    pub fn code(&self) -> i8 {
        match self {
            Self::Sold { .. } => 1,
            Self::SoldOut => -1,
            Self::AlreadyPurchased { .. } => -2,
            Self::NotOpen => -3,
            Self::BadRequest { .. } => -4,
            Self::TryAgain { .. } => -5,
            Self::Info(_) | Self::Metrics(_) => 0,
            Self::Json { body, .. } => body["code"]
                .as_i64()
                .and_then(|c| i8::try_from(c).ok())
                .unwrap_or(0),
        }
    }

    /// The order this answer names, if any.
    pub fn order(&self) -> Option<&OrderId> {
        match self {
            Self::Sold { order, .. } | Self::AlreadyPurchased { order } => Some(order),
            _ => None,
        }
    }

    /// The `Content-Type` of the body.
    pub fn content_type(&self) -> &'static str {
        match self {
            Self::Metrics(_) => "text/plain; version=0.0.4",
            _ => "application/json",
        }
    }

    /// HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest { status, .. } | Self::Json { status, .. } => *status,
            Self::TryAgain { .. } => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::OK,
        }
    }

    /// JSON body.
    pub fn body(&self) -> Bytes {
        match self {
            Self::Sold { event, order } => Bytes::from(format!(
                r#"{{"code":1,"msg":"success","data":{{"order_id":"{order}","event":"{event}"}}}}"#
            )),
            Self::SoldOut => Bytes::from_static(SOLD_OUT_BODY),
            Self::AlreadyPurchased { order } => Bytes::from(format!(
                r#"{{"code":-2,"msg":"already purchased","data":{{"order_id":"{order}"}}}}"#
            )),
            Self::NotOpen => Bytes::from_static(br#"{"code":-3,"msg":"sale not open"}"#),
            Self::BadRequest { message, .. } => {
                json(&serde_json::json!({ "code": -4, "msg": message }))
            }
            Self::TryAgain { reason, request } => json(&serde_json::json!({
                "code": -5,
                "msg": "try again",
                "data": { "reason": reason.text(), "request_id": request.as_ref().map(RequestId::as_str) },
            })),
            Self::Info(value) | Self::Json { body: value, .. } => json(value),
            Self::Metrics(text) => Bytes::from(text.clone()),
        }
    }
}

fn json(value: &serde_json::Value) -> Bytes {
    Bytes::from(value.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(answer: &Answer) -> serde_json::Value {
        serde_json::from_slice(&answer.body()).expect("answers are valid JSON")
    }

    #[test]
    fn bodies_are_the_documented_json() {
        let event = EventId::parse("G1").unwrap();
        let order = OrderId::parse("G1-9").unwrap();
        let sold = Answer::Sold {
            event,
            order: order.clone(),
        };
        assert_eq!(
            parsed(&sold),
            serde_json::json!({"code":1,"msg":"success","data":{"order_id":"G1-9","event":"G1"}})
        );
        assert_eq!(
            parsed(&Answer::SoldOut),
            serde_json::json!({"code":-1,"msg":"sold out"})
        );
        assert_eq!(
            parsed(&Answer::AlreadyPurchased { order }),
            serde_json::json!({"code":-2,"msg":"already purchased","data":{"order_id":"G1-9"}})
        );
        assert_eq!(parsed(&Answer::NotOpen)["code"], -3);
    }

    #[test]
    fn free_text_is_escaped() {
        let answer = Answer::bad_request("unknown event \"x\"\n");
        assert_eq!(parsed(&answer)["msg"], "unknown event \"x\"\n");
        assert_eq!(answer.status(), StatusCode::BAD_REQUEST);
        let retry = Answer::TryAgain {
            reason: RetryReason::OutcomeUnknown,
            request: Some(RequestId::parse("r:1").unwrap()),
        };
        assert_eq!(parsed(&retry)["data"]["request_id"], "r:1");
        assert_eq!(retry.status(), StatusCode::SERVICE_UNAVAILABLE);
    }
}
