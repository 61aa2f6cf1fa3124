//! The waiting-room room: `/queue/join` and `/queue/status`, the admission
//! a purchase of a queued sale carries, and the admission step every node
//! takes.

use std::sync::Arc;
use std::time::SystemTime;

use crate::answer::Answer;
use hyper::StatusCode;
use spike_core::{CentralStock, EventId, QueueJoin, Standing, UserId};
use spike_http::RetryReason;

use spike_auth::{AdmissionError, AdmissionKeys, Challenge};

use super::caller::{Asker, Claims};
use super::event::EventState;
use super::outcome::Outcome;
use super::refusal::try_again;
use super::Node;
use crate::waiting_room::{Entry, Place, WaitingRoom};

/// How a purchase stands with its sale's waiting room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Entrance {
    /// The sale has no waiting room.
    NoRoom,
    /// Admitted at this position (its admission token says so).
    Admitted(u64),
    /// A spillover room, and no admission token: the purchase asks at the
    /// door first ([`Node::through_the_door`]).
    AtTheDoor,
}

impl<C: CentralStock> Node<C> {
    /// How a purchase of a queued sale stands with its waiting room, from
    /// its admission token, or the refusal: 403, code -7, "not admitted
    /// yet".
    pub(super) fn entrance(
        &self,
        event: &EventId,
        state: &EventState,
        user: Option<&UserId>,
        token: Option<&str>,
        work: Option<&str>,
    ) -> Result<Entrance, Answer> {
        let (Some(room), Some(user)) = (&state.queue, user) else {
            return Ok(Entrance::NoRoom);
        };
        let Some(keys) = &self.admissions else {
            return Err(try_again(RetryReason::NoAdmissionKey, None));
        };
        if let Some(reason) = room.revoked(user) {
            return Err(Answer::NotAdmitted {
                reason: format!("your admission was revoked by the sale's operator: {reason}"),
                standing: None,
            });
        }
        if token.is_none() && room.spills_over() {
            // Asking at the door joins: the join's proof of work first.
            self.check_work(event, user, work)?;
            return Ok(Entrance::AtTheDoor);
        }
        let now_ms = spike_core::time::unix_millis(SystemTime::now());
        // Unsealed, nobody is admitted: no token can be right.
        let seal = room.seal_seed().unwrap_or(0);
        match keys.verify(event, seal, user, token, now_ms) {
            Ok(admitted) => Ok(Entrance::Admitted(admitted.position)),
            Err(error) => Err(not_admitted(error)),
        }
    }

    /// A purchase at a spillover room's door: the buyer joins, and passes
    /// straight through while demand stays under the rate (the position to
    /// buy at), or is told to wait: 403, code -7, with their standing and
    /// `"entry": "queued"`. A buyer whom a tick admitted since buys at once.
    pub(super) async fn through_the_door(
        &self,
        event: &EventId,
        state: &EventState,
        user: &UserId,
    ) -> Result<u64, Answer> {
        let Some(room) = &state.queue else {
            return Err(no_queue(event));
        };
        let Some(keys) = &self.admissions else {
            return Err(try_again(RetryReason::NoAdmissionKey, None));
        };
        let sold_out = state.stock.is_sold_out();
        // A buyer this node knows to be waiting is told so from memory: the
        // refusal of a crowd asking again costs central stock nothing (only
        // a new buyer can pass, so asking would not change the answer).
        if let Some(join_index) = room.place(user) {
            let now_ms = spike_core::time::unix_millis(SystemTime::now());
            let standing = room.standing(join_index, now_ms, sold_out);
            if matches!(
                standing,
                Standing::Waiting { .. } | Standing::WaitingForStart { .. }
            ) {
                return Err(self.kept_out(room, keys, event, user, standing));
            }
        }
        self.stats.count_queue_central_call();
        let join_index = match self.central.join_queue(event, user, unguessable()).await {
            Ok(QueueJoin::Passed { join_index }) => {
                room.remember(user, join_index);
                room.passed(join_index, spike_core::time::unix_millis(SystemTime::now()));
                self.stats.count_spillover(true);
                return Ok(join_index);
            }
            Ok(QueueJoin::Joined { join_index }) => join_index,
            Ok(QueueJoin::NotYetOpen { joins_open_at_ms }) => {
                return Err(not_open_yet(joins_open_at_ms))
            }
            Ok(QueueJoin::NoQueue) => return Err(no_queue(event)),
            Ok(QueueJoin::NoSuchSale) => {
                return Err(try_again(RetryReason::SaleStateMissing, None))
            }
            Err(_) => return Err(try_again(RetryReason::Unavailable, None)),
        };
        room.remember(user, join_index);
        let now_ms = spike_core::time::unix_millis(SystemTime::now());
        match room.standing(join_index, now_ms, sold_out) {
            Standing::Admitted { position, .. } => Ok(position),
            standing => Err(self.kept_out(room, keys, event, user, standing)),
        }
    }

    /// The refusal of a spillover buyer who may not buy now: 403, code -7,
    /// with their standing; `"entry": "queued"` when they wait their turn.
    fn kept_out(
        &self,
        room: &WaitingRoom,
        keys: &AdmissionKeys,
        event: &EventId,
        user: &UserId,
        standing: Standing,
    ) -> Answer {
        let status = room.describe(standing, event, user, keys);
        let (status, reason) = match standing {
            Standing::Waiting { .. } | Standing::WaitingForStart { .. } => {
                self.stats.count_spillover(false);
                let reason = "demand is over the admission rate: you are in the waiting room; \
                              buy with your admission token once admitted (GET /queue/status)";
                (status.entering(Entry::Queued), reason)
            }
            // A pass (or an admission) whose window lapsed, or a sellout.
            _ => (status, "your admission is over: see data.standing"),
        };
        Answer::NotAdmitted {
            reason: reason.to_owned(),
            standing: serde_json::to_value(status).ok(),
        }
    }

    /// A "not admitted yet" refusal, completed with where the buyer stands
    /// (a buyer this node has not seen costs one read of central stock).
    pub(super) async fn with_standing(&self, mut refused: Outcome) -> Outcome {
        let (
            Answer::NotAdmitted {
                standing: slot @ None,
                ..
            },
            Some(event),
            Some(user),
        ) = (&mut refused.answer, &refused.event, &refused.user)
        else {
            return refused;
        };
        if let Some(state) = self.event(event) {
            *slot = self.standing_of(event, &state, user).await.ok().flatten();
        }
        refused
    }

    /// `POST /queue/join`: puts the buyer in the sale's waiting room (or
    /// finds their place) and says where they stand.
    pub(super) async fn queue_join(&self, query: Option<&str>, bearer: Option<&str>) -> Answer {
        let (event, state, user, work) = match self.queue_caller(query, bearer) {
            Ok(found) => found,
            Err(refusal) => return refusal,
        };
        let Some(room) = &state.queue else {
            return no_queue(&event);
        };
        if let Err(refusal) = self.check_work(&event, &user, work.as_deref()) {
            return refusal;
        }
        self.stats.count_queue_central_call();
        let (join_index, passed) = match self.central.join_queue(&event, &user, unguessable()).await
        {
            Ok(QueueJoin::Joined { join_index }) => (join_index, false),
            Ok(QueueJoin::Passed { join_index }) => (join_index, true),
            Ok(QueueJoin::NotYetOpen { joins_open_at_ms }) => {
                return not_open_yet(joins_open_at_ms)
            }
            Ok(QueueJoin::NoQueue) => return no_queue(&event),
            Ok(QueueJoin::NoSuchSale) => return try_again(RetryReason::SaleStateMissing, None),
            Err(_) => return try_again(RetryReason::Unavailable, None),
        };
        room.remember(&user, join_index);
        let Some(keys) = &self.admissions else {
            return try_again(RetryReason::NoAdmissionKey, None);
        };
        let now_ms = spike_core::time::unix_millis(SystemTime::now());
        let standing = match passed {
            true => room.passed(join_index, now_ms),
            false => room.standing(join_index, now_ms, state.stock.is_sold_out()),
        };
        let status = room.describe(standing, &event, &user, keys);
        let status = match (room.spills_over(), passed) {
            (false, _) => status,
            (true, true) => status.entering(Entry::Passed),
            (true, false) => status.entering(Entry::Queued),
        };
        if room.spills_over() {
            self.stats.count_spillover(passed);
        }
        Answer::done(None, &status)
    }

    /// `GET /queue/status`: where the buyer stands, from this node's memory
    /// (a buyer this node has not seen costs one read of central stock).
    pub(super) async fn queue_status(&self, query: Option<&str>, bearer: Option<&str>) -> Answer {
        let (event, state, user, _) = match self.queue_caller(query, bearer) {
            Ok(found) => found,
            Err(refusal) => return refusal,
        };
        let Some(room) = &state.queue else {
            return no_queue(&event);
        };
        match self.place_of(&event, room, &user).await {
            Ok(Some(join_index)) => self.standing_answer(&event, &state, room, &user, join_index),
            Ok(None) => Answer::refused(
                StatusCode::NOT_FOUND,
                format!("{user} is not in the waiting room of {event}: POST /queue/join first"),
            ),
            Err(answer) => answer,
        }
    }

    /// `GET /queue/challenge`: the challenge this buyer's join must carry
    /// solved, when this node asks for proof of work (`--join-work`).
    pub(super) fn queue_challenge(&self, query: Option<&str>, bearer: Option<&str>) -> Answer {
        let (event, state, user, _) = match self.queue_caller(query, bearer) {
            Ok(found) => found,
            Err(refusal) => return refusal,
        };
        if state.queue.is_none() {
            return no_queue(&event);
        }
        let Some(work) = &self.join_work else {
            return Answer::refused(
                StatusCode::NOT_FOUND,
                "this node asks no proof of work: join at once (POST /queue/join)",
            );
        };
        let now_ms = spike_core::time::unix_millis(SystemTime::now());
        Answer::done(
            None,
            &challenge_json(&work.challenge(&event, &user, now_ms)),
        )
    }

    /// The join's proof of work, when this node asks for it: 403, code -4,
    /// with why and a fresh challenge to solve.
    fn check_work(&self, event: &EventId, user: &UserId, work: Option<&str>) -> Result<(), Answer> {
        let Some(join_work) = &self.join_work else {
            return Ok(());
        };
        let now_ms = spike_core::time::unix_millis(SystemTime::now());
        join_work
            .verify(event, user, work, now_ms)
            .map_err(|error| {
                self.stats.count_work_refused();
                let challenge = join_work.challenge(event, user, now_ms);
                Answer::refused_with(
                    StatusCode::FORBIDDEN,
                    error.to_string(),
                    challenge_json(&challenge),
                )
            })
    }

    /// The event and buyer of a waiting-room request, identified as a
    /// purchase would be, and the join's proof of work if it carries one.
    pub(super) fn queue_caller(
        &self,
        query: Option<&str>,
        bearer: Option<&str>,
    ) -> Result<(EventId, Arc<EventState>, UserId, Option<String>), Answer> {
        let Asker {
            event,
            state,
            buyer: user,
            params,
        } = self
            .asker(query, bearer, Claims::Taken)
            .map_err(|refused| refused.answer)?;
        let user = user.ok_or_else(|| Answer::bad_request("user_id is required"))?;
        if let Err(retry_after) = self.limiters.check_buyer(&user) {
            return Err(Answer::rate_limited(retry_after));
        }
        Ok((event, state, user, params.work))
    }

    /// The buyer's join index: from memory, else from central stock (then
    /// remembered).
    pub(super) async fn place_of(
        &self,
        event: &EventId,
        room: &WaitingRoom,
        user: &UserId,
    ) -> Result<Option<u64>, Answer> {
        if let Some(join_index) = room.place(user) {
            return Ok(Some(join_index));
        }
        self.stats.count_queue_central_call();
        match self.central.queue_place(event, user).await {
            Ok(Some(join_index)) => {
                room.remember(user, join_index);
                Ok(Some(join_index))
            }
            Ok(None) => Ok(None),
            Err(_) => Err(try_again(RetryReason::Unavailable, None)),
        }
    }

    /// Where a buyer stands, as JSON, if the sale has a waiting room.
    pub(super) async fn standing_of(
        &self,
        event: &EventId,
        state: &EventState,
        user: &UserId,
    ) -> Result<Option<serde_json::Value>, Answer> {
        let (Some(room), Some(keys)) = (&state.queue, &self.admissions) else {
            return Ok(None);
        };
        let Some(join_index) = self.place_of(event, room, user).await? else {
            return Ok(serde_json::to_value(Place::NotJoined).ok());
        };
        let now_ms = spike_core::time::unix_millis(SystemTime::now());
        let standing = room.standing(join_index, now_ms, state.stock.is_sold_out());
        Ok(serde_json::to_value(room.describe(standing, event, user, keys)).ok())
    }

    pub(super) fn standing_answer(
        &self,
        event: &EventId,
        state: &EventState,
        room: &WaitingRoom,
        user: &UserId,
        join_index: u64,
    ) -> Answer {
        let Some(keys) = &self.admissions else {
            return try_again(RetryReason::NoAdmissionKey, None);
        };
        let now_ms = spike_core::time::unix_millis(SystemTime::now());
        let standing = room.standing(join_index, now_ms, state.stock.is_sold_out());
        Answer::done(None, &room.describe(standing, event, user, keys))
    }

    /// One admission step for each queued sale this node serves; what it
    /// reads updates the node's waiting rooms (and lowers local stock to
    /// central's count, so that a sellout reaches every waiting buyer).
    pub(super) async fn tick_queues(&self) {
        let events = self.events.load_full();
        for (event, state) in events.iter() {
            let Some(room) = &state.queue else { continue };
            let since = room.steps_known_until_ms();
            self.stats.count_queue_tick();
            match self.central.tick_queue(event, unguessable(), since).await {
                Ok(Some(counters)) => {
                    state.stock.lower_to(counters.remaining);
                    room.apply(counters);
                }
                Ok(None) => {}
                Err(error) => tracing::debug!(%error, %event, "queue tick failed"),
            }
        }
    }
}

/// 64 bits no one can predict (from a generator the operating system
/// seeds): a waiting room's shuffle seed.
pub(super) fn unguessable() -> u64 {
    rand::random()
}

/// A challenge as answers carry it.
fn challenge_json(challenge: &Challenge) -> serde_json::Value {
    serde_json::json!({
        "challenge": challenge.text,
        "work_bits": challenge.bits,
        "expires_at_ms": challenge.expires_at_ms,
    })
}

/// 409: the waiting room opens for joining at `joins_open_at_ms`.
fn not_open_yet(joins_open_at_ms: u64) -> Answer {
    Answer::refused_with(
        StatusCode::CONFLICT,
        "the waiting room is not open yet",
        serde_json::json!({ "joins_open_at_ms": joins_open_at_ms }),
    )
}

pub(super) fn no_queue(event: &EventId) -> Answer {
    Answer::refused(
        StatusCode::NOT_FOUND,
        format!("event {event} has no waiting room"),
    )
}

pub(super) fn not_admitted(error: AdmissionError) -> Answer {
    Answer::NotAdmitted {
        reason: error.to_string(),
        standing: None,
    }
}
