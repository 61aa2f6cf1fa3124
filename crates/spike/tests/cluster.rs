//! The cluster end to end: real nginx (from the configuration `spike
//! nginx-conf` prints) and the embedded front door splitting load 1:2:3:4,
//! four `spike node` processes on one real Redis, a node killed with SIGKILL
//! mid-sale and restarted, and `spike demo`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failure

mod common;

use std::num::NonZeroU32;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{create_sale, demo_report, named, redis_central, spawn_node};
use spike_bench::{BenchConfig, Target};
use spike_core::{EventId, MemoryCentral, SaleConfig};
use spike_front::nginx::{render, NginxOptions};
use spike_front::{serve_front, FrontConfig, Upstream};
use spike_testkit::{free_port, unique, TestNginx, TestRedis};
use tokio::net::TcpListener;

const SPIKE: &str = env!("CARGO_BIN_EXE_spike");

fn upstream(port: u16, weight: u32) -> Upstream {
    Upstream {
        address: format!("127.0.0.1:{port}"),
        weight: NonZeroU32::new(weight).expect("weight"),
    }
}

fn nginx_config(listen_port: u16, upstreams: &[Upstream]) -> String {
    let options = NginxOptions {
        listen: format!("127.0.0.1:{listen_port}"),
        // One worker: nginx keeps one round-robin position per worker.
        workers: "1".into(),
        access_log: false,
        max_in_flight_per_node: spike_front::DEFAULT_MAX_IN_FLIGHT_PER_UPSTREAM.get(),
    };
    render(&options, upstreams)
}

async fn load(url: String, users: u64, connections: usize) -> spike_bench::run::RunData {
    let target: Target = url.parse().expect("target URL");
    let mut config = BenchConfig::new(target, users, connections);
    config.progress = false;
    spike_bench::run(&config).await.expect("load runs")
}

/// Four embedded nodes on one central stock, weights 1..=4; returns their upstreams.
async fn four_embedded_nodes(
    event: &EventId,
) -> (Vec<common::TestNode<MemoryCentral>>, Vec<Upstream>) {
    let central = MemoryCentral::new();
    create_sale(&central, event, SaleConfig::new(100_000).expect("config")).await;
    let mut nodes = Vec::new();
    let mut upstreams = Vec::new();
    for n in 1..=4u32 {
        let node = spawn_node(central.clone(), named(&format!("n{n}")).serving(event)).await;
        upstreams.push(upstream(node.addr().port(), n));
        nodes.push(node);
    }
    (nodes, upstreams)
}

fn assert_split_1_2_3_4(data: &spike_bench::run::RunData) {
    let count = |node: &str| data.by_node.get(node).copied().unwrap_or(0);
    let split = [count("n1"), count("n2"), count("n3"), count("n4")];
    assert_eq!(split, [100, 200, 300, 400], "the articles' 1:2:3:4 check");
    assert_eq!(data.errors, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_nginx_splits_1000_requests_exactly_1_2_3_4() {
    let event = EventId::parse(unique("nginx")).expect("event");
    let (_nodes, upstreams) = four_embedded_nodes(&event).await;
    let port = free_port();
    let _nginx = TestNginx::start(&nginx_config(port, &upstreams), port);
    let data = load(format!("http://127.0.0.1:{port}/buy/ticket"), 1000, 10).await;
    assert_split_1_2_3_4(&data);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_front_splits_1000_requests_exactly_1_2_3_4() {
    let event = EventId::parse(unique("front")).expect("event");
    let (_nodes, upstreams) = four_embedded_nodes(&event).await;
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let front = serve_front(listener, FrontConfig::new(upstreams)).expect("front");
    let data = load(format!("http://{}/buy/ticket", front.addr()), 1000, 10).await;
    assert_split_1_2_3_4(&data);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_front_skips_a_node_that_refuses_connections() {
    let event = EventId::parse(unique("skip")).expect("event");
    let (nodes, mut upstreams) = four_embedded_nodes(&event).await;
    upstreams.push(upstream(free_port(), 5)); // nobody listens there
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let front = serve_front(listener, FrontConfig::new(upstreams)).expect("front");
    let data = load(format!("http://{}/buy/ticket", front.addr()), 1000, 10).await;
    assert_eq!(data.errors, 0, "every request found a live node");
    assert_eq!(data.by_code.get(&1).copied(), Some(1000));
    assert_eq!(data.by_status.get(&200).copied(), Some(1000));
    drop(nodes);
}

/// A `spike node` process.
struct NodeProcess {
    child: Child,
    port: u16,
}

impl NodeProcess {
    fn start(redis_url: &str, event: &EventId, name: &str, port: u16) -> Self {
        let child = Command::new(SPIKE)
            .args([
                "node",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--redis",
                redis_url,
            ])
            .args([
                "--event",
                event.as_str(),
                "--node-id",
                name,
                "--no-stat-log",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start spike node");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "node {name} did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Self { child, port }
    }

    fn kill_9(&mut self) {
        let _ = self.child.kill(); // SIGKILL
        let _ = self.child.wait();
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        self.kill_9();
    }
}

fn sold(redis: &TestRedis, event: &EventId) -> (u64, u64) {
    let keys = spike_redis::EventKeys::new(event);
    let mut connection = redis.connection();
    let sold: u64 = redis::cmd("HGET")
        .arg(&keys.sale)
        .arg("sold")
        .query(&mut connection)
        .expect("sold");
    let buyers: u64 = redis::cmd("HLEN")
        .arg(&keys.buyers)
        .query(&mut connection)
        .expect("buyers");
    (sold, buyers)
}

/// Four node processes on one Redis behind real nginx, weights 1:2:3:4.
async fn cluster(redis: &TestRedis, event: &EventId) -> (Vec<NodeProcess>, TestNginx, u16) {
    let central = redis_central(redis.url()).await;
    create_sale(&central, event, SaleConfig::new(1000).expect("config")).await;
    let nodes: Vec<NodeProcess> = (1..=4)
        .map(|n| NodeProcess::start(redis.url(), event, &format!("n{n}"), free_port()))
        .collect();
    let upstreams: Vec<Upstream> = nodes
        .iter()
        .zip(1..)
        .map(|(node, weight)| upstream(node.port, weight))
        .collect();
    let port = free_port();
    let nginx = TestNginx::start(&nginx_config(port, &upstreams), port);
    (nodes, nginx, port)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_node_processes_behind_nginx_sell_exactly_the_stock() {
    let redis = TestRedis::shared_or_spawn();
    let event = EventId::parse(unique("cluster")).expect("event");
    let (_nodes, _nginx, port) = cluster(&redis, &event).await;
    let data = load(format!("http://127.0.0.1:{port}/buy/ticket"), 20_000, 100).await;
    assert_eq!(data.errors, 0);
    assert_eq!(
        data.by_code.get(&1).copied(),
        Some(1000),
        "exactly the stock sold"
    );
    assert_eq!(data.by_code.get(&-1).copied(), Some(19_000));
    let orders: std::collections::HashSet<_> = data.successes.iter().map(|(_, o)| o).collect();
    assert_eq!(orders.len(), 1000, "no order twice");
    assert_eq!(
        sold(&redis, &event),
        (1000, 1000),
        "central sold, and no user twice"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_mid_sale_leaves_no_seat_unsold_and_rejoins_cleanly() {
    let redis = TestRedis::shared_or_spawn();
    let event = EventId::parse(unique("kill")).expect("event");
    let (mut nodes, _nginx, port) = cluster(&redis, &event).await;
    let url = format!("http://127.0.0.1:{port}/buy/ticket");
    let target: Target = url.parse().expect("target");
    let mut config = BenchConfig::new(target, 20_000, 50);
    config.progress = false;
    config.rate = Some(4000.0); // 5 s of buyers, so the sale is still going when a node dies
    let buyers = tokio::spawn(async move { spike_bench::run(&config).await.expect("load runs") });

    // Kill the weight-3 node once 30 % of the seats are sold: the sale is in
    // full swing (after 30 % of the *requests* it would long be sold out).
    let deadline = Instant::now() + Duration::from_secs(20);
    while sold(&redis, &event).0 < 300 {
        assert!(Instant::now() < deadline, "sale did not progress");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let killed_port = nodes[2].port;
    nodes[2].kill_9();
    let sold_at_kill = sold(&redis, &event).0;
    assert!(
        sold_at_kill < 1000,
        "the node died mid-sale ({sold_at_kill} sold)"
    );

    let data = buyers.await.expect("load task");
    assert_eq!(
        sold(&redis, &event),
        (1000, 1000),
        "every seat sold once, no user twice"
    );
    let answered_orders: std::collections::HashSet<_> =
        data.successes.iter().map(|(_, o)| o).collect();
    assert_eq!(
        answered_orders.len(),
        data.successes.len(),
        "no order answered twice"
    );
    assert!(data.successes.len() <= 1000);
    assert!(
        data.by_node.get("n3").copied().unwrap_or(0) < 6000,
        "n3 stopped answering"
    );

    // The killed node restarts on its port and rejoins: nothing is counted twice.
    nodes[2] = NodeProcess::start(redis.url(), &event, "n3", killed_port);
    // nginx retries a failed node after its fail_timeout (2 s).
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let target: Target = url.parse().expect("target");
    let mut config = BenchConfig::new(target, 1000, 20);
    config.progress = false;
    config.user_offset = 100_000;
    let late = spike_bench::run(&config).await.expect("second wave");
    assert_eq!(
        late.by_code.get(&-1).copied(),
        Some(1000),
        "sold out everywhere, restarted node too"
    );
    assert!(
        late.by_node.get("n3").copied().unwrap_or(0) > 0,
        "the restarted node serves again"
    );
    assert_eq!(sold(&redis, &event), (1000, 1000));
}

#[test]
fn spike_demo_sells_exactly_its_stock_split_1_2_3_4() {
    let demo = demo_report(&["--users", "20000", "--stock", "1000"]);
    assert_eq!(demo["all_invariants_held"], true);
    let report = &demo["report"];
    assert_eq!(report["central"]["sold"], 1000);
    assert_eq!(report["answers_by_code"]["1"], 1000);
    assert_eq!(report["answers_by_code"]["-1"], 19_000);
    let nodes = &report["nodes"];
    assert_eq!(
        [&nodes["n1"], &nodes["n2"], &nodes["n3"], &nodes["n4"]],
        [2000, 4000, 6000, 8000]
    );
    let per_node: u64 = demo["sales_per_node"]
        .as_object()
        .expect("map")
        .values()
        .filter_map(|v| v.as_u64())
        .sum();
    assert_eq!(per_node, 1000);
    assert!(report["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .all(|c| c["passed"] == true));
}

#[test]
fn spike_demo_stampede_sells_exactly_its_stock_and_answers_everyone() {
    // Small, and short (the suite runs the chaos test beside it): 12,000
    // users arriving at 12,000/s over 300 connections.
    let demo = demo_report(&[
        "--stampede",
        "--users",
        "12000",
        "--rate",
        "12000",
        "--connections",
        "300",
        "--stock",
        "1000",
    ]);
    assert_eq!(demo["all_invariants_held"], true);
    let report = &demo["report"];
    assert_eq!(report["central"]["sold"], 1000, "exactly the stock");
    assert_eq!(report["answered"], 12_000, "everyone answered");
    assert_eq!(report["transport_errors"], 0);
    let stampede = &demo["stampede"];
    assert_eq!(stampede["offered_per_second"], 12_000.0);
    let peak = stampede["peak_sold_per_second"].as_u64().expect("peak");
    assert!((1..=1000).contains(&peak), "{stampede}");
    let seconds = report["timeline"].as_array().expect("timeline");
    let sold: u64 = seconds.iter().filter_map(|s| s["successes"].as_u64()).sum();
    let shed: u64 = seconds.iter().filter_map(|s| s["shed"].as_u64()).sum();
    assert_eq!(sold, 1000, "the seconds add up to the sales");
    assert_eq!(
        shed,
        report["answers_by_code"]["-5"].as_u64().unwrap_or(0),
        "and to the shed answers"
    );
}
