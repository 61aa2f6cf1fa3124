//! Retries and departures are safe: a purchase that reached central stock
//! finishes (sale and stat-log line) after its client has gone; a retry with
//! the same request id gets its true outcome, also after sell-out; and the
//! front door never sends a purchase to a second node once it was sent to a
//! first (that node may have sold it).

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failure

mod common;

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use hyper::StatusCode;
use spike_core::{CentralStock, EventId, MemoryCentral, SaleConfig};
use spike_front::nginx::{render, NginxOptions};
use spike_front::{serve_front, FrontConfig, Upstream};
use spike_testkit::{free_port, unique, TestNginx, TestRedis};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

fn event(tag: &str) -> EventId {
    EventId::parse(unique(tag)).expect("event id")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_purchase_whose_client_left_still_sells_and_writes_its_line() {
    let redis = TestRedis::spawn(); // its own server: the test pauses it
    let central = redis_central(redis.url()).await;
    let event = event("leave");
    create_sale(&central, &event, SaleConfig::new(5).unwrap()).await;
    let dir = std::env::temp_dir().join(unique("leave"));
    std::fs::create_dir_all(&dir).unwrap();
    let stat = dir.join("stat.log");
    let node = spawn_node(central.clone(), named("n1").serving(&event).stat_log(&stat)).await;

    // Redis holds every command for 300 ms (under the node's 500 ms
    // response timeout): the purchase waits on central stock...
    let _: () = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(300)
        .arg("ALL")
        .query(&mut redis.connection())
        .unwrap();
    let mut client = TcpStream::connect(node.addr()).await.unwrap();
    client
        .write_all(b"GET /buy/ticket?user_id=leaver HTTP/1.1\r\nHost: spike\r\n\r\n")
        .await
        .unwrap();
    // ...and its client gives up and leaves meanwhile.
    tokio::time::sleep(Duration::from_millis(100)).await;
    drop(client);
    tokio::time::sleep(Duration::from_millis(900)).await;

    let snapshot = central.snapshot(&event).await.unwrap().unwrap();
    assert_eq!(snapshot.sold, 1, "the purchase sold");
    node.stop().await;
    let text = std::fs::read_to_string(&stat).unwrap();
    let lines: Vec<_> = text
        .lines()
        .map(|line| spike_core::stat::parse_line(line).expect("parses"))
        .collect();
    assert_eq!(lines.len(), 1, "its answer was logged: {text}");
    assert_eq!(lines[0].code, Code::Success);
    assert!(lines[0].order.is_some(), "with its order");
}

/// One seat: alice buys it with a request id, then the node knows the sale
/// is sold out; her retry with the same id (and her order key, the proof
/// on an open sale) gets her order, not "sold out".
async fn retry_after_sell_out_scenario<C: Central>(central: C) {
    let event = event("retry");
    create_sale(&central, &event, SaleConfig::new(1).unwrap()).await;
    let node = spawn_node(central, named("n1").serving(&event)).await;
    let first = node
        .get("/buy/ticket?user_id=alice&request_id=alice-1")
        .await;
    assert_eq!(first.code(), Code::Success);
    assert_eq!(node.buy("bob").await.code(), Code::SoldOut, "sold out now");

    let calls = node.central_calls();
    for _ in 0..3 {
        assert_eq!(node.buy("carol").await.code(), Code::SoldOut);
    }
    assert_eq!(
        node.central_calls(),
        calls,
        "no request id: answered from memory"
    );

    let key = first.body["data"]["order_key"].as_str().unwrap().to_owned();
    let retry = node
        .get(&format!(
            "/buy/ticket?user_id=alice&request_id=alice-1&order_key={key}"
        ))
        .await;
    assert_eq!(
        retry.code(),
        Code::Success,
        "the retry gets its true outcome"
    );
    assert_eq!(retry.order(), first.order(), "the same order");
    let unproved = node
        .get("/buy/ticket?user_id=alice&request_id=alice-1")
        .await;
    assert_eq!(unproved.code(), Code::Success, "it did buy");
    assert_eq!(unproved.order(), None, "a user id proves nothing");

    let stranger = node
        .get("/buy/ticket?user_id=mallory&request_id=alice-1")
        .await;
    assert_eq!(
        stranger.status,
        StatusCode::CONFLICT,
        "not alice's order for mallory"
    );
    assert_eq!(stranger.order(), None);

    let unknown = node.get("/buy/ticket?user_id=dave&request_id=dave-1").await;
    assert_eq!(
        unknown.code(),
        Code::SoldOut,
        "a new request id is told the truth too"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_after_sell_out_gets_its_order_embedded() {
    retry_after_sell_out_scenario(MemoryCentral::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_after_sell_out_gets_its_order_on_redis() {
    let redis = TestRedis::shared_or_spawn();
    retry_after_sell_out_scenario(redis_central(redis.url()).await).await;
}

/// An upstream that takes each request and closes without answering, as a
/// node that sold and then died would; counts what it took.
async fn dying_upstream() -> (std::net::SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let taken = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&taken);
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let counter = Arc::clone(&counter);
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                counter.fetch_add(1, Ordering::SeqCst);
                // Dies without a word.
            });
        }
    });
    (addr, taken)
}

/// Twenty purchases and six reads through `door`, in front of a dying
/// upstream and the live node `n1`: each purchase the dying one took is
/// answered 502 (never sent on to n1), and reads are answered by n1.
async fn purchases_never_go_to_a_second_node<C: Central>(
    door: &str,
    node: &TestNode<C>,
    taken: &AtomicUsize,
) {
    let http = Http::new();
    let mut unanswered = 0;
    for user in 0..20 {
        let reply = http
            .get(&format!("{door}/buy/ticket?user_id=u{user}"))
            .await;
        match reply.node.as_deref() {
            Some("n1") => assert_eq!(reply.code(), Code::Success),
            _ => {
                assert_eq!(reply.status, StatusCode::BAD_GATEWAY, "{reply:?}");
                unanswered += 1;
            }
        }
    }
    let taken = taken.load(Ordering::SeqCst);
    assert!(taken > 0, "the dying node took some purchases");
    assert_eq!(
        unanswered, taken,
        "each purchase the dying node took was answered 502, never sent to n1"
    );
    assert_eq!(node.central_calls() as usize, 20 - taken);
    for _ in 0..6 {
        let health = http.get(&format!("{door}/healthz")).await;
        assert_eq!(health.status, StatusCode::OK, "a read is answered by n1");
    }
}

async fn node_and_dying_upstream() -> (TestNode<MemoryCentral>, Vec<Upstream>, Arc<AtomicUsize>) {
    let central = MemoryCentral::new();
    let event = event("door");
    create_sale(&central, &event, SaleConfig::new(1000).unwrap()).await;
    let node = spawn_node(central, named("n1").serving(&event)).await;
    let (dying, taken) = dying_upstream().await;
    let upstream = |address: String| Upstream {
        address,
        weight: NonZeroU32::MIN,
    };
    let upstreams = vec![
        upstream(dying.to_string()),
        upstream(node.addr().to_string()),
    ];
    (node, upstreams, taken)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_front_door_never_sends_a_purchase_to_a_second_node() {
    let (node, upstreams, taken) = node_and_dying_upstream().await;
    let mut config = FrontConfig::new(upstreams);
    config.retry_after = Duration::from_millis(1); // the dying one stays in rotation
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let front = serve_front(listener, config).unwrap();
    purchases_never_go_to_a_second_node(&format!("http://{}", front.addr()), &node, &taken).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_never_sends_a_purchase_to_a_second_node() {
    let (node, upstreams, taken) = node_and_dying_upstream().await;
    let port = free_port();
    let options = NginxOptions {
        listen: format!("127.0.0.1:{port}"),
        workers: "1".into(),
        access_log: false,
        max_in_flight_per_node: spike_front::DEFAULT_MAX_IN_FLIGHT_PER_UPSTREAM.get(),
    };
    let _nginx = TestNginx::start(&render(&options, &upstreams), port);
    purchases_never_go_to_a_second_node(&format!("http://127.0.0.1:{port}"), &node, &taken).await;
}
