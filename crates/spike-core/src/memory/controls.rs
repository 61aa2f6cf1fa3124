//! The embedded central stock's operator controls: `lua/control.lua`, step
//! for step (the rules are [`crate::control`]'s).

use std::time::SystemTime;

use super::Book;
use crate::control::{
    AdmissionSettings, Applied, Control, ControlOutcome, OperatorEntry, OperatorOrder,
};
use crate::time::unix_millis;

impl Book {
    /// Applies `order` and appends it to the operator log, in one step.
    pub(super) fn control(&mut self, order: &OperatorOrder, now: SystemTime) -> ControlOutcome {
        let queue = self.config.queue().copied();
        if order.control.needs_queue() && queue.is_none() {
            return ControlOutcome::NoQueue;
        }
        let now_ms = unix_millis(now);
        let applied = match (&order.control, queue) {
            (Control::Pause, _) => {
                self.paused = true;
                Applied::Paused
            }
            (Control::Resume, _) => {
                self.paused = false;
                Applied::Resumed
            }
            (Control::Admission(settings), Some(queue)) => {
                let was = AdmissionSettings::of(&queue);
                let changed = self
                    .config
                    .clone()
                    .with_queue(Some(settings.applied_to(queue)));
                if let Ok(changed) = changed {
                    self.config = changed;
                }
                // The bucket starts empty at the change, at the new rate.
                self.queue.rate_changed_at_ms = now_ms;
                self.queue.paced = 0;
                Applied::Admission {
                    now: *settings,
                    was,
                }
            }
            (Control::Revoke { user, reason }, Some(_)) => {
                self.queue.revoked.insert(user.clone(), reason.clone());
                Applied::Revoked {
                    user: user.clone(),
                    reason: reason.clone(),
                }
            }
            (Control::Reinstate { user }, Some(_)) => {
                self.queue.revoked.remove(user);
                Applied::Reinstated { user: user.clone() }
            }
            (Control::Admission(_) | Control::Revoke { .. } | Control::Reinstate { .. }, None) => {
                return ControlOutcome::NoQueue
            }
        };
        let entry = OperatorEntry {
            index: self.operator_log.len() as u64,
            at_ms: now_ms,
            by: order.by.clone(),
            applied,
        };
        self.operator_log.push(entry.clone());
        ControlOutcome::Applied(entry)
    }

    /// The operator log from entry `since` on.
    pub(super) fn operator_log_since(&self, since: u64) -> Vec<OperatorEntry> {
        let since = usize::try_from(since).unwrap_or(usize::MAX);
        self.operator_log.get(since..).unwrap_or_default().to_vec()
    }
}
