//! A queue bounded by time, not by count: controlled delay (CoDel) with
//! adaptive LIFO, as Facebook's "Fail at Scale" describes it.
//!
//! - While the queue keeps emptying, an item may wait up to
//!   [`Discipline::interval`].
//! - Once it has not been empty for a whole `interval`, it is congested: an
//!   item may wait only [`Discipline::target`], and the newest go first
//!   (they are the ones whose callers are still there; the oldest are the
//!   ones about to be shed anyway).
//!
//! Items past their wait are handed back to be answered at once ("try
//! again"), never silently dropped. The queue takes `now` from its caller,
//! so the rule is tested without a clock.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// How long items may wait in a [`Backlog`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Discipline {
    /// The longest wait while the queue keeps emptying, and how long it
    /// must stay non-empty to count as congested.
    pub interval: Duration,
    /// The longest wait once congested.
    pub target: Duration,
}

/// The default discipline: at most 100 ms of waiting, 10 ms once congested
/// (a central call of a full batch takes a few milliseconds, so an item
/// normally waits at most one call).
pub const DEFAULT_DISCIPLINE: Discipline = Discipline {
    interval: Duration::from_millis(100),
    target: Duration::from_millis(10),
};

/// The default discipline of a server's own loop (see [`crate::lag`]): it
/// is congested once its lag stayed above half a second for a whole second.
/// Its lag is at least the connections it serves at once over the rate it
/// answers them (Little's law), whatever it sheds: 4,000 busy connections
/// at 40,000 answers a second make 100 ms. Below that, shedding would cost
/// sales and gain no latency; a loop that only stalls for a moment (a busy
/// machine, a paused process) is not a standing queue either.
pub const DEFAULT_LOOP_DISCIPLINE: Discipline = Discipline {
    interval: Duration::from_secs(1),
    target: Duration::from_millis(500),
};

/// The least an item may wait before any service time has been measured.
pub const UNMEASURED_FLOOR: Duration = Duration::from_secs(1);

/// Items waiting, each with when it arrived.
#[derive(Debug)]
pub struct Backlog<T> {
    discipline: Discipline,
    waiting: VecDeque<(Instant, T)>,
    /// When the queue was last seen empty.
    last_empty: Instant,
    /// The least any item may wait (see [`Backlog::serve_in`]);
    /// [`UNMEASURED_FLOOR`] until a service has been measured.
    floor: Duration,
}

impl<T> Backlog<T> {
    /// An empty backlog, empty as of `now`.
    pub fn new(discipline: Discipline, now: Instant) -> Self {
        Self {
            discipline,
            waiting: VecDeque::new(),
            last_empty: now,
            // Until a service has been measured, its time is unknown (the
            // first call on a new connection loads scripts, a far server
            // takes several round trips): be lenient.
            floor: UNMEASURED_FLOOR,
        }
    }

    /// Serving the queue took `service` (one call that succeeded, say): an
    /// item arriving just after a call went out waits for it to come back
    /// before its own goes out, and calls vary, so no item is shed before it
    /// has waited three of the slower recent ones (the floor decays by a
    /// quarter a call). A slow but steady server (50 ms away) is not an
    /// overload. Give only services that succeeded: a stuck server's
    /// timeouts must not make the items behind it wait longer.
    pub fn serve_in(&mut self, service: Duration) {
        self.floor = service.saturating_mul(3).max(self.floor.mul_f64(0.75));
    }

    /// Adds an item that arrived at `arrived`.
    pub fn push(&mut self, arrived: Instant, item: T) {
        if self.waiting.is_empty() {
            // Empty until now.
            self.last_empty = self.last_empty.max(arrived);
        }
        self.waiting.push_back((arrived, item));
    }

    /// Items waiting.
    pub fn len(&self) -> usize {
        self.waiting.len()
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }

    /// Whether the queue has not been empty for a whole interval.
    pub fn congested(&self, now: Instant) -> bool {
        !self.waiting.is_empty()
            && now.saturating_duration_since(self.last_empty) > self.discipline.interval
    }

    /// The longest an item may wait now.
    fn allowed(&self, now: Instant) -> Duration {
        let rule = if self.congested(now) {
            self.discipline.target
        } else {
            self.discipline.interval
        };
        rule.max(self.floor)
    }

    /// Takes out every item that has waited longer than allowed now, oldest
    /// first, for its caller to be told "try again".
    pub fn expired(&mut self, now: Instant) -> Vec<T> {
        let allowed = self.allowed(now);
        let mut expired = Vec::new();
        while let Some((arrived, _)) = self.waiting.front() {
            if now.saturating_duration_since(*arrived) <= allowed {
                break;
            }
            if let Some((_, item)) = self.waiting.pop_front() {
                expired.push(item);
            }
        }
        self.note_if_empty(now);
        expired
    }

    /// Takes up to `most` items to serve: the oldest first normally, the
    /// newest first when congested (adaptive LIFO). Items expired by now
    /// are not taken; call [`Self::expired`] first.
    pub fn take(&mut self, most: usize, now: Instant) -> Vec<T> {
        let newest_first = self.congested(now);
        let count = most.min(self.waiting.len());
        let taken: Vec<T> = if newest_first {
            let mut newest: Vec<T> = (0..count)
                .filter_map(|_| self.waiting.pop_back().map(|(_, item)| item))
                .collect();
            // The batch itself goes in arrival order.
            newest.reverse();
            newest
        } else {
            (0..count)
                .filter_map(|_| self.waiting.pop_front().map(|(_, item)| item))
                .collect()
        };
        self.note_if_empty(now);
        taken
    }

    fn note_if_empty(&mut self, now: Instant) {
        if self.waiting.is_empty() {
            self.last_empty = now;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    /// A backlog whose server is known to be fast (no floor).
    fn backlog(now: Instant) -> Backlog<u32> {
        let mut backlog = Backlog::new(DEFAULT_DISCIPLINE, now);
        backlog.floor = Duration::ZERO;
        backlog
    }

    #[test]
    fn before_any_service_is_measured_items_may_wait_a_second() {
        let start = Instant::now();
        let mut queue = Backlog::new(DEFAULT_DISCIPLINE, start);
        queue.push(start, 1);
        assert!(queue.expired(start + 990 * MS).is_empty());
        assert_eq!(queue.expired(start + 1001 * MS), vec![1]);
    }

    #[test]
    fn a_queue_that_keeps_emptying_serves_in_order_and_lets_items_wait_an_interval() {
        let start = Instant::now();
        let mut queue = backlog(start);
        queue.push(start, 1);
        queue.push(start + MS, 2);
        let now = start + 50 * MS;
        assert!(!queue.congested(now));
        assert!(
            queue.expired(now).is_empty(),
            "50 ms is within the interval"
        );
        assert_eq!(queue.take(1, now), vec![1], "oldest first");
        assert_eq!(queue.take(5, now), vec![2]);
        assert!(queue.is_empty());
    }

    #[test]
    fn an_item_past_the_interval_is_shed_even_when_not_congested() {
        let start = Instant::now();
        let mut queue = backlog(start);
        queue.push(start + 90 * MS, 7);
        // Not congested: the queue was empty until 90 ms.
        let now = start + 191 * MS;
        assert!(!queue.congested(start + 150 * MS));
        assert_eq!(queue.expired(now), vec![7]);
        assert!(queue.is_empty());
    }

    #[test]
    fn once_congested_the_target_applies_and_the_newest_go_first() {
        let start = Instant::now();
        let mut queue = backlog(start);
        for (at, item) in [(0, 1), (100, 2), (105, 3), (108, 4), (109, 5)] {
            queue.push(start + at * MS, item);
        }
        let now = start + 110 * MS;
        assert!(queue.congested(now), "not empty for over 100 ms");
        assert_eq!(
            queue.expired(now),
            vec![1],
            "waited 110 ms, over the 10 ms target"
        );
        assert_eq!(queue.take(2, now), vec![4, 5], "the newest, in order");
        assert_eq!(queue.expired(start + 116 * MS), vec![2, 3]);
        assert!(!queue.congested(start + 116 * MS), "empty again");
    }

    #[test]
    fn a_slow_server_raises_the_least_wait_to_three_of_its_calls() {
        let start = Instant::now();
        let mut queue = backlog(start);
        queue.serve_in(30 * MS);
        queue.serve_in(MS);
        assert_eq!(queue.floor, 90 * MS * 3 / 4, "a slow call is remembered");
        queue.serve_in(20 * MS);
        queue.push(start + 10 * MS, 1);
        queue.push(start + 150 * MS, 2);
        let now = start + 200 * MS;
        assert!(queue.congested(now));
        assert_eq!(queue.expired(now), vec![1], "waited 190 ms, over 100");
        assert!(
            queue.expired(now).is_empty(),
            "50 ms is within three calls, though over the 10 ms target"
        );
    }

    #[test]
    fn an_emptied_queue_is_no_longer_congested() {
        let start = Instant::now();
        let mut queue = backlog(start);
        queue.push(start + 10 * MS, 1);
        assert!(queue.congested(start + 150 * MS));
        assert_eq!(queue.take(10, start + 150 * MS), vec![1]);
        queue.push(start + 152 * MS, 2);
        assert!(!queue.congested(start + 160 * MS), "emptied at 150 ms");
        assert!(queue.expired(start + 200 * MS).is_empty());
    }
}
