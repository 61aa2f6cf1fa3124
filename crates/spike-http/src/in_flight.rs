//! Overload shedding: a bound on the requests waiting on something slower
//! (a node's purchases on central stock, the front door's requests on each
//! node). When it slows down, calls queue up; past the bound, new requests
//! are answered at once with "try again" instead of joining the queue, so
//! that latency stays bounded for those already admitted and memory stays
//! flat.
//!
//! The bound adapts to measured latency ([`InFlightGate::observe`]), as
//! Netflix's "gradient" concurrency limit does: while calls take about as
//! long as they usually do, it grows toward its ceiling (the configured
//! limit); when they take longer (a queue is building somewhere
//! downstream), it shrinks in proportion. The configured limit is a
//! ceiling, not the tuning knob.

use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The smallest the adaptive limit goes (or the ceiling, if lower): a
/// full batch of a node's lane. Below it the limit would refuse a steady
/// handful of buyers on a slow link, which queues nothing.
const MIN_LIMIT: f64 = 256.0;
/// Latency up to this multiple of the usual counts as usual.
const TOLERANCE: f64 = 2.0;
/// Weight of one sample in the usual latency (a slow average).
const USUAL_WEIGHT: f64 = 0.02;
/// Weight of one sample in the recent latency (a fast average, so that one
/// odd call does not move the limit).
const RECENT_WEIGHT: f64 = 0.2;
/// Weight of one update in the limit (smoothing).
const LIMIT_WEIGHT: f64 = 0.2;

/// Counts the requests waiting and refuses entry past a limit that follows
/// measured latency, up to a ceiling.
#[derive(Debug)]
pub struct InFlightGate {
    ceiling: usize,
    limit: AtomicUsize,
    gradient: Mutex<Gradient>,
    in_flight: AtomicUsize,
    peak: AtomicUsize,
    shed: AtomicU64,
}

/// The adaptive limit's state.
#[derive(Debug, Clone, Copy)]
struct Gradient {
    /// The usual latency, in seconds (0 before the first sample).
    usual: f64,
    /// The recent latency, in seconds.
    recent: f64,
    /// The limit, unrounded.
    limit: f64,
}

impl Gradient {
    /// The limit after one call that took `latency`, below `ceiling`.
    fn after(&mut self, latency: Duration, ceiling: f64) -> f64 {
        let sample = latency.as_secs_f64().max(1e-7);
        if self.usual == 0.0 {
            (self.usual, self.recent) = (sample, sample);
        }
        self.usual = self.usual * (1.0 - USUAL_WEIGHT) + sample * USUAL_WEIGHT;
        self.recent = self.recent * (1.0 - RECENT_WEIGHT) + sample * RECENT_WEIGHT;
        // A long stretch of slow calls drags the usual along; halve the
        // drift when the usual is far above the recent (the queue drained).
        if self.usual > 2.0 * self.recent {
            self.usual = (self.usual + self.recent) / 2.0;
        }
        let gradient = (TOLERANCE * self.usual / self.recent).clamp(0.5, 1.0);
        let wanted = self.limit * gradient + self.limit.sqrt();
        self.limit = (self.limit * (1.0 - LIMIT_WEIGHT) + wanted * LIMIT_WEIGHT)
            .clamp(MIN_LIMIT.min(ceiling), ceiling);
        self.limit
    }
}

/// One request's place in the gate, given back when dropped.
#[derive(Debug)]
pub struct InFlight {
    gate: Arc<InFlightGate>,
}

impl InFlightGate {
    /// A gate admitting at most `ceiling` at once, starting there.
    pub fn new(ceiling: NonZeroUsize) -> Arc<Self> {
        let ceiling = ceiling.get();
        Arc::new(Self {
            ceiling,
            limit: AtomicUsize::new(ceiling),
            gradient: Mutex::new(Gradient {
                usual: 0.0,
                recent: 0.0,
                limit: ceiling as f64,
            }),
            in_flight: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
            shed: AtomicU64::new(0),
        })
    }

    /// A place for one more request, or `None` (counted as shed) when
    /// `limit` are already waiting.
    pub fn enter(self: &Arc<Self>) -> Option<InFlight> {
        let limit = self.limit.load(Ordering::Relaxed);
        let entered = self
            .in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |now| {
                (now < limit).then_some(now + 1)
            });
        match entered {
            Ok(before) => {
                self.peak.fetch_max(before + 1, Ordering::Relaxed);
                Some(InFlight {
                    gate: Arc::clone(self),
                })
            }
            Err(_) => {
                self.shed.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }

    /// Adapts the limit to one call downstream that took `latency`.
    pub fn observe(&self, latency: Duration) {
        let mut gradient = self.gradient.lock().unwrap_or_else(|p| p.into_inner());
        let limit = gradient.after(latency, self.ceiling as f64);
        self.limit.store(limit.round() as usize, Ordering::Relaxed);
    }

    /// Counts one request shed after it entered (it waited too long
    /// further on).
    pub fn count_shed(&self) {
        self.shed.fetch_add(1, Ordering::Relaxed);
    }

    /// The limit now.
    pub fn limit(&self) -> usize {
        self.limit.load(Ordering::Relaxed)
    }

    /// The most the limit can be: the configured one.
    pub fn ceiling(&self) -> usize {
        self.ceiling
    }

    /// Requests waiting now.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }

    /// The most that ever waited at once.
    pub fn peak(&self) -> usize {
        self.peak.load(Ordering::Relaxed)
    }

    /// Requests refused because the gate was full.
    pub fn shed(&self) -> u64 {
        self.shed.load(Ordering::Relaxed)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.gate.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admits_up_to_the_limit_and_again_once_one_leaves() {
        let gate = InFlightGate::new(NonZeroUsize::new(2).unwrap());
        let first = gate.enter().expect("room");
        let _second = gate.enter().expect("room");
        assert!(gate.enter().is_none(), "full");
        assert_eq!((gate.in_flight(), gate.shed()), (2, 1));
        drop(first);
        assert!(gate.enter().is_some(), "a place came free");
        assert_eq!(gate.peak(), 2);
    }

    #[test]
    fn the_limit_shrinks_when_latency_rises_and_grows_back_to_the_ceiling() {
        let gate = InFlightGate::new(NonZeroUsize::new(1024).unwrap());
        let ms = Duration::from_millis;
        for _ in 0..50 {
            gate.observe(ms(2));
        }
        assert_eq!(gate.limit(), 1024, "usual latency keeps the ceiling");
        for _ in 0..20 {
            gate.observe(ms(40));
        }
        let shrunk = gate.limit();
        assert!(shrunk < 600, "20 slow calls shrink it: {shrunk}");
        assert!(shrunk >= 256, "never below the floor: {shrunk}");
        for _ in 0..200 {
            gate.observe(ms(2));
        }
        assert_eq!(gate.limit(), 1024, "fast again: back at the ceiling");
        assert_eq!(gate.ceiling(), 1024);
    }

    #[test]
    fn a_lower_limit_refuses_entry_sooner() {
        let gate = InFlightGate::new(NonZeroUsize::new(1024).unwrap());
        for _ in 0..100 {
            gate.observe(Duration::from_millis(1));
        }
        for _ in 0..15 {
            gate.observe(Duration::from_millis(100));
        }
        let limit = gate.limit();
        assert!((256..1024).contains(&limit), "{limit}");
        let held: Vec<_> = (0..limit).map(|_| gate.enter().expect("room")).collect();
        assert!(gate.enter().is_none());
        assert_eq!(held.len(), limit);
    }
}
