//! A real Redis Cluster for tests: six `redis-server --cluster-enabled yes`
//! processes on free loopback ports, joined by `redis-cli --cluster create
//! … --cluster-replicas 1` into three primaries with one replica each. A
//! test may reshard slots between primaries or fail a primary over; each
//! node can be asked what it ran (`INFO commandstats`) and what it holds.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::{free_port, TestRedis};

/// Environment variable naming the suite's shared cluster
/// (`redis+cluster://HOST:PORT,…`), which `scripts/test` starts.
pub const SHARED_CLUSTER_ENV: &str = "SPIKE_TEST_REDIS_CLUSTER_URL";

/// Nodes in a test cluster: three primaries, three replicas.
const NODES: usize = 6;

/// How long a node may be silent before the others fail it over.
const NODE_TIMEOUT_MS: &str = "1000";

/// A Redis Cluster owned by one test (its servers die with it), or the
/// suite's shared one (only its URL is known).
#[derive(Debug)]
pub struct TestRedisCluster {
    url: String,
    nodes: Vec<TestRedis>,
}

impl TestRedisCluster {
    /// The suite's shared cluster, which `scripts/test` starts; without
    /// it the test fails loudly rather than skip (many tests share it, and
    /// six servers per test would be too many). It must not be resharded or
    /// failed over: tests that do spawn their own.
    pub fn shared() -> Self {
        let url = std::env::var(SHARED_CLUSTER_ENV).unwrap_or_default();
        assert!(
            !url.is_empty(),
            "{SHARED_CLUSTER_ENV} is not set: run the suite with scripts/test, which starts a Redis Cluster"
        );
        Self {
            url,
            nodes: Vec::new(),
        }
    }

    /// Six new servers made into a cluster of three primaries with one
    /// replica each, returned once every slot is served.
    pub fn spawn() -> Self {
        let nodes: Vec<TestRedis> = (0..NODES)
            .map(|_| {
                let bus = free_port().to_string();
                TestRedis::spawn_with(&[
                    "--cluster-enabled",
                    "yes",
                    "--cluster-port",
                    &bus,
                    "--cluster-node-timeout",
                    NODE_TIMEOUT_MS,
                ])
            })
            .collect();
        let addresses: Vec<String> = (nodes.iter())
            .map(|node| format!("127.0.0.1:{}", node.port()))
            .collect();
        redis_cli(
            ["--cluster", "create"]
                .into_iter()
                .map(String::from)
                .chain(addresses.iter().cloned())
                .chain(["--cluster-replicas", "1", "--cluster-yes"].map(String::from)),
        );
        let cluster = Self {
            url: format!("redis+cluster://{}", addresses.join(",")),
            nodes,
        };
        cluster.wait_healthy();
        cluster
    }

    /// `redis+cluster://127.0.0.1:P1,…` naming every node.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The servers this test owns (none for the shared cluster).
    pub fn nodes(&self) -> &[TestRedis] {
        &self.nodes
    }

    /// The servers that are primaries now.
    pub fn primaries(&self) -> Vec<&TestRedis> {
        (self.nodes.iter())
            .filter(|node| node.role().as_deref() == Some("master"))
            .collect()
    }

    /// Waits (at most 20 s) until every node says the cluster is ok and
    /// agrees on three primaries.
    pub fn wait_healthy(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let healthy = self.nodes.iter().all(|node| {
                cluster_info(node).contains("cluster_state:ok")
                    && cluster_info(node).contains("cluster_slots_ok:16384")
            });
            if healthy && self.primaries().len() == NODES / 2 {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the cluster did not become healthy"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The primary that serves `key`'s slot now.
    pub fn primary_of(&self, key: &str) -> &TestRedis {
        let slot: u16 = redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(key)
            .query(&mut self.nodes[0].connection())
            .expect("CLUSTER KEYSLOT");
        (self.primaries().into_iter())
            .find(|primary| serves_slot(primary, slot))
            .expect("a primary serves every slot")
    }

    /// Moves `slots` slots from `from` to `to` (both primaries) with
    /// `redis-cli --cluster reshard`, keys included, while clients keep
    /// running; returns once it is done.
    pub fn reshard(&self, from: &TestRedis, to: &TestRedis, slots: u32) {
        redis_cli(
            [
                "--cluster".to_string(),
                "reshard".to_string(),
                format!("127.0.0.1:{}", from.port()),
                "--cluster-from".to_string(),
                node_id(from),
                "--cluster-to".to_string(),
                node_id(to),
                "--cluster-slots".to_string(),
                slots.to_string(),
                "--cluster-yes".to_string(),
                "--cluster-pipeline".to_string(),
                "10".to_string(),
            ]
            .into_iter(),
        );
    }

    /// Promotes a replica of `primary` with `CLUSTER FAILOVER` (the two
    /// swap roles without losing acknowledged writes); returns once the
    /// cluster is healthy again. Redis aborts a manual failover the replica
    /// could not finish within 5 s (on a loaded machine it may not catch up
    /// in time): it is asked again, three times at most.
    pub fn fail_over(&self, primary: &TestRedis) {
        let id = node_id(primary);
        let replica = (self.nodes.iter())
            .find(|node| {
                let info: String = redis::cmd("INFO")
                    .arg("replication")
                    .query(&mut node.connection())
                    .unwrap_or_default();
                info.contains("role:slave")
                    && info.contains(&format!("master_port:{}", primary.port()))
            })
            .unwrap_or_else(|| panic!("no replica of {id}"));
        for attempt in 1..=3 {
            let _: String = redis::cmd("CLUSTER")
                .arg("FAILOVER")
                .query(&mut replica.connection())
                .expect("CLUSTER FAILOVER");
            let deadline = Instant::now() + Duration::from_secs(10);
            while replica.role().as_deref() != Some("master") && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            if replica.role().as_deref() == Some("master") {
                self.wait_healthy();
                return;
            }
            eprintln!("manual failover of {id}: attempt {attempt} did not finish");
        }
        panic!("the failover did not finish after three attempts");
    }
}

/// `CLUSTER INFO` of one node ('' if it does not answer).
fn cluster_info(node: &TestRedis) -> String {
    redis::Client::open(node.url())
        .and_then(|client| client.get_connection())
        .and_then(|mut connection| redis::cmd("CLUSTER").arg("INFO").query(&mut connection))
        .unwrap_or_default()
}

/// A node's cluster id (`CLUSTER MYID`).
fn node_id(node: &TestRedis) -> String {
    redis::cmd("CLUSTER")
        .arg("MYID")
        .query(&mut node.connection())
        .expect("CLUSTER MYID")
}

/// Whether `primary` serves `slot` (its own line of `CLUSTER NODES`).
fn serves_slot(primary: &TestRedis, slot: u16) -> bool {
    let nodes: String = redis::cmd("CLUSTER")
        .arg("NODES")
        .query(&mut primary.connection())
        .expect("CLUSTER NODES");
    let Some(own) = nodes.lines().find(|line| line.contains("myself")) else {
        return false;
    };
    own.split_whitespace().skip(8).any(|range| {
        let (start, end) = range.split_once('-').unwrap_or((range, range));
        match (start.parse::<u16>(), end.parse::<u16>()) {
            (Ok(start), Ok(end)) => (start..=end).contains(&slot),
            _ => false,
        }
    })
}

/// Runs `redis-cli` with `args`; panics with its output if it fails.
fn redis_cli(args: impl Iterator<Item = String>) {
    let args: Vec<String> = args.collect();
    let output = Command::new("redis-cli")
        .args(&args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run redis-cli ({e}); run scripts/test, which installs it")
        });
    assert!(
        output.status.success(),
        "redis-cli {} failed:\n{}{}",
        args.join(" "),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
