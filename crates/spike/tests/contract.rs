//! The API contract: `schemathesis` (from PyPI, installed by scripts/test)
//! reads the node's `/openapi.json` and fuzzes the public surface of a
//! running `spike node` (a token sale, with a valid buyer token, and the
//! orders API on a SQLite ledger). It fails on any 5xx answer, an answer
//! its document does not describe (status, content type, schema), a method
//! served without being documented, or an operation whose security is not
//! enforced.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failure

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use spike_testkit::{free_port, unique, TestDatabase};

const SPIKE: &str = env!("CARGO_BIN_EXE_spike");

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn key_file(dir: &std::path::Path, name: &str, key: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, key).unwrap();
    path.to_str().unwrap().to_owned()
}

#[test]
fn schemathesis_finds_nothing_on_the_public_surface() {
    let dir = std::env::temp_dir().join(unique("contract"));
    std::fs::create_dir_all(&dir).unwrap();
    let tokens = key_file(
        &dir,
        "tokens",
        "contract-test-token-key-long-enough-for-hs256",
    );
    let operator = key_file(
        &dir,
        "operator",
        "contract-test-operator-key-long-enough-xx",
    );
    let orders = key_file(
        &dir,
        "orders",
        "contract-test-order-key-secret-long-enough-x",
    );
    let database = TestDatabase::sqlite();
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let stat_log = dir.join("stat.log");
    let _node = Running(
        Command::new(SPIKE)
            .args([
                "node", "--listen", &listen, "--event", "contract", "--stock", "1000000",
            ])
            .args(["--auth", "token", "--token-key-file", &tokens])
            .args([
                "--operator-key-file",
                &operator,
                "--order-key-file",
                &orders,
            ])
            .args(["--database-url", database.url()])
            .args(["--stat-log", stat_log.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spike node starts"),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(&listen).is_err() {
        assert!(Instant::now() < deadline, "the node did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    let minted = Command::new(SPIKE)
        .args([
            "token",
            "--key-file",
            &tokens,
            "--user",
            "schemathesis",
            "--ttl",
            "1h",
        ])
        .output()
        .unwrap();
    assert!(minted.status.success());
    let token = String::from_utf8(minted.stdout).unwrap().trim().to_owned();
    let checks = "not_a_server_error,status_code_conformance,content_type_conformance,\
                  response_schema_conformance,unsupported_method,allow_header_conformance,\
                  ignored_auth";
    let run = Command::new("schemathesis")
        .current_dir(&dir)
        .args(["run", &format!("http://{listen}/openapi.json")])
        .args(["--include-tag", "public", "--checks", checks])
        .args(["--max-examples", "30", "--seed", "7", "--workers", "2"])
        .args(["--generation-database", "none", "--no-color"])
        .args(["-H", &format!("Authorization: Bearer {token}")])
        .output()
        .expect("schemathesis (pip install schemathesis; scripts/test installs it)");
    let said = format!(
        "{}\n{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    eprintln!("{said}");
    assert!(run.status.success(), "schemathesis found problems:\n{said}");
    assert!(
        !said.contains(&token),
        "the token never appears in a report"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
