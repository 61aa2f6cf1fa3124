//! The `spike` binary as users run it: sale setup against real Redis, and a
//! node process that flushes every stat-log line when told to stop.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failure

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{get_all, get_all_past_shedding, wait_for, Http, Running};
use spike_testkit::{free_port, unique, TestRedis};

const SPIKE: &str = env!("CARGO_BIN_EXE_spike");

fn spike(args: &[&str]) -> std::process::Output {
    Command::new(SPIKE).args(args).output().expect("run spike")
}

#[test]
fn sale_create_refuses_an_existing_event_unless_forced() {
    let redis = TestRedis::shared_or_spawn();
    let event = unique("cli");
    let create = |extra: &[&str]| {
        let mut args = vec!["sale", "create", "--redis", redis.url(), "--event", &event];
        args.extend_from_slice(extra);
        spike(&args)
    };
    let first = create(&["--stock", "10"]);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let again = create(&["--stock", "20"]);
    assert!(!again.status.success(), "re-creating must be refused");
    let message = String::from_utf8_lossy(&again.stderr);
    assert!(
        message.contains("already has a sale") && message.contains("--force"),
        "{message}"
    );
    let forced = create(&["--stock", "20", "--force", "--anonymous"]);
    assert!(
        forced.status.success(),
        "{}",
        String::from_utf8_lossy(&forced.stderr)
    );

    let show = spike(&[
        "sale",
        "show",
        "--redis",
        redis.url(),
        "--event",
        &event,
        "--json",
    ]);
    assert!(show.status.success());
    let state: serde_json::Value = serde_json::from_slice(&show.stdout).expect("JSON");
    assert_eq!(state["total"], 20);
    assert_eq!(state["sold"], 0);
    assert_eq!(
        state["per_user_limit"],
        serde_json::Value::Null,
        "anonymous"
    );

    let missing = spike(&[
        "sale",
        "show",
        "--redis",
        redis.url(),
        "--event",
        "no-such-event-x",
    ]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("has no sale"));
}

#[test]
fn invalid_sale_flags_fail_with_a_message() {
    let bad = spike(&[
        "sale",
        "create",
        "--redis",
        "redis://127.0.0.1:1",
        "--event",
        "e",
        "--stock",
        "0",
    ]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("stock must be at least 1"));
}

#[test]
fn passwords_in_urls_never_reach_error_messages() {
    let port = free_port().to_string();
    let redis = format!("redis://:hunter2@127.0.0.1:{port}");
    let ledger = format!("postgres://spike:hunter3@127.0.0.1:{port}/x");
    let sentinel = format!("redis+sentinel://:hunter4@127.0.0.1:{port}/tickets");
    let cluster = format!("redis+cluster://:hunter5@127.0.0.1:{port}");
    let runs = [
        spike(&["sale", "show", "--redis", &redis, "--event", "e"]),
        spike(&["sale", "show", "--redis", &sentinel, "--event", "e"]),
        spike(&["sale", "show", "--redis", &cluster, "--event", "e"]),
        spike(&["node", "--redis", &redis, "--listen", "127.0.0.1:0"]),
        spike(&[
            "audit",
            "--redis",
            &redis,
            "--database-url",
            &ledger,
            "--event",
            "e",
        ]),
        spike(&[
            "demo",
            "--users",
            "1",
            "--stock",
            "1",
            "--database-url",
            &ledger,
        ]),
    ];
    for run in runs {
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&run.stdout),
            String::from_utf8_lossy(&run.stderr)
        );
        assert!(!run.status.success(), "{said}");
        assert!(!said.contains("hunter"), "a password leaked: {said}");
        assert!(
            said.contains("***@127.0.0.1"),
            "the URL is named, redacted: {said}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_process_flushes_every_stat_line_on_sigterm() {
    let dir = std::env::temp_dir().join(unique("node-cli"));
    std::fs::create_dir_all(&dir).unwrap();
    let stat_log = dir.join("stat.log");
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let mut child = tokio::process::Command::new(SPIKE)
        .args([
            "node",
            "--listen",
            &listen,
            "--event",
            "G1",
            "--stock",
            "300",
            "--anonymous",
        ])
        .arg("--stat-log")
        .arg(&stat_log)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start spike node");
    let http = Http::new();
    let base = format!("http://{listen}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while tokio::net::TcpStream::connect(&listen).await.is_err() {
        assert!(Instant::now() < deadline, "node did not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let health = http.get(&format!("{base}/healthz")).await;
    assert_eq!(health.body["status"], "ok");
    assert!(health.body.get("events").is_none(), "no detail in public");

    let urls = (0..2000).map(|_| format!("{base}/buy/ticket")).collect();
    let replies = get_all_past_shedding(&http, urls, 100).await;
    assert_eq!(common::count(&replies, common::Code::Success), 300);

    let pid = child.id().expect("pid").to_string();
    let killed = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(killed.success());
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .expect("node stops within 10 s")
        .expect("exit status");
    assert!(status.success(), "graceful stop exits 0: {status:?}");
    let text = std::fs::read_to_string(&stat_log).unwrap();
    assert_eq!(
        text.lines().count(),
        2000,
        "every answered request has its line"
    );
    assert_eq!(
        text.lines().filter(|l| l.contains(" result:1,")).count(),
        300
    );
    let _ = std::fs::remove_dir_all(&dir);
}

fn spawn(args: &[&str]) -> Running {
    let child = Command::new(SPIKE)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start spike");
    Running(child)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spike_front_process_splits_by_weight_over_node_processes() {
    let (a, b, front) = (free_port(), free_port(), free_port());
    let node = |port: u16, name: &str| {
        spawn(&[
            "node",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--event",
            "G1",
            "--stock",
            "1000",
            "--node-id",
            name,
            "--no-stat-log",
        ])
    };
    let _a = node(a, "left");
    let _b = node(b, "right");
    let _front = spawn(&[
        "front",
        "--listen",
        &format!("127.0.0.1:{front}"),
        "--upstream",
        &format!("127.0.0.1:{a}=1"),
        "--upstream",
        &format!("127.0.0.1:{b}=2"),
    ]);
    for port in [a, b, front] {
        wait_for(port).await;
    }
    let http = Http::new();
    let urls = (0..30)
        .map(|u| format!("http://127.0.0.1:{front}/buy/ticket?user_id=u{u}"))
        .collect();
    let replies = get_all(&http, urls, 1).await;
    let on = |name: &str| {
        replies
            .iter()
            .filter(|r| r.node.as_deref() == Some(name))
            .count()
    };
    assert_eq!((on("left"), on("right")), (10, 20));
    assert_eq!(
        common::count(&replies, common::Code::Success),
        30,
        "every buyer served"
    );
}

#[test]
fn nginx_conf_prints_every_upstream_with_keepalive() {
    let output = spike(&[
        "nginx-conf",
        "--listen",
        "127.0.0.1:8080",
        "--upstream",
        "127.0.0.1:3001=1",
        "--upstream",
        "127.0.0.1:3002=2",
        "--workers",
        "1",
    ]);
    assert!(output.status.success());
    let conf = String::from_utf8_lossy(&output.stdout);
    for needed in [
        "server 127.0.0.1:3001 weight=1",
        "server 127.0.0.1:3002 weight=2",
        "keepalive",
        "worker_processes 1;",
    ] {
        assert!(conf.contains(needed), "missing {needed:?}");
    }
    let bad = spike(&["nginx-conf", "--upstream", "127.0.0.1:3001=0"]);
    assert!(!bad.status.success(), "weight 0 is refused");
}

/// The CLI reference, as every command's `--help` prints it.
fn cli_reference() -> String {
    fn walk(command: &mut clap::Command, path: &str, out: &mut String) {
        let help = command.render_long_help().to_string();
        out.push_str(&format!(
            "## `{path}`\n\n```text\n{}\n```\n\n",
            help.trim_end()
        ));
        let names: Vec<String> = (command.get_subcommands())
            .map(|sub| sub.get_name().to_owned())
            .filter(|name| name != "help")
            .collect();
        for name in names {
            if let Some(sub) = command.find_subcommand_mut(&name) {
                walk(sub, &format!("{path} {name}"), out);
            }
        }
    }
    let mut command = spike::config::command();
    command.build();
    let mut out = String::from(
        "# Command-line reference\n\n\
         Every command and flag of `spike`, exactly as `--help` prints it. Each flag\n\
         can also be set by a `SPIKE_…` environment variable (shown as `[env: …]`)\n\
         and by a `--config` file: see the\n\
         [operations guide](OPERATIONS.md#configuration-flags-environment-a-file).\n\n\
         This file is generated; a test fails when it differs from the binary. To\n\
         update it: `UPDATE_DOCS=1 cargo test -p spike --test cli cli_reference`.\n\n",
    );
    walk(&mut command, "spike", &mut out);
    out.trim_end().to_owned() + "\n"
}

#[test]
fn the_cli_reference_is_what_help_prints() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/CLI.md");
    let expected = cli_reference();
    if std::env::var_os("UPDATE_DOCS").is_some() {
        std::fs::write(&path, &expected).expect("write docs/CLI.md");
        return;
    }
    let written = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        written == expected,
        "docs/CLI.md differs from what --help prints; run \
         UPDATE_DOCS=1 cargo test -p spike --test cli cli_reference"
    );
}
