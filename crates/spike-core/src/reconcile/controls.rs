//! The audit's lines about operators' controls: how many were given, and
//! that no purchase sold while the sale was paused (central stock stamps
//! both with its own clock, so the comparison is exact). A waitlist fill
//! is not a purchase: seats given back during a pause go on to the
//! travellers waiting for them.

use std::collections::HashSet;

use super::AuditLine;
use crate::control::{Action, Applied, OperatorEntry};
use crate::ids::OrderId;
use crate::order::Order;
use crate::order_stream::StreamEntry;
use crate::train::{WaitEntry, WaitState};

/// The spans (from, until) the log shows the sale paused; the last may run
/// to now (`u64::MAX`).
pub(super) fn paused_spans(log: &[OperatorEntry]) -> Vec<(u64, u64)> {
    let mut spans = Vec::new();
    let mut since = None;
    for entry in log {
        match (&entry.applied, since) {
            (Applied::Paused, None) => since = Some(entry.at_ms),
            (Applied::Resumed, Some(from)) => {
                spans.push((from, entry.at_ms));
                since = None;
            }
            _ => {}
        }
    }
    spans.extend(since.map(|from| (from, u64::MAX)));
    spans
}

/// The controls' lines, for `log` against the orders of the ledger and the
/// stream's unwritten entries.
pub(super) fn control_lines(
    log: &[OperatorEntry],
    orders: &[Order],
    stream: &[StreamEntry],
    waitlist: &[WaitEntry],
) -> Vec<AuditLine> {
    let count = |action: Action| log.iter().filter(|e| e.applied.action() == action).count() as u64;
    let spans = paused_spans(log);
    let fills: HashSet<&OrderId> = (waitlist.iter())
        .filter_map(|entry| match &entry.state {
            WaitState::Filled { order } => Some(order),
            _ => None,
        })
        .collect();
    let sold_while_paused = (orders.iter().map(|o| (&o.id, o.sold_at_ms)))
        .chain(stream.iter().map(|e| (&e.order, e.sold_at_ms)))
        .filter(|(order, _)| !fills.contains(order))
        .filter(|(_, at)| spans.iter().any(|(from, until)| from < at && at < until))
        .map(|(order, _)| order)
        .collect::<HashSet<_>>()
        .len() as u64;
    vec![
        AuditLine::figure("operator controls: pauses", count(Action::Pause)),
        AuditLine::figure("operator controls: resumes", count(Action::Resume)),
        AuditLine::figure(
            "operator controls: admission changes",
            count(Action::Admission),
        ),
        AuditLine::figure(
            "operator controls: admissions revoked",
            count(Action::Revoke),
        ),
        AuditLine::check(
            "orders sold while the sale was paused",
            sold_while_paused,
            0,
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::OperatorName;

    fn at(at_ms: u64, applied: Applied) -> OperatorEntry {
        OperatorEntry {
            index: 0,
            at_ms,
            by: OperatorName::parse("ops").unwrap(),
            applied,
        }
    }

    #[test]
    fn pauses_span_until_their_resume_or_now() {
        let log = [
            at(10, Applied::Paused),
            at(12, Applied::Paused),
            at(20, Applied::Resumed),
            at(25, Applied::Resumed),
            at(30, Applied::Paused),
        ];
        assert_eq!(paused_spans(&log), [(10, 20), (30, u64::MAX)]);
        assert!(paused_spans(&[]).is_empty());
    }
}
