//! What a waiting room's admission steps say once taken: when a position
//! was admitted, how many were by a moment, who is still active, and, for
//! the audit, whether any step overdrew its period's rate or let a buyer
//! pass ahead of one waiting.

use super::{AdmissionProgress, AdmissionStep, QueueConfig};

/// One period of a waiting room's admission at one rate: from `from_ms`
/// (the rate's origin for that period, see [`crate::queue::rate_origin_ms`])
/// with `config`'s rate and cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RatePeriod {
    /// When the period's rate is counted from (Unix milliseconds).
    pub from_ms: u64,
    /// The room's rules in that period.
    pub config: QueueConfig,
}

/// For the audit: the admission steps (oldest first) that moved faster than
/// the token bucket of their period allows. Each period
/// (the control module's `rate_periods`: the first from the rate's origin, see
/// [`rate_origin_ms`], then one from each operator's change of the rate)
/// replays its steps with its own rate, its bucket empty at its start, as
/// central stock's is. Both the ticks and the buyers who passed straight
/// through take their tokens from it, so none may overdraw it.
pub fn steps_beyond_rate(periods: &[RatePeriod], steps: &[AdmissionStep]) -> u64 {
    let mut progress = AdmissionProgress {
        since_opening_ms: 0,
        paced: 0,
        joined: u64::MAX,
        admitted: 0,
        bought: 0,
        expired_unbought: 0,
    };
    let mut beyond = 0;
    let mut current: Option<usize> = None;
    for step in steps {
        let period = periods
            .iter()
            .rposition(|period| period.from_ms <= step.at_ms)
            .unwrap_or(0);
        let Some(RatePeriod { from_ms, config }) = periods.get(period) else {
            return 0;
        };
        if current != Some(period) {
            if current.is_some() {
                progress.paced = 0;
            }
            current = Some(period);
        }
        progress.since_opening_ms = step.at_ms.saturating_sub(*from_ms);
        if step.admitted.saturating_sub(progress.admitted) > config.rate_budget(&progress) {
            beyond += 1;
        }
        progress.paced = config.paced_after(&progress, step.admitted);
        progress.admitted = progress.admitted.max(step.admitted);
    }
    beyond
}

/// For the audit: the buyers who passed straight through (their positions)
/// while someone was waiting. A pass at position `p` must be the one step
/// that moved `admitted` from `p` to `p + 1`: everyone before it had been
/// admitted, and nobody was admitted with it.
pub fn passes_ahead_of_waiters(steps: &[AdmissionStep], passed: &[u64]) -> u64 {
    let fair = |position: u64| {
        let step = steps.partition_point(|step| step.admitted <= position);
        let moved_to_next = steps.get(step).is_some_and(|s| s.admitted == position + 1);
        let before = step
            .checked_sub(1)
            .and_then(|previous| steps.get(previous))
            .map_or(0, |s| s.admitted);
        moved_to_next && before == position
    };
    passed.iter().filter(|&&position| !fair(position)).count() as u64
}

/// When position `position` was admitted, from the admission steps (oldest
/// first), if it was.
pub fn admitted_at(steps: &[AdmissionStep], position: u64) -> Option<u64> {
    let first = steps.partition_point(|step| step.admitted <= position);
    steps.get(first).map(|step| step.at_ms)
}

/// Positions admitted at or before `at_ms`, by `steps` (oldest first).
pub fn admitted_by(steps: &[AdmissionStep], at_ms: u64) -> u64 {
    let taken = steps.partition_point(|step| step.at_ms <= at_ms);
    taken
        .checked_sub(1)
        .and_then(|last| steps.get(last))
        .map_or(0, |step| step.admitted)
}

/// Admitted buyers at `now_ms` who have neither bought (`bought`: the
/// positions that did, in any order) nor let their admission of
/// `window_ms` expire: [`AdmissionProgress::active`], from a room's record.
pub fn active_at(
    steps: &[AdmissionStep],
    bought: &[u64],
    admitted: u64,
    window_ms: u64,
    now_ms: u64,
) -> u64 {
    let expired = admitted_by(steps, now_ms.saturating_sub(window_ms));
    let bought_expired = bought.iter().filter(|p| **p < expired).count() as u64;
    AdmissionProgress {
        since_opening_ms: 0,
        paced: 0,
        joined: admitted,
        admitted,
        bought: bought.len() as u64,
        expired_unbought: expired.saturating_sub(bought_expired),
    }
    .active()
}
