//! Durable confirmation: with `--confirm-replicas N` a sale is answered
//! "success" only once N replicas hold it (grouped `WAIT`), and otherwise
//! "unknown" (503 with the request id, which `/buy/result` resolves once a
//! replica holds it), never
//! a guess; through Redis Sentinel, a `kill -9` of the primary mid-sale loses
//! no confirmed sale, and the node resumes on the promoted replica by itself.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failure

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use common::*;
use hyper::StatusCode;
use spike_core::{EventId, SaleConfig};
use spike_redis::{EventKeys, RedisSettings};
use spike_testkit::{unique, TestRedis, TestSentinel};

fn event(tag: &str) -> EventId {
    EventId::parse(unique(tag)).expect("event id")
}

fn confirming(url: &str, replicas: u32) -> RedisSettings {
    RedisSettings {
        confirm_replicas: replicas,
        ..RedisSettings::new(url)
    }
}

/// The orders `user` holds on the server at `redis`, from the buyer index.
fn held_by(redis: &mut redis::Connection, event: &EventId, user: &str) -> Option<String> {
    redis::cmd("HGET")
        .arg(EventKeys::new(event).buyers)
        .arg(user)
        .query(redis)
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sale_is_answered_only_once_a_replica_holds_it() {
    let primary = TestRedis::spawn();
    let mut replica = TestRedis::replica_of(&primary);
    let central = redis_central_with(confirming(primary.url(), 1)).await;
    let event = event("wait");
    create_sale(&central, &event, SaleConfig::new(10).unwrap()).await;
    let node = spawn_node(central, named("n1").serving(&event)).await;

    // A client retries an unknown outcome with the request id and request
    // key the node gave it (a busy machine may miss WAIT's deadline once);
    // it is never told a guess.
    let mut sold = node.get("/buy/ticket?user_id=alice").await;
    for _ in 0..3 {
        if sold.code() != Code::TryAgain {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        let data = &sold.body["data"];
        let retry = format!(
            "/buy/ticket?user_id=alice&request_id={}&request_key={}",
            data["request_id"].as_str().unwrap(),
            data["request_key"].as_str().unwrap()
        );
        sold = node.get(&retry).await;
    }
    assert_eq!(sold.code(), Code::Success, "{sold:?}");
    let order = sold.order().unwrap();
    assert_eq!(
        held_by(&mut replica.connection(), &event, "alice").as_deref(),
        Some(order.as_str()),
        "the replica held the sale before the buyer heard of it"
    );

    replica.kill();
    let unconfirmed = node.buy("bob").await;
    assert_eq!(unconfirmed.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(unconfirmed.code(), Code::TryAgain, "unknown, not a guess");
    let request = unconfirmed.body["data"]["request_id"]
        .as_str()
        .expect("the request id to resolve it")
        .to_string();
    let result = node.get(&format!("/buy/result?request_id={request}")).await;
    assert_eq!(
        result.code(),
        Code::TryAgain,
        "/buy/result confirms like a sale: no replica holds it, so it is still unknown"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sentinel_failover_mid_sale_loses_no_confirmed_sale() {
    let mut primary = TestRedis::spawn();
    let replicas = [
        TestRedis::replica_of(&primary),
        TestRedis::replica_of(&primary),
    ];
    let sentinel = TestSentinel::watch(&primary, "tickets");
    let url = format!("redis+sentinel://{}/tickets", sentinel.address());
    let central = redis_central_with(confirming(&url, 1)).await;
    let event = event("failover");
    create_sale(&central, &event, SaleConfig::new(100_000).unwrap()).await;
    let node = spawn_node(central, named("n1").serving(&event)).await;

    let started = Instant::now();
    let mut confirmed = Vec::new();
    let mut killed_at = None;
    let mut resumed_after = None;
    let mut user = 0;
    let mut unknown = 0;
    // Why the last purchases were not confirmed (each distinct reason,
    // with how often), for the message if the node never resumes.
    let mut reasons: std::collections::BTreeMap<String, u32> = Default::default();
    while started.elapsed() < Duration::from_secs(40) {
        user += 1;
        let name = format!("u{user}");
        let reply = node.buy(&name).await;
        match reply.code() {
            Code::Success => {
                confirmed.push((name, reply.order().unwrap()));
                if let (Some(killed), None) = (killed_at, resumed_after) {
                    resumed_after = Some(Instant::now() - killed);
                }
            }
            Code::TryAgain => {
                unknown += 1;
                let reason = reply.body["msg"].as_str().unwrap_or("?").to_owned();
                *reasons.entry(reason).or_default() += 1;
            }
            other => panic!("unexpected answer {other:?}: {reply:?}"),
        }
        if killed_at.is_none() && confirmed.len() == 50 {
            primary.kill(); // kill -9 mid-sale
            killed_at = Some(Instant::now());
        }
        if resumed_after.is_some() && confirmed.len() >= 100 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let resumed_after = resumed_after.unwrap_or_else(|| {
        let roles: Vec<_> = replicas
            .iter()
            .map(|r| (r.port(), r.role(), r.online_replicas()))
            .collect();
        panic!(
            "the node did not resume: {} confirmed, {unknown} unknown ({reasons:?}); \
             sentinel says {:?}; replicas (port, role, online replicas): {roles:?}",
            confirmed.len(),
            sentinel.primary_port("tickets"),
        )
    });
    eprintln!(
        "{} confirmed, {unknown} unknown, selling again {resumed_after:?} after the kill",
        confirmed.len()
    );
    assert!(
        resumed_after < Duration::from_secs(30),
        "resumed within Sentinel's failover time: {resumed_after:?}"
    );

    let promoted = sentinel.primary_port("tickets").unwrap();
    assert_ne!(promoted, primary.port(), "a replica was promoted");
    let new_primary = replicas
        .iter()
        .find(|r| r.port() == promoted)
        .expect("one of ours");
    let mut connection = new_primary.connection();
    for (user, order) in &confirmed {
        assert_eq!(
            held_by(&mut connection, &event, user).as_deref(),
            Some(order.as_str()),
            "{user} was told success with {order}: the new primary holds it"
        );
    }
    let orders: HashSet<_> = confirmed.iter().map(|(_, order)| order).collect();
    assert_eq!(orders.len(), confirmed.len(), "no order id given twice");
}
