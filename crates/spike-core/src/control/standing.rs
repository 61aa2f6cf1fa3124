//! What a sale's operator log leaves in force, and which log a recovery
//! restores: central stock rebuilt after it lost everything must come back
//! paused if it was paused, at the rate the operator last set, and with
//! every revocation standing.

use std::collections::{BTreeMap, HashMap};

use super::{AdmissionSettings, Applied, OperatorEntry, RevokeReason};
use crate::ids::UserId;
use crate::sale::SaleConfig;

/// The controls an operator log leaves in force, replayed in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StandingControls {
    /// Whether the last pause or resume was a pause.
    pub paused: bool,
    /// The waiting room's settings as the last admission change set them.
    pub admission: Option<AdmissionSettings>,
    /// The buyers revoked and not reinstated since, with their reasons.
    pub revoked: BTreeMap<UserId, RevokeReason>,
}

impl StandingControls {
    /// Replays `log`, oldest first.
    pub fn of(log: &[OperatorEntry]) -> Self {
        let mut standing = Self::default();
        for entry in log {
            match &entry.applied {
                Applied::Paused => standing.paused = true,
                Applied::Resumed => standing.paused = false,
                Applied::Admission { now, .. } => standing.admission = Some(*now),
                Applied::Revoked { user, reason } => {
                    standing.revoked.insert(user.clone(), reason.clone());
                }
                Applied::Reinstated { user } => {
                    standing.revoked.remove(user);
                }
            }
        }
        standing
    }

    /// `config` with the last admission change applied (unchanged without
    /// one, or without a waiting room).
    pub fn applied_to(&self, config: SaleConfig) -> SaleConfig {
        match (self.admission, config.queue().copied()) {
            (Some(settings), Some(queue)) => {
                let changed = config.clone().with_queue(Some(settings.applied_to(queue)));
                changed.unwrap_or(config)
            }
            _ => config,
        }
    }
}

/// The operator log a recovery restores from the entries the stat logs
/// hold (every node writes each entry it follows, so most are there many
/// times over): place by place from 0, the entry with the latest time at
/// each place (a sale recreated under the same name starts a new log, and
/// the newest life wins), up to the first place no stat log holds or whose
/// entry is older than the one before it (a mix of two lives). A log with
/// a hole cannot be replayed faithfully past it.
pub fn recovered_log(found: impl IntoIterator<Item = OperatorEntry>) -> Vec<OperatorEntry> {
    let mut latest: HashMap<u64, OperatorEntry> = HashMap::new();
    for entry in found {
        match latest.get(&entry.index) {
            Some(kept) if kept.at_ms >= entry.at_ms => {}
            _ => {
                latest.insert(entry.index, entry);
            }
        }
    }
    let mut log: Vec<OperatorEntry> = Vec::with_capacity(latest.len());
    while let Some(entry) = latest.remove(&(log.len() as u64)) {
        if log.last().is_some_and(|before| before.at_ms > entry.at_ms) {
            break;
        }
        log.push(entry);
    }
    log
}

#[cfg(test)]
mod tests {
    use std::num::{NonZeroU32, NonZeroU64};

    use super::*;
    use crate::ids::OperatorName;
    use crate::queue::QueueConfig;
    use crate::sale::{BuyerAuth, BuyerPolicy};

    fn entry(index: u64, at_ms: u64, applied: Applied) -> OperatorEntry {
        OperatorEntry {
            index,
            at_ms,
            by: OperatorName::parse("ops").unwrap(),
            applied,
        }
    }

    fn settings(rate: u32) -> AdmissionSettings {
        AdmissionSettings::new(rate, NonZeroU64::new(50)).unwrap()
    }

    fn revoke(user: &str) -> Applied {
        Applied::Revoked {
            user: UserId::parse(user).unwrap(),
            reason: RevokeReason::parse("resold").unwrap(),
        }
    }

    #[test]
    fn the_last_word_on_each_control_stands() {
        let log = [
            entry(0, 10, Applied::Paused),
            entry(1, 20, revoke("amy")),
            entry(2, 30, revoke("bob")),
            entry(
                3,
                40,
                Applied::Admission {
                    now: settings(300),
                    was: settings(100),
                },
            ),
            entry(
                4,
                50,
                Applied::Reinstated {
                    user: UserId::parse("amy").unwrap(),
                },
            ),
        ];
        let standing = StandingControls::of(&log);
        assert!(standing.paused);
        assert_eq!(standing.admission, Some(settings(300)));
        let revoked: Vec<&str> = standing.revoked.keys().map(UserId::as_str).collect();
        assert_eq!(revoked, ["bob"]);
        let resumed = [log[0].clone(), entry(1, 60, Applied::Resumed)];
        assert!(!StandingControls::of(&resumed).paused);
        assert_eq!(StandingControls::of(&[]), StandingControls::default());

        let queue = QueueConfig::new(NonZeroU32::new(100).unwrap()).unwrap();
        let token_buyers = BuyerPolicy::Identified {
            per_user_limit: NonZeroU32::MIN,
            auth: BuyerAuth::Token,
        };
        let config = SaleConfig::new(10)
            .unwrap()
            .with_policy(token_buyers)
            .with_queue(Some(queue))
            .unwrap();
        let applied = standing.applied_to(config.clone());
        let room = applied.queue().unwrap();
        assert_eq!(
            (room.admit_rate().get(), room.max_active()),
            (300, NonZeroU64::new(50))
        );
        assert_eq!(
            StandingControls::default().applied_to(config.clone()),
            config
        );
    }

    #[test]
    fn the_recovered_log_is_the_newest_life_up_to_its_first_hole() {
        let found = [
            entry(1, 20, revoke("amy")),
            entry(0, 10, Applied::Paused),
            entry(1, 20, revoke("amy")), // another node's copy
            entry(0, 10, Applied::Paused),
            entry(3, 40, Applied::Resumed), // after a hole
        ];
        let log = recovered_log(found);
        assert_eq!(log.iter().map(|e| e.index).collect::<Vec<_>>(), [0, 1]);

        // A sale recreated under its name: the new life's entries win at
        // their places, and the old life's later places are left out.
        let lives = [
            entry(0, 10, Applied::Paused),
            entry(1, 20, Applied::Resumed),
            entry(2, 30, Applied::Paused),
            entry(0, 100, revoke("bob")),
            entry(1, 110, Applied::Paused),
        ];
        let log = recovered_log(lives);
        assert_eq!(log.iter().map(|e| e.at_ms).collect::<Vec<_>>(), [100, 110]);
        assert!(recovered_log([]).is_empty());
    }
}
