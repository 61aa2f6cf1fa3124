//! Turning nodes' cumulative counters into what the page draws: requests and
//! successes per second, and p50/p99 latency, per node, over time.

use std::collections::VecDeque;

use serde::Serialize;
use serde_json::Value;
use spike_core::Code;

/// Points kept per node (two minutes at two samples a second).
pub const KEEP: usize = 240;

/// One poll of one node's `/stats`.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Seconds since the dashboard started.
    pub at: f64,
    /// Cumulative answers by code ("1", "-1", …).
    pub answers: Vec<(String, u64)>,
    /// Cumulative answers per latency bucket.
    pub latency_counts: Vec<u64>,
    /// Bucket upper bounds in seconds (the last bucket is unbounded).
    pub latency_bounds: Vec<f64>,
}

impl Sample {
    /// Reads a node's `/stats` JSON.
    pub fn from_stats(at: f64, stats: &Value) -> Option<Self> {
        let answers = stats["answers"]
            .as_object()?
            .iter()
            .map(|(code, n)| (code.clone(), n.as_u64().unwrap_or(0)))
            .collect();
        let numbers = |key: &str| -> Option<Vec<Value>> { stats[key].as_array().cloned() };
        Some(Self {
            at,
            answers,
            latency_counts: numbers("latency_counts")?
                .iter()
                .filter_map(Value::as_u64)
                .collect(),
            latency_bounds: numbers("latency_bounds_seconds")?
                .iter()
                .filter_map(Value::as_f64)
                .collect(),
        })
    }

    fn total(&self) -> u64 {
        self.answers.iter().map(|(_, n)| n).sum()
    }

    fn code(&self, code: Code) -> u64 {
        self.answers
            .iter()
            .find(|(c, _)| c == code.number_text())
            .map_or(0, |(_, n)| *n)
    }
}

/// One point of a node's chart.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Point {
    /// Seconds since the dashboard started.
    pub t: f64,
    /// Answers per second.
    pub rps: f64,
    /// Successes per second.
    pub successes: f64,
    /// Median latency in ms over the interval (0 when idle).
    pub p50_ms: f64,
    /// 99th percentile latency in ms over the interval (0 when idle).
    pub p99_ms: f64,
}

/// The value below which a fraction `q` of the answers in `counts` fall,
/// taken as the upper bound of the bucket that reaches it.
pub fn quantile_ms(counts: &[u64], bounds: &[f64], q: f64) -> f64 {
    let total: u64 = counts.iter().sum();
    if total == 0 {
        return 0.0;
    }
    let target = (q * total as f64).ceil() as u64;
    let mut seen = 0;
    for (i, count) in counts.iter().enumerate() {
        seen += count;
        if seen >= target {
            let last = bounds.last().copied().unwrap_or(0.0);
            return bounds.get(i).copied().unwrap_or(last) * 1000.0;
        }
    }
    0.0
}

/// One node's recent samples and the points drawn from them.
#[derive(Debug, Default)]
pub struct NodeHistory {
    last: Option<Sample>,
    /// Chart points, oldest first.
    pub points: VecDeque<Point>,
    /// Cumulative answers by code, from the latest sample.
    pub answers: Vec<(String, u64)>,
}

impl NodeHistory {
    /// Adds a sample, turning the difference from the previous one into a point.
    pub fn push(&mut self, sample: Sample) {
        if let Some(last) = &self.last {
            let dt = (sample.at - last.at).max(1e-3);
            let delta: Vec<u64> = sample
                .latency_counts
                .iter()
                .zip(last.latency_counts.iter().chain(std::iter::repeat(&0)))
                .map(|(now, before)| now.saturating_sub(*before))
                .collect();
            self.points.push_back(Point {
                t: sample.at,
                rps: sample.total().saturating_sub(last.total()) as f64 / dt,
                successes: sample
                    .code(Code::Success)
                    .saturating_sub(last.code(Code::Success)) as f64
                    / dt,
                p50_ms: quantile_ms(&delta, &sample.latency_bounds, 0.50),
                p99_ms: quantile_ms(&delta, &sample.latency_bounds, 0.99),
            });
            while self.points.len() > KEEP {
                self.points.pop_front();
            }
        }
        self.answers = sample.answers.clone();
        self.last = Some(sample);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(at: f64, ok: u64, sold_out: u64, latency: Vec<u64>) -> Sample {
        Sample {
            at,
            answers: vec![("1".into(), ok), ("-1".into(), sold_out)],
            latency_counts: latency,
            latency_bounds: vec![0.001, 0.01, 0.1],
        }
    }

    #[test]
    fn quantiles_take_the_bucket_that_reaches_them() {
        let bounds = [0.001, 0.01, 0.1];
        assert_eq!(quantile_ms(&[90, 9, 1, 0], &bounds, 0.5), 1.0);
        assert_eq!(quantile_ms(&[90, 9, 1, 0], &bounds, 0.99), 10.0);
        assert_eq!(quantile_ms(&[0, 0, 0, 0], &bounds, 0.99), 0.0);
        assert_eq!(
            quantile_ms(&[0, 0, 0, 5], &bounds, 0.5),
            100.0,
            "overflow bucket reports the last bound"
        );
    }

    #[test]
    fn consecutive_samples_become_rates() {
        let mut history = NodeHistory::default();
        history.push(sample(0.0, 0, 0, vec![0, 0, 0, 0]));
        assert!(history.points.is_empty());
        history.push(sample(0.5, 100, 400, vec![400, 100, 0, 0]));
        let point = history.points[0];
        assert_eq!((point.rps, point.successes), (1000.0, 200.0));
        assert_eq!((point.p50_ms, point.p99_ms), (1.0, 10.0));
        assert_eq!(history.answers[0], ("1".to_string(), 100));
    }
}
