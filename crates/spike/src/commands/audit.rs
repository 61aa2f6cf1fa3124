//! `spike audit`: gathers one event's records — central stock, the order
//! stream, the ledger, and stat logs if given — and prints the reconciliation
//! from `spike_core::reconcile` as a table or JSON.

use std::io::{BufRead, BufReader};
use std::path::Path;

use anyhow::Context;
use spike_core::reconcile::{AuditReport, LoggedSale};
use spike_core::stat::parse_line;
use spike_core::{Code, EventId, NodeId, OrderId, UserId};
use spike_orders::audit_event;

use super::orders::ledger;
use super::redis;
use crate::cli::AuditArgs;

/// Reads the sales of `event` that stat logs record (code 1 lines): each
/// order and the buyer it was told to.
pub(crate) fn logged_sales(
    event: &EventId,
    paths: &[impl AsRef<Path>],
) -> anyhow::Result<Vec<LoggedSale>> {
    let mut sales = Vec::new();
    for path in paths {
        let path = path.as_ref();
        let file = std::fs::File::open(path)
            .with_context(|| format!("cannot read stat log {}", path.display()))?;
        for line in BufReader::new(file).lines() {
            let line = line?;
            let Some(parsed) = parse_line(&line) else {
                continue;
            };
            let Some(order) = parsed.order.filter(|_| parsed.code == Code::Success) else {
                continue;
            };
            let Ok(order) = OrderId::parse(order) else {
                continue;
            };
            let user = parsed.user.and_then(|user| UserId::parse(user).ok());
            let (Ok(node), Ok(at)) = (
                NodeId::parse(parsed.node),
                humantime::parse_rfc3339_weak(parsed.at),
            ) else {
                continue;
            };
            if order.split().is_some_and(|(of, _)| of == *event) {
                let at_ms = spike_core::sale::unix_millis(at);
                sales.push(LoggedSale {
                    order,
                    user,
                    node,
                    at_ms,
                });
            }
        }
    }
    Ok(sales)
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
        Some(logged_sales(event, &args.stat_logs)?)
    };
    let report = audit_event(&central, &ledger, event, logged.as_deref()).await?;
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
