//! The files an operator deploys with (`deploy/`), checked as their own
//! tools check them: the Prometheus rules by `promtool check rules` and
//! `promtool test rules` (every alert fires in a case and stays quiet in
//! another), the systemd units by `systemd-analyze verify` (no warning
//! either), the rules and the Grafana board naming only metrics Spike
//! exports, and the compose file as podman-compose reads it (its services,
//! its settings files as `spike` reads them, no secret in any file).
//! The container image is `image.rs`'s.

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

/// `deploy/compose/compose.yml` as podman-compose reads it with `env` set
/// (its anchors merged, its variables filled in), as JSON; or what
/// podman-compose said when it refused it.
fn compose_config(env: &[(&str, &str)]) -> Result<serde_json::Value, String> {
    let dir = root().join("deploy/compose");
    let output = Command::new("podman-compose")
        .args(["-f", "compose.yml", "config"])
        .current_dir(&dir)
        .env_remove("POSTGRES_PASSWORD")
        .env_remove("GRAFANA_ADMIN_PASSWORD")
        .envs(env.iter().copied())
        .output()
        .expect("podman-compose must be installed (scripts/test installs it from PyPI)");
    if !output.status.success() {
        return Err(String::from_utf8_lossy(&output.stderr).into_owned());
    }
    // podman-compose depends on PyYAML: the same parser turns it into JSON.
    let mut python = Command::new("python3")
        .args([
            "-c",
            "import json, sys, yaml; print(json.dumps(yaml.safe_load(sys.stdin)))",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(python.stdin.as_mut().unwrap(), &output.stdout).unwrap();
    let json = python.wait_with_output().unwrap();
    assert!(
        json.status.success(),
        "the resolved compose file is not YAML"
    );
    Ok(serde_json::from_slice(&json.stdout).unwrap())
}

/// Runs the `spike` binary with `args` and `env`: whether it succeeded, and
/// what it printed.
fn spike(args: &[&str], env: &[(&str, &str)]) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_spike"))
        .args(args)
        .envs(env.iter().copied())
        .current_dir(root())
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&output.stdout).to_string()
        + &String::from_utf8_lossy(&output.stderr);
    (output.status.success(), said)
}

#[test]
fn the_compose_file_parses_into_the_production_shape_with_no_secret_in_it() {
    let (postgres, grafana) = (
        spike_testkit::unique("pg-secret"),
        spike_testkit::unique("gf-secret"),
    );
    let config = compose_config(&[
        ("POSTGRES_PASSWORD", &postgres),
        ("GRAFANA_ADMIN_PASSWORD", &grafana),
    ])
    .unwrap_or_else(|said| panic!("podman-compose refused compose.yml: {said}"));
    let services = config["services"].as_object().unwrap();
    let mut names: Vec<&str> = services.keys().map(String::as_str).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "grafana",
            "nginx",
            "nginx-conf",
            "node1",
            "node2",
            "node3",
            "node4",
            "orders1",
            "orders2",
            "postgres",
            "prometheus",
            "redis-primary",
            "redis-replica",
            "sentinel"
        ]
    );
    let command = |name: &str| -> Vec<String> {
        (services[name]["command"].as_array().unwrap().iter())
            .map(|part| part.as_str().unwrap().to_owned())
            .collect()
    };
    for (index, node) in ["node1", "node2", "node3", "node4"].into_iter().enumerate() {
        assert_eq!(command(node), ["node", "--config", "/etc/spike/node.toml"]);
        let environment = &services[node]["environment"];
        assert_eq!(environment["SPIKE_NODE_ID"], node);
        assert_eq!(
            environment["SPIKE_REDIS"],
            "redis+sentinel://sentinel:26379/spike"
        );
        assert_eq!(
            services[node]["secrets"],
            serde_json::json!(["order_key", "operator_key", "token_key"])
        );
        let weight = format!("{node}:8080={}", index + 1);
        assert!(
            command("nginx-conf").contains(&weight),
            "nginx weighs {node} {}",
            index + 1
        );
    }
    assert!(command("redis-replica")
        .join(" ")
        .contains("--replicaof redis-primary 6379"));
    for writer in ["orders1", "orders2"] {
        assert!(command(writer).starts_with(&["orders".to_owned()]));
        let url = services[writer]["environment"]["SPIKE_DATABASE_URL"]
            .as_str()
            .unwrap();
        assert!(
            url.contains(&postgres),
            "the ledger's password comes from the environment"
        );
    }

    // Every file a service mounts is in the repository.
    for (name, service) in services {
        let volumes = service["volumes"].as_array().cloned().unwrap_or_default();
        for source in volumes.iter().filter_map(|v| v.as_str()?.split(':').next()) {
            if source.starts_with('.') {
                let path = root().join("deploy/compose").join(source);
                assert!(path.exists(), "{name} mounts {source}, which is missing");
            }
        }
    }

    // The nodes' and writers' settings files are the binary's own.
    let env = [
        ("SPIKE_REDIS", "redis+sentinel://sentinel:26379/spike"),
        ("SPIKE_NODE_ID", "node1"),
    ];
    let (ok, said) = spike(
        &[
            "node",
            "--config",
            "deploy/compose/node.toml",
            "--print-config",
        ],
        &env,
    );
    assert!(ok, "{said}");
    assert!(said.contains("confirm-replicas = 1"), "{said}");
    let env = [
        (
            "SPIKE_DATABASE_URL",
            "postgres://spike:secret@postgres:5432/spike",
        ),
        env[0],
    ];
    let (ok, said) = spike(
        &[
            "orders",
            "--config",
            "deploy/compose/orders.toml",
            "--print-config",
        ],
        &env,
    );
    assert!(ok, "{said}");
    assert!(!said.contains("secret@"), "passwords are redacted: {said}");

    // No secret in the files: the passwords are required from the
    // environment, and what was given appears only once resolved.
    let missing = compose_config(&[]).expect_err("the passwords are required");
    assert!(missing.contains("POSTGRES_PASSWORD"), "{missing}");
    for file in ["compose.yml", "node.toml", "orders.toml", "env.example"] {
        let text = std::fs::read_to_string(root().join("deploy/compose").join(file)).unwrap();
        for line in text
            .lines()
            .filter(|l| l.to_lowercase().contains("password"))
        {
            let value = line.split_once([':', '=']).map_or("", |(_, v)| v.trim());
            let safe =
                value.is_empty() || value.contains("${") || line.trim_start().starts_with('#');
            assert!(safe, "{file} holds a password: {line}");
        }
    }

    // Prometheus's configuration, with Spike's rules beside it.
    let dir = std::env::temp_dir().join(spike_testkit::unique("prometheus"));
    std::fs::create_dir_all(&dir).unwrap();
    let scrape = std::fs::read_to_string(root().join("deploy/compose/prometheus.yml")).unwrap();
    std::fs::write(
        dir.join("prometheus.yml"),
        scrape.replace("/etc/prometheus/", ""),
    )
    .unwrap();
    std::fs::copy(
        root().join("deploy/prometheus/spike.rules.yml"),
        dir.join("spike.rules.yml"),
    )
    .unwrap();
    let (checked, said) = run("promtool", &["check", "config", "prometheus.yml"], &dir);
    assert!(checked, "{said}");
    let _ = std::fs::remove_dir_all(&dir);
}
