//! Spillover waiting rooms (`--queue auto`), end to end on Redis and on
//! embedded central stock: while demand stays under the admission rate,
//! buyers pass straight through (a purchase needs no admission token);
//! when a crowd exceeds it, the excess waits in the room, told so with
//! `"entry": "queued"` and a position, and is admitted in arrival order at
//! the rate; then the room empties and buyers pass again. The audit checks
//! both: no admission faster than the rate, and no pass ahead of a waiting
//! buyer. `spike demo --queue auto` runs a crowd through one.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failure

mod common;

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::time::{Duration, Instant, SystemTime};

use common::*;
use hyper::StatusCode;
use spike_core::{EventId, QueueConfig, QueueMode, SaleConfig};
use spike_orders::{audit_event, OrderLedger};
use spike_testkit::{unique, TestDatabase, TestRedis};

/// The key buyer tokens are signed with: a waiting room needs a token sale.
const TOKEN_KEY: &str = "the-spillover-tests-login-system-signs-with-this";
/// Positions admitted per second.
const RATE: u32 = 40;
/// Buyers who arrive at once, far more than a second of the rate.
const CROWD: usize = 240;

fn token_of(user: &str) -> String {
    let user = spike_core::UserId::parse(user).unwrap();
    spike_auth::mint(
        ring(TOKEN_KEY).signing(),
        &user,
        SystemTime::now(),
        Duration::from_secs(3600),
        None,
    )
}

/// A token sale of plenty of seats behind a spillover room at [`RATE`].
fn spillover_sale() -> SaleConfig {
    let room = QueueConfig::new(NonZeroU32::new(RATE).unwrap())
        .unwrap()
        .with_mode(QueueMode::Spillover);
    token_sale_behind(10_000, room, None)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_redis_buyers_pass_under_the_rate_and_the_excess_waits_its_turn() {
    let redis = TestRedis::shared_or_spawn();
    the_room_spills_over_only_beyond_the_rate(redis_central(redis.url()).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_buyers_pass_under_the_rate_and_the_excess_waits_its_turn() {
    the_room_spills_over_only_beyond_the_rate(spike_core::MemoryCentral::new()).await;
}

async fn the_room_spills_over_only_beyond_the_rate<C: Central>(central: C) {
    let event = EventId::parse(unique("spill")).unwrap();
    create_sale(&central, &event, spillover_sale()).await;
    let database = TestDatabase::sqlite();
    let ledger = OrderLedger::connect(database.url()).await.unwrap();
    let pipeline = start_pipeline(&central, &ledger, &event);
    let keys = ring(TOKEN_KEY);
    let n1 = spawn_node(central.clone(), named("n1").serving(&event).tokens(&keys)).await;
    let n2 = spawn_node(central.clone(), named("n2").serving(&event).tokens(&keys)).await;
    let http = Http::new();
    let buy = |node: &TestNode<C>, user: &str| {
        node.url(&format!(
            "/buy/ticket?event={event}&token={}",
            token_of(user)
        ))
    };

    // Under the rate: each buyer buys at once, with no admission token.
    for i in 0..10 {
        let node = if i % 2 == 0 { &n1 } else { &n2 };
        let reply = http.get(&buy(node, &format!("calm{i}"))).await;
        assert_eq!(reply.code(), Code::Success, "{:?}", reply.body);
        tokio::time::sleep(Duration::from_millis(2_000 / u64::from(RATE))).await;
    }
    let joined = n1
        .post(&format!(
            "/queue/join?event={event}&token={}",
            token_of("joiner")
        ))
        .await;
    assert_eq!(joined.body["data"]["entry"], "passed", "{:?}", joined.body);
    assert_eq!(joined.body["data"]["standing"], "admitted");
    assert!(joined.body["data"]["admission"].is_string());

    // A crowd far beyond the rate arrives at once: about a second of the
    // rate passes, the rest is told to wait, with a place.
    let arrived = Instant::now();
    let crowd: Vec<String> = (0..CROWD)
        .map(|i| buy(if i % 2 == 0 { &n1 } else { &n2 }, &format!("crowd{i:03}")))
        .collect();
    let replies = get_all(&http, crowd, 48).await;
    let elapsed = arrived.elapsed();
    let passed = count(&replies, Code::Success);
    let allowed = RATE as usize + (elapsed.as_millis() as usize * RATE as usize).div_ceil(1000) + 1;
    assert!(
        passed <= allowed,
        "{passed} passed in {elapsed:?}: more than the rate's bucket"
    );
    assert!(passed >= 1, "the bucket was not empty");
    let mut waiting = Vec::new();
    for (i, reply) in replies.iter().enumerate() {
        if reply.code() == Code::Success {
            continue;
        }
        assert_eq!(
            (reply.status, reply.code()),
            (StatusCode::FORBIDDEN, Code::NotAdmitted),
            "{:?}",
            reply.body
        );
        assert_eq!(reply.body["data"]["entry"], "queued");
        assert_eq!(reply.body["data"]["standing"], "waiting");
        waiting.push(format!("crowd{i:03}"));
    }
    assert_eq!(passed + waiting.len(), CROWD);

    // The last of them asks again at once, on the node that let them in
    // line: told again from that node's memory, with no central call.
    let last = waiting.last().unwrap().clone();
    let last_index: usize = last.trim_start_matches("crowd").parse().unwrap();
    let node = if last_index.is_multiple_of(2) {
        &n1
    } else {
        &n2
    };
    let calls = |stats: &serde_json::Value| stats["queue"]["central_calls"].as_u64().unwrap();
    let before = calls(&http.get(&node.admin_url("/stats")).await.body);
    let again = http.get(&buy(node, &last)).await;
    assert_eq!(again.code(), Code::NotAdmitted, "{:?}", again.body);
    assert_eq!(again.body["data"]["entry"], "queued");
    let after = calls(&http.get(&node.admin_url("/stats")).await.body);
    assert_eq!(
        after, before,
        "a waiting buyer asking again costs no central call"
    );

    // The waiting are admitted in arrival order (position = join order) at
    // the rate, and buy with their admission token.
    let record = central.queue_record(&event).await.unwrap().unwrap();
    let join_index: HashMap<String, u64> = (record.joiners.iter())
        .map(|(user, index)| (user.as_str().to_owned(), *index))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(CROWD as u64 / u64::from(RATE) + 10);
    let mut bought = 0;
    let mut pending = waiting.clone();
    while !pending.is_empty() {
        assert!(Instant::now() < deadline, "{} still waiting", pending.len());
        let mut still = Vec::new();
        for user in pending {
            let status = n2
                .get(&format!(
                    "/queue/status?event={event}&token={}",
                    token_of(&user)
                ))
                .await;
            let data = &status.body["data"];
            assert_eq!(
                data["position"].as_u64(),
                Some(join_index[&user] + 1),
                "{user} waits in arrival order"
            );
            let Some(admission) = data["admission"].as_str() else {
                still.push(user);
                continue;
            };
            let url = format!("{}&admission={admission}", buy(&n1, &user));
            let reply = http.get(&url).await;
            assert_eq!(reply.code(), Code::Success, "{user}: {:?}", reply.body);
            bought += 1;
        }
        pending = still;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(bought, waiting.len());

    // The room is empty again: the next buyer passes straight through.
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    let later = http.get(&buy(&n2, "later")).await;
    assert_eq!(later.code(), Code::Success, "{:?}", later.body);

    let stats = http.get(&n1.admin_url("/stats")).await.body;
    assert!(stats["queue"]["passed_through"].as_u64().unwrap() > 0);
    assert!(stats["queue"]["spilled_over"].as_u64().unwrap() > 0);

    drained(&central, &event).await;
    let report = audit_event(&central, &ledger, &event, None).await.unwrap();
    assert!(report.passed(), "{report:#?}");
    let figure = |name: &str| {
        (report.lines.iter())
            .find(|line| line.name == name)
            .map(|line| line.actual)
    };
    // The calm ten, the whole crowd, and the later one; the joiner never bought.
    let sold = 10 + CROWD as u64 + 1;
    assert_eq!(
        figure("waiting room: buyers who passed straight through (spillover)"),
        Some(10 + 1 + passed as u64 + 1),
        "{report:#?}"
    );
    assert_eq!(central.snapshot(&event).await.unwrap().unwrap().sold, sold);
    pipeline.stop().await;
}

#[test]
fn spike_demo_queue_auto_lets_a_calm_crowd_through_and_audits_it() {
    // The crowd joins after the opening as fast as it can, far under a rate
    // of 100,000/s: everyone passes straight through until the sellout
    // (every buyer among them); after it nobody passes, and all are told.
    let demo = demo_report(&[
        "--queue",
        "auto",
        "--admit-rate",
        "100000/s",
        "--opens-in",
        "0s",
        "--users",
        "3000",
        "--stock",
        "300",
    ]);
    assert_eq!(demo["all_invariants_held"], true);
    assert_eq!(demo["orders"]["audit_passed"], true);
    let room = &demo["waiting_room"];
    assert_eq!(room["bought"], 300);
    assert_eq!(room["told_sold_out"], 2700);
    assert!(room["passed"].as_u64().unwrap() >= 300, "{room}");
}
