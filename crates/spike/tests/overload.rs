//! Overload shedding: when central stock slows down, a node lets at most
//! `--max-central-in-flight` purchases wait on it (fewer as its calls slow
//! down), lets none wait in its lane past the lane's interval, and answers
//! the rest at once with 503 "try again" (code -5, `Retry-After`), nothing
//! sold; no request waits past its budget; the purchases already sent get
//! their true answers, and the node recovers by itself when central stock
//! does.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failure

mod common;

use std::time::{Duration, Instant};

use common::*;
use hyper::{Method, StatusCode};
use spike_core::{CentralStock, EventId, SaleConfig};
use spike_front::{serve_front, FrontConfig, Upstream};
use spike_testkit::{unique, TestRedis};

const LIMIT: usize = 8;

/// The longest any request may wait for its answer while central stock is
/// paused (its response deadline and the lane's interval, with room for a
/// busy test machine).
const BUDGET: Duration = Duration::from_millis(1500);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_central_stock_sheds_new_purchases_at_once_and_recovers() {
    let redis = TestRedis::spawn(); // its own: the test pauses it
    let central = redis_central(redis.url()).await;
    let event = EventId::parse(unique("shed")).unwrap();
    create_sale(&central, &event, SaleConfig::new(1000).unwrap()).await;
    let node = spawn_node(
        central.clone(),
        named("n1").serving(&event).max_central_in_flight(LIMIT),
    )
    .await;
    assert_eq!(node.buy("warm-up").await.code(), Code::Success);

    // Central stock stops answering for 3 s (longer than the node waits).
    let pause = Duration::from_secs(3);
    let _: () = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(pause.as_millis() as u64)
        .arg("ALL")
        .query(&mut redis.connection())
        .unwrap();
    let paused_at = Instant::now();
    let http = Http::new();
    let urls: Vec<String> = (0..200)
        .map(|u| node.url(&format!("/buy/ticket?user_id=u{u}")))
        .collect();
    let tasks: Vec<_> = urls
        .into_iter()
        .map(|url| {
            let http = http.clone();
            tokio::spawn(async move {
                let asked = Instant::now();
                let (status, headers, body) = http.exchange(Method::GET, &url).await;
                (status, headers, body, asked.elapsed())
            })
        })
        .collect();
    let mut shed = 0;
    let mut waited = 0;
    for task in tasks {
        let (status, headers, body, took) = task.await.unwrap();
        // The budget: Redis's response deadline (500 ms) for a call already
        // sent, the lane's interval (100 ms) for a purchase waiting on one.
        assert!(took < BUDGET, "answered after {took:?}");
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let reason = body["data"]["reason"].as_str().unwrap_or_default();
        if reason.contains("waiting on central stock") {
            shed += 1;
            assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
            assert_eq!(body["code"], -5);
            assert_eq!(headers["retry-after"], "1");
            assert!(
                took < Duration::from_millis(500),
                "shed at once, not at central's deadline: {took:?}"
            );
        } else {
            // The few that waited: central stock's true answer, or
            // "unknown" past the node's deadline; never a guess.
            waited += 1;
            assert!(
                [1, -5].contains(&body["code"].as_i64().unwrap_or(0)),
                "{body}"
            );
        }
    }
    assert_eq!(shed + waited, 200);
    assert!(waited <= LIMIT, "at most {LIMIT} waited: {waited}");
    assert!(shed >= 200 - LIMIT, "the rest were shed: {shed}");

    let stats = http.get(&node.admin_url("/stats")).await;
    let gate = &stats.body["central_in_flight"];
    assert_eq!(gate["limit"], LIMIT as u64);
    assert!(gate["peak"].as_u64().unwrap() <= LIMIT as u64, "{gate}");
    assert_eq!(gate["shed"], shed as u64);

    // Central stock is back: the node sells again by itself, and nothing
    // shed was sold.
    tokio::time::sleep(pause.saturating_sub(paused_at.elapsed()) + Duration::from_millis(200))
        .await;
    assert_eq!(node.buy("after").await.code(), Code::Success);
    let sold = central.snapshot(&event).await.unwrap().unwrap().sold;
    assert!(
        sold <= 2 + waited as u64,
        "only purchases that waited can have sold: {sold}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_front_door_sheds_what_its_nodes_cannot_take_and_recovers() {
    let redis = TestRedis::spawn(); // its own: the test pauses it
    let central = redis_central(redis.url()).await;
    let event = EventId::parse(unique("front-shed")).unwrap();
    create_sale(&central, &event, SaleConfig::new(1000).unwrap()).await;
    // The node itself would let 1,024 wait: the front door's bound decides.
    let node = spawn_node(central.clone(), named("n1").serving(&event)).await;
    let mut config = FrontConfig::new(vec![Upstream {
        address: node.addr().to_string(),
        weight: std::num::NonZeroU32::MIN,
    }]);
    config.max_in_flight_per_upstream = std::num::NonZeroUsize::new(LIMIT).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let front = serve_front(listener, config).unwrap();
    let door = |path: &str| format!("http://{}{path}", front.addr());
    let http = Http::new();
    assert_eq!(
        http.get(&door("/buy/ticket?user_id=warm-up")).await.code(),
        Code::Success
    );

    let pause = Duration::from_secs(3);
    let _: () = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(pause.as_millis() as u64)
        .arg("ALL")
        .query(&mut redis.connection())
        .unwrap();
    let paused_at = Instant::now();
    let tasks: Vec<_> = (0..200)
        .map(|u| {
            let (http, url) = (http.clone(), door(&format!("/buy/ticket?user_id=u{u}")));
            tokio::spawn(async move {
                let asked = Instant::now();
                let (status, headers, body) = http.exchange(Method::GET, &url).await;
                (status, headers, body, asked.elapsed())
            })
        })
        .collect();
    let mut shed = 0;
    for task in tasks {
        let (status, headers, body, took) = task.await.unwrap();
        // The budget: Redis's response deadline (500 ms) for a call already
        // sent, the lane's interval (100 ms) for a purchase waiting on one.
        assert!(took < BUDGET, "answered after {took:?}");
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let reason = body["data"]["reason"].as_str().unwrap_or_default();
        if reason.contains("front door allows") {
            shed += 1;
            assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
            assert_eq!(body["code"], -5);
            assert_eq!(headers["retry-after"], "1");
            assert!(took < Duration::from_millis(500), "shed at once: {took:?}");
        }
    }
    assert!(shed >= 200 - LIMIT, "all but {LIMIT} were shed: {shed}");
    let node_stats = http.get(&node.admin_url("/stats")).await;
    assert!(
        node_stats.body["central_in_flight"]["peak"]
            .as_u64()
            .unwrap()
            <= LIMIT as u64,
        "the node never had more than the front door's bound waiting"
    );

    tokio::time::sleep(pause.saturating_sub(paused_at.elapsed()) + Duration::from_millis(200))
        .await;
    assert_eq!(
        http.get(&door("/buy/ticket?user_id=after")).await.code(),
        Code::Success,
        "the front door recovers by itself"
    );
}
