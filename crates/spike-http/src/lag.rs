//! How far behind a server's runtime runs: the queue nobody can see.
//!
//! Under a stampede the longest queue is not in any data structure of ours:
//! it is the requests sitting in socket buffers, and the connection tasks
//! ready to read them, waiting for the one thread that serves them. Its
//! delay is what a small probe task measures: it asks to wake every
//! [`PROBE_EVERY`] and notes how late it woke. A task that becomes ready now
//! runs that late too.
//!
//! The rule is controlled delay (see [`crate::backlog`]): the runtime is
//! **congested** when even the smallest lag over a whole
//! [`Discipline::interval`] was above [`Discipline::target`] (a standing
//! queue, not a burst), and stops being congested at the first probe that
//! wakes within the target (the queue drained). While congested, a server
//! answers the requests it can shed at once, cheaply (503, code -5,
//! `Retry-After`), and so drains the queue instead of growing it.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::time::Instant;

use crate::backlog::Discipline;

/// How often the probe asks to wake.
pub const PROBE_EVERY: Duration = Duration::from_millis(5);

/// The event loop's lag, as the probe last saw it, and whether it is congested.
#[derive(Debug, Default)]
pub struct LoopLag {
    congested: AtomicBool,
    lag_micros: AtomicU64,
    /// Times the loop became congested.
    episodes: AtomicU64,
}

impl LoopLag {
    /// Starts probing the current runtime under `discipline`. The probe
    /// stops when the last handle is dropped.
    pub fn start(discipline: Discipline) -> Arc<Self> {
        let lag = Arc::new(Self::default());
        tokio::spawn(probe(Arc::downgrade(&lag), discipline));
        lag
    }

    /// Whether the loop has had a standing queue, and has not drained it.
    pub fn congested(&self) -> bool {
        self.congested.load(Ordering::Relaxed)
    }

    /// How late the probe last woke.
    pub fn lag(&self) -> Duration {
        Duration::from_micros(self.lag_micros.load(Ordering::Relaxed))
    }

    /// How many times the loop became congested.
    pub fn episodes(&self) -> u64 {
        self.episodes.load(Ordering::Relaxed)
    }

    /// Takes one probe's lag, seen at `now`, into the rule; `window` is the
    /// current interval's start and smallest lag so far.
    fn note(&self, lag: Duration, now: Instant, window: &mut Window, discipline: Discipline) {
        self.lag_micros.store(
            u64::try_from(lag.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        if lag <= discipline.target {
            // The queue drained: no longer congested, a new window starts.
            self.congested.store(false, Ordering::Relaxed);
            *window = Window::from(now);
            return;
        }
        window.smallest = window.smallest.min(lag);
        if now.saturating_duration_since(window.started) >= discipline.interval {
            if window.smallest > discipline.target && !self.congested.swap(true, Ordering::Relaxed)
            {
                self.episodes.fetch_add(1, Ordering::Relaxed);
            }
            *window = Window::from(now);
        }
    }
}

/// One interval's worth of probes.
#[derive(Debug, Clone, Copy)]
struct Window {
    started: Instant,
    smallest: Duration,
}

impl Window {
    fn from(now: Instant) -> Self {
        Self {
            started: now,
            smallest: Duration::MAX,
        }
    }
}

async fn probe(lag: Weak<LoopLag>, discipline: Discipline) {
    let mut window = Window::from(Instant::now());
    loop {
        let due = Instant::now() + PROBE_EVERY;
        tokio::time::sleep_until(due).await;
        let now = Instant::now();
        let Some(lag) = lag.upgrade() else { return };
        lag.note(
            now.saturating_duration_since(due),
            now,
            &mut window,
            discipline,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backlog::DEFAULT_DISCIPLINE;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn a_standing_lag_for_a_whole_interval_is_congestion_and_one_prompt_wake_ends_it() {
        let lag = LoopLag::default();
        let start = Instant::now();
        let mut window = Window::from(start);
        let rule = DEFAULT_DISCIPLINE;
        // A burst: late, then prompt again within the interval.
        lag.note(50 * MS, start + 20 * MS, &mut window, rule);
        lag.note(MS, start + 40 * MS, &mut window, rule);
        assert!(!lag.congested(), "a burst that drained is not congestion");
        // Late on every probe for over an interval.
        let mut at = 40;
        while at <= 160 {
            at += 20;
            lag.note(30 * MS, start + at * MS, &mut window, rule);
        }
        assert!(lag.congested(), "standing lag over 100 ms");
        assert_eq!(lag.lag(), 30 * MS);
        lag.note(2 * MS, start + 200 * MS, &mut window, rule);
        assert!(!lag.congested(), "drained");
        assert_eq!(lag.episodes(), 1);
    }

    #[tokio::test]
    async fn the_probe_sees_a_blocked_loop() {
        let lag = LoopLag::start(DEFAULT_DISCIPLINE);
        tokio::time::sleep(4 * PROBE_EVERY).await;
        assert!(!lag.congested(), "an idle loop is not congested");
        // Hog the loop for 30 ms, four times over 160 ms: each probe wakes late.
        for _ in 0..6 {
            std::thread::sleep(30 * MS);
            tokio::task::yield_now().await;
        }
        assert!(lag.lag() >= 10 * MS, "lag seen: {:?}", lag.lag());
        assert!(lag.congested(), "lag {:?}", lag.lag());
    }
}
