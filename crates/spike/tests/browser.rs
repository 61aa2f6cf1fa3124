//! The pages in a real browser: headless Chromium (Debian's `chromium`,
//! driven by `playwright-core` from tests/browser) opens the dashboard
//! during a small `spike demo --dashboard` and waits until the sold counter
//! reaches the stock; watches a train's seat × segment grid fill in during
//! `spike demo --train --dashboard`; goes through a sale's waiting room (join, wait,
//! get admitted, buy); and through a spillover room (`--queue auto`), once
//! straight through and once behind a crowd; and solves a waiting room's
//! proof of work (`--join-work`) after a join without it was refused.
//! Screenshots go to
//! target/test-artifacts/.
//! `scripts/test` installs Chromium and the npm package.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failure

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use spike_testkit::free_port;

const SPIKE: &str = env!("CARGO_BIN_EXE_spike");

#[test]
fn dashboard_shows_the_sale_selling_out_in_chromium() {
    let (script, screenshot) = check("dashboard");

    let port = free_port();
    let demo = Command::new(SPIKE)
        .args([
            "demo",
            "--users",
            "40000",
            "--stock",
            "500",
            "--rate",
            "4000",
            "--connections",
            "20",
        ])
        .args([
            "--dashboard",
            "--dashboard-listen",
            &format!("127.0.0.1:{port}"),
        ])
        .args(["--linger", "30s", "--no-progress"])
        .stdout(Stdio::null())
        .stderr(server_log("dashboard"))
        .spawn()
        .expect("start spike demo");
    let page = format!("http://127.0.0.1:{port}/dashboard");
    browse(demo, port, &script, &[&page, "500"], &screenshot, 10_000);
}

#[test]
fn dashboard_fills_a_trains_seat_segment_grid_in_chromium() {
    let (script, screenshot) = check("train");

    // The demo train (1,000 seats over 9 segments), bought at 4,000 a
    // second; the page must show at least 1,000 seat-segments sold.
    let port = free_port();
    let demo = Command::new(SPIKE)
        .args(["demo", "--train", "--users", "40000", "--rate", "4000"])
        .args(["--connections", "20"])
        .args([
            "--dashboard",
            "--dashboard-listen",
            &format!("127.0.0.1:{port}"),
        ])
        .args(["--linger", "30s", "--no-progress"])
        .stdout(Stdio::null())
        .stderr(server_log("train"))
        .spawn()
        .expect("start spike demo --train");
    let page = format!("http://127.0.0.1:{port}/dashboard");
    browse(demo, port, &script, &[&page, "1000"], &screenshot, 10_000);
}

#[test]
fn a_buyer_goes_through_the_waiting_room_page_in_chromium() {
    let (script, screenshot) = check("queue");

    // An embedded node: 3 seats, a waiting room admitting 2 a second, the
    // opening 12 s away: time for Chromium to start and six buyers to join
    // before it, on a loaded CI machine too.
    let port = free_port();
    let opens_at = std::time::SystemTime::now() + Duration::from_secs(12);
    let opening = humantime::format_rfc3339(opens_at).to_string();
    let (node, tokens) = waiting_room_node(
        port,
        &["--stock", "3", "--opens-at", &opening, "--queue"],
        &["alice", "other0", "other1", "other2", "other3", "other4"],
    );
    let base = format!("http://127.0.0.1:{port}");
    browse(
        node,
        port,
        &script,
        &[&base, "G7", &tokens],
        &screenshot,
        5_000,
    );
}

#[test]
fn a_spillover_room_lets_a_buyer_through_then_queues_one_behind_a_crowd_in_chromium() {
    let (script, screenshot) = check("spillover");

    // An embedded node selling now behind a spillover room admitting 2 a
    // second: bob, alone, passes straight through; then twenty buyers
    // arrive at once, and alice, behind them, waits her turn.
    let port = free_port();
    let mut buyers = vec!["alice".to_owned(), "bob".to_owned()];
    buyers.extend((0..20).map(|i| format!("other{i}")));
    let buyers: Vec<&str> = buyers.iter().map(String::as_str).collect();
    let (node, tokens) = waiting_room_node(port, &["--stock", "30", "--queue", "auto"], &buyers);
    let base = format!("http://127.0.0.1:{port}");
    browse(
        node,
        port,
        &script,
        &[&base, "G7", &tokens],
        &screenshot,
        5_000,
    );
}

#[test]
fn a_join_without_work_is_refused_and_the_page_solves_its_work_in_chromium() {
    let (script, screenshot) = check("work");

    // An embedded node selling now behind a waiting room whose joins need
    // 18 bits of work (about 262,000 hashes on average).
    let port = free_port();
    let (node, tokens) = waiting_room_node(
        port,
        &["--stock", "5", "--queue", "--join-work", "18"],
        &["alice", "bob"],
    );
    let base = format!("http://127.0.0.1:{port}");
    browse(
        node,
        port,
        &script,
        &[&base, "G7", &tokens],
        &screenshot,
        5_000,
    );
}

/// An embedded `spike node` on `port` selling G7 with `sale` flags behind a
/// waiting room admitting 2 a second, and a JSON object of each of
/// `buyers`' tokens, from the key the node verifies with (a waiting room is
/// a token sale).
fn waiting_room_node(port: u16, sale: &[&str], buyers: &[&str]) -> (std::process::Child, String) {
    const KEY: &str = "the-browser-tests-login-system-signs-with-it";
    let keys = std::env::temp_dir().join(spike_testkit::unique("queue-keys"));
    std::fs::write(&keys, format!("{KEY}\n")).expect("key file");
    let key = spike_auth::SecretKey::new(KEY).expect("long enough");
    let tokens: serde_json::Map<String, serde_json::Value> = (buyers.iter())
        .map(|name| {
            let user = spike_core::UserId::parse(*name).expect("user");
            let token = spike_auth::mint(
                &key,
                &user,
                std::time::SystemTime::now(),
                Duration::from_secs(3600),
                None,
            );
            (name.to_string(), serde_json::Value::from(token))
        })
        .collect();
    let node = Command::new(SPIKE)
        .args(["node", "--listen", &format!("127.0.0.1:{port}")])
        .args(["--event", "G7", "--no-stat-log"])
        .args(sale)
        .args(["--admit-rate", "2/s"])
        .args(["--auth", "token", "--token-key-file"])
        .arg(&keys)
        .stdout(Stdio::null())
        .stderr(server_log(&format!("node-{port}")))
        .spawn()
        .expect("start spike node");
    (node, serde_json::Value::Object(tokens).to_string())
}

/// Where a server started for a browser check writes its log
/// (`target/test-artifacts/NAME-server.log`), to read when a check fails.
fn server_log(name: &str) -> Stdio {
    let artifacts = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/test-artifacts");
    std::fs::create_dir_all(&artifacts).expect("artifact dir");
    let log =
        std::fs::File::create(artifacts.join(format!("{name}-server.log"))).expect("server log");
    Stdio::from(log)
}

/// The browser check `tests/browser/NAME.mjs` and where its screenshot goes
/// (`target/test-artifacts/NAME.png`, removed first so that a stale one
/// never passes).
fn check(name: &str) -> (PathBuf, PathBuf) {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    assert!(
        root.join("tests/browser/node_modules/playwright-core")
            .exists(),
        "playwright-core missing: run scripts/test (it runs npm install in tests/browser)"
    );
    let artifacts = root.join("target/test-artifacts");
    std::fs::create_dir_all(&artifacts).expect("artifact dir");
    let screenshot = artifacts.join(format!("{name}.png"));
    let _ = std::fs::remove_file(&screenshot);
    (root.join(format!("tests/browser/{name}.mjs")), screenshot)
}

/// Waits until `server` listens on `port`, runs the browser `script` with
/// `args` and the screenshot path, stops the server, and checks that the
/// script passed and saved a screenshot of more than `min_bytes`.
fn browse(
    mut server: std::process::Child,
    port: u16,
    script: &Path,
    args: &[&str],
    screenshot: &Path,
    min_bytes: u64,
) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "server did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    let browser = Command::new("node")
        .arg(script)
        .args(args)
        .arg(screenshot)
        .output();
    let exited = server.try_wait().ok().flatten();
    let _ = server.kill();
    let _ = server.wait();
    let browser = browser.expect("run node (scripts/test installs what it needs)");
    assert!(
        browser.status.success(),
        "browser check failed:\n{}\n{}\nthe server {}; its log is in target/test-artifacts/",
        String::from_utf8_lossy(&browser.stdout),
        String::from_utf8_lossy(&browser.stderr),
        match exited {
            Some(status) => format!("had exited before the check ended ({status})"),
            None => "was still running".to_owned(),
        }
    );
    // What the check saw (shown with --nocapture).
    println!("{}", String::from_utf8_lossy(&browser.stdout));
    let size = std::fs::metadata(screenshot).map(|m| m.len()).unwrap_or(0);
    assert!(size > min_bytes, "screenshot written ({size} bytes)");
}
