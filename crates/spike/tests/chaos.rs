//! The chaos test: an operator's worst night, bounded. Each round is a fresh
//! sale on the whole production shape, all real processes: a Redis primary
//! with two replicas under Sentinel, PostgreSQL, nginx running the
//! configuration `spike nginx-conf` prints, four `spike node` processes
//! (`--confirm-replicas 1`) and two `spike orders` writers. Mid-sale, one
//! fault strikes: a node killed or stalled, a writer killed, PostgreSQL
//! crashed, the Redis primary killed (Sentinel promotes a replica), Redis
//! restarted empty (then `spike sale recover` from the ledger and the stat
//! logs), or nginx restarted.
//!
//! An independent client buys through nginx, one request id per buyer,
//! retries an unsure answer with the same id, and asks `/buy/result` when
//! still unsure at the end. Every round must show: no oversell, no undersell
//! once the fault healed, no buyer told "success" without their order, no
//! phantom order (an order whose buyer was told "sold out"), no order id
//! twice; and `spike audit --stat-log` must agree.
//!
//! The suite runs one round per fault; `SPIKE_CHAOS_ROUNDS=N` runs N rounds
//! (the faults in turn) for a longer night.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failure

mod common;

use std::collections::{HashMap, HashSet};
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{redis_central, Code, Http, Reply};
use hyper::StatusCode;
use spike_core::{CentralStock, EventId, OrderStream};
use spike_front::nginx::{render, NginxOptions};
use spike_front::Upstream;
use spike_orders::OrderLedger;
use spike_redis::RedisCentral;
use spike_testkit::{free_port, unique, TestNginx, TestPostgres, TestRedis, TestSentinel};

const SPIKE: &str = env!("CARGO_BIN_EXE_spike");

/// Seats per round.
const STOCK: u64 = 1000;
/// Buyers under way at any moment: enough that a fault finds purchases in
/// flight (sold by Redis, not yet answered).
const BUYING_AT_ONCE: usize = 48;
/// A buyer slot's pause after a "sold out", so that waiting for the heal
/// does not become a flood of sold-out buyers (while seats are left, slots
/// buy back to back: the more in flight, the more a fault catches).
const AFTER_SOLD_OUT: Duration = Duration::from_millis(100);
/// At most this many buyers per round, whatever happens.
const MAX_BUYERS: u64 = 20 * STOCK;
/// The fault strikes once this many buyers were told "success".
const STRIKE_AT: u64 = STOCK * 3 / 10;
/// How long a buyer keeps retrying an unsure answer before leaving it to
/// `/buy/result`.
/// (Shorter than a Sentinel failover, so that both ways are taken.)
const RETRY_FOR: Duration = Duration::from_secs(5);
/// One request's time limit, as a browser's would be.
const REQUEST_LIMIT: Duration = Duration::from_secs(3);
/// The Sentinel service name.
const SERVICE: &str = "tickets";
/// The key buyer tokens are signed with (the login system's).
const TOKEN_KEY: &str = "the-chaos-login-system-signs-its-buyers-tokens";

/// `user`'s token, valid for an hour.
fn token_for(user: &str) -> String {
    let key = spike_auth::SecretKey::new(TOKEN_KEY).expect("long enough");
    let user = spike_core::UserId::parse(user).expect("user");
    spike_auth::mint(
        &key,
        &user,
        std::time::SystemTime::now(),
        Duration::from_secs(3600),
        None,
    )
}

/// One fault per round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// `kill -9` of a node, restarted a second later.
    NodeKill,
    /// A node stopped (SIGSTOP) for four seconds, then continued.
    NodeStall,
    /// `kill -9` of a writer, restarted a second later.
    WriterKill,
    /// `kill -9` of PostgreSQL and all its backends, restarted a second
    /// later through crash recovery.
    PostgresCrash,
    /// `kill -9` of the Redis primary: Sentinel promotes a replica.
    SentinelFailover,
    /// The writers stalled, then the Redis primary restarted empty (no
    /// persistence; its replicas resync to nothing) with sales no writer had
    /// read, then `spike sale recover` with the stat logs, then the writers
    /// continued.
    RedisRestartedEmpty,
    /// nginx stopped and started again.
    NginxRestart,
}

const FAULTS: [Fault; 7] = [
    Fault::NodeKill,
    Fault::NodeStall,
    Fault::WriterKill,
    Fault::PostgresCrash,
    Fault::SentinelFailover,
    Fault::RedisRestartedEmpty,
    Fault::NginxRestart,
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_rounds_sell_exactly_the_stock_to_the_buyers_told_so() {
    let rounds: usize = std::env::var("SPIKE_CHAOS_ROUNDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(FAULTS.len());
    let mut postgres = TestPostgres::spawn();
    let mut results = Vec::new();
    for round in 0..rounds {
        let fault = FAULTS[round % FAULTS.len()];
        let started = Instant::now();
        let result = run_round(round, fault, &mut postgres).await;
        eprintln!(
            "round {round} ({fault:?}) in {:?}: {result}",
            started.elapsed()
        );
        results.push(result);
    }
    let failed: Vec<_> = results
        .iter()
        .filter(|r| !r.violations.is_empty())
        .collect();
    assert!(failed.is_empty(), "violations: {failed:#?}");
}

// ------------------------------------------------------------------ the rig

/// A `spike` process the rig can kill, stall and start again with the same
/// arguments.
struct Daemon {
    name: String,
    args: Vec<String>,
    port: Option<u16>,
    log: PathBuf,
    child: Option<Child>,
}

impl Daemon {
    fn start(name: &str, args: Vec<String>, port: Option<u16>, dir: &Path) -> Self {
        let mut daemon = Self {
            name: name.to_owned(),
            args,
            port,
            log: dir.join(format!("{name}.stderr")),
            child: None,
        };
        daemon.restart();
        daemon
    }

    fn restart(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("log file");
        let child = Command::new(SPIKE)
            .args(&self.args)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start spike");
        self.child = Some(child);
        if let Some(port) = self.port {
            let deadline = Instant::now() + Duration::from_secs(15);
            while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
                assert!(Instant::now() < deadline, "{} did not start", self.name);
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    fn kill_9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn signal(&self, signal: &str) {
        let child = self.child.as_ref().expect("running");
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill_9();
    }
}

/// One round's world: the servers, the sale, and the processes.
struct Rig {
    event: EventId,
    dir: PathBuf,
    primary: TestRedis,
    _replicas: [TestRedis; 2],
    _sentinel: TestSentinel,
    redis_url: String,
    database: String,
    nodes: Vec<Daemon>,
    writers: Vec<Daemon>,
    nginx: Option<TestNginx>,
    nginx_port: u16,
    nginx_config: String,
}

impl Rig {
    fn build(round: usize, postgres: &TestPostgres) -> Self {
        let event = EventId::parse(unique(&format!("chaos{round}"))).expect("event");
        let dir = std::env::temp_dir().join(unique("chaos"));
        std::fs::create_dir_all(&dir).expect("round dir");
        let primary = TestRedis::spawn();
        let replicas = [
            TestRedis::replica_of(&primary),
            TestRedis::replica_of(&primary),
        ];
        let sentinel = TestSentinel::watch(&primary, SERVICE);
        let redis_url = format!("redis+sentinel://{}/{SERVICE}", sentinel.address());
        let database = postgres.create_database();
        // A token sale, as a real drop is: a buyer's retries and results
        // are proved theirs by their token.
        let token_keys = dir.join("token.keys");
        std::fs::write(&token_keys, format!("{TOKEN_KEY}\n")).expect("key file");
        let token_keys = token_keys.display().to_string();
        let created = Command::new(SPIKE)
            .args(["sale", "create", "--redis", &redis_url, "--auth", "token"])
            .args(["--event", event.as_str(), "--stock", &STOCK.to_string()])
            .args(["--database-url", &database])
            .output()
            .expect("spike sale create");
        assert!(
            created.status.success(),
            "{}",
            String::from_utf8_lossy(&created.stderr)
        );

        let writers = (1..=2)
            .map(|w| {
                let name = format!("w{w}");
                let args = strings(&[
                    "orders",
                    "--redis",
                    &redis_url,
                    "--database-url",
                    &database,
                    "--event",
                    event.as_str(),
                    "--consumer",
                    &name,
                    "--batch",
                    "50",
                    "--claim-idle",
                    "1s",
                    "--no-expiry",
                ]);
                Daemon::start(&name, args, None, &dir)
            })
            .collect();
        let nodes: Vec<Daemon> = (1..=4)
            .map(|n| {
                let name = format!("n{n}");
                let port = free_port();
                let args = strings(&[
                    "node",
                    "--listen",
                    &format!("127.0.0.1:{port}"),
                    "--redis",
                    &redis_url,
                    "--confirm-replicas",
                    "1",
                    "--event",
                    event.as_str(),
                    "--node-id",
                    &name,
                    "--stat-log",
                    &dir.join(format!("{name}.stat.log")).display().to_string(),
                    "--token-key-file",
                    &token_keys,
                    "--no-metrics",
                ]);
                Daemon::start(&name, args, Some(port), &dir)
            })
            .collect();
        let upstreams: Vec<Upstream> = (nodes.iter().zip(1..))
            .map(|(node, weight)| Upstream {
                address: format!("127.0.0.1:{}", node.port.expect("port")),
                weight: NonZeroU32::new(weight).expect("weight"),
            })
            .collect();
        let nginx_port = free_port();
        let options = NginxOptions {
            listen: format!("127.0.0.1:{nginx_port}"),
            workers: "1".into(),
            access_log: false,
            max_in_flight_per_node: spike_front::DEFAULT_MAX_IN_FLIGHT_PER_UPSTREAM.get(),
        };
        let nginx_config = render(&options, &upstreams);
        let nginx = TestNginx::start(&nginx_config, nginx_port);
        Self {
            event,
            dir,
            primary,
            _replicas: replicas,
            _sentinel: sentinel,
            redis_url,
            database,
            nodes,
            writers,
            nginx: Some(nginx),
            nginx_port,
            nginx_config,
        }
    }

    fn front(&self) -> String {
        format!("http://127.0.0.1:{}", self.nginx_port)
    }

    fn stat_logs(&self) -> Vec<String> {
        (self.nodes.iter())
            .map(|node| {
                let log = self.dir.join(format!("{}.stat.log", node.name));
                log.display().to_string()
            })
            .collect()
    }

    /// `spike` with the round's records (`--redis`, `--database-url`,
    /// `--event`) and the nodes' stat logs: whether it succeeded, and what
    /// it printed.
    fn spike_on_records(&self, command: &[&str], extra: &[&str]) -> (bool, String) {
        let mut stat_logs = Vec::new();
        for log in self.stat_logs() {
            stat_logs.push("--stat-log".to_owned());
            stat_logs.push(log);
        }
        let output = Command::new(SPIKE)
            .args(command)
            .args(["--redis", &self.redis_url, "--database-url", &self.database])
            .args(["--event", self.event.as_str()])
            .args(&stat_logs)
            .args(extra)
            .output()
            .expect("run spike");
        let text = String::from_utf8_lossy(&output.stdout).to_string()
            + &String::from_utf8_lossy(&output.stderr);
        (output.status.success(), text)
    }

    /// Strikes with `fault` and heals it (blocking: run it with
    /// `block_in_place`, so that the buyers go on meanwhile).
    fn strike(&mut self, fault: Fault, postgres: &mut TestPostgres) {
        let pause = |ms| std::thread::sleep(Duration::from_millis(ms));
        match fault {
            Fault::NodeKill => {
                self.nodes[2].kill_9();
                pause(1000);
                self.nodes[2].restart();
            }
            Fault::NodeStall => {
                // Longer than a buyer waits: buyers give up and retry
                // elsewhere while the stalled node still holds purchases.
                self.nodes[3].signal("STOP");
                pause(4000);
                self.nodes[3].signal("CONT");
            }
            Fault::WriterKill => {
                self.writers[0].kill_9();
                pause(1000);
                self.writers[0].restart();
            }
            Fault::PostgresCrash => {
                postgres.crash();
                pause(1000);
                postgres.start();
            }
            Fault::SentinelFailover => self.primary.kill(),
            Fault::RedisRestartedEmpty => {
                // The writers fall behind first, so that Redis takes sales
                // no writer has read with it: only the stat logs hold them.
                for writer in &self.writers {
                    writer.signal("STOP");
                }
                pause(100);
                self.primary.kill();
                self.primary.start(); // same port, empty
                                      // The nodes refuse the sale while its state is missing, so
                                      // recovery starts at once; the stat logs hold the answers
                                      // given before the restart.
                pause(500);
                let (recovered, said) = self.spike_on_records(&["sale", "recover"], &[]);
                assert!(recovered, "sale recover: {said}");
                eprintln!("{}", said.trim());
                // Whatever they had read before stopping, they now write:
                // the same orders recovery wrote, with the same request ids.
                for writer in &self.writers {
                    writer.signal("CONT");
                }
            }
            Fault::NginxRestart => {
                drop(self.nginx.take()); // SIGTERM: in-flight requests are cut
                pause(500);
                self.nginx = Some(TestNginx::start(&self.nginx_config, self.nginx_port));
            }
        }
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|a| (*a).to_owned()).collect()
}

// ---------------------------------------------------------------- the client

/// What a buyer was told, in the end.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Told {
    /// "success" with this order.
    Success(String),
    /// "sold out".
    SoldOut,
    /// No sure answer within [`RETRY_FOR`]; `/buy/result` decides.
    Unsure,
}

/// Counters the fault controller watches.
#[derive(Default)]
struct Progress {
    successes: AtomicU64,
    /// Answers that left the buyer unsure (503, a proxy's 502 or 504, a
    /// refused or cut connection, a timeout), each retried.
    unsure_answers: AtomicU64,
    /// Set once the fault has healed.
    healed: AtomicBool,
    /// Set when a buyer who arrived after the heal was told "sold out".
    sold_out_after_heal: AtomicBool,
}

/// One buyer: one request id, retried with the same id until the answer is
/// sure or [`RETRY_FOR`] has passed.
async fn buyer(http: &Http, front: &str, user: &str, progress: &Progress) -> Told {
    let arrived_healed = progress.healed.load(Ordering::Acquire);
    let url = format!(
        "{front}/buy/ticket?request_id={user}-r&token={}",
        token_for(user)
    );
    let deadline = Instant::now() + RETRY_FOR;
    let mut attempt: u64 = 0;
    loop {
        let reply = http.try_get(&url, REQUEST_LIMIT).await;
        match reply.as_ref().and_then(Reply::code_if_any) {
            Some(Code::Success) => {
                let order = reply
                    .and_then(|r| r.order())
                    .expect("an order with success");
                progress.successes.fetch_add(1, Ordering::AcqRel);
                return Told::Success(order);
            }
            Some(Code::SoldOut) => {
                if arrived_healed {
                    progress.sold_out_after_heal.store(true, Ordering::Release);
                }
                return Told::SoldOut;
            }
            Some(Code::TryAgain) | None => {
                progress.unsure_answers.fetch_add(1, Ordering::AcqRel);
            }
            Some(other) => panic!("{user} got {other:?}: {reply:?}"),
        }
        if Instant::now() > deadline {
            return Told::Unsure;
        }
        attempt += 1;
        tokio::time::sleep(Duration::from_millis(100 * attempt.min(5))).await;
    }
}

/// What `/buy/result` says a buyer holds, asked until it answers surely.
async fn result_of(http: &Http, front: &str, user: &str) -> Option<String> {
    let url = format!(
        "{front}/buy/result?request_id={user}-r&token={}",
        token_for(user)
    );
    for _ in 0..100 {
        if let Some(reply) = http.try_get(&url, REQUEST_LIMIT).await {
            match reply.status {
                StatusCode::OK => return reply.order(),
                StatusCode::NOT_FOUND => return None,
                _ => {}
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("/buy/result never answered for {user}");
}

// ----------------------------------------------------------------- a round

/// What one round found.
#[derive(Debug)]
struct RoundResult {
    fault: Fault,
    buyers: usize,
    told_success: usize,
    told_sold_out: usize,
    unsure_answers: u64,
    resolved_by_result: usize,
    violations: Vec<String>,
}

impl std::fmt::Display for RoundResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:?}, {} buyers: {} told success, {} told sold out, {} unsure answers retried, \
             {} resolved by /buy/result; {}",
            self.fault,
            self.buyers,
            self.told_success,
            self.told_sold_out,
            self.unsure_answers,
            self.resolved_by_result,
            if self.violations.is_empty() {
                "no violation".to_owned()
            } else {
                self.violations.join("; ")
            }
        )
    }
}

async fn run_round(round: usize, fault: Fault, postgres: &mut TestPostgres) -> RoundResult {
    let mut rig = Rig::build(round, postgres);
    let http = Http::keeping_idle(Duration::from_millis(500));
    let progress = Arc::new(Progress::default());

    // BUYING_AT_ONCE buyers are always under way (so a fault finds
    // purchases in flight), until,
    // after the heal, one is told "sold out" (central stock sold every
    // seat), or MAX_BUYERS came.
    let next_buyer = Arc::new(AtomicU64::new(0));
    let slots: Vec<_> = (0..BUYING_AT_ONCE)
        .map(|_| {
            let (http, front) = (http.clone(), rig.front());
            let (progress, next_buyer) = (Arc::clone(&progress), Arc::clone(&next_buyer));
            tokio::spawn(async move {
                let mut told = Vec::new();
                loop {
                    let n = next_buyer.fetch_add(1, Ordering::AcqRel);
                    if n >= MAX_BUYERS || progress.sold_out_after_heal.load(Ordering::Acquire) {
                        return told;
                    }
                    let user = format!("u{n}");
                    let answer = buyer(&http, &front, &user, &progress).await;
                    if answer == Told::SoldOut {
                        tokio::time::sleep(AFTER_SOLD_OUT).await;
                    }
                    told.push((user, answer));
                }
            })
        })
        .collect();

    let deadline = Instant::now() + Duration::from_secs(30);
    while progress.successes.load(Ordering::Acquire) < STRIKE_AT {
        assert!(
            Instant::now() < deadline,
            "round {round}: the sale did not start"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::task::block_in_place(|| rig.strike(fault, postgres));
    progress.healed.store(true, Ordering::Release);

    let mut told = HashMap::new();
    for slot in slots {
        told.extend(slot.await.expect("buyers"));
    }
    let mut holds = HashMap::new();
    let mut resolved_by_result = 0;
    for (user, answer) in &told {
        match answer {
            Told::Success(order) => {
                holds.insert(user.clone(), order.clone());
            }
            Told::Unsure => {
                resolved_by_result += 1;
                if let Some(order) = result_of(&http, &rig.front(), user).await {
                    holds.insert(user.clone(), order);
                }
            }
            Told::SoldOut => {}
        }
    }

    let central = redis_central(&rig.redis_url).await;
    drained(&central, &rig.event).await;
    let violations = check(&rig, fault, &central, &told, &holds).await;
    RoundResult {
        fault,
        buyers: told.len(),
        told_success: count(&told, |t| matches!(t, Told::Success(_))),
        told_sold_out: count(&told, |t| *t == Told::SoldOut),
        unsure_answers: progress.unsure_answers.load(Ordering::Acquire),
        resolved_by_result,
        violations,
    }
}

fn count(told: &HashMap<String, Told>, which: impl Fn(&Told) -> bool) -> usize {
    told.values().filter(|t| which(t)).count()
}

/// Waits until the writers have written and acknowledged every entry.
async fn drained(central: &RedisCentral, event: &EventId) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(backlog) = central.backlog(event).await {
            if backlog.entries == 0 && backlog.pending == 0 {
                return;
            }
        }
        assert!(
            Instant::now() < deadline,
            "the writers did not drain the stream"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every invariant of the round, as violations found (none: the round held).
async fn check(
    rig: &Rig,
    fault: Fault,
    central: &RedisCentral,
    told: &HashMap<String, Told>,
    holds: &HashMap<String, String>,
) -> Vec<String> {
    let mut violations = Vec::new();
    let sold = central
        .snapshot(&rig.event)
        .await
        .expect("central stock answers")
        .expect("the sale exists")
        .sold;
    if sold > STOCK {
        violations.push(format!("oversell: central sold {sold} of {STOCK}"));
    }
    if sold < STOCK {
        violations.push(format!("undersell: central sold {sold} of {STOCK}"));
    }
    let ledger = OrderLedger::connect(rig.database.as_str())
        .await
        .expect("ledger");
    let orders = ledger.orders_of_event(&rig.event).await.expect("orders");
    let holding: Vec<_> = orders.iter().filter(|o| o.counts_as_sold()).collect();
    if holding.len() as u64 != STOCK {
        violations.push(format!(
            "the ledger holds {} orders for {STOCK} seats",
            holding.len()
        ));
    }
    let by_user: HashMap<&str, &str> = (orders.iter())
        .filter_map(|o| Some((o.user.as_ref()?.as_str(), o.id.as_str())))
        .collect();
    if by_user.len() != orders.len() {
        violations.push("a buyer holds two orders, or an order has no buyer".into());
    }
    for (user, answer) in told {
        let held = by_user.get(user.as_str()).copied();
        match answer {
            Told::Success(order) if held != Some(order.as_str()) => violations.push(format!(
                "{user} was told success with {order}; the ledger says {held:?}"
            )),
            Told::SoldOut if held.is_some() => violations.push(format!(
                "phantom order: {user} was told sold out, holds {held:?}"
            )),
            _ => {}
        }
    }
    for (user, order) in &by_user {
        if holds.get(*user).map(String::as_str) != Some(*order) {
            violations.push(format!("{user} holds {order} and never learned it"));
        }
    }
    let told_orders: Vec<&String> = holds.values().collect();
    let distinct: HashSet<&&String> = told_orders.iter().collect();
    if distinct.len() != told_orders.len() {
        violations.push("an order id was given to two buyers".into());
    }

    // The audit agrees. The stat log is written a few milliseconds behind
    // the answers, so a node killed with `kill -9` takes its last lines
    // with it: orders without a logged answer are the only mismatch
    // allowed, and only then (the checks above hold their buyers to them).
    let (passed, table) = rig.spike_on_records(&["audit"], &[]);
    for line in table.lines().filter(|line| line.contains("orders ")) {
        if line.contains("unknown") || line.contains("without") {
            eprintln!("  audit: {}", line.trim());
        }
    }
    if !passed {
        let mismatched: Vec<&str> = (table.lines())
            .filter(|line| line.ends_with("MISMATCH"))
            .collect();
        let allowed = fault == Fault::NodeKill
            && mismatched
                .iter()
                .all(|line| line.contains("orders without a logged answer"));
        if !allowed {
            violations.push(format!("spike audit failed:\n{table}"));
        }
    }
    violations
}
