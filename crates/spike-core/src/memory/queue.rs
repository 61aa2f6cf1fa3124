//! The embedded central stock's waiting rooms: `lua/queue_join.lua`,
//! `lua/queue_tick.lua` and `lua/admission.lua`, step for step (the rules
//! are `crate::queue`'s).

use std::collections::{BTreeSet, HashMap};
use std::time::SystemTime;

use super::Book;
use crate::central::QueueJoin;
use crate::control::RevokeReason;
use crate::ids::UserId;
use crate::queue::{
    rate_origin_ms, AdmissionProgress, AdmissionStep, QueueConfig, QueueCounters, Seal,
};
use crate::time::unix_millis;

/// A sale's waiting room, as `lua/queue_*.lua` keep it in Redis.
#[derive(Debug, Default)]
pub(super) struct WaitingRoom {
    /// Buyer → join index.
    pub(super) places: HashMap<UserId, u64>,
    pub(super) seal: Option<Seal>,
    pub(super) admitted: u64,
    /// The token bucket's use (see [`AdmissionProgress::paced`]).
    pub(super) paced: u64,
    /// Admission steps, oldest first.
    pub(super) steps: Vec<AdmissionStep>,
    /// Admitted positions that bought, and by whom (as in Redis, a position
    /// bought by two buyers is recorded twice, for the audit to see).
    pub(super) bought: BTreeSet<(u64, UserId)>,
    /// Buyers holding seats when a recovery reset the room.
    pub(super) carried: BTreeSet<UserId>,
    /// Positions of the buyers who passed straight through (spillover).
    pub(super) passed: BTreeSet<u64>,
    /// When the room was sealed (Unix milliseconds; 0 before).
    pub(super) sealed_at_ms: u64,
    /// When an operator last changed the rate (Unix milliseconds; 0 never).
    pub(super) rate_changed_at_ms: u64,
    /// Buyers whose admission an operator revoked, and why.
    pub(super) revoked: HashMap<UserId, RevokeReason>,
}

impl WaitingRoom {
    pub(super) fn joined(&self) -> u64 {
        self.places.len() as u64
    }

    /// When position `position` was admitted, if it was.
    pub(super) fn admitted_at(&self, position: u64) -> Option<u64> {
        crate::queue::admitted_at(&self.steps, position)
    }

    /// Positions admitted at or before `at_ms`.
    pub(super) fn admitted_by(&self, at_ms: u64) -> u64 {
        crate::queue::admitted_by(&self.steps, at_ms)
    }

    pub(super) fn counters(
        &self,
        now_ms: u64,
        remaining: u64,
        steps_after_ms: u64,
        window_ms: u64,
    ) -> QueueCounters {
        let bought: Vec<u64> = self.bought.iter().map(|(position, _)| *position).collect();
        QueueCounters {
            joined: self.joined(),
            seal: self.seal,
            admitted: self.admitted,
            active: crate::queue::active_at(&self.steps, &bought, self.admitted, window_ms, now_ms),
            now_ms,
            remaining,
            steps: (self.steps.iter())
                .filter(|step| step.at_ms >= steps_after_ms)
                .copied()
                .collect(),
        }
    }
}

impl Book {
    /// The same steps as `lua/queue_join.lua`: in a spillover room, a new
    /// buyer passes straight through when [`QueueConfig::lets_through`]
    /// (joined and admitted in one step, recorded as a pass).
    pub(super) fn join_queue(&mut self, user: &UserId, seed: u64, now: SystemTime) -> QueueJoin {
        let Some(queue) = self.config.queue().copied() else {
            return QueueJoin::NoQueue;
        };
        let now_ms = unix_millis(now);
        let joins_open_at_ms = queue.joins_open_at_millis();
        self.seal_at_opening(seed, now_ms);
        if let Some(&join_index) = self.queue.places.get(user) {
            // A pass holds for the admission window from its step.
            let passed_at = (self.queue.passed.contains(&join_index))
                .then(|| self.queue.admitted_at(join_index))
                .flatten();
            return match passed_at {
                Some(at_ms) if now_ms.saturating_sub(at_ms) < queue.admit_window_millis() => {
                    QueueJoin::Passed { join_index }
                }
                _ => QueueJoin::Joined { join_index },
            };
        }
        if now_ms < joins_open_at_ms {
            return QueueJoin::NotYetOpen { joins_open_at_ms };
        }
        let join_index = self.queue.joined();
        self.queue.places.insert(user.clone(), join_index);
        if self.queue.seal.is_some() && self.sold < self.config.total() && !self.paused {
            let progress = self.admission_progress(&queue, now_ms);
            let before_joining = AdmissionProgress {
                joined: join_index,
                ..progress
            };
            if queue.lets_through(&before_joining) {
                self.admit_to(&queue, &progress, join_index + 1, now_ms);
                self.queue.passed.insert(join_index);
                return QueueJoin::Passed { join_index };
            }
        }
        QueueJoin::Joined { join_index }
    }

    /// Where admission stands at `now_ms`: what
    /// [`QueueConfig::admission_target`] decides from.
    pub(super) fn admission_progress(&self, queue: &QueueConfig, now_ms: u64) -> AdmissionProgress {
        let expired = self
            .queue
            .admitted_by(now_ms.saturating_sub(queue.admit_window_millis()));
        let bought_expired = (self.queue.bought.iter())
            .take_while(|(position, _)| *position < expired)
            .count() as u64;
        AdmissionProgress {
            since_opening_ms: now_ms.saturating_sub(self.live_rate_origin_ms()),
            paced: self.queue.paced,
            joined: self.queue.joined(),
            admitted: self.queue.admitted,
            bought: self.queue.bought.len() as u64,
            expired_unbought: expired.saturating_sub(bought_expired),
        }
    }

    /// When the room's rate was first counted from.
    pub(super) fn rate_origin_ms(&self) -> u64 {
        rate_origin_ms(self.config.opens_at_millis(), self.queue.sealed_at_ms)
    }

    /// When the room's current rate is counted from: the first origin, or
    /// an operator's later change of the rate.
    pub(super) fn live_rate_origin_ms(&self) -> u64 {
        self.rate_origin_ms().max(self.queue.rate_changed_at_ms)
    }

    /// Moves `admitted` to `target`, one admission step at `now_ms`.
    pub(super) fn admit_to(
        &mut self,
        queue: &QueueConfig,
        progress: &AdmissionProgress,
        target: u64,
        now_ms: u64,
    ) {
        self.queue.paced = queue.paced_after(progress, target);
        self.queue.admitted = target;
        self.queue.steps.push(AdmissionStep {
            at_ms: now_ms,
            admitted: target,
        });
    }

    /// Seals the waiting room once the sale has opened: who joined before
    /// is shuffled with `seed`.
    pub(super) fn seal_at_opening(&mut self, seed: u64, now_ms: u64) {
        if self.queue.seal.is_none() && now_ms >= self.config.opens_at_millis() {
            self.queue.seal = Some(Seal {
                seed,
                early: self.queue.joined(),
            });
            self.queue.sealed_at_ms = now_ms;
        }
    }

    /// The same steps as `lua/queue_tick.lua`.
    pub(super) fn tick_queue(
        &mut self,
        seed: u64,
        steps_after_ms: u64,
        now: SystemTime,
    ) -> Option<QueueCounters> {
        let queue = *self.config.queue()?;
        let now_ms = unix_millis(now);
        self.seal_at_opening(seed, now_ms);
        if self.queue.seal.is_some() && self.sold < self.config.total() && !self.paused {
            let progress = self.admission_progress(&queue, now_ms);
            let target = queue.admission_target(&progress);
            if target > self.queue.admitted {
                self.admit_to(&queue, &progress, target, now_ms);
            }
        }
        Some(self.queue.counters(
            now_ms,
            self.remaining(),
            steps_after_ms,
            queue.admit_window_millis(),
        ))
    }
}
