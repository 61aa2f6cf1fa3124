//! The audit's checks of a waiting room: every place given once, nobody
//! admitted twice, nobody holding a seat without an admission of their
//! own, no admission faster than its period's rate, and in a spillover
//! room, nobody passing straight through while others waited.

use std::collections::{HashMap, HashSet};

use super::AuditLine;
use crate::central::QueueRecord;
use crate::control::{rate_periods, OperatorEntry};
use crate::ids::UserId;
use crate::queue::{passes_ahead_of_waiters, steps_beyond_rate, QueueConfig, Shuffle};

/// The waiting room's checks: every place given once, nobody admitted
/// twice, nobody holding a seat without an admission of their own, no
/// admission faster than the rate (of `room`, when central stock has the
/// sale), and in a spillover room, nobody passing straight through while
/// others waited.
pub(super) fn queue_lines<'a>(
    record: &QueueRecord,
    room: Option<&QueueConfig>,
    operator_log: &[OperatorEntry],
    holders: impl Iterator<Item = &'a UserId>,
) -> Vec<AuditLine> {
    let joined = record.joiners.len() as u64;
    let mut places = HashSet::new();
    let misplaced = (record.joiners.iter())
        .filter(|(_, index)| *index >= joined || !places.insert(*index))
        .count() as u64;
    let place_of: HashMap<&UserId, u64> = (record.joiners.iter())
        .map(|(user, index)| (user, *index))
        .collect();
    let shuffle = record.counters.seal.map(Shuffle::of);
    let admitted = record.counters.admitted;
    let mut positions_of: HashMap<&UserId, HashSet<u64>> = HashMap::new();
    for (position, user) in &record.bought {
        positions_of.entry(user).or_default().insert(*position);
    }
    let twice = positions_of.values().filter(|p| p.len() > 1).count() as u64;
    let not_admitted = (record.bought.iter())
        .filter(|(position, _)| *position >= admitted)
        .count() as u64;
    let not_theirs = (record.bought.iter())
        .filter(|(position, user)| {
            let own = (place_of.get(user), &shuffle);
            !matches!(own, (Some(index), Some(shuffle)) if shuffle.position(*index) == *position)
        })
        .count() as u64;
    let steps = &record.counters.steps;
    let beyond_rate = room.map_or(0, |config| {
        steps_beyond_rate(
            &rate_periods(*config, record.origin_ms, operator_log),
            steps,
        )
    });
    let passed_ahead = passes_ahead_of_waiters(steps, &record.passed);
    let carried: HashSet<&UserId> = record.carried.iter().collect();
    let unadmitted_holders = holders
        .filter(|user| !positions_of.contains_key(user) && !carried.contains(user))
        .count() as u64;
    vec![
        AuditLine::figure("waiting room: buyers who joined", joined),
        AuditLine::figure(
            "waiting room: holders admitted before a reset (recovery)",
            record.carried.len() as u64,
        ),
        AuditLine::figure("waiting room: positions admitted", admitted),
        AuditLine::figure(
            "waiting room: buyers who passed straight through (spillover)",
            record.passed.len() as u64,
        ),
        AuditLine::check("waiting room: places given twice or skipped", misplaced, 0),
        AuditLine::check("waiting room: buyers admitted at two positions", twice, 0),
        AuditLine::check(
            "waiting room: purchases at a position not admitted",
            not_admitted,
            0,
        ),
        AuditLine::check(
            "waiting room: purchases at another buyer's position",
            not_theirs,
            0,
        ),
        AuditLine::check(
            "waiting room: buyers holding seats without an admission",
            unadmitted_holders,
            0,
        ),
        AuditLine::check(
            "waiting room: admission steps faster than the rate",
            beyond_rate,
            0,
        ),
        AuditLine::check(
            "waiting room: buyers who passed ahead of a waiting buyer",
            passed_ahead,
            0,
        ),
    ]
}
