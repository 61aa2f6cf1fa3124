//! The sale path end to end: real nodes on random ports, real HTTP, and
//! central stock in a real Redis or embedded. Each invariant the issue names
//! is one test here; the embedded and Redis variants share their scenario.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failure

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use common::*;
use hyper::{Method, StatusCode};
use spike_core::{BuyerPolicy, CentralStock, EventId, MemoryCentral, SaleConfig};
use spike_testkit::{unique, TestRedis, TestRedisCluster};

fn event(tag: &str) -> EventId {
    EventId::parse(unique(tag)).expect("event id")
}

async fn sold<C: CentralStock>(central: &C, event: &EventId) -> (u64, u64) {
    let snapshot = central.snapshot(event).await.unwrap().expect("sale exists");
    (snapshot.sold, snapshot.orders_in_stream)
}

/// 2,000 distinct users, 200 in flight, 500 seats.
async fn two_thousand_users_scenario<C: Central>(central: C) {
    let event = event("conc");
    create_sale(&central, &event, SaleConfig::new(500).unwrap()).await;
    let node = spawn_node(central.clone(), named("n1").serving(&event)).await;
    let urls = (0..2000)
        .map(|u| node.url(&format!("/buy/ticket?user_id=user{u}")))
        .collect();
    let replies = get_all(&Http::new(), urls, 200).await;
    assert_eq!(
        count(&replies, Code::Success),
        500,
        "exactly the stock is sold"
    );
    assert_eq!(
        count(&replies, Code::SoldOut),
        1500,
        "everyone else hears sold out"
    );
    let orders: HashSet<_> = replies.iter().filter_map(Reply::order).collect();
    assert_eq!(orders.len(), 500, "no order twice, so no user twice");
    assert_eq!(
        sold(&central, &event).await,
        (500, 500),
        "central sold and stream length"
    );
    let snapshot = central.snapshot(&event).await.unwrap().unwrap();
    assert_eq!(snapshot.buyers, 500, "500 distinct buyers");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_users_buy_exactly_five_hundred_seats_on_redis() {
    let redis = TestRedis::shared_or_spawn();
    two_thousand_users_scenario(redis_central(redis.url()).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_users_buy_exactly_five_hundred_seats_on_a_redis_cluster() {
    let cluster = TestRedisCluster::shared();
    two_thousand_users_scenario(redis_central(cluster.url()).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_users_buy_exactly_five_hundred_seats_embedded() {
    two_thousand_users_scenario(MemoryCentral::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_nodes_on_one_redis_sell_exactly_the_stock() {
    let redis = TestRedis::shared_or_spawn();
    let event = event("four");
    let setup = redis_central(redis.url()).await;
    create_sale(&setup, &event, SaleConfig::new(1000).unwrap()).await;
    let mut nodes = Vec::new();
    for n in 1..=4 {
        // Each node has its own connection, as separate processes would.
        let central = redis_central(redis.url()).await;
        nodes.push(spawn_node(central, named(&format!("n{n}")).serving(&event)).await);
    }
    let urls = (0..5000)
        .map(|u| nodes[u % 4].url(&format!("/buy/ticket?user_id=u{u}")))
        .collect();
    let replies = get_all(&Http::new(), urls, 200).await;
    assert_eq!(
        count(&replies, Code::Success),
        1000,
        "zero oversell, zero undersell"
    );
    assert_eq!(count(&replies, Code::SoldOut), 4000);
    let orders: HashSet<_> = replies.iter().filter_map(Reply::order).collect();
    assert_eq!(orders.len(), 1000);
    let per_node: HashSet<_> = replies
        .iter()
        .filter(|r| r.code() == Code::Success)
        .filter_map(|r| r.node.clone())
        .collect();
    assert_eq!(per_node.len(), 4, "every node sold: {per_node:?}");
    assert_eq!(sold(&setup, &event).await, (1000, 1000));
}

async fn oversell_regression_scenario<C: Central>(central: C) {
    let event = event("over");
    create_sale(&central, &event, SaleConfig::new(100).unwrap()).await;
    let node = spawn_node(central.clone(), named("n1").serving(&event)).await;
    let http = Http::new();
    for u in 1..=100 {
        let reply = http
            .get(&node.url(&format!("/buy/ticket?user_id=u{u}")))
            .await;
        assert_eq!(reply.code(), Code::Success, "buyer {u}: {:?}", reply.body);
    }
    let reply = http.get(&node.url("/buy/ticket?user_id=u101")).await;
    assert_eq!(
        reply.code(),
        Code::SoldOut,
        "the 101st buyer must be refused (the articles' `>=` sells it)"
    );
    assert_eq!(sold(&central, &event).await, (100, 100));
}

#[tokio::test]
async fn the_101st_buyer_of_100_seats_is_refused_on_redis() {
    let redis = TestRedis::shared_or_spawn();
    oversell_regression_scenario(redis_central(redis.url()).await).await;
}

#[tokio::test]
async fn the_101st_buyer_of_100_seats_is_refused_embedded() {
    oversell_regression_scenario(MemoryCentral::new()).await;
}

async fn one_user_fifty_times_scenario<C: Central>(central: C) {
    let event = event("limit");
    create_sale(&central, &event, SaleConfig::new(10).unwrap()).await;
    let node = spawn_node(central.clone(), named("n1").serving(&event)).await;
    let urls = (0..50)
        .map(|_| node.url("/buy/ticket?user_id=eager"))
        .collect();
    let replies = get_all(&Http::new(), urls, 50).await;
    assert_eq!(count(&replies, Code::Success), 1, "one order");
    let order = replies
        .iter()
        .find(|r| r.code() == Code::Success)
        .and_then(Reply::order)
        .unwrap();
    let held: Vec<_> = replies
        .iter()
        .filter(|r| r.code() == Code::AlreadyPurchased)
        .collect();
    assert_eq!(held.len(), 49);
    assert!(
        held.iter().all(|r| r.order().as_ref() == Some(&order)),
        "-2 carries the order id"
    );
    assert_eq!(sold(&central, &event).await, (1, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_user_fifty_times_in_parallel_gets_one_order_on_redis() {
    let redis = TestRedis::shared_or_spawn();
    one_user_fifty_times_scenario(redis_central(redis.url()).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_user_fifty_times_in_parallel_gets_one_order_embedded() {
    one_user_fifty_times_scenario(MemoryCentral::new()).await;
}

async fn bad_input_scenario<C: Central>(central: C) {
    let event = event("bad");
    create_sale(&central, &event, SaleConfig::new(10).unwrap()).await;
    let node = spawn_node(central.clone(), named("n1").serving(&event)).await;
    let before = central.snapshot(&event).await.unwrap();
    let http = Http::new();
    let long_user = "u".repeat(65);
    let huge = "x".repeat(16 * 1024);
    let cases: Vec<(Method, String, StatusCode, &str)> = vec![
        (
            Method::GET,
            "/buy/ticket".into(),
            StatusCode::BAD_REQUEST,
            "user_id is required",
        ),
        (
            Method::GET,
            "/buy/ticket?user_id=".into(),
            StatusCode::BAD_REQUEST,
            "user_id is empty",
        ),
        (
            Method::GET,
            format!("/buy/ticket?user_id={long_user}"),
            StatusCode::BAD_REQUEST,
            "longer than 64",
        ),
        (
            Method::GET,
            "/buy/ticket?user_id=%C3%28".into(),
            StatusCode::BAD_REQUEST,
            "not valid UTF-8",
        ),
        (
            Method::GET,
            "/buy/ticket?user_id=a%20b".into(),
            StatusCode::BAD_REQUEST,
            "forbidden character",
        ),
        (
            Method::GET,
            "/buy/ticket?user_id=alice%E2%80%8B".into(),
            StatusCode::BAD_REQUEST,
            "forbidden character",
        ),
        (
            Method::GET,
            "/buy/ticket?user_id=ali%E2%80%AEecila".into(),
            StatusCode::BAD_REQUEST,
            "forbidden character",
        ),
        (
            Method::GET,
            "/buy/ticket?user_id=cafe%CC%81".into(),
            StatusCode::BAD_REQUEST,
            "NFC",
        ),
        (
            Method::GET,
            "/buy/ticket?user_id=u&event=nope".into(),
            StatusCode::BAD_REQUEST,
            "unknown event nope",
        ),
        (
            Method::GET,
            "/buy/ticket?user_id=u&event=a%7Bb".into(),
            StatusCode::BAD_REQUEST,
            "event contains",
        ),
        (
            Method::GET,
            "/buy/ticket?user_id=u&user_id=v".into(),
            StatusCode::BAD_REQUEST,
            "more than once",
        ),
        (
            Method::GET,
            "/buy/ticket?user_id=u&request_id=%00".into(),
            StatusCode::BAD_REQUEST,
            "request_id contains",
        ),
        (
            Method::GET,
            format!("/buy/ticket?user_id=u&pad={huge}"),
            StatusCode::URI_TOO_LONG,
            "longer than 2048",
        ),
        (
            Method::PUT,
            "/buy/ticket?user_id=u".into(),
            StatusCode::METHOD_NOT_ALLOWED,
            "method not allowed",
        ),
        (
            Method::DELETE,
            "/buy/ticket?user_id=u".into(),
            StatusCode::METHOD_NOT_ALLOWED,
            "method not allowed",
        ),
        (
            Method::GET,
            "/buy/tickets?user_id=u".into(),
            StatusCode::NOT_FOUND,
            "no such path",
        ),
        (
            Method::GET,
            "/buy/result?request_id=never".into(),
            StatusCode::NOT_FOUND,
            "no order for request_id",
        ),
    ];
    for (method, path, status, message) in cases {
        let reply = http.send(method.clone(), &node.url(&path)).await;
        let shown = &path[..path.len().min(60)];
        assert_eq!(reply.status, status, "{method} {shown}: {:?}", reply.body);
        assert_eq!(reply.code(), Code::Refused, "{method} {shown}");
        let text = reply.body["msg"].as_str().unwrap_or_default();
        assert!(
            text.contains(message),
            "{method} {shown}: {text:?} should say {message:?}"
        );
    }
    let enormous = "x".repeat(200 * 1024);
    let request = format!("GET /buy/ticket?user_id=u&pad={enormous} HTTP/1.1\r\nHost: t\r\n\r\n");
    let status = raw_status(node.addr(), request.as_bytes()).await;
    assert_eq!(status, 431, "hyper refuses a 200 KiB request head");
    assert_eq!(
        central.snapshot(&event).await.unwrap(),
        before,
        "bad input changed nothing"
    );
    assert_eq!(
        node.central_calls(),
        0,
        "bad input never reached central stock"
    );
}

#[tokio::test]
async fn bad_input_gets_a_clear_4xx_and_changes_nothing_on_redis() {
    let redis = TestRedis::shared_or_spawn();
    let central = redis_central(redis.url()).await;
    let commands_before = redis.command_calls("evalsha");
    bad_input_scenario(central).await;
    // create + two snapshots ran scripts; no purchase did.
    assert!(redis.command_calls("evalsha") >= commands_before);
}

#[tokio::test]
async fn bad_input_gets_a_clear_4xx_and_changes_nothing_embedded() {
    bad_input_scenario(MemoryCentral::new()).await;
}

#[tokio::test]
async fn after_sell_out_rejections_make_zero_redis_calls() {
    let redis = TestRedis::spawn(); // its own server, so its counters are ours alone
    let central = redis_central(redis.url()).await;
    let event = event("zero");
    create_sale(&central, &event, SaleConfig::new(20).unwrap()).await;
    // Background reads (refreshes, the operator log) are quiet: only what
    // the purchases cost is counted.
    let spec = named("n1").serving(&event).following_controls_every(QUIET);
    let node = spawn_node(central, spec).await;
    let http = Http::new();
    let urls = (0..40)
        .map(|u| node.url(&format!("/buy/ticket?user_id=u{u}")))
        .collect();
    let replies = get_all(&http, urls, 8).await;
    assert_eq!(count(&replies, Code::Success), 20);
    let calls_at_sell_out = node.central_calls();
    let evalsha_at_sell_out = redis.command_calls("evalsha");
    let total_at_sell_out = total_commands(&redis);
    let urls = (0..1000)
        .map(|u| node.url(&format!("/buy/ticket?user_id=late{u}")))
        .collect();
    let replies = get_all(&http, urls, 50).await;
    assert_eq!(count(&replies, Code::SoldOut), 1000);
    assert_eq!(
        node.central_calls(),
        calls_at_sell_out,
        "node made no central call"
    );
    assert_eq!(
        redis.command_calls("evalsha"),
        evalsha_at_sell_out,
        "Redis ran no script"
    );
    // INFO itself is counted once per call; nothing else may have run.
    assert_eq!(
        total_commands(&redis),
        total_at_sell_out + 2,
        "Redis saw no command"
    );
}

fn total_commands(redis: &TestRedis) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("stats")
        .query(&mut redis.connection())
        .unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("total_commands_processed:"))
        .and_then(|n| n.trim().parse().ok())
        .expect("total_commands_processed")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_means_quick_503s_and_the_node_recovers_without_restart() {
    let mut redis = TestRedis::spawn_with(&["--appendonly", "yes", "--appendfsync", "always"]);
    let central = redis_central(redis.url()).await;
    let event = event("down");
    create_sale(&central, &event, SaleConfig::new(100).unwrap()).await;
    let node = spawn_node(central.clone(), named("n1").serving(&event)).await;
    let http = Http::new();
    let before = http.get(&node.url("/buy/ticket?user_id=before")).await;
    assert_eq!(before.code(), Code::Success);

    redis.kill();
    for u in 0..20 {
        let started = Instant::now();
        let reply = http
            .get(&node.url(&format!("/buy/ticket?user_id=during{u}")))
            .await;
        assert_eq!(
            reply.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{:?}",
            reply.body
        );
        assert_eq!(reply.code(), Code::TryAgain);
        assert!(
            reply.body["data"]["request_id"].is_string(),
            "503 names the request id to retry"
        );
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "answered in {:?}",
            started.elapsed()
        );
    }

    redis.start(); // same port, same data (append-only file)
    let mut recovered = None;
    for _attempt in 0..50 {
        // A client retries with the same request id: a try whose answer was
        // lost (Redis sold, the answer timed out) is not sold twice.
        let reply = http
            .get(&node.url("/buy/ticket?user_id=after&request_id=after-1"))
            .await;
        if reply.code() == Code::Success {
            recovered = Some(reply);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(recovered.is_some(), "node sells again once Redis is back");
    assert_eq!(
        sold(&central, &event).await,
        (2, 2),
        "nothing was sold during the outage"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stat_log_has_one_line_per_answer_and_the_same_successes() {
    let redis = TestRedis::shared_or_spawn();
    let central = redis_central(redis.url()).await;
    let event = event("stat");
    create_sale(&central, &event, SaleConfig::new(150).unwrap()).await;
    let dir = std::env::temp_dir().join(unique("stat"));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("stat.log");
    let node = spawn_node(central, named("n1").serving(&event).stat_log(&path)).await;
    let mut urls: Vec<String> = (0..600)
        .map(|u| node.url(&format!("/buy/ticket?user_id=s{u}")))
        .collect();
    urls.extend((0..20).map(|_| node.url("/buy/ticket?user_id=")));
    let replies = get_all(&Http::new(), urls, 100).await;
    let answered_successes = count(&replies, Code::Success);
    assert_eq!(answered_successes, 150);
    let node = node.stop().await;
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<_> = text.lines().collect();
    assert_eq!(lines.len(), replies.len(), "one line per answered request");
    let parsed: Vec<_> = lines
        .iter()
        .map(|l| spike_core::stat::parse_line(l).expect("parses"))
        .collect();
    assert_eq!(
        parsed.iter().filter(|p| p.code == Code::Success).count(),
        answered_successes
    );
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.contains(" result:1,localSales:"))
            .count(),
        150
    );
    let logged: HashSet<_> = parsed
        .iter()
        .filter_map(|p| p.order)
        .map(str::to_string)
        .collect();
    let answered: HashSet<_> = replies
        .iter()
        .filter(|r| r.code() == Code::Success)
        .filter_map(Reply::order)
        .collect();
    assert_eq!(
        logged, answered,
        "the log names exactly the orders answered"
    );
    let counters = node.stat_log().unwrap().counters();
    assert_eq!(
        counters.dropped.load(std::sync::atomic::Ordering::Relaxed),
        0
    );
    let _ = std::fs::remove_dir_all(&dir);
}

async fn retry_scenario<C: Central>(central: C) {
    let event = event("retry");
    let anonymous = SaleConfig::new(5)
        .unwrap()
        .with_policy(BuyerPolicy::Anonymous);
    create_sale(&central, &event, anonymous).await;
    let node = spawn_node(central.clone(), named("n1").serving(&event)).await;
    let http = Http::new();
    let first = http
        .get(&node.url("/buy/ticket?request_id=client-42"))
        .await;
    let key = first.body["data"]["order_key"].as_str().unwrap().to_owned();
    let again = http
        .get(&node.url(&format!("/buy/ticket?request_id=client-42&order_key={key}")))
        .await;
    assert_eq!((first.code(), again.code()), (Code::Success, Code::Success));
    assert_eq!(
        first.order(),
        again.order(),
        "a retry that proves it with the order key returns the same order"
    );
    let bare = http
        .get(&node.url("/buy/ticket?request_id=client-42"))
        .await;
    assert_eq!(bare.code(), Code::Success);
    assert_eq!(bare.order(), None, "the request id alone proves nothing");
    let result = http
        .get(&node.url(&format!("/buy/result?request_id=client-42&order_key={key}")))
        .await;
    assert_eq!(result.order(), first.order());
    let reused = http
        .get(&node.url("/buy/ticket?user_id=someone-else&request_id=client-42"))
        .await;
    assert_eq!(
        (reused.status, reused.code()),
        (StatusCode::CONFLICT, Code::Refused),
        "{:?}",
        reused.body
    );
    assert!(
        reused.order().is_none(),
        "another buyer never learns the order"
    );
    assert_eq!(
        sold(&central, &event).await,
        (1, 1),
        "the retry sold nothing"
    );
}

#[tokio::test]
async fn a_retried_request_id_gets_the_same_order_on_redis() {
    let redis = TestRedis::shared_or_spawn();
    retry_scenario(redis_central(redis.url()).await).await;
}

#[tokio::test]
async fn a_retried_request_id_gets_the_same_order_embedded() {
    retry_scenario(MemoryCentral::new()).await;
}

#[tokio::test]
async fn before_opening_the_node_answers_not_open_from_memory() {
    let redis = TestRedis::shared_or_spawn();
    let central = redis_central(redis.url()).await;
    let event = event("early");
    let later = std::time::SystemTime::now() + Duration::from_secs(3600);
    create_sale(
        &central,
        &event,
        SaleConfig::new(5).unwrap().opening_at(Some(later)),
    )
    .await;
    let node = spawn_node(central.clone(), named("n1").serving(&event)).await;
    let reply = Http::new()
        .get(&node.url("/buy/ticket?user_id=early"))
        .await;
    assert_eq!(
        (reply.status, reply.code()),
        (StatusCode::OK, Code::NotOpen)
    );
    assert_eq!(node.central_calls(), 0);
    assert_eq!(sold(&central, &event).await, (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sold_out_node_sells_a_released_seat_after_its_next_refresh() {
    let redis = TestRedis::shared_or_spawn();
    let central = redis_central(redis.url()).await;
    let event = event("returned");
    create_sale(&central, &event, SaleConfig::new(2).unwrap()).await;
    // The refresh runs once a second (the default): the "within a second".
    let node = spawn_node(
        central.clone(),
        named("n1")
            .serving(&event)
            .refreshing_every(Duration::from_secs(1)),
    )
    .await;
    let http = Http::new();
    let first = http
        .get(&node.url("/buy/ticket?user_id=first&request_id=req-first"))
        .await;
    http.get(&node.url("/buy/ticket?user_id=second")).await;
    assert_eq!(
        http.get(&node.url("/buy/ticket?user_id=third"))
            .await
            .code(),
        Code::SoldOut
    );
    let calls = node.central_calls();
    assert_eq!(
        http.get(&node.url("/buy/ticket?user_id=fourth"))
            .await
            .code(),
        Code::SoldOut
    );
    assert_eq!(
        node.central_calls(),
        calls,
        "sold out: answered from memory"
    );

    let order = spike_core::OrderId::parse(first.order().unwrap()).unwrap();
    let user = spike_core::UserId::parse("first").unwrap();
    let request = spike_core::RequestId::parse("req-first").unwrap();
    let released = central
        .release(&event, &order, Some(&user), &request)
        .await
        .unwrap();
    assert_eq!(
        released,
        spike_core::Release::Released {
            remaining: 1,
            filled: 0
        }
    );

    let released_at = Instant::now();
    let mut resold = None;
    for attempt in 0..40 {
        let reply = http
            .get(&node.url(&format!("/buy/ticket?user_id=late{attempt}")))
            .await;
        if reply.code() == Code::Success {
            resold = Some(released_at.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let resold = resold.expect("the returned seat is sold again");
    // One refresh period plus polling; generous so that a slow machine does not fail it.
    assert!(resold < Duration::from_secs(3), "resold after {resold:?}");
    assert_eq!(
        sold(&central, &event).await,
        (2, 3),
        "2 sold, 3 orders ever appended"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restarted_empty_makes_nodes_refuse_instead_of_selling_from_zero() {
    let mut redis = TestRedis::spawn(); // no persistence: a restart loses everything
    let central = redis_central(redis.url()).await;
    let event = event("lost");
    create_sale(&central, &event, SaleConfig::new(10).unwrap()).await;
    let node = spawn_node(
        central.clone(),
        named("n1")
            .serving(&event)
            .refreshing_every(Duration::from_secs(1)),
    )
    .await;
    let http = Http::new();
    for u in 0..3 {
        assert_eq!(
            http.get(&node.url(&format!("/buy/ticket?user_id=early{u}")))
                .await
                .code(),
            Code::Success
        );
    }
    redis.kill();
    redis.start(); // same port, empty
    let mut refused = 0;
    for u in 0..30 {
        let reply = http
            .get(&node.url(&format!("/buy/ticket?user_id=after{u}")))
            .await;
        assert_ne!(
            reply.code(),
            Code::Success,
            "never sell from a central stock that forgot the sale"
        );
        if reply.status == StatusCode::SERVICE_UNAVAILABLE {
            refused += 1;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(refused, 30, "every request is told to try again");
    let reply = http.get(&node.url("/buy/ticket?user_id=last")).await;
    let reason = reply.body["data"]["reason"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(reason.contains("no state for this sale"), "{reason}");
    assert_eq!(
        central.snapshot(&event).await.unwrap(),
        None,
        "nothing was recreated from zero"
    );
}
