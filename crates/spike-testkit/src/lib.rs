//! Test support shared by the workspace's integration tests: real Redis
//! servers, either the one `scripts/test` started (`SPIKE_TEST_REDIS_URL`) or
//! a throwaway `redis-server` this process starts on a free loopback port.
//! Nothing here is a mock; a missing `redis-server` fails the test loudly.
//! [`TestRedisCluster`] is a real three-primary Redis Cluster,
//! [`TestDatabase`] does the same for the order ledger's databases, and
//! [`TestPostgres`] is a PostgreSQL server a test can crash.

#![warn(missing_docs)]
// Test support: a failed setup step panics, and so fails the test that needed it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cluster;
mod database;
mod delay;
mod netns;
mod postgres;
mod sentinel;

pub use cluster::{TestRedisCluster, SHARED_CLUSTER_ENV};
pub use database::{TestDatabase, SHARED_POSTGRES_ENV};
pub use delay::DelayRelay;
pub use netns::{Net, TestHost, TestNetwork};
pub use postgres::TestPostgres;
pub use sentinel::TestSentinel;

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Environment variable naming the suite's shared Redis.
pub const SHARED_REDIS_ENV: &str = "SPIKE_TEST_REDIS_URL";

/// A Redis server for one test: shared (not owned) or spawned (owned, killed on drop).
#[derive(Debug)]
pub struct TestRedis {
    url: String,
    port: u16,
    child: Option<Child>,
    dir: Option<PathBuf>,
    extra_args: Vec<String>,
}

/// A free TCP port on 127.0.0.1 (bound, then released).
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("local address").port()
}

/// A unique name for this test run (`<tag>-<pid>-<nanos>`), for event ids.
pub fn unique(tag: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("{tag}-{}-{nanos}", std::process::id())
}

impl TestRedis {
    /// The suite's shared Redis if `scripts/test` started one, else a new one.
    pub fn shared_or_spawn() -> Self {
        match std::env::var(SHARED_REDIS_ENV) {
            Ok(url) if !url.is_empty() => {
                let port = url
                    .rsplit(':')
                    .next()
                    .and_then(|p| p.trim_end_matches('/').parse().ok())
                    .unwrap_or(6379);
                Self {
                    url,
                    port,
                    child: None,
                    dir: None,
                    extra_args: Vec::new(),
                }
            }
            _ => Self::spawn(),
        }
    }

    /// A new `redis-server` owned by this test, on a free port.
    pub fn spawn() -> Self {
        Self::spawn_with(&[])
    }

    /// Like [`TestRedis::spawn`], with extra `redis-server` arguments
    /// (e.g. `--appendonly yes` so that a restart keeps the data).
    pub fn spawn_with(extra_args: &[&str]) -> Self {
        let port = free_port();
        let dir = std::env::temp_dir().join(unique("spike-redis"));
        std::fs::create_dir_all(&dir).expect("create Redis dir");
        let mut redis = Self {
            url: format!("redis://127.0.0.1:{port}"),
            port,
            child: None,
            dir: Some(dir),
            extra_args: extra_args.iter().map(|a| a.to_string()).collect(),
        };
        redis.start();
        redis
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A new owned server replicating `primary`, returned once the primary
    /// counts it as an online replica.
    pub fn replica_of(primary: &TestRedis) -> Self {
        let port = primary.port.to_string();
        let replica = Self::spawn_with(&["--replicaof", "127.0.0.1", &port]);
        let deadline = Instant::now() + Duration::from_secs(10);
        while primary.online_replicas() < 1 {
            assert!(Instant::now() < deadline, "replica did not come online");
            std::thread::sleep(Duration::from_millis(20));
        }
        replica
    }

    /// How many replicas the server reports online (`INFO replication`).
    pub fn online_replicas(&self) -> usize {
        let Ok(mut connection) =
            redis::Client::open(self.url.as_str()).and_then(|c| c.get_connection())
        else {
            return 0;
        };
        let info: String = redis::cmd("INFO")
            .arg("replication")
            .query(&mut connection)
            .unwrap_or_default();
        info.lines()
            .filter(|line| line.starts_with("slave") && line.contains("state=online"))
            .count()
    }

    /// The server's role (`master` or `slave`), or `None` if it does not answer.
    pub fn role(&self) -> Option<String> {
        let mut connection = redis::Client::open(self.url.as_str())
            .and_then(|c| c.get_connection())
            .ok()?;
        let role: Vec<redis::Value> = redis::cmd("ROLE").query(&mut connection).ok()?;
        match role.first() {
            Some(redis::Value::BulkString(bytes)) => Some(String::from_utf8_lossy(bytes).into()),
            Some(redis::Value::SimpleString(text)) => Some(text.clone()),
            _ => None,
        }
    }

    /// Starts (or restarts) an owned server on the same port, empty.
    pub fn start(&mut self) {
        let dir = self
            .dir
            .clone()
            .expect("only an owned Redis can be started");
        let binary = std::env::var("SPIKE_REDIS_SERVER").unwrap_or_else(|_| "redis-server".into());
        let child = Command::new(&binary)
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--protected-mode", "no"])
            .args(&self.extra_args)
            .arg("--dir")
            .arg(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start {binary} ({e}); run scripts/test, which installs it")
            });
        self.child = Some(child);
        self.wait_ready();
    }

    /// Kills an owned server (as a crash would) and waits for it to exit.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(mut connection) =
                redis::Client::open(self.url.as_str()).and_then(|c| c.get_connection())
            {
                if redis::cmd("PING").query::<String>(&mut connection).is_ok() {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "Redis at {} did not start",
                self.url
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A blocking connection, for inspecting state from a test.
    pub fn connection(&self) -> redis::Connection {
        redis::Client::open(self.url.as_str())
            .and_then(|c| c.get_connection())
            .expect("connect to test Redis")
    }

    /// How many times Redis has run `command` (from `INFO commandstats`).
    pub fn command_calls(&self, command: &str) -> u64 {
        let info: String = redis::cmd("INFO")
            .arg("commandstats")
            .query(&mut self.connection())
            .expect("INFO commandstats");
        let prefix = format!("cmdstat_{}:calls=", command.to_lowercase());
        info.lines()
            .find_map(|line| line.strip_prefix(&prefix))
            .and_then(|rest| rest.split(',').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for TestRedis {
    fn drop(&mut self) {
        self.kill();
        if let Some(dir) = &self.dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// A real nginx for one test, started from a configuration text under a
/// private prefix directory, on the port the configuration names; killed on drop.
#[derive(Debug)]
pub struct TestNginx {
    child: Child,
    dir: PathBuf,
}

impl TestNginx {
    /// Starts `nginx -p DIR -c DIR/nginx.conf` in the foreground and waits
    /// until `port` accepts connections.
    pub fn start(config: &str, port: u16) -> Self {
        let dir = std::env::temp_dir().join(unique("spike-nginx"));
        for sub in ["logs", "temp"] {
            std::fs::create_dir_all(dir.join(sub)).expect("create nginx dirs");
        }
        let conf = dir.join("nginx.conf");
        std::fs::write(&conf, config).expect("write nginx.conf");
        let binary = std::env::var("SPIKE_NGINX").unwrap_or_else(|_| {
            if std::path::Path::new("/usr/sbin/nginx").exists() {
                "/usr/sbin/nginx".into()
            } else {
                "nginx".into()
            }
        });
        let child = Command::new(&binary)
            .arg("-p")
            .arg(&dir)
            .arg("-c")
            .arg(&conf)
            .arg("-e")
            .arg(dir.join("logs/error.log"))
            .args(["-g", "daemon off;"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start {binary} ({e}); run scripts/test, which installs it")
            });
        let nginx = Self { child, dir };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            let log = std::fs::read_to_string(nginx.dir.join("logs/error.log")).unwrap_or_default();
            assert!(Instant::now() < deadline, "nginx did not start:\n{log}");
            std::thread::sleep(Duration::from_millis(20));
        }
        nginx
    }
}

impl Drop for TestNginx {
    fn drop(&mut self) {
        // SIGTERM: the master stops its workers, then exits (SIGKILL would orphan them).
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
