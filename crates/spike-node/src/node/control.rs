//! Operators' live controls, on the admin surface and only with the
//! operator key: pause and resume a sale, change its waiting room's
//! admission rate and cap, revoke a buyer's admission (and reinstate it),
//! read the operator
//! log and the waiting room's figures (`spike sale pause`, `spike queue
//! show`, …). Central stock applies each control and logs it in one step;
//! every node follows the log ([`CONTROL_FOLLOW_INTERVAL`]), so a control
//! given to one node holds on all of them within a second, and central
//! stock refuses a paused sale's purchases from the moment it is paused.

use std::num::NonZeroU64;
use std::sync::atomic::Ordering;
use std::time::Duration;

use hyper::StatusCode;
use serde_json::{json, Value};
use spike_core::control::{
    AdmissionSettings, Applied, Control, ControlOutcome, OperatorEntry, OperatorOrder, RevokeReason,
};
use spike_core::{CentralStock, EventId, OperatorName, UserId};
use spike_http::RetryReason;

use super::event::{EventState, FollowedLog};
use super::refusal::{forbidden, try_again};
use super::Node;
use crate::answer::Answer;
use crate::query::{decode, MAX_QUERY_LEN};
use crate::routes::ControlRequest;

/// How often a node reads each sale's operator log for controls given
/// through another node.
pub const CONTROL_FOLLOW_INTERVAL: Duration = Duration::from_millis(200);

/// A control request's parameters, decoded.
#[derive(Debug, Default)]
struct ControlParams {
    event: Option<EventId>,
    by: Option<OperatorName>,
    rate: Option<String>,
    max_active: Option<String>,
    user: Option<UserId>,
    reason: Option<String>,
    since: Option<String>,
}

impl ControlParams {
    /// Reads `query`; a parameter given twice, or invalid, is refused.
    fn parse(query: Option<&str>) -> Result<Self, String> {
        let mut params = Self::default();
        let query = query.unwrap_or_default();
        if query.len() > MAX_QUERY_LEN {
            return Err(format!("query string is longer than {MAX_QUERY_LEN} bytes"));
        }
        for pair in query.split('&').filter(|pair| !pair.is_empty()) {
            let (name, raw) = pair.split_once('=').unwrap_or((pair, ""));
            let Some(name) = KNOWN.iter().find(|known| **known == name).copied() else {
                continue;
            };
            let value = decode(raw, name).map_err(|error| error.to_string())?;
            let invalid = |error: spike_core::IdError| error.to_string();
            let repeated = format!("{name} is given more than once");
            let fresh = match name {
                "event" => set(&mut params.event, EventId::parse(value).map_err(invalid)?),
                "by" => set(&mut params.by, OperatorName::parse(value).map_err(invalid)?),
                "user_id" => set(&mut params.user, UserId::parse(value).map_err(invalid)?),
                "rate" => set(&mut params.rate, value),
                "max_active" => set(&mut params.max_active, value),
                "reason" => set(&mut params.reason, value),
                _ => set(&mut params.since, value),
            };
            if !fresh {
                return Err(repeated);
            }
        }
        Ok(params)
    }

    /// Who gives the control: `by` is required.
    fn operator(&self) -> Result<OperatorName, String> {
        (self.by.clone()).ok_or_else(|| "by is required: who gives this control".to_owned())
    }

    /// The control a route asks for, checked.
    fn control(&self, request: ControlRequest) -> Result<Control, String> {
        match request {
            ControlRequest::Pause => Ok(Control::Pause),
            ControlRequest::Resume => Ok(Control::Resume),
            ControlRequest::Admission => {
                let rate =
                    (self.rate.as_deref()).ok_or("rate is required (admissions a second)")?;
                let rate: u32 = rate.parse().map_err(|_| "rate must be a whole number")?;
                let max_active = match self.max_active.as_deref() {
                    None => None,
                    Some(cap) => {
                        let cap: u64 = cap.parse().map_err(|_| "max_active must be a number")?;
                        NonZeroU64::new(cap)
                    }
                };
                let settings =
                    AdmissionSettings::new(rate, max_active).map_err(|e| e.to_string())?;
                Ok(Control::Admission(settings))
            }
            ControlRequest::Reinstate => {
                let user = (self.user.clone()).ok_or("user_id is required")?;
                Ok(Control::Reinstate { user })
            }
            ControlRequest::Revoke => {
                let user = (self.user.clone()).ok_or("user_id is required")?;
                let reason = (self.reason.as_deref()).ok_or("reason is required")?;
                let reason = RevokeReason::parse(reason).map_err(|e| e.to_string())?;
                Ok(Control::Revoke { user, reason })
            }
            ControlRequest::Log | ControlRequest::Queue => {
                Err("this route reads; it gives no control".to_owned())
            }
        }
    }
}

/// The parameters control routes read; others are ignored.
const KNOWN: [&str; 7] = [
    "event",
    "by",
    "user_id",
    "rate",
    "max_active",
    "reason",
    "since",
];

/// Fills `slot` unless it was filled before (`false`).
fn set<T>(slot: &mut Option<T>, value: T) -> bool {
    let fresh = slot.is_none();
    *slot = Some(value);
    fresh
}

/// An operator log entry as answers show it.
pub fn entry_json(entry: &OperatorEntry) -> Value {
    let mut shown = json!({
        "index": entry.index,
        "at_ms": entry.at_ms,
        "by": entry.by.as_str(),
        "action": entry.applied.action().name(),
    });
    let details = match &entry.applied {
        Applied::Paused | Applied::Resumed => json!({}),
        Applied::Admission { now, was } => json!({
            "admit_rate_per_s": now.admit_rate.get(),
            "max_active": now.max_active.map(NonZeroU64::get),
            "was_admit_rate_per_s": was.admit_rate.get(),
            "was_max_active": was.max_active.map(NonZeroU64::get),
        }),
        Applied::Revoked { user, reason } => json!({
            "user_id": user.as_str(),
            "reason": reason.as_str(),
        }),
        Applied::Reinstated { user } => json!({ "user_id": user.as_str() }),
    };
    if let (Some(shown), Value::Object(details)) = (shown.as_object_mut(), details) {
        shown.extend(details);
    }
    shown
}

impl<C: CentralStock> Node<C> {
    /// A control route: the operator key first (401 without a key, 403
    /// with another), then the control or the read it asks for.
    pub(super) async fn control(
        &self,
        request: ControlRequest,
        query: Option<&str>,
        bearer: Option<&str>,
    ) -> Answer {
        let Some(operator) = &self.operator else {
            return forbidden(
                "this node has no operator key (--operator-key-file): no control is accepted",
            );
        };
        match bearer {
            None => {
                return Answer::unauthorized(
                    "controls need the operator key as Authorization: Bearer",
                )
            }
            Some(key) if !operator.accepts(key) => {
                return forbidden("only the operator key may control a sale")
            }
            Some(_) => {}
        }
        let params = match ControlParams::parse(query) {
            Ok(params) => params,
            Err(message) => return Answer::bad_request(message),
        };
        let (event, state) = match self.resolve_event(params.event.clone()) {
            Ok(found) => found,
            Err(refusal) => return refusal,
        };
        match request {
            ControlRequest::Log => self.operator_log_answer(&event, &params).await,
            ControlRequest::Queue => queue_answer(&event, &state),
            _ => self.give_control(request, &params, &event, &state).await,
        }
    }

    /// Applies a control through central stock, then follows the log here
    /// at once (the other nodes follow within [`CONTROL_FOLLOW_INTERVAL`]).
    async fn give_control(
        &self,
        request: ControlRequest,
        params: &ControlParams,
        event: &EventId,
        state: &EventState,
    ) -> Answer {
        let order = match (params.operator(), params.control(request)) {
            (Ok(by), Ok(control)) => OperatorOrder { by, control },
            (Err(message), _) | (_, Err(message)) => return Answer::bad_request(message),
        };
        let entry = match self.central.control(event, &order).await {
            Ok(ControlOutcome::Applied(entry)) => entry,
            Ok(ControlOutcome::NoQueue) => {
                return Answer::refused(
                    StatusCode::CONFLICT,
                    format!("event {event} has no waiting room: nothing changed"),
                )
            }
            Ok(ControlOutcome::NoSuchSale) => {
                return try_again(RetryReason::SaleStateMissing, None)
            }
            Err(_) => return try_again(RetryReason::Unavailable, None),
        };
        tracing::info!(
            %event,
            by = %entry.by,
            action = %entry.applied.action(),
            index = entry.index,
            "operator control applied"
        );
        self.follow_log(event, state).await;
        let mut shown = entry_json(&entry);
        if let Some(shown) = shown.as_object_mut() {
            shown.insert("event".into(), event.as_str().into());
        }
        Answer::done(None, &shown)
    }

    /// `GET /control/log?event=E[&since=N]`: the operator log from entry N.
    async fn operator_log_answer(&self, event: &EventId, params: &ControlParams) -> Answer {
        let since = match params.since.as_deref().map(str::parse::<u64>) {
            None => 0,
            Some(Ok(since)) => since,
            Some(Err(_)) => return Answer::bad_request("since must be an entry index"),
        };
        match self.central.operator_log(event, since).await {
            Ok(entries) => Answer::done(
                None,
                &json!({
                    "event": event.as_str(),
                    "entries": entries.iter().map(entry_json).collect::<Vec<_>>(),
                }),
            ),
            Err(_) => try_again(RetryReason::Unavailable, None),
        }
    }

    /// Reads the operator log of every sale this node serves and applies
    /// what is new.
    pub(super) async fn follow_operator_logs(&self) {
        let events = self.events.load_full();
        for (event, state) in events.iter() {
            self.follow_log(event, state).await;
        }
    }

    /// Applies the entries of `event`'s operator log this node has not
    /// applied yet, in order. It reads from the last entry it applied: if
    /// that is no longer there as it was, the log was replaced (the sale
    /// recreated under its name, or restored shorter), and the node forgets
    /// every control and follows the new log from its start.
    async fn follow_log(&self, event: &EventId, state: &EventState) {
        let mut followed = state.log_followed.lock().await;
        let since = followed.applied.saturating_sub(1);
        let Some(mut entries) = self.read_operator_log(event, since).await else {
            return;
        };
        if followed.applied > 0 {
            if entries.first() == followed.last.as_ref() {
                entries.remove(0);
            } else {
                tracing::info!(%event, "the operator log was replaced; following it from its start");
                let Some(all) = self.read_operator_log(event, 0).await else {
                    return;
                };
                entries = all;
                state.paused.store(false, Ordering::Release);
                if let (Some(room), Some(config)) = (&state.queue, state.config.queue()) {
                    room.forget_controls(*config);
                }
                *followed = FollowedLog::default();
            }
        }
        for entry in entries {
            if let Some(log) = &self.stat_log {
                log.record_control(event, &entry);
            }
            match &entry.applied {
                Applied::Paused => state.paused.store(true, Ordering::Release),
                Applied::Resumed => state.paused.store(false, Ordering::Release),
                Applied::Admission { now, .. } => {
                    if let Some(room) = &state.queue {
                        room.set_admission(*now);
                    }
                }
                Applied::Revoked { user, reason } => {
                    if let Some(room) = &state.queue {
                        room.revoke(user.clone(), reason.clone());
                    }
                }
                Applied::Reinstated { user } => {
                    if let Some(room) = &state.queue {
                        room.reinstate(user);
                    }
                }
            }
            followed.applied = entry.index + 1;
            followed.last = Some(entry);
        }
    }

    /// `event`'s operator log from entry `since` on; `None` (logged) when
    /// central stock cannot be read.
    async fn read_operator_log(&self, event: &EventId, since: u64) -> Option<Vec<OperatorEntry>> {
        match self.central.operator_log(event, since).await {
            Ok(entries) => Some(entries),
            Err(error) => {
                tracing::debug!(%error, %event, "reading the operator log failed");
                None
            }
        }
    }
}

/// `GET /control/queue?event=E`: the waiting room as this node last read
/// it, and whether the sale is paused.
fn queue_answer(event: &EventId, state: &EventState) -> Answer {
    let Some(room) = &state.queue else {
        return Answer::refused(
            StatusCode::NOT_FOUND,
            format!("event {event} has no waiting room"),
        );
    };
    let mut shown = room.show();
    if let Some(shown) = shown.as_object_mut() {
        shown.insert("event".into(), event.as_str().into());
        shown.insert("paused".into(), state.is_paused().into());
    }
    Answer::done(None, &shown)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_are_decoded_and_checked() {
        let params =
            ControlParams::parse(Some("event=G1&by=ops%40night&rate=500&max_active=0")).unwrap();
        assert_eq!(params.operator().unwrap().as_str(), "ops@night");
        let control = params.control(ControlRequest::Admission).unwrap();
        assert_eq!(
            control,
            Control::Admission(AdmissionSettings::new(500, None).unwrap())
        );
        let err = |query: &str, request| {
            let params = ControlParams::parse(Some(query));
            params.and_then(|p| p.control(request).map(|_| ()))
        };
        assert!(err("rate=0", ControlRequest::Admission).is_err());
        assert!(err("rate=x", ControlRequest::Admission).is_err());
        assert!(
            err("user_id=a", ControlRequest::Revoke).is_err(),
            "no reason"
        );
        assert!(err("user_id=a&reason=%0A", ControlRequest::Revoke).is_err());
        assert!(err("event=a&event=b", ControlRequest::Pause).is_err());
        assert!(ControlParams::parse(Some("rate=1"))
            .unwrap()
            .operator()
            .is_err());
    }
}
