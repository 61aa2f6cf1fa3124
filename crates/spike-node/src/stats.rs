//! The counters a node keeps about its own answers: `/buy/ticket` answers
//! by code and purchases sent to central stock. They feed `/stats`, and
//! `/metrics` copies them at scrape time rather than counting twice.

use std::sync::atomic::{AtomicU64, Ordering};

use spike_core::Code;

/// Counters a node keeps about its own answers.
#[derive(Debug, Default)]
pub struct NodeStats {
    /// Purchases sent to central stock.
    central_calls: AtomicU64,
    /// `/buy/ticket` answers, one slot per [`Code::BUY`] code.
    answers: [AtomicU64; Code::BUY.len()],
    /// Waiting-room answers (`/queue/join`, `/queue/status`).
    queue_answers: AtomicU64,
    /// Calls to central stock those answers made (joins, and places this
    /// node did not know yet).
    queue_central_calls: AtomicU64,
    /// Admission steps this node took (one central call each, whatever the
    /// number of buyers).
    queue_ticks: AtomicU64,
    /// Purchases shed at once because the node's loop was congested.
    congestion_shed: AtomicU64,
    /// Buyers of spillover rooms who passed straight through at this node.
    passed_through: AtomicU64,
    /// Buyers of spillover rooms this node sent to wait in the room.
    spilled_over: AtomicU64,
    /// Joins refused for missing or wrong proof of work (`--join-work`).
    work_refused: AtomicU64,
}

impl NodeStats {
    /// Counts one `/buy/ticket` answer.
    pub fn count(&self, code: Code) {
        if let Some(counter) = code.buy_index().and_then(|i| self.answers.get(i)) {
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// How many `/buy/ticket` answers carried `code`.
    pub fn answers_with(&self, code: Code) -> u64 {
        code.buy_index()
            .and_then(|i| self.answers.get(i))
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }

    /// Counts one purchase sent to central stock.
    pub fn count_central_call(&self) {
        self.central_calls.fetch_add(1, Ordering::Relaxed);
    }

    /// Purchases sent to central stock so far.
    pub fn central_calls(&self) -> u64 {
        self.central_calls.load(Ordering::Relaxed)
    }

    /// Counts one waiting-room answer.
    pub fn count_queue_answer(&self) {
        self.queue_answers.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one central call a waiting-room answer made.
    pub fn count_queue_central_call(&self) {
        self.queue_central_calls.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one buyer at a spillover room's door: passed straight
    /// through, or sent to wait.
    pub fn count_spillover(&self, passed: bool) {
        let counter = match passed {
            true => &self.passed_through,
            false => &self.spilled_over,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one join refused for its proof of work.
    pub fn count_work_refused(&self) {
        self.work_refused.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one purchase shed because the node's loop was congested.
    pub fn count_congestion_shed(&self) {
        self.congestion_shed.fetch_add(1, Ordering::Relaxed);
    }

    /// Purchases shed because the node's loop was congested.
    pub fn congestion_shed(&self) -> u64 {
        self.congestion_shed.load(Ordering::Relaxed)
    }

    /// Counts one admission step.
    pub fn count_queue_tick(&self) {
        self.queue_ticks.fetch_add(1, Ordering::Relaxed);
    }

    /// The waiting-room counters, for `/stats`.
    pub fn queue_json(&self) -> serde_json::Value {
        serde_json::json!({
            "answers": self.queue_answers.load(Ordering::Relaxed),
            "central_calls": self.queue_central_calls.load(Ordering::Relaxed),
            "ticks": self.queue_ticks.load(Ordering::Relaxed),
            "passed_through": self.passed_through.load(Ordering::Relaxed),
            "spilled_over": self.spilled_over.load(Ordering::Relaxed),
            "work_refused": self.work_refused.load(Ordering::Relaxed),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_buy_code_has_its_own_counter() {
        let stats = NodeStats::default();
        stats.count(Code::SoldOut);
        stats.count(Code::SoldOut);
        stats.count(Code::TryAgain);
        stats.count(Code::Ok); // not a purchase answer: not counted
        assert_eq!(stats.answers_with(Code::SoldOut), 2);
        assert_eq!(stats.answers_with(Code::TryAgain), 1);
        assert_eq!(stats.answers_with(Code::Success), 0);
        assert_eq!(stats.answers_with(Code::Ok), 0);
    }
}
