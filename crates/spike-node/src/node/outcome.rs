//! What a purchase produced: its answer with what the stat log records
//! ([`Outcome`]), and what a buyer is told of central stock's verdict
//! ([`verdict_answer`]). The purchase and tickets rooms both answer with these.

use crate::answer::Answer;
use hyper::StatusCode;
use spike_core::{CentralReply, EventId, OrderId, Purchase, RequestId, UserId, Verdict};
use spike_http::RetryReason;

use super::caller::Refused;
use super::event::EventState;
use super::refusal::try_again;

/// What a `/buy/ticket` request produced, for the answer and the stat log.
pub(super) struct Outcome {
    pub(super) answer: Answer,
    pub(super) event: Option<EventId>,
    pub(super) user: Option<UserId>,
    /// The request id, once the purchase asked central stock.
    pub(super) request: Option<RequestId>,
    pub(super) local_sales: u64,
}

impl Outcome {
    /// An answer given before the request named a known event.
    pub(super) fn early(answer: Answer, user: Option<UserId>) -> Self {
        Self {
            answer,
            event: None,
            user,
            request: None,
            local_sales: 0,
        }
    }

    /// An answer about `event`, with the node's sales of it so far.
    pub(super) fn about(
        answer: Answer,
        event: EventId,
        user: Option<UserId>,
        state: &EventState,
    ) -> Self {
        Self {
            answer,
            event: Some(event),
            user,
            request: None,
            local_sales: state.local_sales(),
        }
    }

    /// A refusal given while working out who asks.
    pub(super) fn refused(refused: Refused) -> Self {
        match refused.event {
            Some((event, state)) => Self::about(refused.answer, event, refused.claimed, &state),
            None => Self::early(refused.answer, refused.claimed),
        }
    }

    /// The same outcome, for the purchase with `request` id.
    pub(super) fn of_request(self, request: RequestId) -> Self {
        Self {
            request: Some(request),
            ..self
        }
    }
}

/// What the buyer is told about central stock's verdict. A sale (new or a
/// replay of this request) carries the order's key when `order_key` gives
/// one; "already purchased" never does (on an open sale anyone can claim a
/// user id).
pub(super) fn verdict_answer(
    reply: CentralReply,
    purchase: &Purchase,
    order_key: impl Fn(&OrderId) -> Option<String>,
) -> Answer {
    match reply.verdict {
        Verdict::Sold { order, .. } => Answer::Sold {
            event: purchase.event.clone(),
            order_key: order_key(&order),
            order,
        },
        Verdict::SoldOut => Answer::SoldOut,
        Verdict::AlreadyPurchased { order } => Answer::AlreadyPurchased { order },
        Verdict::NotOpen => Answer::NotOpen,
        Verdict::UserRequired => Answer::bad_request("user_id is required"),
        Verdict::NotAdmitted => Answer::NotAdmitted {
            reason: "central stock has not admitted this position".into(),
            standing: None,
        },
        Verdict::RequestIdTaken => Answer::refused(
            StatusCode::CONFLICT,
            "request_id already bought a seat for another buyer; use a new one",
        ),
        Verdict::Paused => try_again(RetryReason::Paused, None),
        Verdict::NoSuchSale => try_again(
            RetryReason::SaleStateMissing,
            Some(purchase.request.clone()),
        ),
    }
}
