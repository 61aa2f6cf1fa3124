//! The purchase room: `/buy/ticket` from its first steps in memory
//! ([`Node::admit`]: who buys, local stock, the in-flight gate) to central
//! stock's verdict and the answer ([`Node::complete`]), and `/buy/result`,
//! which reads what a request bought.

use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use crate::answer::Answer;
use hyper::StatusCode;
use spike_core::{
    Admission, CentralError, CentralStock, EventId, OrderId, Purchase, RequestId, Reservation,
    SeatRequest, Settlement, Verdict,
};
use spike_http::{InFlight, RetryReason};

use crate::batcher::{LaneError, LaneReply};

use super::caller::{Asker, Claims};
use super::event::{CentralLane, EventState};
use super::outcome::{verdict_answer, Outcome};
use super::queue::Entrance;
use super::refusal::try_again;
use super::tickets::{leg_sold_out, seat_request};
use super::Node;
use crate::proof::{Proof, Replayed};

/// What an admitted purchase holds until central stock answers.
pub(super) enum Hold {
    /// One seat of the node's local stock (a sale).
    Seat(Reservation),
    /// Nothing local: seats on a train run, as asked for.
    Seats(SeatRequest),
}

/// A purchase admitted to ask central stock, owning all it needs, so that
/// it can finish on its own task.
pub(super) struct Admitted {
    pub(super) purchase: Purchase,
    pub(super) hold: Hold,
    pub(super) state: Arc<EventState>,
    pub(super) proof: Proof,
    /// Its place among the purchases waiting on central stock, given back
    /// as soon as central stock answers (not when the answer is sent).
    pub(super) in_flight: InFlight,
    /// A spillover room's buyer without an admission token: the purchase
    /// asks at the door first ([`Node::through_the_door`]).
    pub(super) at_the_door: bool,
}

impl<C: CentralStock> Node<C> {
    /// A purchase's first steps, all in memory: read the parameters, find
    /// the event, identify the buyer, refuse what needs no round trip, take a
    /// local seat. `Err` is the answer already decided (sold out from memory
    /// among them); `Ok` is a purchase that must ask central stock.
    ///
    /// A request carrying its own `request_id` is never told "sold out" from
    /// memory: it may be a retry of a purchase that sold (its first answer
    /// lost), so it asks central stock, whose request index knows (a
    /// read-only call when the sale is sold out).
    pub(super) fn admit(
        &self,
        query: Option<&str>,
        bearer: Option<&str>,
        client: IpAddr,
    ) -> Result<Admitted, Outcome> {
        let Asker {
            params,
            event,
            state,
            buyer: user,
        } = self
            .asker(query, bearer, Claims::Taken)
            .map_err(Outcome::refused)?;
        let seats = seat_request(&event, &state, &params.ticket)
            .map_err(|answer| Outcome::about(answer, event.clone(), user.clone(), &state))?;
        if let Some(buyer) = &user {
            if let Err(retry_after) = self.limiters.check_buyer(buyer) {
                let limited = Answer::rate_limited(retry_after);
                return Err(Outcome::about(limited, event, user, &state));
            }
        }
        let shutting_down = self.shutting_down.load(Ordering::Acquire);
        if let Some(refusal) = state.refusal(user.as_ref(), shutting_down, SystemTime::now()) {
            return Err(Outcome::about(refusal, event, user, &state));
        }
        let (token, work) = (params.admission.as_deref(), params.work.as_deref());
        let (admission, at_the_door) =
            match self.entrance(&event, &state, user.as_ref(), token, work) {
                Ok(Entrance::NoRoom) => (None, false),
                Ok(Entrance::Admitted(position)) => (Some(position), false),
                Ok(Entrance::AtTheDoor) => (None, true),
                Err(refusal) => return Err(Outcome::about(refusal, event, user, &state)),
            };
        let hold = match (seats, &state.train) {
            (Some(request), Some(train)) => {
                // As for a sale, a request with its own id may be a retry
                // of a purchase that sold: only central stock knows.
                match (train.sold_out(&request), &params.request) {
                    (Some(as_of), None) => {
                        let sold_out = leg_sold_out(train.layout(), &request, as_of);
                        return Err(Outcome::about(sold_out, event, user, &state));
                    }
                    (Some(_), Some(_)) => {
                        if let Err(retry_after) = self.limiters.check_costly(client) {
                            let limited = Answer::rate_limited(retry_after);
                            return Err(Outcome::about(limited, event, user, &state));
                        }
                    }
                    (None, _) => {}
                }
                Hold::Seats(request)
            }
            _ => match (state.stock.admit(), &params.request) {
                (Admission::Ask(seat), _) => Hold::Seat(seat),
                (Admission::SoldOut, Some(_)) => {
                    // Sold out, and only central stock knows whether this
                    // request bought: a call each time, so a costly request.
                    if let Err(retry_after) = self.limiters.check_costly(client) {
                        let limited = Answer::rate_limited(retry_after);
                        return Err(Outcome::about(limited, event, user, &state));
                    }
                    Hold::Seat(state.stock.ask_unreserved())
                }
                (Admission::SoldOut, None) => {
                    return Err(Outcome::about(Answer::SoldOut, event, user, &state))
                }
            },
        };
        let Some(in_flight) = self.central_gate.enter() else {
            drop(hold);
            let busy = try_again(RetryReason::CentralBusy, None);
            return Err(Outcome::about(busy, event, user, &state));
        };
        let proof = Proof {
            order_key: params.order_key,
            request_key: params.request_key,
            request_made_here: params.request.is_none(),
        };
        let purchase = Purchase {
            event,
            user,
            request: params.request.unwrap_or_else(|| self.next_request_id()),
            node: self.config.node_id.clone(),
            admission,
        };
        Ok(Admitted {
            purchase,
            hold,
            state,
            proof,
            in_flight,
            at_the_door,
        })
    }

    /// A purchase's last steps: ask central stock, settle the seat with its
    /// reply, answer what central decided.
    pub(super) async fn complete(&self, admitted: Admitted) -> Outcome {
        let Admitted {
            mut purchase,
            hold,
            state,
            proof,
            in_flight,
            at_the_door,
        } = admitted;
        if let (true, Some(user)) = (at_the_door, &purchase.user) {
            match self.through_the_door(&purchase.event, &state, user).await {
                Ok(position) => purchase.admission = Some(position),
                Err(refusal) => {
                    drop((hold, in_flight));
                    return Outcome::about(refusal, purchase.event, purchase.user, &state);
                }
            }
        }
        let seat = match hold {
            Hold::Seat(seat) => seat,
            Hold::Seats(request) => {
                let outcome = self.complete_ticket(purchase, request, state, proof, in_flight);
                return outcome.await;
            }
        };
        let answer = match self.ask_central(&purchase, &state, in_flight).await {
            Ok(reply) => {
                if seat.settle(&reply) == Settlement::SaleMissing {
                    state.set_missing(true);
                    tracing::error!(event = %purchase.event, "central stock has no state for this sale; refusing to sell it");
                }
                match self.withheld(&reply.verdict, &purchase, &state, &proof) {
                    Some(withheld) => withheld,
                    None => {
                        verdict_answer(reply, &purchase, |order| self.order_key_for(&state, order))
                    }
                }
            }
            Err(LaneError::Shed) => {
                drop(seat);
                self.central_gate.count_shed();
                try_again(RetryReason::CentralBusy, None)
            }
            Err(LaneError::Central(error)) => {
                drop(seat);
                self.undecided(error, &purchase, &state, &proof)
            }
        };
        Outcome::about(answer, purchase.event, purchase.user, &state).of_request(purchase.request)
    }

    /// Sends one purchase to central stock (in its sale's next batch, when
    /// purchases go in batches), counting it and timing its wait; its place
    /// in the gate is given back once central stock has answered.
    pub(super) async fn ask_central(
        &self,
        purchase: &Purchase,
        state: &EventState,
        in_flight: InFlight,
    ) -> LaneReply {
        self.stats.count_central_call();
        let asked = Instant::now();
        // Boxed so that the (large) central future is only paid for by requests
        // that reach central stock, not by every sold-out answer.
        let reply = match &state.lane {
            Some(CentralLane::Purchases(lane)) => lane.buy(purchase.clone(), in_flight).await,
            Some(CentralLane::Seats(_)) | None => {
                let reply = Box::pin(self.central.buy(purchase)).await;
                drop(in_flight);
                self.central_gate.observe(asked.elapsed());
                reply.map_err(LaneError::from)
            }
        };
        self.metrics
            .central_duration
            .record(asked.elapsed().as_secs_f64());
        reply
    }

    /// The answer when central stock gave none: try again, with the request
    /// id that resolves it.
    pub(super) fn undecided(
        &self,
        error: CentralError,
        purchase: &Purchase,
        state: &EventState,
        proof: &Proof,
    ) -> Answer {
        tracing::warn!(%error, event = %purchase.event, request = %purchase.request, "purchase not decided");
        let reason = match error {
            CentralError::Unavailable(_) => {
                self.metrics.central_unavailable.increment(1);
                RetryReason::Unavailable
            }
            CentralError::OutcomeUnknown(_) | CentralError::Protocol(_) => {
                self.metrics.central_unknown.increment(1);
                RetryReason::OutcomeUnknown
            }
        };
        // A request id this node made was told to this caller alone: its
        // key lets them prove it on a retry (open and anonymous sales).
        let request_key = (proof.request_made_here)
            .then(|| self.request_key_for(state, &purchase.event, &purchase.request))
            .flatten();
        Answer::try_again(reason, Some(purchase.request.clone()), request_key)
    }

    /// The request key a node gives with a request id on an open or
    /// anonymous sale (none on a token sale, or without order keys).
    pub(super) fn request_key_for(
        &self,
        state: &EventState,
        event: &EventId,
        request: &RequestId,
    ) -> Option<String> {
        let keys = self.order_keys.as_ref()?;
        let life = state.config.life();
        (!state.config.policy().needs_token()).then(|| keys.request_key(life, event, request))
    }

    /// The order key a success answer carries: on open and anonymous sales,
    /// when the node has order keys.
    pub(super) fn order_key_for(&self, state: &EventState, order: &OrderId) -> Option<String> {
        let keys = self.order_keys.as_ref()?;
        (!state.config.policy().needs_token()).then(|| keys.key_for(state.config.life(), order))
    }

    /// Whether the caller proved that a replayed `order` of `request` is
    /// theirs (see [`crate::proof`]).
    pub(super) fn proves_replay(
        &self,
        state: &EventState,
        event: &EventId,
        request: &RequestId,
        order: &OrderId,
        proof: &Proof,
    ) -> bool {
        let replayed = Replayed {
            policy: state.config.policy(),
            life: state.config.life(),
            event,
            request,
            order,
        };
        proof.proves(&replayed, self.order_keys.as_ref())
    }

    /// The answer to a replayed sale whose caller has not proved it theirs:
    /// "success", with the order withheld; `None` for any other verdict.
    pub(super) fn withheld(
        &self,
        verdict: &Verdict,
        purchase: &Purchase,
        state: &EventState,
        proof: &Proof,
    ) -> Option<Answer> {
        let Verdict::Sold {
            order,
            replayed: true,
        } = verdict
        else {
            return None;
        };
        let proved = self.proves_replay(state, &purchase.event, &purchase.request, order, proof);
        (!proved).then(|| Answer::ReplayWithheld {
            event: purchase.event.clone(),
            order: order.clone(),
        })
    }

    /// What a request id bought (resolves "outcome unknown"), shown only
    /// to whoever proves it theirs: on a token sale the buyer's token (any
    /// other buyer is told "no order", as if it had bought nothing); on an
    /// open or anonymous sale its request key or its order's key, without
    /// which the answer says the request bought and withholds the order.
    /// Confirmed by replicas like a sale, on nodes that confirm sales.
    pub(super) async fn result(&self, query: Option<&str>, bearer: Option<&str>) -> Answer {
        // On a token sale, the buyer the token proves (401 without one);
        // on other sales nobody is proved by who they say they are.
        let Asker {
            params,
            event,
            state,
            buyer: asker,
        } = match self.asker(query, bearer, Claims::Ignored) {
            Ok(asker) => asker,
            Err(refused) => return refused.answer,
        };
        let Some(request) = params.request.clone() else {
            return Answer::bad_request("request_id is required");
        };
        let no_order = || {
            Answer::refused(
                StatusCode::NOT_FOUND,
                format!("no order for request_id {request}"),
            )
        };
        let record = match self.central.request_record(&event, &request).await {
            Ok(Some(record)) => record,
            Ok(None) => return no_order(),
            Err(CentralError::OutcomeUnknown(why)) => {
                tracing::warn!(%event, %request, %why, "result not confirmed");
                return try_again(RetryReason::OutcomeUnknown, Some(request));
            }
            Err(_) => return try_again(RetryReason::Unavailable, Some(request)),
        };
        if let Some(subject) = asker {
            return match record.buyer.as_ref() == Some(&subject) {
                true => Answer::Sold {
                    event,
                    order: record.order,
                    order_key: None,
                },
                false => no_order(),
            };
        }
        let proof = Proof {
            order_key: params.order_key,
            request_key: params.request_key,
            request_made_here: false,
        };
        match self.proves_replay(&state, &event, &request, &record.order, &proof) {
            true => Answer::Sold {
                event,
                order_key: self.order_key_for(&state, &record.order),
                order: record.order,
            },
            false => Answer::ReplayWithheld {
                event,
                order: record.order,
            },
        }
    }

    /// A request id for a purchase that came without one: the node's name
    /// and 128 random bits (from a generator seeded by the operating
    /// system), so that no one can guess another buyer's.
    pub(super) fn next_request_id(&self) -> RequestId {
        let id = format!("{}:{:032x}", self.request_tag, rand::random::<u128>());
        // A validated node id (at most 24 characters), a colon, 32 hex digits.
        RequestId::parse(id).unwrap_or_else(|e| unreachable!("generated request id: {e}"))
    }
}
