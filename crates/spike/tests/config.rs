//! Configuration as operators expect it: `spike node --config node.toml`
//! serves the sale the file describes; a `SPIKE_…` environment variable
//! beats the file and a flag beats both; `--print-config` shows what took
//! effect and where it came from, secrets redacted; a file that names no
//! setting of the command is refused before anything starts.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failure

mod common;

use std::path::PathBuf;
use std::process::{Command, Stdio};

use common::{wait_for, Http, Running};
use spike_core::Code;
use spike_testkit::{free_port, unique};

const SPIKE: &str = env!("CARGO_BIN_EXE_spike");

/// A configuration file in a fresh directory.
struct ConfigFile {
    dir: PathBuf,
    path: PathBuf,
}

impl ConfigFile {
    fn new(text: &str) -> Self {
        let dir = std::env::temp_dir().join(unique("spike-config"));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("node.toml");
        std::fs::write(&path, text).unwrap();
        Self { dir, path }
    }

    fn path(&self) -> &str {
        self.path.to_str().unwrap()
    }
}

impl Drop for ConfigFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `spike` with exactly these arguments and environment variables (no
/// other `SPIKE_…` variable leaks in from the test's own environment).
fn spike(args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut command = Command::new(SPIKE);
    for (name, _) in std::env::vars().filter(|(name, _)| name.starts_with("SPIKE_")) {
        command.env_remove(name);
    }
    command.args(args).envs(env.iter().copied());
    command
}

/// The `--print-config` lines of `spike node`, by setting name.
fn printed(args: &[&str], env: &[(&str, &str)]) -> Vec<String> {
    let mut all = vec!["node", "--print-config"];
    all.extend_from_slice(args);
    let output = spike(&all, env).output().expect("run spike");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn line<'a>(lines: &'a [String], name: &str) -> &'a str {
    let prefix = format!("{name} = ");
    lines
        .iter()
        .find(|line| line.starts_with(&prefix))
        .unwrap_or_else(|| panic!("no {name} in {lines:#?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_serves_the_sale_its_file_describes() {
    let port = free_port();
    let file = ConfigFile::new(&format!(
        "# an embedded sale of three seats\n\
         listen = \"127.0.0.1:{port}\"\n\
         event = [\"from-a-file\"]\n\
         stock = 3\n\
         no-stat-log = true\n\
         threads = 1\n"
    ));
    let child = spike(&["node", "--config", file.path()], &[])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start spike node");
    let _node = Running(child);
    wait_for(port).await;
    let http = Http::new();
    let mut sold = 0;
    for user in ["ann", "bob", "cat", "dan", "eve"] {
        let reply = http
            .get(&format!(
                "http://127.0.0.1:{port}/buy/ticket?event=from-a-file&user_id={user}"
            ))
            .await;
        match reply.code() {
            Code::Success => sold += 1,
            Code::SoldOut => {}
            other => panic!("{user}: {other:?} {:?}", reply.body),
        }
    }
    assert_eq!(sold, 3, "the file's stock, exactly");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_environment_beats_the_file_and_a_flag_beats_both() {
    let (in_file, in_env) = (free_port(), free_port());
    let file = ConfigFile::new(&format!(
        "listen = \"127.0.0.1:{in_file}\"\nevent = [\"layers\"]\nstock = 3\nno-stat-log = true\n"
    ));
    let listen_env = format!("127.0.0.1:{in_env}");
    let env = [("SPIKE_LISTEN", listen_env.as_str()), ("SPIKE_STOCK", "5")];

    let lines = printed(&["--config", file.path()], &env);
    assert_eq!(
        line(&lines, "listen"),
        format!("listen = \"{listen_env}\"  # environment SPIKE_LISTEN")
    );
    assert_eq!(
        line(&lines, "stock"),
        "stock = 5  # environment SPIKE_STOCK"
    );
    assert_eq!(line(&lines, "event"), "event = [\"layers\"]  # file");
    assert_eq!(
        line(&lines, "central-batch"),
        "central-batch = 256  # default"
    );
    let lines = printed(&["--config", file.path(), "--stock", "2"], &env);
    assert_eq!(line(&lines, "stock"), "stock = 2  # flag");
    let lines = printed(&[], &[("SPIKE_CONFIG", file.path())]);
    assert_eq!(
        line(&lines, "stock"),
        "stock = 3  # file",
        "SPIKE_CONFIG names the file"
    );

    // And the node does what it printed: it listens where the environment
    // says, and sells the flag's stock.
    let child = spike(&["node", "--config", file.path(), "--stock", "2"], &env)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start spike node");
    let _node = Running(child);
    wait_for(in_env).await;
    let http = Http::new();
    let codes: Vec<Code> = {
        let mut codes = Vec::new();
        for user in ["ann", "bob", "cat"] {
            let url = format!("http://127.0.0.1:{in_env}/buy/ticket?event=layers&user_id={user}");
            codes.push(http.get(&url).await.code());
        }
        codes
    };
    assert_eq!(codes, [Code::Success, Code::Success, Code::SoldOut]);
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", in_file)).is_err(),
        "the file's listen address was overridden"
    );
}

#[test]
fn print_config_redacts_secrets_wherever_they_come_from() {
    let file = ConfigFile::new("database-url = \"postgres://spike:file-secret@127.0.0.1:1/db\"\n");
    let lines = printed(
        &["--config", file.path()],
        &[("SPIKE_REDIS", "redis://:env-secret@127.0.0.1:1")],
    );
    let text = lines.join("\n");
    for secret in ["file-secret", "env-secret"] {
        assert!(!text.contains(secret), "{secret} shown:\n{text}");
    }
    assert!(line(&lines, "redis").ends_with("# environment SPIKE_REDIS"));
    assert!(line(&lines, "database-url").ends_with("# file"));
}

#[test]
fn a_file_with_an_unknown_or_malformed_setting_is_refused_before_anything_starts() {
    let port = free_port();
    for (text, says) in [
        ("stok = 3\n", "`stok` is not a setting of `spike node`"),
        (
            "stock = [[1]]\n",
            "`stock` must be a string, a number, a boolean",
        ),
        ("stock = \n", "is not TOML"),
        ("stock = \"many\"\n", "invalid value 'many'"),
    ] {
        let file = ConfigFile::new(&format!("listen = \"127.0.0.1:{port}\"\n{text}"));
        let output = spike(&["node", "--config", file.path(), "--event", "e"], &[])
            .output()
            .expect("run spike");
        assert!(!output.status.success(), "{text}");
        let message = String::from_utf8_lossy(&output.stderr);
        assert!(message.contains(says), "{text}: {message}");
    }
    let missing = spike(&["node", "--config", "/no/such/file.toml"], &[])
        .output()
        .expect("run spike");
    assert!(String::from_utf8_lossy(&missing.stderr).contains("cannot read the configuration file"));
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
}
