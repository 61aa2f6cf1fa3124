//! Overload shedding: a bound on the purchases a node has waiting on
//! central stock. When central stock slows down (a busy or paused Redis),
//! calls queue up; past the bound, new purchases are answered at once with
//! "try again" instead of joining the queue, so that latency stays bounded
//! for the purchases already admitted and memory stays flat.

use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

/// How many purchases may wait on central stock at once, by default.
///
/// Little's law: in flight = throughput × time in flight. The node's buy
/// path measured about 20,000 central calls a second (BENCHMARKS.md), so
/// 1,024 in flight is about 50 ms of queue at full speed: a purchase
/// admitted behind the whole queue still gets its answer well inside the
/// 500 ms response deadline, and a slowed central stock sheds load instead
/// of growing the queue.
pub const DEFAULT_MAX_CENTRAL_IN_FLIGHT: NonZeroUsize = NonZeroUsize::new(1024).unwrap();

/// Counts the purchases waiting on central stock and refuses entry past a
/// limit.
#[derive(Debug)]
pub struct CentralGate {
    limit: usize,
    in_flight: AtomicUsize,
    peak: AtomicUsize,
    shed: AtomicU64,
}

/// One purchase's place in the gate, given back when dropped.
#[derive(Debug)]
pub struct InFlight {
    gate: Arc<CentralGate>,
}

impl CentralGate {
    /// A gate admitting at most `limit` at once.
    pub fn new(limit: NonZeroUsize) -> Arc<Self> {
        Arc::new(Self {
            limit: limit.get(),
            in_flight: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
            shed: AtomicU64::new(0),
        })
    }

    /// A place for one more purchase, or `None` (counted as shed) when
    /// `limit` are already waiting.
    pub fn enter(self: &Arc<Self>) -> Option<InFlight> {
        let entered = self
            .in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |now| {
                (now < self.limit).then_some(now + 1)
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

    /// The limit.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Purchases waiting on central stock now.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }

    /// The most that ever waited at once.
    pub fn peak(&self) -> usize {
        self.peak.load(Ordering::Relaxed)
    }

    /// Purchases refused because the gate was full.
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
        let gate = CentralGate::new(NonZeroUsize::new(2).unwrap());
        let first = gate.enter().expect("room");
        let _second = gate.enter().expect("room");
        assert!(gate.enter().is_none(), "full");
        assert_eq!((gate.in_flight(), gate.shed()), (2, 1));
        drop(first);
        assert!(gate.enter().is_some(), "a place came free");
        assert_eq!(gate.peak(), 2);
    }
}
