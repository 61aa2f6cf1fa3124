//! A PostgreSQL server of one test's own, for tests that crash it: `initdb`
//! into a temp directory, `postgres` on a free loopback port in a process
//! group of its own, so that [`TestPostgres::crash`] can `kill -9` the
//! postmaster and every backend at once, as a machine losing the process
//! would, and [`TestPostgres::start`] brings it back through crash recovery.
//! (Tests that only need a database use [`crate::TestDatabase`] in the
//! suite's shared server.)

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{free_port, unique};

/// A PostgreSQL server owned by one test, stopped on drop.
#[derive(Debug)]
pub struct TestPostgres {
    port: u16,
    dir: PathBuf,
    bin: PathBuf,
    child: Option<Child>,
}

impl TestPostgres {
    /// `initdb` and start a new server (trust auth, user `spike`).
    pub fn spawn() -> Self {
        let bin = postgres_bin();
        let dir = std::env::temp_dir().join(unique("spike-pg"));
        std::fs::create_dir_all(&dir).expect("create PostgreSQL dir");
        give_to_postgres(&dir);
        let initdb = as_postgres_user(&bin.join("initdb"))
            .arg("-D")
            .arg(dir.join("data"))
            .args(["-U", "spike", "--auth=trust", "-E", "UTF8", "--no-sync"])
            .output()
            .expect("run initdb");
        assert!(
            initdb.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&initdb.stderr)
        );
        let mut server = Self {
            port: free_port(),
            dir,
            bin,
            child: None,
        };
        server.start();
        server
    }

    /// The URL of `database` on this server.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://spike@127.0.0.1:{}/{database}", self.port)
    }

    /// Creates a new, empty database and returns its URL.
    pub fn create_database(&self) -> String {
        let name = unique("chaos").replace('-', "_");
        let status = Command::new("psql")
            .args([&self.url("postgres"), "-q", "-v", "ON_ERROR_STOP=1", "-c"])
            .arg(format!("CREATE DATABASE {name}"))
            .status()
            .expect("run psql (postgresql-client)");
        assert!(status.success(), "CREATE DATABASE {name} failed");
        self.url(&name)
    }

    /// Starts the server (after a crash: through crash recovery) and waits
    /// until it answers queries.
    pub fn start(&mut self) {
        assert!(self.child.is_none(), "already running");
        let log = std::fs::File::create(self.dir.join("postgres.log")).expect("log file");
        let child = as_postgres_user(&self.bin.join("postgres"))
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-p", &self.port.to_string()])
            .arg("-k")
            .arg(&self.dir)
            .args([
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "max_connections=100",
            ])
            .args(["-c", "fsync=off", "-c", "full_page_writes=off"])
            .process_group(0)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start postgres");
        self.child = Some(child);
        self.wait_ready();
    }

    /// `kill -9` of the postmaster and all its backends at once.
    pub fn crash(&mut self) {
        if let Some(mut child) = self.child.take() {
            let group = format!("-{}", child.id());
            let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
            let _ = child.wait();
            // The backends are in the same group; wait until none is left
            // holding the data directory.
            let deadline = Instant::now() + Duration::from_secs(10);
            while group_alive(&group[1..]) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ready = Command::new("psql")
                .args([&self.url("postgres"), "-qtA", "-c", "SELECT 1"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|status| status.success());
            if ready {
                return;
            }
            if Instant::now() > deadline {
                let log =
                    std::fs::read_to_string(self.dir.join("postgres.log")).unwrap_or_default();
                panic!("PostgreSQL did not start:\n{log}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for TestPostgres {
    fn drop(&mut self) {
        self.crash();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Whether any process is left in process group `group`.
fn group_alive(group: &str) -> bool {
    Command::new("pgrep")
        .args(["-g", group])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// The newest installed PostgreSQL's `bin` directory.
fn postgres_bin() -> PathBuf {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL is not installed: run the suite with scripts/test")
        .filter_map(|entry| entry.ok().map(|e| e.path().join("bin")))
        .filter(|bin| bin.join("postgres").exists())
        .collect();
    versions.sort_by_key(|bin| {
        bin.parent()
            .and_then(|v| v.file_name())
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
    });
    versions
        .pop()
        .expect("no PostgreSQL server binaries under /usr/lib/postgresql")
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| out.stdout.trim_ascii() == b"0")
}

/// PostgreSQL refuses to run as root: as root, its programs run as the
/// `postgres` user that Debian's package creates.
fn as_postgres_user(program: &Path) -> Command {
    if running_as_root() {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(program);
        command
    } else {
        Command::new(program)
    }
}

fn give_to_postgres(dir: &Path) {
    if running_as_root() {
        let status = Command::new("chown")
            .arg("postgres")
            .arg(dir)
            .status()
            .expect("chown");
        assert!(status.success(), "chown postgres {}", dir.display());
    }
}
