//! The order pipeline end to end, on real PostgreSQL and Redis and on the
//! embedded pair (SQLite and in-process central stock): writers that crash
//! mid-batch, payment racing expiry, expired seats sold again, Redis losing a
//! sale and `spike sale recover` rebuilding it, and `spike audit` passing on
//! all of it and failing on corrupted state.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failure

mod common;

use spike_core::Code;
use std::collections::{BTreeSet, HashSet};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{
    count, create_sale, drained, get_all_past_shedding, get_prometheus_text, named, redis_central,
    seats_settled, spawn_node, start_pipeline, Http, TestNode, OPERATOR_KEY,
};
use hyper::{Method, StatusCode};
use spike_core::order::OrderState;
use spike_core::{CentralStock, EventId, MemoryCentral, NodeId, OrderStream, SaleConfig};
use spike_orders::{audit_event, OrderLedger, Pipeline};
use spike_testkit::{free_port, unique, TestDatabase, TestRedis, TestRedisCluster};

const SPIKE: &str = env!("CARGO_BIN_EXE_spike");

fn event(tag: &str) -> EventId {
    EventId::parse(unique(tag)).expect("event id")
}

/// Runs `spike audit` and returns whether it passed (exit status 0).
fn audit_passes(redis: &str, database: &str, event: &EventId) -> bool {
    audit_passes_with(redis, database, event, &[])
}

/// Runs `spike audit` with extra arguments (e.g. `--stat-log FILE`).
fn audit_passes_with(redis: &str, database: &str, event: &EventId, extra: &[&str]) -> bool {
    let (passed, table) = audit_table(redis, database, event, extra);
    eprintln!("{table}");
    passed
}

/// Runs `spike audit` with extra arguments; returns whether it passed and
/// its table.
fn audit_table(redis: &str, database: &str, event: &EventId, extra: &[&str]) -> (bool, String) {
    let output = Command::new(SPIKE)
        .args(["audit", "--redis", redis, "--database-url", database])
        .args(["--event", event.as_str()])
        .args(extra)
        .output()
        .expect("run spike audit");
    let table = String::from_utf8_lossy(&output.stdout).to_string()
        + &String::from_utf8_lossy(&output.stderr);
    (output.status.success(), table)
}

/// Audits in this process (the embedded pair has no Redis for the binary).
async fn audit_in_process<C: CentralStock + OrderStream>(
    central: &C,
    ledger: &OrderLedger,
    event: &EventId,
) -> bool {
    let report = audit_event(central, ledger, event, None)
        .await
        .expect("audit");
    eprintln!("{report:#?}");
    report.passed()
}

async fn node_with_orders<C>(central: &C, ledger: &OrderLedger, event: &EventId) -> TestNode<C>
where
    C: CentralStock + OrderStream + Clone + std::fmt::Debug,
{
    let spec = named("n1")
        .serving(event)
        .refreshing_every(Duration::from_millis(200))
        .orders_from(ledger);
    spawn_node(central.clone(), spec).await
}

fn buy_urls(node: &TestNode<impl CentralStock>, users: std::ops::Range<u64>) -> Vec<String> {
    users
        .map(|u| node.url(&format!("/buy/ticket?user_id=u{u}")))
        .collect()
}

// ---------------------------------------------------------------- writers

fn spawn_writer(
    redis: &str,
    database: &str,
    event: &EventId,
    consumer: &str,
    metrics: u16,
) -> Child {
    Command::new(SPIKE)
        .args([
            "orders",
            "--redis",
            redis,
            "--database-url",
            database,
            "--event",
            event.as_str(),
        ])
        .args([
            "--consumer",
            consumer,
            "--batch",
            "50",
            "--claim-idle",
            "1s",
            "--no-expiry",
        ])
        .args(["--metrics-listen", &format!("127.0.0.1:{metrics}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start spike orders")
}

/// Entries pending for each consumer of the order group (XPENDING summary).
fn pending_by_consumer(redis: &TestRedis, event: &EventId) -> Vec<(String, u64)> {
    let key = format!("spike:{{{event}}}:orders");
    let reply: redis::Value = redis::cmd("XPENDING")
        .arg(&key)
        .arg(spike_redis::ORDER_GROUP)
        .query(&mut redis.connection())
        .unwrap_or(redis::Value::Nil);
    let redis::Value::Array(fields) = reply else {
        return Vec::new();
    };
    let Some(redis::Value::Array(consumers)) = fields.get(3) else {
        return Vec::new();
    };
    consumers
        .iter()
        .filter_map(|c| {
            let redis::Value::Array(pair) = c else {
                return None;
            };
            let name: String = redis::from_redis_value(pair.first()?.clone()).ok()?;
            let count: String = redis::from_redis_value(pair.get(1)?.clone()).ok()?;
            Some((name, count.parse().ok()?))
        })
        .collect()
}

fn signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_on_a_redis_cluster_writes_every_order_exactly_once() {
    // The node, the `spike orders` process and `spike audit` all take the
    // cluster's URL; the sale and its stream live in one slot.
    let cluster = TestRedisCluster::shared();
    let database = TestDatabase::postgres();
    let central = redis_central(cluster.url()).await;
    let ledger = OrderLedger::connect(database.url()).await.expect("ledger");
    let event = event("cluster-writer");
    create_sale(&central, &event, SaleConfig::new(500).expect("config")).await;
    let stat_path = std::env::temp_dir().join(format!("{}.stat.log", unique("cluster")));
    let spec = named("n1").serving(&event).stat_log(&stat_path);
    let node = spawn_node(central.clone(), spec).await;
    let mut writer = spawn_writer(
        cluster.url(),
        database.url(),
        &event,
        "writer-c",
        free_port(),
    );

    let replies = get_all_past_shedding(&Http::new(), buy_urls(&node, 0..2_000), 100).await;
    assert_eq!(count(&replies, Code::Success), 500, "exactly the stock");
    assert_eq!(count(&replies, Code::SoldOut), 1_500);
    drained(&central, &event).await;
    let _ = writer.kill();
    let _ = writer.wait();
    let orders = ledger.orders_of_event(&event).await.expect("orders");
    let sequences: BTreeSet<u64> = orders.iter().map(|o| o.sequence).collect();
    assert_eq!(sequences, (1..=500).collect(), "no duplicate, none missing");
    let sold_to: HashSet<String> = replies.iter().filter_map(common::Reply::order).collect();
    let written: HashSet<String> = orders.iter().map(|o| o.id.to_string()).collect();
    assert_eq!(
        sold_to, written,
        "every success has its order, and only those"
    );
    node.stop().await; // flushes the stat log
    let stat_arg = stat_path.to_string_lossy().into_owned();
    let with_log = ["--stat-log", stat_arg.as_str()];
    assert!(audit_passes_with(
        cluster.url(),
        database.url(),
        &event,
        &with_log
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_writers_one_killed_mid_batch_write_every_order_exactly_once() {
    let redis = TestRedis::shared_or_spawn();
    let database = TestDatabase::postgres();
    let central = redis_central(redis.url()).await;
    let ledger = OrderLedger::connect(database.url()).await.expect("ledger");
    let event = event("writers");
    create_sale(&central, &event, SaleConfig::new(1_000).expect("config")).await;
    let stat_path = std::env::temp_dir().join(format!("{}.stat.log", unique("writers")));
    let spec = named("n1")
        .serving(&event)
        .stat_log(&stat_path)
        .refreshing_every(Duration::from_secs(1));
    let node = spawn_node(central.clone(), spec).await;
    let mut doomed = spawn_writer(redis.url(), database.url(), &event, "writer-a", free_port());
    let survivor_metrics = free_port();
    let mut survivor = spawn_writer(
        redis.url(),
        database.url(),
        &event,
        "writer-b",
        survivor_metrics,
    );

    let urls = buy_urls(&node, 0..5_000);
    let buying = tokio::spawn(async move { get_all_past_shedding(&Http::new(), urls, 64).await });
    // Freeze writer A while it holds entries it has read but not acknowledged,
    // then kill it: a crash in the middle of a batch.
    let deadline = Instant::now() + Duration::from_secs(30);
    let caught = loop {
        assert!(Instant::now() < deadline, "writer A never held a batch");
        signal(&doomed, "STOP");
        let held = pending_by_consumer(&redis, &event)
            .into_iter()
            .filter(|(name, _)| name.starts_with("writer-a"))
            .map(|(_, held)| held)
            .sum::<u64>();
        if held > 0 {
            break held;
        }
        signal(&doomed, "CONT");
        tokio::time::sleep(Duration::from_millis(1)).await;
    };
    doomed.kill().expect("SIGKILL writer A");
    let _ = doomed.wait();
    eprintln!("killed writer A holding {caught} unacknowledged entries");

    let replies = buying.await.expect("buyers");
    assert_eq!(
        count(&replies, Code::Success),
        1_000,
        "exactly the stock is sold"
    );
    assert_eq!(count(&replies, Code::SoldOut), 4_000);
    drained(&central, &event).await;
    // The survivor's metrics say what it wrote and that nothing is left.
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    let text = get_prometheus_text(&format!("http://127.0.0.1:{survivor_metrics}/metrics")).await;
    let metric = |name: &str| -> f64 {
        let line = text
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("{name} in {text}"));
        line.rsplit(' ')
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or(f64::NAN)
    };
    assert!(metric("spike_orders_written_total") >= 1.0);
    assert_eq!(metric("spike_order_stream_backlog"), 0.0);
    assert_eq!(metric("spike_order_stream_pending"), 0.0);
    let _ = survivor.kill();
    let _ = survivor.wait();

    let orders = ledger.orders_of_event(&event).await.expect("orders");
    let sequences: BTreeSet<u64> = orders.iter().map(|o| o.sequence).collect();
    assert_eq!(orders.len(), 1_000, "one order per sold seat");
    assert_eq!(
        sequences,
        (1..=1_000).collect(),
        "no duplicate, none missing"
    );
    let sold_to: HashSet<String> = replies.iter().filter_map(common::Reply::order).collect();
    let written: HashSet<String> = orders.iter().map(|o| o.id.to_string()).collect();
    assert_eq!(
        sold_to, written,
        "every success has its order and no order lacks one"
    );
    assert!(
        pending_by_consumer(&redis, &event).is_empty(),
        "stream fully acknowledged"
    );
    node.stop().await; // flushes the stat log
    let stat_arg = stat_path.to_string_lossy().into_owned();
    let with_log = ["--stat-log", stat_arg.as_str()];
    assert!(audit_passes_with(
        redis.url(),
        database.url(),
        &event,
        &with_log
    ));
    let json = Command::new(SPIKE)
        .args([
            "audit",
            "--redis",
            redis.url(),
            "--database-url",
            database.url(),
        ])
        .args(["--event", event.as_str(), "--json"])
        .output()
        .expect("run spike audit --json");
    let report: serde_json::Value = serde_json::from_slice(&json.stdout).expect("JSON report");
    assert_eq!(report["passed"], true, "{report}");
    let sold_line = (report["lines"].as_array().into_iter().flatten())
        .find(|line| line["name"] == "central sold = reserved + paid + owed + unwritten")
        .cloned()
        .unwrap_or_default();
    let figures = (sold_line["actual"].as_u64(), sold_line["expected"].as_u64());
    assert_eq!(figures, (Some(1_000), Some(1_000)), "{report}");
    // An order the stat log never reported fails the audit with the log.
    let log = std::fs::read_to_string(&stat_path).expect("read stat log");
    let first_sale = log
        .lines()
        .position(|l| l.contains("code:1,"))
        .expect("a sale line");
    let kept: Vec<&str> = (log.lines().enumerate())
        .filter(|(i, _)| *i != first_sale)
        .map(|(_, l)| l)
        .collect();
    std::fs::write(&stat_path, kept.join("\n") + "\n").expect("rewrite stat log");
    assert!(!audit_passes_with(
        redis.url(),
        database.url(),
        &event,
        &with_log
    ));
    let _ = std::fs::remove_file(&stat_path);

    // A corrupted state fails the audit: central stock claims one seat more
    // than the records explain.
    let sale_key = format!("spike:{{{event}}}:sale");
    let _: i64 = redis::cmd("HINCRBY")
        .arg(&sale_key)
        .arg("sold")
        .arg(-1)
        .query(&mut redis.connection())
        .expect("corrupt");
    assert!(
        !audit_passes(redis.url(), database.url(), &event),
        "audit must catch a lost seat"
    );
}

// ------------------------------------------------- payment, expiry, resale

/// Creates a sale of `stock` seats with a payment `window`, and starts the
/// order pipeline and a node with the orders API for it.
async fn open_sale<C>(
    central: &C,
    ledger: &OrderLedger,
    event: &EventId,
    stock: u64,
    window: Duration,
) -> (Pipeline, TestNode<C>)
where
    C: CentralStock + OrderStream + Clone + std::fmt::Debug,
{
    let config = SaleConfig::new(stock)
        .expect("config")
        .with_payment_window(window)
        .expect("window");
    create_sale(central, event, config).await;
    let pipeline = start_pipeline(central, ledger, event);
    (pipeline, node_with_orders(central, ledger, event).await)
}

/// Many orders reach their deadline while their buyers pay: each order ends
/// in exactly one state, and central stock's `sold` equals the paid orders.
async fn payment_races_expiry<C>(central: C, ledger: OrderLedger, event: EventId)
where
    C: CentralStock + OrderStream + Clone + std::fmt::Debug,
{
    let window = Duration::from_millis(1_500);
    let (pipeline, node) = open_sale(&central, &ledger, &event, 200, window).await;
    let http = Http::new();
    let sold_at = Instant::now();
    let replies = get_all_past_shedding(&http, buy_urls(&node, 0..200), 32).await;
    assert_eq!(count(&replies, Code::Success), 200);
    // Payments arrive from 300 ms before to 300 ms after the deadline.
    let mut payments = Vec::new();
    for (i, reply) in replies.iter().enumerate() {
        let order = reply.order().expect("order id");
        let url = node.url(&format!("/orders/{order}/pay"));
        let at = window - Duration::from_millis(300) + Duration::from_millis(3 * i as u64);
        let http = http.clone();
        payments.push(tokio::spawn(async move {
            tokio::time::sleep(at.saturating_sub(sold_at.elapsed())).await;
            // The payment service confirms, with the operator key.
            let reply = http.send_as(Method::POST, &url, Some(OPERATOR_KEY)).await;
            (order, reply)
        }));
    }
    let mut paid = HashSet::new();
    for payment in payments {
        let (order, reply) = payment.await.expect("payment");
        match reply.status {
            StatusCode::OK => {
                assert_eq!(reply.body["data"]["state"], "paid", "{:?}", reply.body);
                paid.insert(order);
            }
            StatusCode::CONFLICT => assert_eq!(reply.code(), Code::Refused),
            other => panic!("unexpected answer to a payment: {other} {:?}", reply.body),
        }
    }
    drained(&central, &event).await;
    tokio::time::sleep(window).await;
    seats_settled(&ledger, &event).await;
    let orders = ledger.orders_of_event(&event).await.expect("orders");
    assert_eq!(orders.len(), 200);
    for order in &orders {
        let was_paid = paid.contains(order.id.as_str());
        let expected = if was_paid {
            OrderState::Paid
        } else {
            OrderState::Expired
        };
        assert_eq!(
            order.state, expected,
            "{} ended in one state, the one its buyer was told",
            order.id
        );
    }
    assert!(
        !paid.is_empty() && paid.len() < 200,
        "the race had both outcomes: {} paid",
        paid.len()
    );
    let snapshot = central
        .snapshot(&event)
        .await
        .expect("snapshot")
        .expect("sale");
    assert_eq!(snapshot.sold, paid.len() as u64, "sold = reserved + paid");
    assert!(audit_in_process(&central, &ledger, &event).await);
    pipeline.stop().await;
}

/// Unpaid orders expire, their seats are sold again to new buyers, and in
/// the end paid + reserved = stock: nothing undersold.
async fn expired_seats_are_sold_again<C>(central: C, ledger: OrderLedger, event: EventId)
where
    C: CentralStock + OrderStream + Clone + std::fmt::Debug,
{
    let window = Duration::from_millis(800);
    let (pipeline, node) = open_sale(&central, &ledger, &event, 100, window).await;
    let http = Http::new();
    let first = get_all_past_shedding(&http, buy_urls(&node, 0..300), 32).await;
    assert_eq!(count(&first, Code::Success), 100);
    let mut paid = 0;
    for reply in &first {
        if let Some(order) = reply.order().filter(|_| reply.code() == Code::Success) {
            if paid < 60 {
                // Paid at once: possibly before the writer wrote the order.
                let answer = node.pay(&order).await;
                assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
                paid += 1;
            }
        }
    }
    // The other 40 expire; their seats come back and nodes sell them again.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut resold = 0;
    let mut next_user = 1_000;
    while resold < 40 {
        assert!(
            Instant::now() < deadline,
            "only {resold} of 40 returned seats were sold again"
        );
        let wave =
            get_all_past_shedding(&http, buy_urls(&node, next_user..next_user + 20), 20).await;
        resold += count(&wave, Code::Success);
        next_user += 20;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(resold, 40, "never more than the returned seats");
    let late = get_all_past_shedding(&http, buy_urls(&node, 5_000..5_050), 10).await;
    assert_eq!(
        count(&late, Code::Success),
        0,
        "sold out once the returned seats are gone"
    );
    drained(&central, &event).await;
    // Hold every seat now: pay the resold orders before they expire too.
    let orders = ledger.orders_of_event(&event).await.expect("orders");
    let counts = ledger.counts(&event).await.expect("counts");
    assert_eq!(
        counts.paid + counts.reserved,
        100,
        "paid + reserved = stock: {counts:?}"
    );
    assert_eq!((counts.paid, counts.expired), (60, 40));
    assert_eq!(orders.len(), 140);
    let snapshot = central
        .snapshot(&event)
        .await
        .expect("snapshot")
        .expect("sale");
    assert_eq!(snapshot.sold, 100);
    assert!(audit_in_process(&central, &ledger, &event).await);
    pipeline.stop().await;
}

/// Real servers: the suite's Redis and a fresh PostgreSQL database.
struct RealPair {
    redis: TestRedis,
    database: TestDatabase,
    central: spike_redis::RedisCentral,
    ledger: OrderLedger,
}

impl RealPair {
    async fn start() -> Self {
        Self::on(TestRedis::shared_or_spawn()).await
    }

    /// The pair on `redis` (one the test owns, to restart it).
    async fn on(redis: TestRedis) -> Self {
        let database = TestDatabase::postgres();
        let central = redis_central(redis.url()).await;
        let ledger = OrderLedger::connect(database.url()).await.expect("ledger");
        Self {
            redis,
            database,
            central,
            ledger,
        }
    }

    fn audit_passes(&self, event: &EventId) -> bool {
        audit_passes(self.redis.url(), self.database.url(), event)
    }

    /// `spike audit` with extra arguments: whether it passed, and its table.
    fn audit(&self, event: &EventId, extra: &[&str]) -> (bool, String) {
        audit_table(self.redis.url(), self.database.url(), event, extra)
    }

    /// `spike sale recover` with extra arguments: whether it succeeded, and
    /// what it printed (stdout, then stderr).
    fn recover(&self, event: &EventId, extra: &[&str]) -> (bool, String) {
        let output = Command::new(SPIKE)
            .args(["sale", "recover", "--redis", self.redis.url()])
            .args([
                "--database-url",
                self.database.url(),
                "--event",
                event.as_str(),
            ])
            .args(extra)
            .output()
            .expect("run spike sale recover");
        let said = String::from_utf8_lossy(&output.stdout).to_string()
            + &String::from_utf8_lossy(&output.stderr);
        (output.status.success(), said)
    }
}

/// The embedded pair: in-process central stock and a SQLite file.
async fn embedded_pair() -> (TestDatabase, MemoryCentral, OrderLedger) {
    let database = TestDatabase::sqlite();
    let ledger = OrderLedger::connect(database.url()).await.expect("ledger");
    (database, MemoryCentral::new(), ledger)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payment_racing_expiry_on_redis_and_postgres() {
    let pair = RealPair::start().await;
    let event = event("race");
    payment_races_expiry(pair.central.clone(), pair.ledger.clone(), event.clone()).await;
    assert!(pair.audit_passes(&event));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payment_racing_expiry_embedded() {
    let (_database, central, ledger) = embedded_pair().await;
    payment_races_expiry(central, ledger, event("race")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_seats_are_sold_again_on_redis_and_postgres() {
    let pair = RealPair::start().await;
    let event = event("resale");
    expired_seats_are_sold_again(pair.central.clone(), pair.ledger.clone(), event.clone()).await;
    assert!(pair.audit_passes(&event));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_seats_are_sold_again_embedded() {
    let (_database, central, ledger) = embedded_pair().await;
    expired_seats_are_sold_again(central, ledger, event("resale")).await;
}

// ---------------------------------------------------------------- recovery

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restarted_empty_is_recovered_from_the_ledger_without_oversell() {
    let mut redis = TestRedis::spawn(); // no persistence: a restart loses everything
    let database = TestDatabase::postgres();
    let central = redis_central(redis.url()).await;
    let ledger = OrderLedger::connect(database.url()).await.expect("ledger");
    let event = event("recover");
    create_sale(&central, &event, SaleConfig::new(500).expect("config")).await;
    let pipeline = start_pipeline(&central, &ledger, &event);
    let node = node_with_orders(&central, &ledger, &event).await;
    let http = Http::new();
    let before = get_all_past_shedding(&http, buy_urls(&node, 0..200), 32).await;
    assert_eq!(count(&before, Code::Success), 200);
    drained(&central, &event).await;

    redis.kill();
    redis.start(); // same port, empty
    let refused = get_all_past_shedding(&http, buy_urls(&node, 200..230), 8).await;
    assert_eq!(
        count(&refused, Code::Success),
        0,
        "never sell from a central stock that forgot the sale"
    );
    assert!(refused
        .iter()
        .all(|r| r.status == StatusCode::SERVICE_UNAVAILABLE));
    let reason = refused[29].body["data"]["reason"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(reason.contains("no state for this sale"), "{reason}");

    let recovered_at = std::time::SystemTime::now();
    let output = Command::new(SPIKE)
        .args([
            "sale",
            "recover",
            "--redis",
            redis.url(),
            "--database-url",
            database.url(),
        ])
        .args(["--event", event.as_str()])
        .output()
        .expect("run spike sale recover");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let snapshot = central
        .snapshot(&event)
        .await
        .expect("snapshot")
        .expect("recovered");
    assert_eq!((snapshot.sold, snapshot.buyers), (200, 200));

    // Within a second the node sells again, from the rebuilt state.
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    let again = get_all_past_shedding(&http, buy_urls(&node, 0..200), 32).await;
    assert_eq!(
        count(&again, Code::AlreadyPurchased),
        200,
        "earlier buyers still hold their orders"
    );
    let after = get_all_past_shedding(&http, buy_urls(&node, 200..1_000), 32).await;
    assert_eq!(
        count(&after, Code::Success),
        300,
        "exactly the remaining seats"
    );
    drained(&central, &event).await;
    pipeline.stop().await;
    let orders = ledger.orders_of_event(&event).await.expect("orders");
    let sequences: BTreeSet<u64> = orders.iter().map(|o| o.sequence).collect();
    assert_eq!(orders.len(), 500, "final orders = stock");
    let (first_life, recovered): (Vec<u64>, Vec<u64>) =
        sequences.iter().partition(|&&sequence| sequence <= 200);
    assert_eq!(
        first_life,
        (1..=200).collect::<Vec<_>>(),
        "earlier orders kept"
    );
    assert_eq!(recovered.len(), 300, "no sequence given twice");
    let floor =
        spike_core::time::unix_millis(recovered_at) * spike_core::reconcile::SEQUENCES_PER_MS;
    assert!(
        recovered.iter().all(|&sequence| sequence > floor),
        "new orders resume past the recovery's time floor, beyond any id a lost record could hold"
    );
    assert!(audit_passes(redis.url(), database.url(), &event));
}

// ---------------------------------------------------------------- bad input

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_api_refuses_strangers_and_bad_input_and_changes_nothing() {
    let database = TestDatabase::sqlite();
    let ledger = OrderLedger::connect(database.url()).await.expect("ledger");
    let central = MemoryCentral::new();
    let event = event("bad");
    create_sale(&central, &event, SaleConfig::new(5).expect("config")).await;
    let pipeline = start_pipeline(&central, &ledger, &event);
    let node = node_with_orders(&central, &ledger, &event).await;
    let sold = node.buy("ann").await;
    let order = sold.order().expect("order");
    let key = sold.body["data"]["order_key"]
        .as_str()
        .expect("an open sale's success carries the order key")
        .to_owned();
    let other = node.buy("bob").await;
    let other_key = other.body["data"]["order_key"].as_str().unwrap().to_owned();
    drained(&central, &event).await;
    let stranger = Some("not-the-operator-key-but-long-enough-xx");
    let cases: Vec<(Method, String, Option<&str>, StatusCode, Code)> = vec![
        // Strangers: no credential, a wrong one, another order's key.
        (
            Method::GET,
            format!("/orders/{order}"),
            None,
            StatusCode::UNAUTHORIZED,
            Code::Unauthorized,
        ),
        (
            Method::GET,
            format!("/orders/{order}?user_id=ann"),
            None,
            StatusCode::UNAUTHORIZED,
            Code::Unauthorized,
        ),
        (
            Method::GET,
            format!("/orders/{order}?order_key={other_key}"),
            None,
            StatusCode::FORBIDDEN,
            Code::Refused,
        ),
        (
            Method::POST,
            format!("/orders/{order}/cancel"),
            None,
            StatusCode::UNAUTHORIZED,
            Code::Unauthorized,
        ),
        (
            Method::POST,
            format!("/orders/{order}/cancel?order_key=x"),
            None,
            StatusCode::FORBIDDEN,
            Code::Refused,
        ),
        (
            Method::POST,
            format!("/orders/{order}/pay"),
            None,
            StatusCode::UNAUTHORIZED,
            Code::Unauthorized,
        ),
        (
            Method::POST,
            format!("/orders/{order}/pay?user_id=ann"),
            None,
            StatusCode::UNAUTHORIZED,
            Code::Unauthorized,
        ),
        (
            Method::POST,
            format!("/orders/{order}/pay?order_key={key}"),
            None,
            StatusCode::UNAUTHORIZED,
            Code::Unauthorized,
        ),
        (
            Method::POST,
            format!("/orders/{order}/pay"),
            stranger,
            StatusCode::FORBIDDEN,
            Code::Refused,
        ),
        // The operator key counts only as a header, never from a URL.
        (
            Method::POST,
            format!("/orders/{order}/pay?token={OPERATOR_KEY}"),
            None,
            StatusCode::FORBIDDEN,
            Code::Refused,
        ),
        (
            Method::GET,
            "/users/ann/orders".into(),
            None,
            StatusCode::UNAUTHORIZED,
            Code::Unauthorized,
        ),
        (
            Method::GET,
            "/users/ann/orders".into(),
            stranger,
            StatusCode::FORBIDDEN,
            Code::Refused,
        ),
        // Bad input.
        (
            Method::POST,
            format!("/orders/{order}/pay?user_id=a%20b"),
            None,
            StatusCode::BAD_REQUEST,
            Code::Refused,
        ),
        (
            Method::GET,
            format!("/orders/{order}/pay"),
            Some(OPERATOR_KEY),
            StatusCode::METHOD_NOT_ALLOWED,
            Code::Refused,
        ),
        (
            Method::POST,
            format!("/orders/{order}"),
            Some(OPERATOR_KEY),
            StatusCode::METHOD_NOT_ALLOWED,
            Code::Refused,
        ),
        (
            Method::POST,
            "/orders/bad%20id/pay".into(),
            Some(OPERATOR_KEY),
            StatusCode::BAD_REQUEST,
            Code::Refused,
        ),
        (
            Method::POST,
            format!("/orders/{event}-999/pay"),
            Some(OPERATOR_KEY),
            StatusCode::NOT_FOUND,
            Code::Refused,
        ),
        (
            Method::POST,
            format!("/orders/{order}/return"),
            Some(OPERATOR_KEY),
            StatusCode::NOT_FOUND,
            Code::Refused,
        ),
        (
            Method::GET,
            "/orders/nope".into(),
            None,
            StatusCode::NOT_FOUND,
            Code::Refused,
        ),
        (
            Method::POST,
            format!("/orders/{order}/refund"),
            Some(OPERATOR_KEY),
            StatusCode::CONFLICT,
            Code::Refused,
        ),
        (
            Method::GET,
            format!("/users/{}/orders", "u".repeat(65)),
            None,
            StatusCode::BAD_REQUEST,
            Code::Refused,
        ),
    ];
    let http = Http::new();
    // The same, at the node and through the front door.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream = spike_front::Upstream {
        address: node.addr().to_string(),
        weight: std::num::NonZeroU32::MIN,
    };
    let front =
        spike_front::serve_front(listener, spike_front::FrontConfig::new(vec![upstream])).unwrap();
    let bases = [node.url(""), format!("http://{}", front.addr())];
    for base in &bases {
        for (method, path, bearer, status, code) in &cases {
            let url = format!("{base}{path}");
            let reply = http.send_as(method.clone(), &url, *bearer).await;
            assert_eq!(reply.status, *status, "{method} {url}: {:?}", reply.body);
            assert_eq!(reply.code(), *code, "{method} {url}: {:?}", reply.body);
        }
    }
    front.shutdown().await;
    let shown = node.get(&format!("/orders/{order}?order_key={key}")).await;
    assert_eq!(shown.body["data"]["state"], "reserved", "nothing changed");
    assert_eq!(shown.body["data"]["user_id"], "ann");
    let snapshot = central
        .snapshot(&event)
        .await
        .expect("snapshot")
        .expect("sale");
    assert_eq!(snapshot.sold, 2);
    // The payment service pays, twice with the same answer; then the buyer
    // cannot cancel a paid order.
    for _ in 0..2 {
        let paid = node.pay(&order).await;
        assert_eq!(
            (paid.status, paid.body["data"]["state"].clone()),
            (StatusCode::OK, "paid".into())
        );
    }
    let cancel = node.cancel(&order, &key).await;
    assert_eq!(cancel.status, StatusCode::CONFLICT);
    // Bob cancels his own order with his key; his seat goes back.
    let cancelled = node.cancel(&other.order().unwrap(), &other_key).await;
    assert_eq!(
        cancelled.body["data"]["state"], "cancelled",
        "{:?}",
        cancelled.body
    );
    let listed = http
        .send_as(
            Method::GET,
            &node.url("/users/ann/orders"),
            Some(OPERATOR_KEY),
        )
        .await;
    assert_eq!(listed.body["data"].as_array().map(Vec::len), Some(1));
    pipeline.stop().await;
}

#[tokio::test]
async fn a_node_without_a_ledger_says_how_to_turn_the_orders_api_on() {
    let central = MemoryCentral::new();
    let event = event("off");
    create_sale(&central, &event, SaleConfig::new(5).expect("config")).await;
    let node = spawn_node(
        central,
        named("n1")
            .serving(&event)
            .refreshing_every(Duration::from_secs(1)),
    )
    .await;
    let reply = Http::new().get(&node.url("/orders/x-1")).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    let message = reply.body["msg"].as_str().unwrap_or_default();
    assert!(message.contains("--database-url"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_finds_each_violation_planted_by_hand() {
    let pair = RealPair::start().await;
    let (central, ledger) = (&pair.central, &pair.ledger);
    let event = event("planted");
    create_sale(central, &event, SaleConfig::new(10).expect("config")).await;
    let pipeline = start_pipeline(central, ledger, &event);
    let dir = std::env::temp_dir().join(unique("planted"));
    std::fs::create_dir_all(&dir).unwrap();
    let stat = dir.join("stat.log");
    let spec = named("n1")
        .serving(&event)
        .stat_log(&stat)
        .orders_from(ledger);
    let node = spawn_node(central.clone(), spec).await;
    let alice = node.buy("alice").await.order().expect("alice's order");
    let bob = node.buy("bob").await.order().expect("bob's order");
    drained(central, &event).await;
    node.stop().await;
    pipeline.stop().await;
    let honest = std::fs::read_to_string(&stat).unwrap();
    let (passed, table) = pair.audit(&event, &["--stat-log", stat.to_str().unwrap()]);
    assert!(passed, "the honest records agree:\n{table}");

    let bob_line = honest.lines().find(|line| line.contains(&bob)).unwrap();
    let plants = [
        (
            "a confirmed sale without its order",
            bob_line.replace(&bob, &format!("{event}-999")),
            vec!["logged sales without an order"],
        ),
        (
            "an order id told to two buyers",
            bob_line.replace("user:bob", "user:mallory"),
            vec![
                "order ids held by two buyers",
                "buyers told success whose seat another holds",
            ],
        ),
        (
            "a buyer told success whose seat another holds",
            bob_line.replace(&bob, &alice),
            vec![
                "order ids held by two buyers",
                "buyers told success whose seat another holds",
            ],
        ),
        (
            "a phantom order: its request told sold out",
            bob_line
                .replace("result:1,", "result:0,")
                .replace(",code:1,", ",code:-1,")
                .replace(&format!("order:{bob}"), "order:-"),
            vec!["buyers told sold out who hold an order"],
        ),
    ];
    for (what, planted, found) in plants {
        let path = dir.join("planted.log");
        std::fs::write(&path, format!("{honest}{planted}\n")).unwrap();
        let (passed, table) = pair.audit(&event, &["--stat-log", path.to_str().unwrap()]);
        assert!(!passed, "{what} is found:\n{table}");
        let mismatched: Vec<&str> = table
            .lines()
            .filter(|line| line.ends_with("MISMATCH"))
            .map(|line| {
                line.split("  ")
                    .find(|part| !part.trim().is_empty())
                    .unwrap_or("")
                    .trim()
            })
            .collect();
        assert_eq!(mismatched, found, "{what}:\n{table}");
    }

    // Central stock corrupted by hand, each undone before the next.
    let keys = spike_redis::EventKeys::new(&event);
    let redis_plants: [RedisPlant; 4] = [
        RedisPlant {
            what: "oversell: central sold beyond its seats",
            plant: strings(&["HSET", &keys.sale, "sold", "11"]),
            undo: strings(&["HSET", &keys.sale, "sold", "2"]),
            found: vec![
                "central sold beyond total",
                "central sold = reserved + paid + owed + unwritten",
            ],
        },
        RedisPlant {
            what: "oversell to come: a seat an order holds, free again in central stock",
            plant: strings(&["HINCRBY", &keys.sale, "sold", "-1"]),
            undo: strings(&["HINCRBY", &keys.sale, "sold", "1"]),
            found: vec!["central sold = reserved + paid + owed + unwritten"],
        },
        RedisPlant {
            what: "undersell: a seat counted sold that no order holds",
            plant: strings(&["HINCRBY", &keys.sale, "sold", "1"]),
            undo: strings(&["HINCRBY", &keys.sale, "sold", "-1"]),
            found: vec!["central sold = reserved + paid + owed + unwritten"],
        },
        RedisPlant {
            what: "a duplicate id: bob's order id sold again to mallory",
            plant: strings(&[
                "XADD",
                &keys.orders,
                "1000-0",
                "order",
                &bob,
                "user",
                "mallory",
                "request",
                "mallory-1",
                "node",
                "n1",
                "sold_at_ms",
                "1",
            ]),
            undo: strings(&["XDEL", &keys.orders, "1000-0"]),
            found: vec!["order ids sold twice"],
        },
    ];
    let mut redis = pair.redis.connection();
    for RedisPlant {
        what,
        plant,
        undo,
        found,
    } in redis_plants
    {
        let _: redis::Value = redis::cmd(&plant[0])
            .arg(&plant[1..])
            .query(&mut redis)
            .unwrap();
        let (passed, table) = pair.audit(&event, &[]);
        assert!(!passed, "{what} is found:\n{table}");
        let mismatched: Vec<&str> = (table.lines())
            .filter(|line| line.ends_with("MISMATCH"))
            .map(|line| {
                line.split("  ")
                    .find(|p| !p.trim().is_empty())
                    .unwrap_or("")
                    .trim()
            })
            .collect();
        assert_eq!(mismatched, found, "{what}:\n{table}");
        let _: redis::Value = redis::cmd(&undo[0])
            .arg(&undo[1..])
            .query(&mut redis)
            .unwrap();
        let (passed, table) = pair.audit(&event, &[]);
        assert!(passed, "undone:\n{table}");
    }
}

/// A corruption of central stock: the command that plants it, the one that
/// undoes it, and the audit lines that must then fail.
struct RedisPlant {
    what: &'static str,
    plant: Vec<String>,
    undo: Vec<String>,
    found: Vec<&'static str>,
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|a| (*a).to_owned()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovery_refuses_while_nodes_are_selling() {
    let pair = RealPair::start().await;
    let central = &pair.central;
    let event = event("selling");
    create_sale(central, &event, SaleConfig::new(100_000).expect("config")).await;
    let node = node_with_orders(central, &pair.ledger, &event).await;
    let buying = {
        let urls = buy_urls(&node, 0..3_000);
        tokio::spawn(async move {
            for url in urls {
                let _ = Http::new().get(&url).await;
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let sold_before = central.snapshot(&event).await.unwrap().unwrap().sold;
    let (recovered, stderr) = pair.recover(&event, &["--quiet-for", "1s"]);
    assert!(!recovered, "refused while selling");
    assert!(stderr.contains("still changing"), "{stderr}");
    assert!(
        stderr.contains("--while-selling"),
        "says how to insist: {stderr}"
    );
    buying.abort();
    let sold_after = central.snapshot(&event).await.unwrap().unwrap().sold;
    assert!(sold_after > sold_before, "the sale went on, untouched");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_a_writer_read_before_redis_lost_them_stay_out_after_recovery() {
    let mut pair = RealPair::on(TestRedis::spawn()).await;
    let (central, ledger) = (pair.central.clone(), pair.ledger.clone());
    let event = event("stale");
    let config = SaleConfig::new(10).expect("config");
    create_sale(&central, &event, config.clone()).await;
    ledger.record_sale(&event, &config).await.expect("rules");
    let node = node_with_orders(&central, &ledger, &event).await;
    let http = Http::new();
    let first = get_all_past_shedding(&http, buy_urls(&node, 0..3), 3).await;
    assert_eq!(count(&first, Code::Success), 3);
    // A writer reads the three entries, then stalls before writing them.
    let stalled = NodeId::parse("stalled-writer").expect("id");
    let stale = central.read_new(&event, &stalled, 10).await.expect("read");
    assert_eq!(stale.len(), 3);

    pair.redis.kill();
    pair.redis.start(); // same port, empty: no record left holds the three
    let (recovered, said) = pair.recover(&event, &[]);
    assert!(recovered, "{said}");
    assert!(said.contains("0 seats held"), "{said}");

    // The writer wakes up: central stock no longer counts those seats, so
    // writing them would sell each twice.
    let now_ms = spike_core::time::unix_millis(std::time::SystemTime::now());
    let inserted = ledger
        .insert(&stale, config.payment_window(), now_ms)
        .await
        .expect("insert");
    assert_eq!((inserted.written, inserted.fenced.len()), (0, 3));
    assert!(ledger.orders_of_event(&event).await.unwrap().is_empty());

    // The new life sells its ten seats and writes them.
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    let pipeline = start_pipeline(&central, &ledger, &event);
    let again = get_all_past_shedding(&http, buy_urls(&node, 100..130), 8).await;
    assert_eq!(count(&again, Code::Success), 10);
    drained(&central, &event).await;
    pipeline.stop().await;
    assert_eq!(ledger.orders_of_event(&event).await.unwrap().len(), 10);
    assert!(pair.audit_passes(&event));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sales_only_the_stat_logs_hold_are_recovered_from_them() {
    // Its own Redis, without persistence: a restart loses everything.
    let mut pair = RealPair::on(TestRedis::spawn()).await;
    let (central, ledger) = (pair.central.clone(), pair.ledger.clone());
    let event = event("fromlogs");
    let config = SaleConfig::new(50).expect("config");
    create_sale(&central, &event, config.clone()).await;
    ledger.record_sale(&event, &config).await.expect("rules");
    let dir = std::env::temp_dir().join(unique("fromlogs"));
    std::fs::create_dir_all(&dir).unwrap();
    let first_log = dir.join("first.log");
    // No writer runs: every sale lives only in Redis and the stat log.
    let spec = named("n1").serving(&event).stat_log(&first_log);
    let node = spawn_node(central.clone(), spec).await;
    let http = Http::new();
    let with_request_ids = |node: &TestNode<_>| -> Vec<String> {
        (0..20)
            .map(|u| node.url(&format!("/buy/ticket?user_id=u{u}&request_id=r{u}")))
            .collect()
    };
    let first = get_all_past_shedding(&http, with_request_ids(&node), 8).await;
    assert_eq!(count(&first, Code::Success), 20);
    node.stop().await;

    pair.redis.kill();
    pair.redis.start(); // same port, empty: the 20 sales are gone from Redis
    let (recovered, said) = pair.recover(&event, &["--stat-log", first_log.to_str().unwrap()]);
    assert!(recovered, "{said}");
    assert!(
        said.contains("20 of them written now from the stat logs only"),
        "{said}"
    );

    let pipeline = start_pipeline(&central, &ledger, &event);
    let second_log = dir.join("second.log");
    let spec = named("n2")
        .serving(&event)
        .stat_log(&second_log)
        .orders_from(&ledger);
    let node = spawn_node(central.clone(), spec).await;
    let again = get_all_past_shedding(&http, buy_urls(&node, 0..20), 8).await;
    for (before, after) in first.iter().zip(&again) {
        assert_eq!(after.code(), Code::AlreadyPurchased, "{after:?}");
        assert_eq!(after.order(), before.order(), "the same order, kept");
    }
    // Each buyer retries with its request id and the order key its first
    // answer carried (the proof of an open sale's order).
    let proved: Vec<String> = (first.iter().zip(with_request_ids(&node)))
        .map(|(before, url)| {
            format!(
                "{url}&order_key={}",
                before.body["data"]["order_key"].as_str().unwrap()
            )
        })
        .collect();
    let retried = get_all_past_shedding(&http, proved, 8).await;
    for (before, retry) in first.iter().zip(&retried) {
        assert_eq!(retry.code(), Code::Success, "{retry:?}");
        assert_eq!(
            retry.order(),
            before.order(),
            "a retry with its request id finds its order"
        );
    }
    let rest = get_all_past_shedding(&http, buy_urls(&node, 20..100), 8).await;
    assert_eq!(
        count(&rest, Code::Success),
        30,
        "exactly the remaining seats"
    );
    drained(&central, &event).await;
    node.stop().await;
    pipeline.stop().await;
    let logs = [
        "--stat-log",
        first_log.to_str().unwrap(),
        "--stat-log",
        second_log.to_str().unwrap(),
    ];
    let (passed, table) = pair.audit(&event, &logs);
    assert!(passed, "{table}");
}
