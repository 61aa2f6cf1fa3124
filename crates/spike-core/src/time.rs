//! Time as the domain reads it: Unix milliseconds, the longest window a
//! sale rule may span, and the [`Clock`] that stores without a clock of
//! their own (the embedded central stock) are given. Nothing else in the
//! domain reads the system clock.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The longest payment or admission window a sale may have: 30 days. A
/// flash sale's windows are minutes; the bound keeps every time a sale
/// computes from them (expiry times in milliseconds) far inside the
/// integers that Redis, the ledger and the wire hold.
pub const MAX_SALE_DURATION: Duration = Duration::from_secs(30 * 24 * 3600);

/// Milliseconds since the Unix epoch (0 for times before it).
pub fn unix_millis(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The time `millis` Unix milliseconds describe.
pub fn from_unix_millis(millis: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(millis)
}

/// Where a store reads the time.
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    /// Now.
    fn now(&self) -> SystemTime;
}

/// The system's clock: what every running store reads.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// A clock that stands still until it is moved (tests of time rules:
/// sale opening, payment windows, admission steps, idle stream entries).
#[derive(Debug)]
pub struct ManualClock {
    millis: AtomicU64,
}

impl ManualClock {
    /// A clock standing at `at`.
    pub fn at(at: SystemTime) -> Self {
        Self {
            millis: AtomicU64::new(unix_millis(at)),
        }
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        let by = u64::try_from(by.as_millis()).unwrap_or(u64::MAX);
        self.millis.fetch_add(by, Ordering::AcqRel);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> SystemTime {
        from_unix_millis(self.millis.load(Ordering::Acquire))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unix_millis_round_trip_and_clamp_before_the_epoch() {
        assert_eq!(unix_millis(from_unix_millis(1_234_567)), 1_234_567);
        assert_eq!(unix_millis(UNIX_EPOCH - Duration::from_secs(1)), 0);
    }

    #[test]
    fn a_manual_clock_moves_only_when_told() {
        let clock = ManualClock::at(from_unix_millis(1_000));
        assert_eq!(unix_millis(clock.now()), 1_000);
        clock.advance(Duration::from_millis(250));
        assert_eq!(unix_millis(clock.now()), 1_250);
    }
}
