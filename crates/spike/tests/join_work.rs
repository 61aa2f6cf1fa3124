//! Proof of work at the waiting room's door (`--join-work BITS`), through
//! a node on embedded central stock: a join without work, with another
//! buyer's work, with forged or unsolved work is refused 403 with a fresh
//! challenge and joins nobody; `GET /queue/challenge` gives a challenge
//! bound to the buyer and the event, and the solved work joins. A spillover
//! room asks the same of a purchase at its door. (The page solving it in
//! Chromium is in `browser.rs`.)

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failure

mod common;

use std::num::NonZeroU32;

use common::*;
use hyper::{Method, StatusCode};
use spike_auth::work::solve;
use spike_core::{CentralStock, EventId, QueueConfig, QueueMode, SaleConfig};
use spike_testkit::unique;

const TOKEN_KEY: &str = "the-join-work-tests-login-system-signs-with-this";
const BITS: u8 = 12;

fn token_of(user: &str) -> String {
    token_signed_with(TOKEN_KEY, user)
}

fn queued(mode: QueueMode) -> SaleConfig {
    let room = (QueueConfig::new(NonZeroU32::new(1_000).unwrap()).unwrap()).with_mode(mode);
    token_sale_behind(10, room, None)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_join_needs_work_solved_on_its_own_challenge() {
    let central = spike_core::MemoryCentral::new();
    let event = EventId::parse(unique("work")).unwrap();
    create_sale(&central, &event, queued(QueueMode::Always)).await;
    let keys = ring(TOKEN_KEY);
    let node = spawn_node(
        central.clone(),
        named("n1").serving(&event).tokens(&keys).join_work(BITS),
    )
    .await;
    let http = Http::new();
    let join = |user: &str, work: Option<&str>| {
        let work = work.map_or(String::new(), |w| format!("&work={w}"));
        node.url(&format!(
            "/queue/join?event={event}&token={}{work}",
            token_of(user)
        ))
    };

    let refused = http.send(Method::POST, &join("ann", None)).await;
    assert_eq!(
        (refused.status, refused.code()),
        (StatusCode::FORBIDDEN, Code::Refused)
    );
    assert!(refused.body["msg"]
        .as_str()
        .unwrap()
        .contains("proof of work"));
    assert_eq!(refused.body["data"]["work_bits"], BITS);
    let offered = refused.body["data"]["challenge"]
        .as_str()
        .unwrap()
        .to_owned();

    let asked = node
        .get(&format!(
            "/queue/challenge?event={event}&token={}",
            token_of("ann")
        ))
        .await;
    assert_eq!(asked.status, StatusCode::OK, "{:?}", asked.body);
    let challenge = asked.body["data"]["challenge"].as_str().unwrap().to_owned();
    let (work, hashes) = solve(&challenge, BITS);
    assert!(hashes >= 1);

    // Bob cannot use Ann's work, nor anyone forged or unsolved work.
    let (bobs, _) = solve(&offered, BITS);
    let unsolved = format!("{challenge}.x");
    for (user, work) in [
        ("bob", bobs.as_str()),
        ("ann", "1.AAAAAAAAAAAAAAAAAAAAAA.7"),
        ("ann", unsolved.as_str()),
    ] {
        let reply = http.send(Method::POST, &join(user, Some(work))).await;
        assert_eq!(
            reply.status,
            StatusCode::FORBIDDEN,
            "{user} {work}: {:?}",
            reply.body
        );
        assert!(reply.body["data"]["challenge"].is_string());
    }
    let record = central.queue_record(&event).await.unwrap().unwrap();
    assert!(
        record.joiners.is_empty(),
        "nobody joined: {:?}",
        record.joiners
    );

    let joined = http.send(Method::POST, &join("ann", Some(&work))).await;
    assert_eq!(joined.status, StatusCode::OK, "{:?}", joined.body);
    let record = central.queue_record(&event).await.unwrap().unwrap();
    assert_eq!(record.joiners.len(), 1);
    let stats = http.get(&node.admin_url("/stats")).await.body;
    assert_eq!(stats["queue"]["work_refused"], 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spillover_door_asks_a_purchase_for_the_same_work() {
    let central = spike_core::MemoryCentral::new();
    let event = EventId::parse(unique("work-door")).unwrap();
    create_sale(&central, &event, queued(QueueMode::Spillover)).await;
    let keys = ring(TOKEN_KEY);
    let node = spawn_node(
        central.clone(),
        named("n1").serving(&event).tokens(&keys).join_work(BITS),
    )
    .await;
    let buy = |work: &str| {
        node.url(&format!(
            "/buy/ticket?event={event}&token={}{work}",
            token_of("cy")
        ))
    };
    let http = Http::new();
    let refused = http.get(&buy("")).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{:?}", refused.body);
    let challenge = refused.body["data"]["challenge"].as_str().unwrap();
    let (work, _) = solve(challenge, BITS);
    let sold = http.get(&buy(&format!("&work={work}"))).await;
    assert_eq!(sold.code(), Code::Success, "{:?}", sold.body);
}
