//! A real Redis Sentinel for one test: `redis-server --sentinel` with a
//! configuration of its own, watching a [`TestRedis`] primary under a service
//! name, quick to declare it down (1 s) so that failover tests stay short.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{free_port, unique, TestRedis};

/// A sentinel process, killed on drop.
#[derive(Debug)]
pub struct TestSentinel {
    port: u16,
    child: Option<Child>,
    dir: PathBuf,
}

/// How long the primary must be silent before the sentinel calls it down.
pub const DOWN_AFTER: Duration = Duration::from_millis(1000);

impl TestSentinel {
    /// Starts a sentinel watching `primary` as `service` (quorum 1).
    pub fn watch(primary: &TestRedis, service: &str) -> Self {
        let port = free_port();
        let dir = std::env::temp_dir().join(unique("spike-sentinel"));
        std::fs::create_dir_all(&dir).expect("create sentinel dir");
        let config = dir.join("sentinel.conf");
        std::fs::write(
            &config,
            format!(
                "port {port}\nbind 127.0.0.1\nprotected-mode no\ndir {dir}\n\
                 sentinel monitor {service} 127.0.0.1 {primary} 1\n\
                 sentinel down-after-milliseconds {service} {down}\n\
                 sentinel failover-timeout {service} 4000\n\
                 sentinel parallel-syncs {service} 1\n",
                dir = dir.display(),
                primary = primary.port(),
                down = DOWN_AFTER.as_millis(),
            ),
        )
        .expect("write sentinel.conf");
        let binary = std::env::var("SPIKE_REDIS_SERVER").unwrap_or_else(|_| "redis-server".into());
        let child = Command::new(&binary)
            .arg(&config)
            .arg("--sentinel")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {binary} --sentinel ({e})"));
        let sentinel = Self {
            port,
            child: Some(child),
            dir,
        };
        sentinel.wait_until_it_knows(service);
        sentinel
    }

    /// `127.0.0.1:PORT`.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The primary's port as the sentinel reports it now.
    pub fn primary_port(&self, service: &str) -> Option<u16> {
        let mut connection = redis::Client::open(format!("redis://{}", self.address()))
            .and_then(|c| c.get_connection())
            .ok()?;
        let address: Option<(String, u16)> = redis::cmd("SENTINEL")
            .arg("GET-MASTER-ADDR-BY-NAME")
            .arg(service)
            .query(&mut connection)
            .ok()?;
        address.map(|(_, port)| port)
    }

    fn wait_until_it_knows(&self, service: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.primary_port(service).is_none() {
            assert!(Instant::now() < deadline, "sentinel did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for TestSentinel {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
