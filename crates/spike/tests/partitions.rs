//! Partitions between real hosts: network namespaces for Redis and two
//! nodes, on a front network (clients to nodes) and a back network (nodes to
//! Redis); the test process is the load host on both. Mid-sale one node is
//! cut off from Redis (its back link goes down): it answers 503, never a
//! success it cannot prove, while the other node sells on; after the link
//! heals, the node sells again by itself and every seat is sold exactly once.
//! Separately, 50 ms each way on a node's path to Redis (a delaying relay:
//! this kernel has no `netem`) slows its sales but changes no outcome.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failure

mod common;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::process::Child;
use std::time::{Duration, Instant};

use common::*;
use hyper::StatusCode;
use spike_core::{CentralStock, EventId, SaleConfig};
use spike_testkit::{unique, DelayRelay, Net, TestHost, TestNetwork};

const SPIKE: &str = env!("CARGO_BIN_EXE_spike");
const SEATS: u64 = 1_000;

/// A process killed (and reaped) on drop.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits (bounded) until something listens at `addr`.
async fn wait_listening(addr: SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while tokio::net::TcpStream::connect(addr).await.is_err() {
        assert!(Instant::now() < deadline, "nothing listens at {addr}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A throwaway Redis in `host`, on its back address.
async fn redis_in(host: &TestHost) -> (Running, SocketAddr) {
    let ip = host.back.unwrap();
    let ip_text = ip.to_string();
    let child = host.spawn(
        "redis-server",
        &[
            "--bind",
            &ip_text,
            "--port",
            "6379",
            "--protected-mode",
            "no",
            "--save",
            "",
            "--appendonly",
            "no",
        ],
    );
    let addr = SocketAddr::from((ip, 6379));
    wait_listening(addr).await;
    (Running(child), addr)
}

/// A `spike node` in `host`, serving `event` from Redis at `redis`.
async fn node_in(
    host: &TestHost,
    name: &str,
    redis: SocketAddr,
    event: &EventId,
) -> (Running, String) {
    let front = host.front.unwrap();
    let listen = format!("{front}:8080");
    // Order keys (and so request keys) made with one secret on every node.
    let keys = std::env::temp_dir().join(unique("order-keys"));
    std::fs::write(&keys, "the-partition-tests-order-key-secret-of-all-nodes\n").unwrap();
    let keys = keys.display().to_string();
    let child = host.spawn(
        SPIKE,
        &[
            "node",
            "--listen",
            &listen,
            "--redis",
            &format!("redis://{redis}"),
            "--event",
            event.as_str(),
            "--node-id",
            name,
            "--no-stat-log",
            "--order-key-file",
            &keys,
        ],
    );
    wait_listening(listen.parse().unwrap()).await;
    (Running(child), format!("http://{listen}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_cut_off_from_redis_never_claims_a_sale_and_every_seat_sells_once() {
    let mut network = TestNetwork::new();
    let redis_host = network.host("redis", &[Net::Back]);
    let host1 = network.host("n1", &[Net::Front, Net::Back]);
    let host2 = network.host("n2", &[Net::Front, Net::Back]);
    let (_redis, redis_addr) = redis_in(&redis_host).await;
    let central = redis_central(&format!("redis://{redis_addr}")).await;
    let event = EventId::parse(unique("cut")).unwrap();
    create_sale(&central, &event, SaleConfig::new(SEATS).unwrap()).await;
    let (_n1, url1) = node_in(&host1, "n1", redis_addr, &event).await;
    let (_n2, url2) = node_in(&host2, "n2", redis_addr, &event).await;
    let http = Http::new();
    let buy =
        |base: &str, user: &str| format!("{base}/buy/ticket?user_id={user}&request_id=r-{user}");
    let mut told_success = Vec::new();

    // Both nodes sell.
    let urls = (0..200)
        .map(|u| buy(if u % 2 == 0 { &url1 } else { &url2 }, &format!("a{u}")))
        .collect();
    let replies = get_all(&http, urls, 16).await;
    assert_eq!(count(&replies, Code::Success), 200);
    told_success.extend(replies.iter().filter_map(|r| r.order()));

    // n1 is cut off from Redis, not from its clients.
    host1.cut(Net::Back);
    let cut_users: Vec<String> = (0..40).map(|u| format!("c{u}")).collect();
    // Their purchases carry no request id: the node makes one, and its 503
    // gives it with the request key that proves the retry theirs.
    let urls = (cut_users.iter())
        .map(|user| format!("{url1}/buy/ticket?user_id={user}"))
        .collect();
    let during = get_all(&http, urls, 8).await;
    for reply in &during {
        assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE, "{reply:?}");
        assert_eq!(
            reply.code(),
            Code::TryAgain,
            "never a success it cannot prove"
        );
    }
    // n2 sells on meanwhile.
    let urls = (0..100).map(|u| buy(&url2, &format!("b{u}"))).collect();
    let replies = get_all(&http, urls, 16).await;
    assert_eq!(
        count(&replies, Code::Success),
        100,
        "the other node sells on"
    );
    told_success.extend(replies.iter().filter_map(|r| r.order()));

    // Healed: n1 sells again by itself; the cut-off buyers retry with their
    // request ids and keys and get their true outcome.
    host1.heal(Net::Back);
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut retried = Vec::new();
    for (user, unsure) in cut_users.iter().zip(&during) {
        let data = &unsure.body["data"];
        // A purchase that waited behind the stuck call was never sent (shed:
        // no request id, nothing sold): its buyer simply buys again.
        let retry = match data["request_id"].as_str() {
            Some(request) => format!(
                "{url1}/buy/ticket?user_id={user}&request_id={request}&request_key={}",
                data["request_key"].as_str().expect("request key")
            ),
            None => {
                let reason = data["reason"].as_str().unwrap_or_default();
                assert!(reason.contains("nothing was sold"), "{unsure:?}");
                format!("{url1}/buy/ticket?user_id={user}")
            }
        };
        loop {
            let reply = http.get(&retry).await;
            if reply.code() != Code::TryAgain {
                retried.push(reply);
                break;
            }
            assert!(Instant::now() < deadline, "n1 never came back: {reply:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    assert_eq!(count(&retried, Code::Success), cut_users.len());
    told_success.extend(retried.iter().filter_map(|r| r.order()));

    // The rest of the sale, through both nodes, past sell-out.
    let urls = (0..1_000)
        .map(|u| buy(if u % 2 == 0 { &url1 } else { &url2 }, &format!("d{u}")))
        .collect();
    let rest = get_all(&http, urls, 16).await;
    assert_eq!(
        count(&rest, Code::Success) + count(&rest, Code::SoldOut),
        rest.len()
    );
    told_success.extend(rest.iter().filter_map(|r| r.order()));

    let snapshot = central.snapshot(&event).await.unwrap().unwrap();
    assert_eq!(snapshot.sold, SEATS, "sold out: no seat left unsold");
    assert_eq!(snapshot.orders_in_stream, SEATS, "one order per seat");
    let distinct: HashSet<_> = told_success.iter().collect();
    assert_eq!(distinct.len(), told_success.len(), "no order told twice");
    assert_eq!(
        told_success.len() as u64,
        SEATS,
        "every seat sold exactly once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_ms_on_the_path_to_redis_slows_sales_but_changes_no_outcome() {
    let mut network = TestNetwork::new();
    let redis_host = network.host("redis", &[Net::Back]);
    let host1 = network.host("n1", &[Net::Front, Net::Back]);
    let (_redis, redis_addr) = redis_in(&redis_host).await;
    // n1 reaches Redis through the load host, 50 ms late each way.
    let relay = DelayRelay::start(
        SocketAddr::from((network.gateway(Net::Back), 0)),
        redis_addr,
        Duration::from_millis(50),
    );
    let central = redis_central(&format!("redis://{redis_addr}")).await;
    let event = EventId::parse(unique("slow")).unwrap();
    create_sale(&central, &event, SaleConfig::new(100).unwrap()).await;
    let (_n1, url1) = node_in(&host1, "n1", relay.addr(), &event).await;

    let started = Instant::now();
    let urls = (0..150)
        .map(|u| format!("{url1}/buy/ticket?user_id=s{u}&request_id=r-s{u}"))
        .collect();
    let replies = get_all(&Http::new(), urls, 16).await;
    // 100 sales, at most 16 in flight, each at least one 100 ms round trip
    // to Redis: a lower bound that shows the delay was on the path.
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(400),
        "the delay was on the path: {took:?}"
    );
    assert_eq!(count(&replies, Code::Success), 100, "every seat sold");
    assert_eq!(
        count(&replies, Code::SoldOut),
        50,
        "then sold out, nothing else"
    );
    let orders: HashSet<_> = replies.iter().filter_map(|r| r.order()).collect();
    assert_eq!(orders.len(), 100, "each once");
    let snapshot = central.snapshot(&event).await.unwrap().unwrap();
    assert_eq!(snapshot.sold, 100);
}
