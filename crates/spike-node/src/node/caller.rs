//! Who is asking: the one place a request's parameters, the event it is
//! about and the buyer its credential proves are worked out
//! ([`Node::asker`]), and the one place a buyer token is verified
//! ([`Node::token_subject`]). Purchases, `/buy/result`, the waiting room and
//! the orders API all ask here.

use std::sync::Arc;
use std::time::SystemTime;

use crate::answer::Answer;
use spike_core::{CentralStock, EventId, TrainRun, UserId};
use spike_http::RetryReason;

use spike_auth::TokenError;

use super::event::EventState;
use super::refusal::{no_event, param_error, try_again, unauthorized};
use super::Node;
use crate::proof::one_credential;
use crate::query::{BuyParams, TicketParams};

/// Who a buyer-facing request is from and what it is about, as far as the
/// request proves it.
pub(super) struct Asker {
    /// The request's parameters (its credential taken out: see [`Asker::buyer`]).
    pub(super) params: BuyParams,
    /// The event it is about.
    pub(super) event: EventId,
    /// That event as this node serves it.
    pub(super) state: Arc<EventState>,
    /// The buyer: on a token sale the token's subject; on other sales the
    /// `user_id` as given, when [`Claims::Taken`] (nobody, when not given).
    pub(super) buyer: Option<UserId>,
}

/// Whether a `user_id` that no token backs names the buyer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Claims {
    /// Yes: a purchase or a waiting-room request of an open sale is made
    /// by whoever it says.
    Taken,
    /// No: reading what a request bought proves its buyer by token or by
    /// key, never by name.
    Ignored,
}

/// Which tokens prove a buyer.
#[derive(Debug, Clone, Copy)]
pub(super) enum TokenScope<'a> {
    /// Tokens issued for this event (purchases, its orders).
    Event(&'a EventId),
    /// Any token of the key: who the buyer is, whatever the event (their
    /// list of orders).
    Identity,
}

/// Why a request was refused before it was known who asks, with what was
/// known by then (the stat log records it).
pub(super) struct Refused {
    /// The answer.
    pub(super) answer: Answer,
    /// The event, once it was found.
    pub(super) event: Option<(EventId, Arc<EventState>)>,
    /// The buyer the request claimed to be, when it got that far.
    pub(super) claimed: Option<UserId>,
}

impl Refused {
    fn early(answer: Answer) -> Self {
        Self {
            answer,
            event: None,
            claimed: None,
        }
    }
}

impl<C: CentralStock> Node<C> {
    /// Works out who asks and about what: parses the parameters (one
    /// credential at most), finds the event (named by `event`, by `train`
    /// and `date`, or the node's default) and proves the buyer.
    pub(super) fn asker(
        &self,
        query: Option<&str>,
        bearer: Option<&str>,
        claims: Claims,
    ) -> Result<Asker, Refused> {
        let mut params = self.read_params(query, bearer).map_err(Refused::early)?;
        let claimed = params.user.take();
        let requested =
            requested_event(params.event.clone(), &params.ticket).map_err(|answer| Refused {
                answer,
                event: None,
                claimed: claimed.clone(),
            })?;
        let (event, state) = self.resolve_event(requested).map_err(|answer| Refused {
            answer,
            event: None,
            claimed: claimed.clone(),
        })?;
        let claimed = match claims {
            Claims::Taken => claimed,
            Claims::Ignored => None,
        };
        let buyer = match self.buyer(&event, &state, claimed, params.token.as_deref()) {
            Ok(buyer) => buyer,
            Err(answer) => {
                return Err(Refused {
                    answer,
                    event: Some((event, state)),
                    claimed: None,
                })
            }
        };
        Ok(Asker {
            params,
            event,
            state,
            buyer,
        })
    }

    /// Who is buying: on a token sale, the token's `sub` (a `user_id`, if
    /// given, must be the same); otherwise the `user_id` as given.
    fn buyer(
        &self,
        event: &EventId,
        state: &EventState,
        claimed: Option<UserId>,
        token: Option<&str>,
    ) -> Result<Option<UserId>, Answer> {
        if !state.config.policy().needs_token() {
            return Ok(claimed);
        }
        let subject = self.token_subject(token, TokenScope::Event(event), None)?;
        match claimed {
            Some(user) if user != subject => {
                Err(unauthorized(&TokenError::UserMismatch.to_string()))
            }
            _ => Ok(Some(subject)),
        }
    }

    /// The buyer a token proves, within `scope`: 401 without a token
    /// (saying `missing`, or the token error) or with one that fails.
    pub(super) fn token_subject(
        &self,
        token: Option<&str>,
        scope: TokenScope<'_>,
        missing: Option<&str>,
    ) -> Result<UserId, Answer> {
        let token = token.ok_or_else(|| match missing {
            Some(reason) => unauthorized(reason),
            None => unauthorized(&TokenError::Missing.to_string()),
        })?;
        let Some(tokens) = &self.tokens else {
            return Err(match scope {
                // Node::start refuses a token sale without a verifier; a
                // sale re-created as one while the node runs is refused
                // here rather than sold open.
                TokenScope::Event(_) => try_again(RetryReason::NoTokenKey, None),
                TokenScope::Identity => super::refusal::forbidden(
                    "this node verifies no buyer tokens (no --token-key-file)",
                ),
            });
        };
        let now = SystemTime::now();
        let claims = match scope {
            TokenScope::Event(event) => tokens.verify(token, event, now),
            TokenScope::Identity => tokens.verify_identity(token, now),
        };
        claims
            .map(|claims| claims.sub)
            .map_err(|error| unauthorized(&error.to_string()))
    }

    /// The event a request is about: its `event` parameter, else the node's default.
    pub(super) fn resolve_event(
        &self,
        requested: Option<EventId>,
    ) -> Result<(EventId, Arc<EventState>), Answer> {
        let events = self.events.load();
        let event = match requested {
            Some(event) => event,
            None => match (self.config.events.first(), events.len()) {
                (Some(first), _) => first.clone(),
                (None, 1) => events.keys().next().cloned().ok_or_else(no_event)?,
                _ => return Err(no_event()),
            },
        };
        match events.get(&event) {
            Some(state) => Ok((event, Arc::clone(state))),
            None => Err(Answer::bad_request(format!("unknown event {event}"))),
        }
    }

    /// Parses a request's parameters, with the credential it carries: the
    /// `Authorization: Bearer` token, or `token=`; both at once is refused
    /// (RFC 6750, section 2: one method per request).
    pub(super) fn read_params(
        &self,
        query: Option<&str>,
        bearer: Option<&str>,
    ) -> Result<BuyParams, Answer> {
        let mut params = BuyParams::parse(query).map_err(|error| param_error(&error))?;
        params.token = one_credential(bearer, params.token)?;
        Ok(params)
    }
}

/// The event a purchase names: `event`, or a train run's `train` and
/// `date` (both, and not with a different `event`).
pub(super) fn requested_event(
    event: Option<EventId>,
    ticket: &TicketParams,
) -> Result<Option<EventId>, Answer> {
    let run = match (&ticket.train, &ticket.date) {
        (None, None) => return Ok(event),
        (Some(train), Some(date)) => {
            TrainRun::parse(train, date).map_err(|e| Answer::bad_request(e.to_string()))?
        }
        _ => return Err(Answer::bad_request("train and date go together")),
    };
    match event {
        Some(event) if event != run.event() => Err(Answer::bad_request(format!(
            "event {event} is not train {} on {}",
            run.train(),
            run.date()
        ))),
        _ => Ok(Some(run.event())),
    }
}
