//! Rate limits: a buyer, or a client address, over its limit is answered
//! 429 (code -8) with `Retry-After`, from memory, and nothing changes; other
//! buyers and addresses are not touched. Behind a front door the address is
//! the one the door forwards, believed only from a trusted proxy. Distinct
//! clients are distinct loopback addresses (127.0.0.2, .3, .4).

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failure

mod common;

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use common::*;
use hyper::{Method, StatusCode};
use serde_json::Value;
use spike_core::{CentralStock, EventId, MemoryCentral, SaleConfig};
use spike_front::{serve_front, FrontConfig, Upstream};
use spike_http::TrustedProxies;
use spike_node::rate_limit::RateLimits;

/// One answer: its status, `Retry-After` and body.
struct Answered {
    status: StatusCode,
    retry_after: Option<String>,
    body: Value,
}

impl Answered {
    fn code(&self) -> Code {
        (self.body["code"].as_i64())
            .and_then(Code::from_number)
            .unwrap_or_else(|| panic!("no code in {:?}", self.body))
    }

    fn limited(&self) -> bool {
        self.code() == Code::RateLimited
    }
}

async fn send(http: &Http, url: &str, headers: &[(&str, &str)]) -> Answered {
    let (status, answer_headers, body) = http.exchange_with(Method::GET, url, headers).await;
    Answered {
        status,
        retry_after: (answer_headers.get("retry-after"))
            .map(|value| value.to_str().unwrap().to_owned()),
        body: serde_json::from_slice(&body).unwrap(),
    }
}

/// Every limited answer is a well-formed 429; returns how many were served.
fn served_checking_refusals(answers: &[Answered]) -> usize {
    for limited in answers.iter().filter(|a| a.limited()) {
        assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(
            limited.retry_after.as_deref(),
            Some("1"),
            "whole seconds, rounded up"
        );
        let wait = limited.body["data"]["retry_after_ms"].as_u64().unwrap();
        assert!(
            wait <= 1_000,
            "a bucket of one second refills within it ({wait} ms)"
        );
    }
    answers.iter().filter(|a| !a.limited()).count()
}

/// At most a full bucket plus what refilled meanwhile, and at least the
/// full bucket.
fn assert_within_the_limit(served: usize, rate: u32, elapsed: Duration) {
    let most = f64::from(rate) * (1.0 + elapsed.as_secs_f64()) + 1.0;
    assert!(
        served >= rate as usize && served as f64 <= most,
        "{served} served in {elapsed:?} at {rate}/s (at most {most:.0})"
    );
}

fn address(text: &str) -> IpAddr {
    text.parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_buyer_over_the_limit_is_told_to_wait_and_other_buyers_are_not() {
    const RATE: u32 = 10;
    let central = MemoryCentral::new();
    let event = EventId::parse("RL1").unwrap();
    create_sale(&central, &event, SaleConfig::new(100).unwrap()).await;
    let limits = RateLimits {
        per_buyer: NonZeroU32::new(RATE),
        ..RateLimits::default()
    };
    let node = spawn_node(
        central.clone(),
        named("n1").serving(&event).rate_limits(limits),
    )
    .await;
    let http = Http::new();

    // Alice sends 100 purchases as fast as she can (well within a second).
    let started = Instant::now();
    let mut alice = Vec::new();
    for _ in 0..100 {
        alice.push(send(&http, &node.url("/buy/ticket?user_id=alice"), &[]).await);
    }
    let elapsed = started.elapsed();
    assert_eq!(alice[0].code(), Code::Success);
    assert!(
        (alice[1..RATE as usize].iter()).all(|a| a.code() == Code::AlreadyPurchased),
        "a full bucket is served"
    );
    let served = served_checking_refusals(&alice);
    assert_within_the_limit(served, RATE, elapsed);
    assert!(
        served < 100,
        "over the limit, alice was refused ({elapsed:?} for 100)"
    );

    // Other buyers are served, at once; nothing was sold to the refused.
    for buyer in ["bob", "carol", "dave"] {
        assert_eq!(node.buy(buyer).await.code(), Code::Success, "{buyer}");
    }
    let snapshot = central.snapshot(&event).await.unwrap().unwrap();
    assert_eq!(snapshot.sold, 4, "alice once, and the three others");
    let stats = http.get(&node.admin_url("/stats")).await;
    assert_eq!(stats.body["answers"]["-8"], (100 - served) as u64);

    // Once her bucket refills, alice is answered again.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    assert_eq!(node.buy("alice").await.code(), Code::AlreadyPurchased);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_address_limit_counts_the_client_the_front_door_names_and_no_forged_header() {
    const RATE: u32 = 20;
    let central = MemoryCentral::new();
    let event = EventId::parse("RL2").unwrap();
    create_sale(&central, &event, SaleConfig::new(1_000).unwrap()).await;
    let limits = RateLimits {
        per_ip: NonZeroU32::new(RATE),
        trusted_proxies: TrustedProxies::new(vec![address("127.0.0.1")]),
        ..RateLimits::default()
    };
    let node = spawn_node(
        central.clone(),
        named("n1").serving(&event).rate_limits(limits),
    )
    .await;
    let config = FrontConfig::new(vec![Upstream {
        address: node.addr().to_string(),
        weight: NonZeroU32::MIN,
    }]);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let front = serve_front(listener, config).unwrap();
    let door = |path: &str| format!("http://{}{path}", front.addr());

    // A client behind the front door, forging a new address every time.
    let a = Http::from_address(address("127.0.0.2"));
    let started = Instant::now();
    let mut answers = Vec::new();
    for i in 0..60 {
        let forged = format!("198.51.100.{i}");
        let url = door(&format!("/buy/ticket?user_id=a{i}"));
        answers.push(send(&a, &url, &[("x-forwarded-for", &forged)]).await);
    }
    let elapsed = started.elapsed();
    let served_a = served_checking_refusals(&answers);
    assert_within_the_limit(served_a, RATE, elapsed);

    // Another client through the same door has its own bucket.
    let b = Http::from_address(address("127.0.0.3"));
    for i in 0..10 {
        let url = door(&format!("/buy/ticket?user_id=b{i}"));
        assert_eq!(send(&b, &url, &[]).await.code(), Code::Success, "b{i}");
    }

    // A client straight to the node is not a trusted proxy: its header,
    // naming b, is ignored, and it spends its own bucket.
    let c = Http::from_address(address("127.0.0.4"));
    let started = Instant::now();
    let mut answers = Vec::new();
    for i in 0..60 {
        let url = node.url(&format!("/buy/ticket?user_id=c{i}"));
        answers.push(send(&c, &url, &[("x-forwarded-for", "127.0.0.3")]).await);
    }
    let served_c = served_checking_refusals(&answers);
    assert_within_the_limit(served_c, RATE, started.elapsed());
    let url = door("/buy/ticket?user_id=b-again");
    assert_eq!(
        send(&b, &url, &[]).await.code(),
        Code::Success,
        "b untouched"
    );

    let snapshot = central.snapshot(&event).await.unwrap().unwrap();
    assert_eq!(
        snapshot.sold,
        (served_a + 10 + served_c + 1) as u64,
        "a seat for every request served, none for the refused"
    );
}
