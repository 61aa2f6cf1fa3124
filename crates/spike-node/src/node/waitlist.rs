//! The waitlist room: `POST /waitlist` places a sold-out traveller's
//! waitlist order, `GET /waitlist/status` says where it stands (and, once
//! seats filled it, which order it became), `DELETE /waitlist` withdraws
//! it. Central stock keeps the line and fills it (see spike-core's train
//! module); the node checks who asks and what for.
//!
//! Who may call: the traveller. On a token sale their token proves them;
//! on an open sale the `user_id` names them, and what a stranger naming
//! them must not do needs more: withdrawing, or reading the key of the
//! order a fill made, takes the `request_key` the placement answered.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use hyper::StatusCode;
use serde_json::{json, Value};
use spike_core::time::unix_millis;
use spike_core::train::{DEFAULT_WAIT, MAX_WAIT};
use spike_core::{
    CentralError, CentralStock, EventId, OrderId, RequestId, TrainLayout, UserId, WaitEntry,
    WaitJoin, WaitRequest, WaitState, WaitStatus,
};
use spike_http::RetryReason;

use super::caller::{Asker, Claims};
use super::event::EventState;
use super::refusal::{forbidden, try_again};
use super::tickets::seat_request;
use super::Node;
use crate::answer::Answer;
use crate::proof::{Proof, Replayed};
use crate::query::BuyParams;

/// A waitlist request's caller: the traveller, the run, its layout.
struct Traveller {
    params: BuyParams,
    event: EventId,
    state: Arc<EventState>,
    user: UserId,
    layout: Arc<TrainLayout>,
}

impl<C: CentralStock> Node<C> {
    /// Who asks about a waitlist, on which run: a train run this node
    /// serves, and a traveller (held to the per-buyer rate limit).
    fn traveller(&self, query: Option<&str>, bearer: Option<&str>) -> Result<Traveller, Answer> {
        let Asker {
            params,
            event,
            state,
            buyer,
        } = (self.asker(query, bearer, Claims::Taken)).map_err(|refused| refused.answer)?;
        let user = buyer.ok_or_else(|| Answer::bad_request("user_id is required"))?;
        if let Err(retry_after) = self.limiters.check_buyer(&user) {
            return Err(Answer::rate_limited(retry_after));
        }
        let Some(train) = &state.train else {
            return Err(Answer::bad_request(format!(
                "event {event} is not a train run: it has no waitlist"
            )));
        };
        let layout = Arc::clone(train.layout());
        Ok(Traveller {
            params,
            event,
            state,
            user,
            layout,
        })
    }

    /// `POST /waitlist`: places a waitlist order for a sold-out class and
    /// leg (`wait_minutes`, 1 to 10,080, says how long it waits; an hour
    /// by default). Placing again with the same `request_id` finds it again.
    pub(super) async fn waitlist_place(&self, query: Option<&str>, bearer: Option<&str>) -> Answer {
        let traveller = match self.traveller(query, bearer) {
            Ok(traveller) => traveller,
            Err(refusal) => return refusal,
        };
        let seats = match seat_request(&traveller.event, &traveller.state, &traveller.params.ticket)
        {
            Ok(Some(seats)) => seats,
            Ok(None) => unreachable!("a train run's request has seats"),
            Err(refusal) => return refusal,
        };
        let wait = match wait_for(traveller.params.ticket.wait_minutes.as_deref()) {
            Ok(wait) => wait,
            Err(refusal) => return refusal,
        };
        let request = (traveller.params.request.clone()).unwrap_or_else(|| self.next_request_id());
        let deadline = SystemTime::now() + wait;
        let placement = WaitRequest {
            event: traveller.event.clone(),
            user: traveller.user.clone(),
            request: request.clone(),
            node: self.config.node_id.clone(),
            seats,
            deadline_ms: unix_millis(deadline),
        };
        let answer_entry = |entry: &WaitEntry, ahead: u64| {
            let mut data = entry_json(&traveller.layout, &traveller.event, entry, ahead);
            // The placer's own request id (status answers, which anyone
            // naming the traveller on an open sale may read, leave it out).
            data["request_id"] = entry.request.as_str().into();
            if let Some(key) =
                self.request_key_for(&traveller.state, &traveller.event, &entry.request)
            {
                data["request_key"] = key.into();
            }
            data
        };
        let joined = match self
            .waitlist_call(self.central.join_waitlist(&placement))
            .await
        {
            Ok(joined) => joined,
            Err(busy) => return busy,
        };
        match joined {
            Ok(WaitJoin::Placed { entry, ahead }) => Answer::done(None, &answer_entry(&entry, ahead)),
            Ok(WaitJoin::AlreadyWaiting { entry, ahead }) => Answer::refused_with(
                StatusCode::CONFLICT,
                "you already wait on this run: one waitlist order per traveller (DELETE /waitlist first)",
                entry_json(&traveller.layout, &traveller.event, &entry, ahead),
            ),
            Ok(WaitJoin::Bookable) => Answer::refused(
                StatusCode::CONFLICT,
                "seats are free for this request: buy them (/buy/ticket) instead of waiting",
            ),
            Ok(WaitJoin::RequestIdTaken) => Answer::refused(
                StatusCode::CONFLICT,
                format!("request_id {request} already bought seats"),
            ),
            Ok(WaitJoin::LimitReached { order }) => Answer::AlreadyPurchased { order },
            Ok(WaitJoin::NotOpen) => Answer::NotOpen,
            Ok(WaitJoin::NoSuchSale) => try_again(RetryReason::SaleStateMissing, None),
            Err(_) => {
                // It may have been placed: the same request_id finds it.
                let key = self.request_key_for(&traveller.state, &traveller.event, &request);
                Answer::try_again(RetryReason::Unavailable, Some(request), key)
            }
        }
    }

    /// `GET /waitlist/status`: the traveller's latest waitlist order, and
    /// once filled its order (with the order's key on an open sale, for
    /// whoever shows the placement's `request_key`).
    pub(super) async fn waitlist_status(
        &self,
        query: Option<&str>,
        bearer: Option<&str>,
    ) -> Answer {
        let traveller = match self.traveller(query, bearer) {
            Ok(traveller) => traveller,
            Err(refusal) => return refusal,
        };
        let status = match self.latest_status(&traveller).await {
            Ok(status) => status,
            Err(refusal) => return refusal,
        };
        let entry = &status.entry;
        let mut data = entry_json(&traveller.layout, &traveller.event, entry, status.ahead);
        if let WaitState::Filled { order } = &entry.state {
            if self.proves_placement(&traveller, entry, order) {
                if let Some(key) = self.order_key_for(&traveller.state, order) {
                    data["order_key"] = key.into();
                }
            }
        }
        Answer::done(None, &data)
    }

    /// `DELETE /waitlist`: withdraws the traveller's waiting order (on an
    /// open sale, only for whoever shows the placement's `request_key`).
    pub(super) async fn waitlist_withdraw(
        &self,
        query: Option<&str>,
        bearer: Option<&str>,
    ) -> Answer {
        let traveller = match self.traveller(query, bearer) {
            Ok(traveller) => traveller,
            Err(refusal) => return refusal,
        };
        if !traveller.state.config.policy().needs_token() {
            // A name proves nothing on an open sale: the placement's key does.
            let status = match self.latest_status(&traveller).await {
                Ok(status) => status,
                Err(refusal) => return refusal,
            };
            if !self.proves_key_of(&traveller, &status.entry.request) {
                return forbidden(
                    "withdrawing a waitlist order of an open sale takes the request_key its placement answered",
                );
            }
        }
        let left = self
            .central
            .leave_waitlist(&traveller.event, &traveller.user);
        match self.waitlist_call(left).await {
            Ok(Ok(Some(entry))) => Answer::done(
                None,
                &entry_json(&traveller.layout, &traveller.event, &entry, 0),
            ),
            Ok(Ok(None)) => not_waiting(&traveller.user, &traveller.event),
            Ok(Err(_)) => try_again(RetryReason::Unavailable, None),
            Err(busy) => busy,
        }
    }

    /// The traveller's latest waitlist order, or the answer when there is
    /// none (404) or central stock could not say.
    async fn latest_status(&self, traveller: &Traveller) -> Result<WaitStatus, Answer> {
        let asked = self
            .central
            .waitlist_status(&traveller.event, &traveller.user);
        match self.waitlist_call(asked).await? {
            Ok(Some(status)) => Ok(status),
            Ok(None) => Err(not_waiting(&traveller.user, &traveller.event)),
            Err(_) => Err(try_again(RetryReason::Unavailable, None)),
        }
    }

    /// One waitlist call to central stock, within the node's in-flight
    /// bound like a purchase: past it, `Err` "try again" at once, nothing
    /// queued and nothing sent; else what central stock answered.
    async fn waitlist_call<T>(
        &self,
        call: impl std::future::Future<Output = Result<T, CentralError>>,
    ) -> Result<Result<T, CentralError>, Answer> {
        let Some(in_flight) = self.central_gate.enter() else {
            self.central_gate.count_shed();
            return Err(try_again(RetryReason::CentralBusy, None));
        };
        self.stats.count_central_call();
        let answered = call.await;
        drop(in_flight);
        Ok(answered)
    }

    /// Whether the caller proved the placement `entry` (and so `order`) is
    /// theirs: their token on a token sale, else its request key.
    fn proves_placement(&self, traveller: &Traveller, entry: &WaitEntry, order: &OrderId) -> bool {
        let proof = Proof {
            order_key: None,
            request_key: traveller.params.request_key.clone(),
            request_made_here: false,
        };
        let replayed = Replayed {
            policy: traveller.state.config.policy(),
            life: traveller.state.config.life(),
            event: &traveller.event,
            request: &entry.request,
            order,
        };
        proof.proves(&replayed, self.order_keys.as_ref())
    }

    /// Whether the caller showed the request key of `request`.
    fn proves_key_of(&self, traveller: &Traveller, request: &RequestId) -> bool {
        let (Some(keys), Some(key)) = (&self.order_keys, &traveller.params.request_key) else {
            return false;
        };
        keys.verify_request(
            traveller.state.config.life(),
            &traveller.event,
            request,
            key,
        )
    }
}

/// How long a placement waits: `wait_minutes` (1 to [`MAX_WAIT`]), or
/// [`DEFAULT_WAIT`].
fn wait_for(minutes: Option<&str>) -> Result<Duration, Answer> {
    let most = MAX_WAIT.as_secs() / 60;
    let Some(minutes) = minutes else {
        return Ok(DEFAULT_WAIT);
    };
    match minutes.parse::<u64>() {
        Ok(n @ 1..) if n <= most => Ok(Duration::from_secs(n * 60)),
        _ => Err(Answer::bad_request(format!(
            "wait_minutes must be 1 to {most}"
        ))),
    }
}

fn not_waiting(user: &UserId, event: &EventId) -> Answer {
    Answer::refused(
        StatusCode::NOT_FOUND,
        format!("{user} has no waitlist order waiting on {event} (POST /waitlist places one)"),
    )
}

/// A waitlist entry as answers show it: the run, the place and where it
/// stands, what it waits for by name, and its order once filled.
pub(crate) fn entry_json(
    layout: &TrainLayout,
    event: &EventId,
    entry: &WaitEntry,
    ahead: u64,
) -> Value {
    let (from, to) = layout.leg_names(entry.seats.leg);
    let class = (layout.classes().get(entry.seats.class)).map_or("?", |c| c.name());
    let mut data = json!({
        "event": event.as_str(),
        "place": entry.place,
        "state": entry.state.name(),
        "ahead": ahead,
        "from": from,
        "to": to,
        "class": class,
        "passengers": entry.seats.passengers.get(),
        "seat_preference": entry.seats.preference.name(),
        "placed_at_ms": entry.placed_at_ms,
        "deadline_ms": entry.deadline_ms,
    });
    if let WaitState::Filled { order } = &entry.state {
        data["order_id"] = order.as_str().into();
    }
    data
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wait_is_an_hour_unless_said_and_at_most_a_week() {
        assert_eq!(wait_for(None).ok(), Some(DEFAULT_WAIT));
        assert_eq!(wait_for(Some("30")).ok(), Some(Duration::from_secs(1800)));
        assert_eq!(wait_for(Some("10080")).ok(), Some(MAX_WAIT));
        for bad in ["0", "10081", "-1", "x", ""] {
            assert!(wait_for(Some(bad)).is_err(), "{bad:?}");
        }
    }
}
