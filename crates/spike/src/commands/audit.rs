//! `spike audit`: gathers one event's records — central stock, the order
//! stream, the ledger, and stat logs if given — and prints the reconciliation
//! from `spike_core::reconcile` as a table or JSON.

use std::io::{BufRead, BufReader};
use std::path::Path;

use anyhow::Context;
use spike_core::reconcile::{AuditReport, LoggedAnswers};
use spike_core::EventId;
use spike_orders::audit_event;

use super::orders::ledger;
use super::redis;
use crate::args::SaleRecords;
use clap::Args;
use std::path::PathBuf;

/// `spike audit`
#[derive(Debug, Args)]
pub struct AuditArgs {
    /// The sale's records.
    #[command(flatten)]
    pub records: SaleRecords,
    /// Stat logs of every node of the sale (repeatable); checks that each
    /// logged sale has its order and each order its logged sale.
    #[arg(long = "stat-log")]
    pub stat_logs: Vec<PathBuf>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Reads what the stat logs at `paths` told buyers of `event`.
pub(crate) fn logged_answers(
    event: &EventId,
    paths: &[impl AsRef<Path>],
) -> anyhow::Result<LoggedAnswers> {
    let mut answers = LoggedAnswers::default();
    for path in paths {
        let path = path.as_ref();
        let file = std::fs::File::open(path)
            .with_context(|| format!("cannot read stat log {}", path.display()))?;
        for line in BufReader::new(file).lines() {
            let line = line.with_context(|| format!("cannot read stat log {}", path.display()))?;
            answers.read_lines(event, [line.as_str()]);
        }
    }
    Ok(answers)
}

/// The report as a table: figure, expected, verdict.
pub(crate) fn report_table(event: &EventId, report: &AuditReport) -> String {
    let mut out = format!("audit of {event}\n");
    for line in &report.lines {
        let (expected, verdict) = match line.expected {
            Some(expected) if line.failed() => (expected.to_string(), "MISMATCH"),
            Some(expected) => (expected.to_string(), "ok"),
            None => (String::new(), ""),
        };
        out.push_str(&format!(
            "  {:<52} {:>10} {:>10}  {verdict}\n",
            line.name, line.actual, expected
        ));
    }
    out.push_str(if report.passed() {
        "audit passed\n"
    } else {
        "audit FAILED\n"
    });
    out
}

/// `spike audit`: prints the reconciliation; `Ok(false)` on any mismatch.
pub async fn run_audit(args: AuditArgs) -> anyhow::Result<bool> {
    let records = &args.records;
    let central = redis(&records.redis).await?;
    let ledger = ledger(&records.ledger.database_url).await?;
    let event = &records.event;
    let logged = if args.stat_logs.is_empty() {
        None
    } else {
        Some(logged_answers(event, &args.stat_logs)?)
    };
    let report = audit_event(&central, &ledger, event, logged.as_ref()).await?;
    if args.json {
        let lines: Vec<_> = (report.lines.iter())
            .map(|l| serde_json::json!({ "name": l.name, "actual": l.actual, "expected": l.expected, "ok": !l.failed() }))
            .collect();
        println!(
            "{}",
            serde_json::json!({ "event": event.as_str(), "passed": report.passed(), "lines": lines })
        );
    } else {
        print!("{}", report_table(event, &report));
    }
    Ok(report.passed())
}
