//! Smooth weighted round robin, nginx's algorithm, made lock-free: the
//! schedule for one cycle (sum of weights picks) is computed once, and a
//! shared counter walks it. Weights 1:2:3:4 give exactly 1, 2, 3 and 4 picks
//! in every 10, interleaved (d c b d a c d b c d), as nginx does. A node
//! that refused a connection is skipped until its retry time (passive health
//! check).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::upstream::Upstream;

/// Picks upstreams by smooth weighted round robin, skipping those marked down.
#[derive(Debug)]
pub struct Balancer {
    schedule: Vec<usize>,
    next: AtomicUsize,
    down_until_ms: Vec<AtomicU64>,
    epoch: Instant,
}

/// nginx's smooth weighted round robin for one full cycle.
pub fn smooth_schedule(weights: &[u32]) -> Vec<usize> {
    let total: i64 = weights.iter().map(|&w| i64::from(w)).sum();
    let mut current = vec![0i64; weights.len()];
    let mut schedule = Vec::with_capacity(usize::try_from(total).unwrap_or(0));
    for _ in 0..total {
        let mut best = 0;
        for (i, &weight) in weights.iter().enumerate() {
            current[i] += i64::from(weight);
            if current[i] > current[best] {
                best = i;
            }
        }
        current[best] -= total;
        schedule.push(best);
    }
    schedule
}

impl Balancer {
    /// A balancer over `upstreams` (in order; indexes refer to it).
    pub fn new(upstreams: &[Upstream]) -> Self {
        let weights: Vec<u32> = upstreams.iter().map(|u| u.weight.get()).collect();
        Self {
            schedule: smooth_schedule(&weights),
            next: AtomicUsize::new(0),
            down_until_ms: upstreams.iter().map(|_| AtomicU64::new(0)).collect(),
            epoch: Instant::now(),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// The next live upstream, never one in `tried`; `None` if every
    /// upstream is down or tried.
    pub fn pick(&self, tried: &[usize]) -> Option<usize> {
        let now = self.now_ms();
        for _ in 0..self.schedule.len() {
            let slot = self.next.fetch_add(1, Ordering::Relaxed) % self.schedule.len();
            let index = self.schedule[slot];
            let live = self.down_until_ms[index].load(Ordering::Relaxed) <= now;
            if live && !tried.contains(&index) {
                return Some(index);
            }
        }
        None
    }

    /// Skips `index` for `pause` (it refused a connection).
    pub fn mark_down(&self, index: usize, pause: Duration) {
        if let Some(until) = self.down_until_ms.get(index) {
            let pause_ms = u64::try_from(pause.as_millis()).unwrap_or(u64::MAX);
            until.store(self.now_ms().saturating_add(pause_ms), Ordering::Relaxed);
        }
    }

    /// Whether `index` is currently skipped.
    pub fn is_down(&self, index: usize) -> bool {
        self.down_until_ms
            .get(index)
            .is_some_and(|until| until.load(Ordering::Relaxed) > self.now_ms())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ups(weights: &[u32]) -> Vec<Upstream> {
        weights
            .iter()
            .enumerate()
            .map(|(i, w)| format!("127.0.0.1:{}={w}", 3001 + i).parse().unwrap())
            .collect()
    }

    #[test]
    fn schedule_is_nginx_smooth_order() {
        // nginx's documented example: weights 5,1,1 give a a b a c a a.
        assert_eq!(smooth_schedule(&[5, 1, 1]), vec![0, 0, 1, 0, 2, 0, 0]);
        assert_eq!(
            smooth_schedule(&[1, 2, 3, 4]),
            vec![3, 2, 1, 3, 0, 2, 3, 1, 2, 3]
        );
    }

    #[test]
    fn thousand_picks_split_exactly_by_weight() {
        let balancer = Balancer::new(&ups(&[1, 2, 3, 4]));
        let mut counts = [0; 4];
        for _ in 0..1000 {
            counts[balancer.pick(&[]).unwrap()] += 1;
        }
        assert_eq!(counts, [100, 200, 300, 400]);
    }

    #[test]
    fn down_and_tried_upstreams_are_skipped() {
        let balancer = Balancer::new(&ups(&[1, 1, 1]));
        balancer.mark_down(1, Duration::from_secs(60));
        assert!(balancer.is_down(1));
        for _ in 0..30 {
            let pick = balancer.pick(&[0]).unwrap();
            assert_eq!(pick, 2);
        }
        balancer.mark_down(2, Duration::from_secs(60));
        assert_eq!(balancer.pick(&[0]), None);
        balancer.mark_down(1, Duration::ZERO);
        assert_eq!(
            balancer.pick(&[0]),
            Some(1),
            "a node comes back after its pause"
        );
    }
}
