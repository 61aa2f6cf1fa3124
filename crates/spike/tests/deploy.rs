//! The files an operator deploys with (`deploy/`), checked as their own
//! tools check them: the Prometheus rules by `promtool check rules` and
//! `promtool test rules` (every alert fires in a case and stays quiet in
//! another), the systemd units by `systemd-analyze verify` (no warning
//! either), and the rules and the Grafana board naming only metrics Spike
//! exports.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failure

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The repository's root.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Runs `program` with `args` in `dir`: whether it succeeded, and all it said.
fn run(program: &str, args: &[&str], dir: &Path) -> (bool, String) {
    let output = Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("{program} must be installed (scripts/test installs it): {e}"));
    let said = String::from_utf8_lossy(&output.stdout).to_string()
        + &String::from_utf8_lossy(&output.stderr);
    (output.status.success(), said)
}

#[test]
fn the_alert_rules_pass_promtool_and_every_alert_fires_and_stays_quiet() {
    let dir = root().join("deploy/prometheus");
    let (checked, said) = run("promtool", &["check", "rules", "spike.rules.yml"], &dir);
    assert!(checked, "{said}");
    let (tested, said) = run("promtool", &["test", "rules", "spike.rules.test.yml"], &dir);
    assert!(tested, "{said}");
    // Every alert has a case where it fires (listed with its labels).
    let rules = std::fs::read_to_string(dir.join("spike.rules.yml")).unwrap();
    let tests = std::fs::read_to_string(dir.join("spike.rules.test.yml")).unwrap();
    for alert in rules
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- alert: "))
    {
        let fires = format!("alertname: {alert}\n        exp_alerts:\n          - exp_labels");
        assert!(tests.contains(&fires), "no case where {alert} fires");
        let quiet = format!("alertname: {alert}, exp_alerts: []");
        assert!(tests.contains(&quiet), "no case where {alert} stays quiet");
    }
}

#[test]
fn the_systemd_units_verify_cleanly() {
    let dir = std::env::temp_dir().join(spike_testkit::unique("units"));
    std::fs::create_dir_all(&dir).unwrap();
    let mut units = Vec::new();
    for name in ["spike-node@.service", "spike-orders@.service"] {
        let unit = std::fs::read_to_string(root().join("deploy/systemd").join(name)).unwrap();
        for wanted in [
            "DynamicUser=yes",
            "ProtectSystem=strict",
            "NoNewPrivileges=yes",
            "Restart=on-failure",
            "LimitNOFILE=",
        ] {
            assert!(unit.contains(wanted), "{name} lacks {wanted}");
        }
        // verify needs the binary the unit runs to exist: the one built here.
        let unit = unit.replace("/usr/local/bin/spike", env!("CARGO_BIN_EXE_spike"));
        std::fs::write(dir.join(name), unit).unwrap();
        units.push(dir.join(name).to_string_lossy().to_string());
    }
    let args: Vec<&str> = std::iter::once("verify")
        .chain(units.iter().map(String::as_str))
        .collect();
    let (verified, said) = run("systemd-analyze", &args, &dir);
    assert!(
        verified && said.trim().is_empty(),
        "systemd-analyze verify: {said}"
    );
}

/// Every `spike_…` metric name the crates' sources name, tests aside
/// (what the node, the front door and the pipeline export).
fn exported_metrics() -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut dirs = vec![root().join("crates")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() && !path.ends_with("target") && !path.ends_with("tests") {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let source = std::fs::read_to_string(&path).unwrap();
                names.extend(metric_names(&source.replace('"', " ")));
            }
        }
    }
    names
}

/// The `spike_…` names in `text` (a histogram's series named as its metric).
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for (start, _) in text.match_indices("spike_") {
        if start > 0 && text.as_bytes()[start - 1].is_ascii_alphanumeric() {
            continue;
        }
        let name: String = text[start..]
            .chars()
            .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
            .collect();
        let metric = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| name.strip_suffix(suffix))
            .unwrap_or(&name);
        names.insert(metric.to_owned());
    }
    names
}

#[test]
fn the_rules_and_the_board_name_only_metrics_spike_exports() {
    let exported = exported_metrics();
    assert!(exported.contains("spike_central_sold") && exported.contains("spike_queue_admitted"));
    let rules = std::fs::read_to_string(root().join("deploy/prometheus/spike.rules.yml")).unwrap();
    let recorded: BTreeSet<String> = (rules.lines())
        .filter_map(|l| l.trim().strip_prefix("- record: "))
        .map(str::to_owned)
        .collect();
    for name in metric_names(&rules) {
        assert!(
            exported.contains(&name),
            "the rules name {name}, which Spike does not export"
        );
    }
    let board: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("deploy/grafana/spike-dashboard.json")).unwrap(),
    )
    .expect("the board is JSON");
    assert_eq!(board["uid"], "spike");
    let panels = board["panels"].as_array().expect("panels");
    assert!(panels.len() >= 8);
    for panel in panels {
        for target in panel["targets"].as_array().expect("targets") {
            let expr = target["expr"].as_str().expect("an expression");
            for name in metric_names(expr) {
                assert!(
                    exported.contains(&name),
                    "the board names {name}, not exported"
                );
            }
            for record in expr.split(|c: char| c.is_whitespace() || "()".contains(c)) {
                if record.starts_with("spike:") {
                    assert!(
                        recorded.contains(record),
                        "the board reads {record}, no rule records it"
                    );
                }
            }
        }
    }
}
