//! A stampede's report: the crowd's fixed arrival rate against what the
//! cluster sold, and each second's offered, answered, sold and shed
//! requests with their p99 (`spike demo --stampede`).

use std::fmt::Write;

use serde::Serialize;

use crate::report::{thousands, Report};

/// A stampede's arrivals against what the cluster sold.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Stampede {
    /// Requests offered a second (the fixed rate).
    pub offered_per_second: f64,
    /// The most sold in one second.
    pub peak_sold_per_second: u64,
    /// `offered_per_second` over `peak_sold_per_second`.
    pub times_what_sold: f64,
}

impl Stampede {
    /// The summary of `report`, a run at a fixed `rate`.
    pub fn of(report: &Report, rate: f64) -> Self {
        let peak = (report.timeline.iter())
            .map(|second| second.successes)
            .max()
            .unwrap_or(0);
        Self {
            offered_per_second: rate,
            peak_sold_per_second: peak,
            times_what_sold: rate / peak.max(1) as f64,
        }
    }

    /// Each second of the run (`users` arrived at the rate, so the offer
    /// ends after `users / rate` seconds), then the summary line.
    pub fn table(&self, report: &Report, users: u64) -> String {
        let mut out = String::from("the stampede, second by second\n");
        let _ = writeln!(
            out,
            "  {:>6} {:>10} {:>10} {:>10} {:>10} {:>10}",
            "second", "offered", "answered", "sold", "shed", "p99 ms"
        );
        let arrivals_end = users as f64 / self.offered_per_second;
        for second in &report.timeline {
            let start = second.second as f64;
            let offered = (arrivals_end - start).clamp(0.0, 1.0) * self.offered_per_second;
            let _ = writeln!(
                out,
                "  {:>6} {:>10} {:>10} {:>10} {:>10} {:>10.1}",
                second.second,
                thousands(offered.round() as u64),
                thousands(second.requests),
                thousands(second.successes),
                thousands(second.shed),
                second.p99_ms
            );
        }
        let _ = writeln!(
            out,
            "the crowd offered {}/s: {:.1} times the most the cluster sold in a second ({}/s)\n",
            thousands(self.offered_per_second.round() as u64),
            self.times_what_sold,
            thousands(self.peak_sold_per_second)
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::invariants::check_all;
    use crate::report::{Latency, Second};

    fn report(sold: &[u64]) -> Report {
        let second = |(i, sold): (usize, &u64)| Second {
            second: i as u64,
            requests: 1000,
            successes: *sold,
            shed: 10,
            errors: 0,
            p50_ms: 1.0,
            p99_ms: 3.0,
        };
        Report {
            target: "http://x:1/buy/ticket".into(),
            users: 3000,
            connections: 1,
            rate: Some(1500.0),
            wall_seconds: 3.0,
            answered: 3000,
            requests_per_second: 1000.0,
            latency_ms: Latency {
                mean: 1.0,
                p50: 1.0,
                p90: 2.0,
                p99: 3.0,
                p999: 4.0,
                max: 5.0,
            },
            answers_by_code: Default::default(),
            latency_ms_by_code: Default::default(),
            answers_by_status: Default::default(),
            transport_errors: 0,
            nodes: Default::default(),
            successes: sold.iter().sum(),
            central: None,
            checks: check_all(&[], None, false),
            timeline: sold.iter().enumerate().map(second).collect(),
        }
    }

    #[test]
    fn the_peak_second_sets_the_ratio_and_the_offer_ends_with_the_users() {
        let report = report(&[100, 300, 0]);
        let stampede = Stampede::of(&report, 1500.0);
        assert_eq!(stampede.peak_sold_per_second, 300);
        assert_eq!(stampede.times_what_sold, 5.0);
        let table = stampede.table(&report, 2250);
        let offered: Vec<&str> = (table.lines())
            .skip(2)
            .take(3)
            .filter_map(|line| line.split_whitespace().nth(1))
            .collect();
        assert_eq!(
            offered,
            ["1,500", "750", "0"],
            "2,250 users at 1,500/s: 1.5 s"
        );
        assert!(table.contains("5.0 times"), "{table}");
    }
}
