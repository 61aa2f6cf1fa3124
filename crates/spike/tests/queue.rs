//! The waiting room, end to end on Redis: 2,000 buyers join before the
//! opening, are shuffled at it (every position given once, not in join
//! order), admitted at 200/s, and only admitted buyers buy; a purchase
//! without an admission (or with another buyer's, or a forged one) is
//! refused 403 -7 and changes nothing; once the sale sells out, everyone
//! still waiting is told so. Two nodes share the sale: an admission made by
//! one is honoured by the other. A waiting room needs a token sale:
//! strangers are refused 401 and join nobody.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failure

mod common;

use std::collections::{HashMap, HashSet};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use common::*;
use hyper::{Method, StatusCode};
use spike_core::{CentralStock, EventId, QueueConfig};
use spike_testkit::{unique, TestRedis};

const BUYERS: usize = 2000;
/// The key buyer tokens are signed with: a waiting room needs a token sale.
const TOKEN_KEY: &str = "the-queue-tests-login-system-signs-with-this";

/// `user`'s token, valid for an hour.
fn token_of(user: &str) -> String {
    let user = spike_core::UserId::parse(user).unwrap();
    let keys = ring(TOKEN_KEY);
    spike_auth::mint(
        keys.signing(),
        &user,
        SystemTime::now(),
        Duration::from_secs(3600),
        None,
    )
}
const SEATS: u64 = 1000;
const RATE: u32 = 200;

/// Sends every request with at most 64 outstanding; replies in order.
async fn send_all(http: &Http, method: Method, urls: Vec<String>) -> Vec<Reply> {
    let limit = Arc::new(tokio::sync::Semaphore::new(64));
    let mut tasks = Vec::with_capacity(urls.len());
    for url in urls {
        let (http, method) = (http.clone(), method.clone());
        let permit = Arc::clone(&limit).acquire_owned().await.unwrap();
        tasks.push(tokio::spawn(async move {
            let reply = http.send(method, &url).await;
            drop(permit);
            reply
        }));
    }
    let mut replies = Vec::with_capacity(tasks.len());
    for task in tasks {
        replies.push(task.await.unwrap());
    }
    replies
}

fn buyer(i: usize) -> String {
    format!("q{i:04}")
}

/// Positions admitted so far, as a node read them.
async fn admitted(http: &Http, node: &TestNode<spike_redis::RedisCentral>) -> u64 {
    let stats = http.get(&node.admin_url("/stats")).await;
    stats.body["events"][0]["queue"]["admitted"]
        .as_u64()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crowd_is_shuffled_admitted_at_the_rate_and_only_the_admitted_buy() {
    let redis = TestRedis::shared_or_spawn();
    let central = redis_central(redis.url()).await;
    let event = EventId::parse(unique("queue")).unwrap();
    let opens_in = Duration::from_secs(3);
    let queue = QueueConfig::new(NonZeroU32::new(RATE).unwrap()).unwrap();
    let sale = token_sale_behind(SEATS, queue, Some(SystemTime::now() + opens_in));
    let created = Instant::now();
    create_sale(&central, &event, sale).await;
    let keys = ring(TOKEN_KEY);
    let n1 = spawn_node(central.clone(), named("n1").serving(&event).tokens(&keys)).await;
    let n2 = spawn_node(central.clone(), named("n2").serving(&event).tokens(&keys)).await;
    let http = Http::new();
    let at = |node: &TestNode<_>, path: &str, user: &str| {
        node.url(&format!("{path}?event={event}&token={}", token_of(user)))
    };

    // Joining before the opening: everyone has the same standing.
    let joins: Vec<String> = (0..BUYERS)
        .map(|i| at(if i % 2 == 0 { &n1 } else { &n2 }, "/queue/join", &buyer(i)))
        .collect();
    let joined = send_all(&http, Method::POST, joins).await;
    assert!(created.elapsed() < opens_in, "joined before the opening");
    for reply in &joined {
        assert_eq!(reply.code(), Code::Ok, "{:?}", reply.body);
        assert_eq!(reply.body["data"]["standing"], "waiting_for_start");
        assert!(reply.body["data"]["position"].is_null(), "no position yet");
    }
    let again = http
        .send(Method::POST, &at(&n2, "/queue/join", &buyer(0)))
        .await;
    assert_eq!(again.body["data"]["standing"], "waiting_for_start");
    let record = central.queue_record(&event).await.unwrap().unwrap();
    assert_eq!(record.joiners.len(), BUYERS, "joining again adds nobody");
    let join_index: HashMap<String, u64> = (record.joiners.iter())
        .map(|(user, index)| (user.as_str().to_owned(), *index))
        .collect();

    let early = http.get(&at(&n1, "/buy/ticket", &buyer(5))).await;
    assert_eq!(
        early.code(),
        Code::NotOpen,
        "nothing sells before the opening"
    );

    // The opening: the shuffle, then admission at 200/s.
    tokio::time::sleep(opens_in.saturating_sub(created.elapsed())).await;
    let measure_from = Instant::now() + Duration::from_millis(500);
    tokio::time::sleep_until(measure_from.into()).await;
    let first = admitted(&http, &n1).await;
    let statuses: Vec<String> = (0..BUYERS)
        .map(|i| {
            at(
                if i % 2 == 0 { &n2 } else { &n1 },
                "/queue/status",
                &buyer(i),
            )
        })
        .collect();
    let standing = send_all(&http, Method::GET, statuses).await;
    let mut position_of: HashMap<String, u64> = HashMap::new();
    for (i, reply) in standing.iter().enumerate() {
        let position = reply.body["data"]["position"].as_u64();
        position_of.insert(buyer(i), position.expect("a position after the opening"));
    }
    // A purchase without an admission is refused, with the buyer's standing.
    let (_, last) = (position_of.iter())
        .map(|(user, position)| (*position, user.clone()))
        .max()
        .unwrap();
    let refused = http.get(&at(&n1, "/buy/ticket", &last)).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert_eq!(refused.code(), Code::NotAdmitted);
    assert_eq!(refused.body["msg"], "not admitted yet");
    assert_eq!(refused.body["data"]["standing"], "waiting");
    assert_eq!(refused.body["data"]["position"], BUYERS as u64);
    assert!(refused.body["data"]["reason"]
        .as_str()
        .unwrap()
        .contains("/queue/join"));
    let positions: HashSet<u64> = position_of.values().copied().collect();
    assert_eq!(positions.len(), BUYERS, "every position given once");
    assert_eq!(positions.iter().min(), Some(&1));
    assert_eq!(positions.iter().max(), Some(&(BUYERS as u64)));
    let in_join_order = (position_of.iter())
        .filter(|(user, position)| join_index[*user] + 1 == **position)
        .count();
    assert!(
        in_join_order < 20,
        "admission order is a shuffle, not join order: {in_join_order} buyers kept their place"
    );

    tokio::time::sleep(Duration::from_secs(3)).await;
    let second = admitted(&http, &n1).await;
    let seconds = measure_from.elapsed().as_secs_f64();
    let rate = (second - first) as f64 / seconds;
    assert!(
        (f64::from(RATE) * 0.85..=f64::from(RATE) * 1.15).contains(&rate),
        "admitted at {rate:.0}/s ({first} then {second} over {seconds:.2} s)"
    );

    // Only the admitted buy: a waiting buyer is refused even with an
    // admitted buyer's token, or a forged one.
    let mut by_position: Vec<(u64, String)> = (position_of.iter())
        .map(|(user, position)| (*position, user.clone()))
        .collect();
    by_position.sort();
    let (_, admitted_user) = &by_position[0];
    let (_, waiting_user) = &by_position[BUYERS - 1];
    let status = http.get(&at(&n1, "/queue/status", admitted_user)).await;
    assert_eq!(status.body["data"]["standing"], "admitted");
    let token = status.body["data"]["admission"]
        .as_str()
        .unwrap()
        .to_owned();
    let stolen = format!("{}&admission={token}", at(&n1, "/buy/ticket", waiting_user));
    let refused = http.get(&stolen).await;
    assert_eq!(
        (refused.status, refused.code()),
        (StatusCode::FORBIDDEN, Code::NotAdmitted)
    );
    assert_eq!(refused.body["data"]["standing"], "waiting");
    assert_eq!(refused.body["data"]["position"], BUYERS as u64);
    let forged = format!(
        "{}&admission=0.99999999999999.AAAA",
        at(&n1, "/buy/ticket", waiting_user)
    );
    assert_eq!(http.get(&forged).await.code(), Code::NotAdmitted);
    assert_eq!(central.snapshot(&event).await.unwrap().unwrap().sold, 0);

    // Admitted buyers buy, on either node, with the token either node gave.
    let mut bought = HashSet::new();
    let mut sold_out_at = None;
    let deadline = Instant::now() + Duration::from_secs(30);
    while sold_out_at.is_none() {
        assert!(Instant::now() < deadline, "the sale sells out");
        let now_admitted = admitted(&http, &n1).await;
        let ready: Vec<&String> = (by_position.iter())
            .filter(|(position, user)| *position <= now_admitted && !bought.contains(user))
            .map(|(_, user)| user)
            .take(200)
            .collect();
        let statuses: Vec<String> = ready.iter().map(|u| at(&n2, "/queue/status", u)).collect();
        let answers = send_all(&http, Method::GET, statuses).await;
        // Only those whose status carried an admission (n2 may not have
        // read the latest step yet): each reply is paired with its buyer.
        let (buyers, buys): (Vec<&String>, Vec<String>) = (ready.iter().zip(&answers))
            .filter_map(|(user, answer)| {
                let token = answer.body["data"]["admission"].as_str()?;
                let url = format!("{}&admission={token}", at(&n1, "/buy/ticket", user));
                Some((*user, url))
            })
            .unzip();
        for (user, reply) in buyers.iter().zip(send_all(&http, Method::GET, buys).await) {
            match reply.code() {
                Code::Success => {
                    bought.insert((*user).clone());
                }
                Code::SoldOut => sold_out_at = sold_out_at.or(Some(Instant::now())),
                other => panic!("{user}: {other:?} {:?}", reply.body),
            }
        }
        if bought.len() as u64 == SEATS {
            sold_out_at = sold_out_at.or(Some(Instant::now()));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(bought.len() as u64, SEATS, "every seat sold");

    // Everyone still waiting is told, at once, on both nodes.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let waiting: Vec<&String> = (by_position.iter())
        .filter(|(_, user)| !bought.contains(user))
        .map(|(_, user)| user)
        .collect();
    let told: Vec<String> = (waiting.iter().enumerate())
        .map(|(i, u)| at(if i % 2 == 0 { &n1 } else { &n2 }, "/queue/status", u))
        .collect();
    for reply in send_all(&http, Method::GET, told).await {
        assert_eq!(
            reply.body["data"]["standing"], "sold_out",
            "{:?}",
            reply.body
        );
    }

    // Every seat went to an admitted buyer, at their own position.
    let record = central.queue_record(&event).await.unwrap().unwrap();
    assert_eq!(record.bought.len() as u64, SEATS);
    for (position, user) in &record.bought {
        assert_eq!(
            position_of[user.as_str()],
            position + 1,
            "{user} bought at their place"
        );
        assert!(*position < record.counters.admitted);
    }
    let snapshot = central.snapshot(&event).await.unwrap().unwrap();
    assert_eq!((snapshot.sold, snapshot.buyers), (SEATS, SEATS));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_polls_cost_central_stock_nothing_once_a_buyer_is_known() {
    // Embedded central stock, the demo's: the same waiting room.
    let central = spike_core::MemoryCentral::new();
    let event = EventId::parse(unique("queue-poll")).unwrap();
    let queue = QueueConfig::new(NonZeroU32::new(10).unwrap()).unwrap();
    let sale = token_sale_behind(10, queue, None);
    create_sale(&central, &event, sale).await;
    let node = spawn_node(
        central,
        named("n1").serving(&event).tokens(&ring(TOKEN_KEY)),
    )
    .await;
    let http = Http::new();
    let ann = token_of("ann");
    let joined = node
        .post(&format!("/queue/join?event={event}&token={ann}"))
        .await;
    assert_eq!(joined.code(), Code::Ok, "{:?}", joined.body);
    let before = http.get(&node.admin_url("/stats")).await.body["queue"].clone();
    let polls: Vec<String> = (0..500)
        .map(|_| node.url(&format!("/queue/status?event={event}&token={ann}")))
        .collect();
    for reply in send_all(&http, Method::GET, polls).await {
        assert_eq!(reply.code(), Code::Ok);
    }
    let after = http.get(&node.admin_url("/stats")).await.body["queue"].clone();
    assert_eq!(
        after["answers"].as_u64().unwrap() - before["answers"].as_u64().unwrap(),
        500
    );
    assert_eq!(
        after["central_calls"], before["central_calls"],
        "no central call per poll"
    );

    // A stranger's status is a clear 404; bad input a 400; a sale without a
    // waiting room says so.
    let stranger = node
        .get(&format!(
            "/queue/status?event={event}&token={}",
            token_of("bob")
        ))
        .await;
    assert_eq!(stranger.status, StatusCode::NOT_FOUND);
    let nobody = node.get(&format!("/queue/status?event={event}")).await;
    assert_eq!(nobody.status, StatusCode::UNAUTHORIZED);
    let wrong = node
        .get(&format!("/queue/status?event=nope&token={ann}"))
        .await;
    assert_eq!(wrong.status, StatusCode::BAD_REQUEST);
    let get_join = node
        .get(&format!("/queue/join?event={event}&token={ann}"))
        .await;
    assert_eq!(get_join.status, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_token_sale_strangers_are_refused_401_and_join_nobody() {
    const KEY: &str = "a-test-key-that-is-long-enough-for-hs256";
    let central = spike_core::MemoryCentral::new();
    let event = EventId::parse(unique("queue-token")).unwrap();
    let queue = QueueConfig::new(NonZeroU32::new(100).unwrap()).unwrap();
    let sale = token_sale_behind(10, queue, None);
    create_sale(&central, &event, sale).await;
    let keys = ring(KEY);
    let node = spawn_node(central.clone(), named("n1").serving(&event).tokens(&keys)).await;
    let http = Http::new();
    let ann = spike_core::UserId::parse("ann").unwrap();
    let token = spike_auth::mint(
        keys.signing(),
        &ann,
        SystemTime::now(),
        Duration::from_secs(3600),
        None,
    );
    let forged = spike_auth::mint(
        &spike_auth::SecretKey::new("another-key-nobody-gave-to-the-nodes-xyz").unwrap(),
        &ann,
        SystemTime::now(),
        Duration::from_secs(3600),
        None,
    );

    // No token, a forged one, a user_id alone: 401, and nobody joined.
    let join = node.url(&format!("/queue/join?event={event}"));
    let status = node.url(&format!("/queue/status?event={event}"));
    for (url, method) in [(&join, Method::POST), (&status, Method::GET)] {
        for bearer in [None, Some(forged.as_str())] {
            let reply = http.send_as(method.clone(), url, bearer).await;
            assert_eq!(
                (reply.status, reply.code()),
                (StatusCode::UNAUTHORIZED, Code::Unauthorized),
                "{method} {url} with {bearer:?}"
            );
            assert!(
                !reply.body.to_string().contains(KEY),
                "no secret in answers"
            );
        }
        let claimed = http
            .send(method.clone(), &format!("{url}&user_id=ann"))
            .await;
        assert_eq!(claimed.code(), Code::Unauthorized, "a user_id is not proof");
    }
    let record = central.queue_record(&event).await.unwrap().unwrap();
    assert!(record.joiners.is_empty(), "strangers joined nobody");

    // The buyer's own token joins, and status answers that buyer only.
    let joined = http.send_as(Method::POST, &join, Some(&token)).await;
    assert_eq!(joined.code(), Code::Ok, "{:?}", joined.body);
    let standing = http.send_as(Method::GET, &status, Some(&token)).await;
    assert_eq!(standing.code(), Code::Ok);
    let record = central.queue_record(&event).await.unwrap().unwrap();
    assert_eq!(record.joiners.len(), 1);
    assert_eq!(record.joiners[0].0, ann);
}
