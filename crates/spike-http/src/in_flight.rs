//! Overload shedding: a bound on the requests waiting on something slower
//! (a node's purchases on central stock, the front door's requests on each
//! node). When it slows down, calls queue up; past the bound, new requests
//! are answered at once with "try again" instead of joining the queue, so
//! that latency stays bounded for those already admitted and memory stays
//! flat.

use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

/// Counts the requests waiting and refuses entry past a limit.
#[derive(Debug)]
pub struct InFlightGate {
    limit: usize,
    in_flight: AtomicUsize,
    peak: AtomicUsize,
    shed: AtomicU64,
}

/// One request's place in the gate, given back when dropped.
#[derive(Debug)]
pub struct InFlight {
    gate: Arc<InFlightGate>,
}

impl InFlightGate {
    /// A gate admitting at most `limit` at once.
    pub fn new(limit: NonZeroUsize) -> Arc<Self> {
        Arc::new(Self {
            limit: limit.get(),
            in_flight: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
            shed: AtomicU64::new(0),
        })
    }

    /// A place for one more request, or `None` (counted as shed) when
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
}
