//! The refusals several rooms give (401, 403, 503 try again, bad
//! parameters), made in one place.

use crate::answer::Answer;
use hyper::StatusCode;
use spike_core::RequestId;
use spike_http::RetryReason;

use crate::query::ParamError;

pub(super) fn unauthorized(reason: &str) -> Answer {
    Answer::unauthorized(reason)
}

pub(super) fn forbidden(reason: &str) -> Answer {
    Answer::refused(StatusCode::FORBIDDEN, reason)
}

pub(super) fn try_again(reason: RetryReason, request: Option<RequestId>) -> Answer {
    Answer::try_again(reason, request, None)
}

pub(super) fn no_event() -> Answer {
    Answer::bad_request("event is required (this node serves several events)")
}

pub(super) fn param_error(error: &ParamError) -> Answer {
    let status = match error {
        ParamError::QueryTooLong => StatusCode::URI_TOO_LONG,
        _ => StatusCode::BAD_REQUEST,
    };
    Answer::refused(status, error.to_string())
}
