//! The end-of-run report: numbers a person reads (`Display`) and the same
//! numbers as JSON (`serde`).

use std::collections::BTreeMap;
use std::fmt;

use hdrhistogram::Histogram;
use serde::Serialize;
use spike_core::Code;

use crate::invariants::{check_all, CentralView, Check};
use crate::run::{BenchConfig, RunData};

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Latency {
    /// Mean.
    pub mean: f64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Slowest.
    pub max: f64,
}

impl Latency {
    fn of(histogram: &Histogram<u64>) -> Self {
        let ms = |us: u64| us as f64 / 1000.0;
        Self {
            mean: histogram.mean() / 1000.0,
            p50: ms(histogram.value_at_quantile(0.50)),
            p90: ms(histogram.value_at_quantile(0.90)),
            p99: ms(histogram.value_at_quantile(0.99)),
            p999: ms(histogram.value_at_quantile(0.999)),
            max: ms(histogram.max()),
        }
    }
}

/// One second of the run, for the timeline and the plot.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Second {
    /// Seconds since the start.
    pub second: u64,
    /// Answers in that second.
    pub requests: u64,
    /// Successes in that second.
    pub successes: u64,
    /// "Try again" answers (code -5, shed) in that second.
    pub shed: u64,
    /// Errors in that second.
    pub errors: u64,
    /// Median latency (ms).
    pub p50_ms: f64,
    /// 99th percentile latency (ms).
    pub p99_ms: f64,
}

/// Everything a run found.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The target URL.
    pub target: String,
    /// Requests sent (one per simulated user).
    pub users: u64,
    /// Keep-alive connections.
    pub connections: usize,
    /// Fixed rate asked for, if any.
    pub rate: Option<f64>,
    /// Wall time, seconds.
    pub wall_seconds: f64,
    /// Answers received.
    pub answered: u64,
    /// Answers per second.
    pub requests_per_second: f64,
    /// Latency of answers.
    pub latency_ms: Latency,
    /// Answers by JSON code.
    pub answers_by_code: BTreeMap<i64, u64>,
    /// Latency of the answers with each JSON code.
    pub latency_ms_by_code: BTreeMap<i64, Latency>,
    /// Answers by HTTP status.
    pub answers_by_status: BTreeMap<u16, u64>,
    /// Requests with no answer.
    pub transport_errors: u64,
    /// Answers by node (`X-Spike-Node`).
    pub nodes: BTreeMap<String, u64>,
    /// Successes answered.
    pub successes: u64,
    /// What central stock said, when known.
    pub central: Option<CentralView>,
    /// Invariant checks.
    pub checks: Vec<Check>,
    /// Per-second timeline.
    pub timeline: Vec<Second>,
}

impl Report {
    /// Builds the report of a run, checking invariants against `central`.
    pub fn new(
        config: &BenchConfig,
        data: &RunData,
        central: Option<CentralView>,
        expect_sell_out: bool,
    ) -> Self {
        let answered: u64 = data.by_code.values().sum();
        let wall = data.elapsed.as_secs_f64();
        let timeline = data
            .seconds
            .iter()
            .enumerate()
            .map(|(i, counts)| {
                let latency = data.second_latency_us.get(i);
                let at = |q| latency.map_or(0.0, |h| h.value_at_quantile(q) as f64 / 1000.0);
                Second {
                    second: i as u64,
                    requests: counts.requests,
                    successes: counts.successes,
                    shed: counts.shed,
                    errors: counts.errors,
                    p50_ms: at(0.5),
                    p99_ms: at(0.99),
                }
            })
            .collect();
        Self {
            target: config.target.to_string(),
            users: config.users,
            connections: config.connections,
            rate: config.rate,
            wall_seconds: wall,
            answered,
            requests_per_second: if wall > 0.0 {
                answered as f64 / wall
            } else {
                0.0
            },
            latency_ms: Latency::of(&data.latency_us),
            answers_by_code: data.by_code.iter().map(|(k, v)| (*k, *v)).collect(),
            latency_ms_by_code: (data.latency_by_code_us.iter())
                .map(|(code, latency)| (*code, Latency::of(latency)))
                .collect(),
            answers_by_status: data.by_status.iter().map(|(k, v)| (*k, *v)).collect(),
            transport_errors: data.errors,
            nodes: data.by_node.iter().map(|(k, v)| (k.clone(), *v)).collect(),
            successes: data.successes.len() as u64,
            central,
            checks: check_all(&data.successes, central, expect_sell_out),
            timeline,
        }
    }

    /// Whether every invariant held.
    pub fn all_checks_passed(&self) -> bool {
        self.checks.iter().all(|c| c.passed)
    }
}

fn code_name(code: i64) -> &'static str {
    Code::from_number(code).map_or("other", Code::label)
}

/// `1234567` → `1,234,567`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let l = &self.latency_ms;
        writeln!(
            f,
            "target           {} ({} connections{})",
            self.target,
            self.connections,
            self.rate
                .map_or(String::new(), |r| format!(", fixed rate {r:.0}/s"))
        )?;
        writeln!(
            f,
            "requests         {} answered of {} sent, {} without answer",
            thousands(self.answered),
            thousands(self.users),
            thousands(self.transport_errors)
        )?;
        writeln!(f, "wall time        {:.2} s", self.wall_seconds)?;
        writeln!(
            f,
            "throughput       {} requests/s",
            thousands(self.requests_per_second.round() as u64)
        )?;
        writeln!(f, "latency (ms)     p50 {:.2}  p90 {:.2}  p99 {:.2}  p99.9 {:.2}  max {:.2}  (mean {:.2})",
            l.p50, l.p90, l.p99, l.p999, l.max, l.mean)?;
        writeln!(f, "answers")?;
        for (code, n) in self.answers_by_code.iter().rev() {
            let latency = (self.latency_ms_by_code.get(code)).map_or(String::new(), |l| {
                format!("   p50 {:.2}  p99 {:.2} ms", l.p50, l.p99)
            });
            writeln!(
                f,
                "  {code:>3} {:<18} {:>12}{latency}",
                code_name(*code),
                thousands(*n)
            )?;
        }
        if self.answers_by_status.keys().any(|s| *s != 200) {
            let statuses: Vec<String> = self
                .answers_by_status
                .iter()
                .map(|(s, n)| format!("{s}: {}", thousands(*n)))
                .collect();
            writeln!(f, "HTTP statuses    {}", statuses.join(", "))?;
        }
        if !self.nodes.is_empty() {
            writeln!(f, "per node (X-Spike-Node)")?;
            for (node, n) in &self.nodes {
                let share = 100.0 * *n as f64 / self.answered.max(1) as f64;
                writeln!(f, "  {node:<12} {:>12}  {share:5.1} %", thousands(*n))?;
            }
        }
        if let Some(c) = &self.central {
            let buyers = c
                .buyers
                .map_or(String::new(), |b| format!("  buyers {}", thousands(b)));
            writeln!(
                f,
                "central stock    total {}  sold {}{buyers}",
                thousands(c.total),
                thousands(c.sold),
            )?;
        }
        writeln!(f, "invariants")?;
        for check in &self.checks {
            let mark = if check.passed { "ok  " } else { "FAIL" };
            writeln!(f, "  [{mark}] {} ({})", check.name, check.detail)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_are_grouped() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1_000_000), "1,000,000");
    }
}
