//! The answers every Spike server gives, whatever it serves (refusals,
//! "try again", rate limits, documents), as a type with its exact bytes on
//! the wire, and the HTTP status of each answer code ([`status_of`]): the
//! one place HTTP statuses meet [`spike_core::Code`]. The buy API's own
//! answers (a sale, sold out, …) live with the node, which serves them.

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, ALLOW, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use hyper::{Response, StatusCode};
use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::{json, Value};
use spike_core::{Code, RequestId};
use std::sync::Arc;

/// Content type of the Prometheus text exposition.
pub const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4";

/// Why a request could not be decided right now (code -5).
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
    /// The order ledger could not be reached; nothing changed.
    LedgerUnavailable,
    /// The front door found no node that could answer.
    NoNodeAnswered,
    /// The sale needs buyer tokens and this node has no key to verify them.
    NoTokenKey,
    /// The server has as many connections open as it allows.
    Overloaded,
    /// As many purchases wait on central stock as the node allows; nothing
    /// was sold.
    CentralBusy,
    /// The front door has as many requests waiting on every node as it
    /// allows; nothing was sent.
    NodesBusy,
    /// The sale has a waiting room and this node has no key for admission
    /// tokens.
    NoAdmissionKey,
    /// The stat log cannot keep up (its disk stalls): nothing was sold.
    StatLogFull,
    /// The server is behind on its requests (a standing queue, see
    /// [`crate::lag`]): answered at once rather than late; nothing changed.
    Congested,
    /// An operator paused the sale: nothing was sold.
    Paused,
}

/// `Retry-After` of a paused sale's answers, in seconds: a pause is an
/// operator's decision, not a second's congestion.
pub const PAUSED_RETRY_AFTER: &str = "5";

impl RetryReason {
    /// What the client is told.
    pub fn text(self) -> &'static str {
        match self {
            Self::Unavailable => "central stock unavailable; nothing was sold",
            Self::OutcomeUnknown => {
                "outcome unknown; retry with the same request_id or ask /buy/result"
            }
            Self::SaleStateMissing => {
                "central stock has no state for this sale; it must be restored before selling"
            }
            Self::ShuttingDown => "node is shutting down",
            Self::LedgerUnavailable => "order ledger unavailable; nothing changed",
            Self::NoNodeAnswered => "no node could answer; try again",
            Self::NoTokenKey => {
                "this node cannot verify buyer tokens (no --token-key-file); try another node"
            }
            Self::Overloaded => "too many open connections; try again in a second",
            Self::NoAdmissionKey => {
                "this node cannot make or check admission tokens (no --order-key-file); try another node"
            }
            Self::NodesBusy => {
                "every node has as many requests waiting as the front door allows; nothing was sent; try again in a second"
            }
            Self::CentralBusy => {
                "too many purchases are waiting on central stock; nothing was sold; try again in a second"
            }
            Self::StatLogFull => {
                "this node cannot record answers right now (its stat log is stalled); nothing was sold"
            }
            Self::Congested => {
                "more requests arrive than this server can answer in time; nothing changed; try again in a second"
            }
            Self::Paused => "the sale is paused by its operator; nothing was sold; try again later",
        }
    }

    /// Seconds to wait before trying again (`Retry-After`), when waiting
    /// is the point: the server sheds load.
    pub fn retry_after(self) -> Option<&'static str> {
        match self {
            Self::Overloaded | Self::CentralBusy | Self::NodesBusy | Self::Congested => Some("1"),
            Self::Paused => Some(PAUSED_RETRY_AFTER),
            _ => None,
        }
    }

    /// The HTTP status: 502 from the front door, 503 otherwise.
    pub fn status(self) -> StatusCode {
        match self {
            Self::NoNodeAnswered => StatusCode::BAD_GATEWAY,
            _ => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

/// One answer to one request.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// Code -4: the request is wrong or not allowed; nothing changed.
    Refused {
        /// 400, 403, 404, 409, 413 or 414 (500 if an answer could not be built).
        status: StatusCode,
        /// What is wrong.
        message: String,
        /// What the refusal is about (the order as it stands), if anything.
        data: Option<Value>,
    },
    /// Code -4, 405: the path exists but not for this method.
    MethodNotAllowed {
        /// The methods it takes, as the `Allow` header lists them.
        allowed: &'static str,
    },
    /// Code -6, 401: the request does not prove who sends it; nothing changed.
    Unauthorized {
        /// What the client should change.
        reason: String,
    },
    /// Code -8, 429: the buyer or their address is over a rate limit;
    /// nothing changed.
    RateLimited {
        /// When the bucket holds a request again (`Retry-After`, rounded up
        /// to whole seconds; `data.retry_after_ms` exactly).
        retry_after: std::time::Duration,
    },
    /// Code -5: try again.
    TryAgain {
        /// Why.
        reason: RetryReason,
        /// The request id to retry with, when a purchase was attempted.
        request: Option<RequestId>,
        /// The request key that proves on a retry that the caller sent
        /// this purchase: given only with a request id the node made, on an
        /// open or anonymous sale (see `spike_auth::OrderKeys`).
        request_key: Option<String>,
    },
    /// Code 0, 200: something was carried out or looked up (`data`); made
    /// with [`Answer::done`].
    Done {
        /// What happened, when there is something to say.
        message: Option<String>,
        /// The result, already serialized.
        data: JsonData,
    },
    /// 200: informational JSON (`/healthz`, `/stats`, `/sale`), as is.
    Info(Value),
    /// 200: the Prometheus text exposition.
    Metrics(String),
    /// 200: an HTML page.
    Page(&'static str),
    /// 200: a JSON document built into the binary (the OpenAPI document).
    Document(&'static str),
}

impl Answer {
    /// A 400 refusal.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::refused(StatusCode::BAD_REQUEST, message)
    }

    /// A refusal with `status`.
    pub fn refused(status: StatusCode, message: impl Into<String>) -> Self {
        Self::Refused {
            status,
            message: message.into(),
            data: None,
        }
    }

    /// A code 0 answer carrying `data`, serialized once, here.
    pub fn done(message: Option<String>, data: &impl Serialize) -> Self {
        match serde_json::value::to_raw_value(data) {
            Ok(data) => Self::Done {
                message,
                data: JsonData(Serialized::Whole(data)),
            },
            // Only a map with non-string keys fails; no answer has one.
            Err(error) => {
                tracing::error!(%error, "an answer could not be serialized");
                Self::refused(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
            }
        }
    }

    /// Code 0: data made of `object`, a JSON object serialized once and
    /// shared by many answers, without its closing `}`, and `tail`, this
    /// answer's own members (`,"age_ms":5`) with the closing `}`. Both
    /// come from the node's own serializer: nothing a client sent.
    pub fn done_spliced(object: Arc<String>, tail: String) -> Self {
        Self::Done {
            message: None,
            data: JsonData(Serialized::Spliced { object, tail }),
        }
    }

    /// A 404 for a path nobody serves, naming the paths that exist.
    pub fn no_such_path(path: &str, known: &str) -> Self {
        Self::refused(
            StatusCode::NOT_FOUND,
            format!("no such path {path}; see {known}"),
        )
    }

    /// The answer's code.
    pub fn code(&self) -> Code {
        match self {
            Self::Refused { .. } | Self::MethodNotAllowed { .. } => Code::Refused,
            Self::TryAgain { .. } => Code::TryAgain,
            Self::Unauthorized { .. } => Code::Unauthorized,
            Self::RateLimited { .. } => Code::RateLimited,
            Self::Done { .. }
            | Self::Info(_)
            | Self::Metrics(_)
            | Self::Page(_)
            | Self::Document(_) => Code::Ok,
        }
    }

    /// The `Content-Type` of the body.
    pub fn content_type(&self) -> &'static str {
        match self {
            Self::Metrics(_) => PROMETHEUS_TEXT,
            Self::Page(_) => "text/html; charset=utf-8",
            _ => "application/json",
        }
    }

    /// HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Refused { status, .. } => *status,
            Self::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            Self::TryAgain { reason, .. } => reason.status(),
            other => status_of(other.code()),
        }
    }

    /// The body's bytes.
    pub fn body(&self) -> Bytes {
        let code = self.code();
        match self {
            Self::Refused { message, data, .. } => {
                let mut body = json!({ "code": code.number(), "msg": message });
                if let Some(data) = data {
                    body["data"] = data.clone();
                }
                json_bytes(&body)
            }
            Self::Unauthorized { reason } => {
                json_bytes(&json!({ "code": code.number(), "msg": reason }))
            }
            Self::RateLimited { retry_after } => Bytes::from(format!(
                r#"{{"code":{code},"msg":"{}","data":{{"retry_after_ms":{}}}}}"#,
                code.label(),
                retry_after.as_millis()
            )),
            Self::MethodNotAllowed { allowed } => json_bytes(&json!({
                "code": code.number(),
                "msg": format!("method not allowed; use {allowed}"),
            })),
            Self::TryAgain {
                reason,
                request,
                request_key,
            } => {
                let mut data = json!({ "reason": reason.text(), "request_id": request.as_ref().map(RequestId::as_str) });
                if let Some(key) = request_key {
                    data["request_key"] = Value::from(key.as_str());
                }
                json_bytes(&json!({ "code": code.number(), "msg": code.label(), "data": data }))
            }
            Self::Done { message, data } => {
                // `{"code":0[,"msg":…],"data":…}`, the data's text as it is.
                let text = data.text();
                let mut body = Vec::with_capacity(text.len() + 48);
                body.extend_from_slice(format!("{{\"code\":{}", code.number()).as_bytes());
                if let Some(message) = message {
                    body.extend_from_slice(b",\"msg\":");
                    body.extend_from_slice(&json_bytes(&Value::from(message.as_str())));
                }
                body.extend_from_slice(b",\"data\":");
                body.extend_from_slice(text.as_bytes());
                body.push(b'}');
                Bytes::from(body)
            }
            Self::Info(value) => json_bytes(value),
            Self::Metrics(text) => Bytes::from(text.clone()),
            Self::Page(html) => Bytes::from_static(html.as_bytes()),
            Self::Document(json) => Bytes::from_static(json.as_bytes()),
        }
    }

    /// The whole HTTP response.
    pub fn into_response(self) -> Response<Full<Bytes>> {
        let mut response = Response::new(Full::new(self.body()));
        *response.status_mut() = self.status();
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(self.content_type()));
        match self {
            Self::MethodNotAllowed { allowed } => {
                headers.insert(ALLOW, HeaderValue::from_static(allowed));
            }
            Self::Unauthorized { .. } => {
                headers.insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            Self::TryAgain { reason, .. } => {
                if let Some(seconds) = reason.retry_after() {
                    headers.insert(RETRY_AFTER, HeaderValue::from_static(seconds));
                }
            }
            Self::RateLimited { retry_after } => {
                let seconds = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
                headers.insert(RETRY_AFTER, HeaderValue::from(seconds.max(1)));
            }
            _ => {}
        }
        response
    }
}

/// A JSON value serialized once: when the answer was made, or (spliced)
/// once for many answers, each closing it with a tail of its own.
#[derive(Debug, Clone)]
pub struct JsonData(Serialized);

#[derive(Debug, Clone)]
enum Serialized {
    Whole(Box<RawValue>),
    Spliced { object: Arc<String>, tail: String },
}

impl JsonData {
    /// The JSON text.
    pub fn text(&self) -> std::borrow::Cow<'_, str> {
        match &self.0 {
            Serialized::Whole(raw) => std::borrow::Cow::Borrowed(raw.get()),
            Serialized::Spliced { object, tail } => {
                std::borrow::Cow::Owned(format!("{object}{tail}"))
            }
        }
    }
}

impl PartialEq for JsonData {
    fn eq(&self, other: &Self) -> bool {
        self.text() == other.text()
    }
}

/// The HTTP status of an answer with `code`, unless the answer says
/// otherwise (a refusal may be 403, 404, 405, 409 or 414; "try again" from
/// the front door is 502).
pub fn status_of(code: Code) -> StatusCode {
    match code {
        Code::Ok | Code::Success | Code::SoldOut | Code::AlreadyPurchased | Code::NotOpen => {
            StatusCode::OK
        }
        Code::Refused => StatusCode::BAD_REQUEST,
        Code::TryAgain => StatusCode::SERVICE_UNAVAILABLE,
        Code::Unauthorized => StatusCode::UNAUTHORIZED,
        Code::NotAdmitted => StatusCode::FORBIDDEN,
        Code::RateLimited => StatusCode::TOO_MANY_REQUESTS,
    }
}

/// A JSON value's bytes.
pub fn json_bytes(value: &Value) -> Bytes {
    Bytes::from(value.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(answer: &Answer) -> Value {
        serde_json::from_slice(&answer.body()).expect("answers are valid JSON")
    }

    #[test]
    fn bodies_are_the_documented_json() {
        let limited = Answer::RateLimited {
            retry_after: std::time::Duration::from_millis(1_250),
        };
        assert_eq!(
            parsed(&limited),
            json!({"code":-8,"msg":"too many requests","data":{"retry_after_ms":1250}})
        );
        let response = limited.into_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[RETRY_AFTER], "2", "rounded up");
    }

    #[test]
    fn every_body_carries_its_variants_code() {
        let answers = [
            Answer::bad_request("x"),
            Answer::MethodNotAllowed { allowed: "GET" },
            Answer::TryAgain {
                reason: RetryReason::Unavailable,
                request: None,
                request_key: None,
            },
            Answer::done(None, &Value::Null),
            Answer::done(Some("done".into()), &json!({ "x": 1 })),
            Answer::Unauthorized {
                reason: "a token is required".into(),
            },
            Answer::RateLimited {
                retry_after: std::time::Duration::from_millis(250),
            },
        ];
        for answer in answers {
            assert_eq!(
                parsed(&answer)["code"],
                i64::from(answer.code().number()),
                "{answer:?}"
            );
        }
    }

    #[test]
    fn every_code_has_its_status() {
        let statuses: Vec<u16> = Code::ALL.iter().map(|c| status_of(*c).as_u16()).collect();
        assert_eq!(statuses, [200, 200, 200, 200, 200, 400, 503, 401, 403, 429]);
    }

    #[test]
    fn free_text_is_escaped_and_statuses_follow_the_code() {
        let answer = Answer::bad_request("unknown event \"x\"\n");
        assert_eq!(parsed(&answer)["msg"], "unknown event \"x\"\n");
        assert_eq!(answer.status(), StatusCode::BAD_REQUEST);
        let retry = Answer::TryAgain {
            reason: RetryReason::OutcomeUnknown,
            request: Some(RequestId::parse("r:1").expect("request")),
            request_key: None,
        };
        assert_eq!(parsed(&retry)["data"]["request_id"], "r:1");
        assert_eq!(retry.status(), StatusCode::SERVICE_UNAVAILABLE);
        let response = Answer::MethodNotAllowed {
            allowed: "GET, POST",
        }
        .into_response();
        assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(response.headers()[ALLOW], "GET, POST");
    }
}
