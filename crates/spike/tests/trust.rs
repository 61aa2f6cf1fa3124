//! Holes in trust, one spec each: what a stranger can no longer do with a
//! request id, a result, a padded token or the public health answer, and
//! what a recovery can no longer lose. Real Redis and PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failure

mod common;

use std::time::{Duration, SystemTime};

use common::*;
use hyper::{Method, StatusCode};
use spike_auth::mint;
use spike_core::time::unix_millis;
use spike_core::{BuyerPolicy, CentralStock, EventId, NodeId, OrderStream, SaleConfig, UserId};
use spike_orders::{OrderLedger, Recovery};
use spike_redis::{EventKeys, RedisSettings};
use spike_testkit::{unique, TestDatabase, TestRedis};

const TOKEN_KEY: &str = "the-key-the-login-system-signs-buyer-tokens-with";
const HOUR: Duration = Duration::from_secs(3600);

fn event(tag: &str) -> EventId {
    EventId::parse(unique(tag)).expect("event id")
}

fn token_for(user: &str) -> String {
    let keys = ring(TOKEN_KEY);
    let user = UserId::parse(user).expect("user");
    mint(keys.signing(), &user, SystemTime::now(), HOUR, None)
}

/// `spike sale create` of `event` with `stock` seats and `extra` flags:
/// whether it succeeded, and what it printed.
fn sale_create(redis: &str, event: &EventId, stock: &str, extra: &[&str]) -> (bool, String) {
    let mut args = vec![
        "sale",
        "create",
        "--redis",
        redis,
        "--event",
        event.as_str(),
    ];
    args.extend_from_slice(&["--stock", stock]);
    args.extend_from_slice(extra);
    spike(&args)
}

/// The request ids central stock's request index holds for `event`.
fn request_ids(redis: &TestRedis, event: &EventId) -> Vec<String> {
    redis::cmd("HKEYS")
        .arg(EventKeys::new(event).requests)
        .query(&mut redis.connection())
        .expect("HKEYS")
}

// ------------------------------------------------------ 1. request ids

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stranger_replaying_a_buyers_request_id_gets_neither_the_order_nor_its_key() {
    let redis = TestRedis::shared_or_spawn();
    let central = redis_central(redis.url()).await;
    let event = event("takeover");
    let anonymous = SaleConfig::new(2)
        .unwrap()
        .with_policy(BuyerPolicy::Anonymous);
    create_sale(&central, &event, anonymous).await;
    let node = spawn_node(central, named("n1").serving(&event)).await;

    let victim = node.get("/buy/ticket").await;
    assert_eq!(victim.code(), Code::Success);
    let victims_key = victim.body["data"]["order_key"]
        .as_str()
        .unwrap()
        .to_owned();
    let attacker = node.get("/buy/ticket").await;
    assert_eq!(attacker.code(), Code::Success);

    // The ids the node made: its name and 128 random bits, nothing to count on.
    let ids = request_ids(&redis, &event);
    assert_eq!(ids.len(), 2);
    for id in &ids {
        let (tag, random) = id.split_once(':').expect("name:bits");
        assert_eq!(tag, "n1");
        assert_eq!(random.len(), 32, "{id}");
        assert!(random.chars().all(|c| c.is_ascii_hexdigit()), "{id}");
    }
    // Even with the victim's id in hand (leaked), a replay proves nothing.
    let victims_order = victim.order().unwrap();
    for id in &ids {
        let replay = node.get(&format!("/buy/ticket?request_id={id}")).await;
        assert_eq!(replay.code(), Code::Success, "the request did buy");
        assert_eq!(replay.order(), None, "no order for a stranger: {replay:?}");
        assert!(replay.body["data"]["order_key"].is_null(), "{replay:?}");
        assert_eq!(replay.body["data"]["replayed"], true);
        let result = node.get(&format!("/buy/result?request_id={id}")).await;
        assert_eq!(result.order(), None, "{result:?}");
        assert!(result.body["data"]["order_key"].is_null());
    }
    // The order key is the proof: with it, the replay shows the order.
    let mut shown = Vec::new();
    for id in &ids {
        let proved = node
            .get(&format!(
                "/buy/result?request_id={id}&order_key={victims_key}"
            ))
            .await;
        shown.extend(proved.order());
    }
    assert_eq!(
        shown,
        std::slice::from_ref(&victims_order),
        "the key opens its own order only"
    );
    let cancel = node
        .post(&format!("/orders/{victims_order}/cancel?order_key=guess"))
        .await;
    assert_ne!(cancel.status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_key_from_the_503_proves_the_retry_of_a_node_made_request_id() {
    let redis = TestRedis::spawn();
    let central = redis_central(redis.url()).await;
    let event = event("unknown");
    create_sale(&central, &event, SaleConfig::new(5).unwrap()).await;
    let node = spawn_node(central, named("n1").serving(&event)).await;

    // Redis holds every write for 1.5 s: the node's 500 ms deadline passes,
    // then the sale happens.
    let _: () = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(1500)
        .arg("WRITE")
        .query(&mut redis.connection())
        .unwrap();
    let unknown = node.buy("carol").await;
    assert_eq!(
        unknown.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{unknown:?}"
    );
    let data = &unknown.body["data"];
    let request = data["request_id"].as_str().expect("request id").to_owned();
    let key = data["request_key"]
        .as_str()
        .expect("request key")
        .to_owned();
    tokio::time::sleep(Duration::from_millis(1_500)).await;

    // The retry sells (or finds the sale made once the pause ended): the
    // request key proves the caller sent it, so the order is shown.
    let proved = node
        .get(&format!(
            "/buy/ticket?user_id=carol&request_id={request}&request_key={key}"
        ))
        .await;
    assert_eq!(proved.code(), Code::Success, "{proved:?}");
    assert!(proved.order().is_some());
    assert!(proved.body["data"]["order_key"].is_string());
    let bare = node
        .get(&format!("/buy/ticket?user_id=carol&request_id={request}"))
        .await;
    assert_eq!(bare.code(), Code::Success);
    assert_eq!(bare.order(), None, "a user id proves nothing: {bare:?}");
    let result = node
        .get(&format!(
            "/buy/result?request_id={request}&request_key={key}"
        ))
        .await;
    assert_eq!(result.order(), proved.order());
    let forged = node
        .get(&format!(
            "/buy/result?request_id={request}&request_key={}",
            "A".repeat(43)
        ))
        .await;
    assert_eq!(forged.order(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_token_sale_a_result_is_shown_to_its_buyer_alone() {
    let redis = TestRedis::shared_or_spawn();
    let central = redis_central(redis.url()).await;
    let event = event("tokres");
    let config = SaleConfig::new(5)
        .unwrap()
        .with_policy(BuyerPolicy::Identified {
            per_user_limit: std::num::NonZeroU32::MIN,
            auth: spike_core::sale::BuyerAuth::Token,
        });
    create_sale(&central, &event, config).await;
    let node = spawn_node(
        central,
        named("n1").serving(&event).tokens(&ring(TOKEN_KEY)),
    )
    .await;
    let alice = token_for("alice");
    let sold = node.buy_with_token(&alice, "request_id=alice-1").await;
    assert_eq!(sold.code(), Code::Success);

    let http = Http::new();
    let url = node.url("/buy/result?request_id=alice-1");
    let stranger = http.get(&url).await;
    assert_eq!(stranger.status, StatusCode::UNAUTHORIZED, "{stranger:?}");
    let bob = http
        .send_as(Method::GET, &url, Some(&token_for("bob")))
        .await;
    assert_eq!(bob.status, StatusCode::NOT_FOUND, "{bob:?}");
    assert_eq!(bob.order(), None);
    let own = http.send_as(Method::GET, &url, Some(&alice)).await;
    assert_eq!(own.order(), sold.order());

    // One credential per request (RFC 6750): a header and token= is a 400,
    // and nothing is sold.
    let both = http
        .send_as(
            Method::GET,
            &node.url(&format!("/buy/ticket?token={}", token_for("dave"))),
            Some(&token_for("dave")),
        )
        .await;
    assert_eq!(both.status, StatusCode::BAD_REQUEST, "{both:?}");
    let padded = node
        .buy_with_token(&format!("{}=", token_for("erin")), "")
        .await;
    assert_eq!(padded.status, StatusCode::UNAUTHORIZED, "a padded token");
    let sale = http.get(&node.admin_url("/sale")).await;
    assert_eq!(sale.body["sold"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_view_never_shows_its_request_id() {
    let database = TestDatabase::sqlite();
    let ledger = OrderLedger::connect(database.url()).await.expect("ledger");
    let central = spike_core::MemoryCentral::new();
    let event = event("view");
    create_sale(&central, &event, SaleConfig::new(3).unwrap()).await;
    let node = spawn_node(
        central.clone(),
        named("n1").serving(&event).orders_from(&ledger),
    )
    .await;
    let sold = node
        .get("/buy/ticket?user_id=ann&request_id=ann-secret-1")
        .await;
    let order = sold.order().unwrap();
    let key = sold.body["data"]["order_key"].as_str().unwrap().to_owned();
    let view = node.get(&format!("/orders/{order}?order_key={key}")).await;
    assert_eq!(view.status, StatusCode::OK, "{view:?}");
    assert!(view.body["data"].get("request_id").is_none(), "{view:?}");
    assert!(!view.body.to_string().contains("ann-secret-1"));
}

// ----------------------------------------------------- 2. confirmation

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_or_result_no_replica_holds_is_never_success_on_any_node() {
    let primary = TestRedis::spawn();
    let mut replica = TestRedis::replica_of(&primary);
    let confirming = |url: &str| RedisSettings {
        confirm_replicas: 1,
        ..RedisSettings::new(url)
    };
    let event = event("unconfirmed");
    let first = redis_central_with(confirming(primary.url())).await;
    create_sale(&first, &event, SaleConfig::new(10).unwrap()).await;
    let n1 = spawn_node(first, named("n1").serving(&event)).await;
    // A confirmed sale to start from. On a loaded machine the first
    // purchase may wait past the confirmation's deadline (503, outcome
    // unknown); its replay would withhold the order key (this request id
    // is the client's, so nothing proves it), so a new buyer tries again.
    let mut confirmed = None;
    for attempt in 0..5 {
        let request = format!("alice{attempt}-1");
        let answer = n1
            .get(&format!(
                "/buy/ticket?user_id=alice{attempt}&request_id={request}"
            ))
            .await;
        if answer.code() == Code::Success {
            confirmed = Some((request, answer));
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (alice_request, sold) = confirmed.expect("a sale confirmed by the replica");
    let key = sold.body["data"]["order_key"].as_str().unwrap().to_owned();

    // The replica goes; a sale on the primary alone is never "success".
    replica.kill();
    let unconfirmed = n1.get("/buy/ticket?user_id=bob&request_id=bob-1").await;
    assert_eq!(unconfirmed.code(), Code::TryAgain, "{unconfirmed:?}");
    // Another node, on a fresh connection that never wrote: its replay and
    // its result must wait for a replica too, and none is there.
    let second = redis_central_with(confirming(primary.url())).await;
    let n2 = spawn_node(second, named("n2").serving(&event)).await;
    for path in [
        "/buy/ticket?user_id=bob&request_id=bob-1".to_owned(),
        "/buy/result?request_id=bob-1".to_owned(),
        format!("/buy/result?request_id={alice_request}&order_key={key}"),
    ] {
        let answer = n2.get(&path).await;
        assert_eq!(
            answer.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{path}: {answer:?}"
        );
        assert_eq!(answer.code(), Code::TryAgain, "{path}");
    }
}

// ---------------------------------------------------------- 3 and 4. recovery

/// A sale on a Redis the test owns, with its rules in a fresh PostgreSQL.
struct Records {
    redis: TestRedis,
    database: TestDatabase,
    central: spike_redis::RedisCentral,
    ledger: OrderLedger,
    event: EventId,
}

impl Records {
    async fn with_sale(tag: &str, seats: u64) -> Self {
        let redis = TestRedis::spawn();
        let database = TestDatabase::postgres();
        let central = redis_central(redis.url()).await;
        let ledger = OrderLedger::connect(database.url()).await.expect("ledger");
        let event = event(tag);
        let config = SaleConfig::new(seats).unwrap();
        create_sale(&central, &event, config.clone()).await;
        ledger.record_sale(&event, &config).await.expect("rules");
        Self {
            redis,
            database,
            central,
            ledger,
            event,
        }
    }

    /// `spike WORDS… --redis … --database-url … --event EVENT`: whether it
    /// succeeded, and what it printed.
    fn run(&self, words: &[&str], event: &EventId) -> (bool, String) {
        let mut args = words.to_vec();
        args.extend_from_slice(&["--redis", self.redis.url()]);
        args.extend_from_slice(&["--database-url", self.database.url()]);
        args.extend_from_slice(&["--event", event.as_str()]);
        spike(&args)
    }

    fn recover(&self) -> (bool, String) {
        self.run(&["sale", "recover"], &self.event)
    }

    fn audit_passes(&self) -> bool {
        self.run(&["audit"], &self.event).0
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recovery_on_a_host_whose_clock_is_behind_resumes_above_the_fence() {
    let mut records = Records::with_sale("behind", 10).await;
    // An earlier recovery ran on a host whose clock was an hour ahead.
    let hour_ahead = (unix_millis(SystemTime::now()) + 3_600_000) * 1_000;
    let fence = records
        .ledger
        .fence(&records.event, hour_ahead)
        .await
        .expect("fence");
    assert!(fence >= hour_ahead);

    records.redis.kill();
    records.redis.start(); // same port, empty
    let (recovered, said) = records.recover();
    assert!(recovered, "{said}");

    let node = spawn_node(
        records.central.clone(),
        named("n1")
            .serving(&records.event)
            .refreshing_every(Duration::from_millis(100)),
    )
    .await;
    let sold = node.buy("zoe").await;
    assert_eq!(sold.code(), Code::Success, "{sold:?}");
    let (_, sequence) = OrderIdParts::of(&sold.order().unwrap());
    assert!(
        sequence > fence,
        "sequence {sequence} at or below the fence {fence}"
    );
    let pipeline = start_pipeline(&records.central, &records.ledger, &records.event);
    drained(&records.central, &records.event).await;
    pipeline.stop().await;
    let orders = records
        .ledger
        .orders_of_event(&records.event)
        .await
        .unwrap();
    assert_eq!(orders.len(), 1, "the buyer told success has an order");
    assert!(records.audit_passes());
}

/// An order id's event and sequence.
struct OrderIdParts;

impl OrderIdParts {
    fn of(order: &str) -> (String, u64) {
        let (event, sequence) = order.rsplit_once('-').expect("E-seq");
        (event.to_owned(), sequence.parse().expect("sequence"))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_running_between_the_fence_and_the_ledger_read_loses_no_entry() {
    let records = Records::with_sale("gap", 10).await;
    let node = spawn_node(records.central.clone(), named("n1").serving(&records.event)).await;
    for user in ["a", "b", "c"] {
        assert_eq!(node.buy(user).await.code(), Code::Success);
    }
    node.stop().await;

    let mut recovery = Recovery::begin(&records.central, &records.ledger, &records.event)
        .await
        .expect("begin");
    recovery.fence().await.expect("fence");
    // A writer reads right after the fence: every entry is behind it, so
    // it refuses them and acknowledges (deletes) them from the stream.
    let writer = NodeId::parse("gap-writer").unwrap();
    let entries = records
        .central
        .read_new(&records.event, &writer, 100)
        .await
        .unwrap();
    assert_eq!(entries.len(), 3);
    let now_ms = unix_millis(SystemTime::now());
    let window = Duration::from_secs(900);
    let inserted = records
        .ledger
        .insert(&entries, window, now_ms)
        .await
        .unwrap();
    assert_eq!(inserted.fenced.len(), 3);
    let sequences: Vec<u64> = entries.iter().map(|e| e.sequence).collect();
    records
        .central
        .acknowledge(&records.event, &sequences)
        .await
        .unwrap();

    let recovered = recovery.finish(&Default::default()).await.expect("finish");
    assert_eq!(recovered.restoration.holding.len(), 3, "{recovered:?}");
    let orders = records
        .ledger
        .orders_of_event(&records.event)
        .await
        .unwrap();
    assert_eq!(orders.len(), 3, "every sold seat is an order");
    assert!(records.audit_passes());
}

// ----------------------------------------------------- 6. public surface

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_public_health_answer_is_a_few_bytes_and_the_detail_is_for_operators() {
    let central = spike_core::MemoryCentral::new();
    let event = event("health");
    let config = SaleConfig::new(10_000).unwrap();
    create_sale(&central, &event, config).await;
    let node = spawn_node(central, named("n1").serving(&event)).await;
    let public = node.get("/healthz").await;
    assert_eq!(public.status, StatusCode::OK);
    assert!(public.body.to_string().len() < 64, "{}", public.body);
    assert!(public.body.get("events").is_none());
    let admin = Http::new().get(&node.admin_url("/healthz")).await;
    assert!(admin.body["events"].is_array(), "{:?}", admin.body);
}

// ----------------------------------------------------------- 11. bad input

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sale_create_that_fails_leaves_no_sale_live_and_bad_values_are_refused() {
    let redis = TestRedis::shared_or_spawn();
    let central = redis_central(redis.url()).await;
    let event = event("nolive");
    let closed = format!(
        "postgres://nobody@127.0.0.1:{}/none",
        spike_testkit::free_port()
    );
    let create = |extra: &[&str]| sale_create(redis.url(), &event, "10", extra);
    let (created, said) = create(&["--database-url", &closed]);
    assert!(!created, "the ledger is unreachable: {said}");
    assert!(
        central.snapshot(&event).await.unwrap().is_none(),
        "no sale is live"
    );
    let (created, said) = create(&["--payment-window", "300years"]);
    assert!(!created && said.contains("at most 30 days"), "{said}");
    assert!(central.snapshot(&event).await.unwrap().is_none());
    let (made, said) = spike(&[
        "token",
        "--key-file",
        "/dev/null",
        "--user",
        "u",
        "--ttl",
        "0s",
    ]);
    assert!(!made && said.contains("longer than 0"), "{said}");
}

// ------------------------------------------------------- 9. order keys

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_key_of_an_old_life_opens_nothing_after_sale_create_force() {
    let redis = TestRedis::shared_or_spawn();
    let database = TestDatabase::sqlite();
    let ledger = OrderLedger::connect(database.url()).await.expect("ledger");
    let event = event("lives");
    let create = |force: bool| {
        let extra: &[&str] = if force { &["--force"] } else { &[] };
        let (created, said) = sale_create(redis.url(), &event, "5", extra);
        assert!(created, "{said}");
    };
    create(false);
    let central = redis_central(redis.url()).await;
    let node = spawn_node(
        central.clone(),
        named("n1").serving(&event).orders_from(&ledger),
    )
    .await;
    let first = node.buy("ann").await;
    let old_key = first.body["data"]["order_key"].as_str().unwrap().to_owned();
    let order = first.order().unwrap();
    node.stop().await;

    // The sale is made again: its order ids start over, in a new life.
    create(true);
    let node = spawn_node(central, named("n1").serving(&event).orders_from(&ledger)).await;
    let second = node.buy("bob").await;
    assert_eq!(
        second.order().as_deref(),
        Some(order.as_str()),
        "the same id again"
    );
    let new_key = second.body["data"]["order_key"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(new_key, old_key, "a key is bound to its sale's life");
    let stale = node
        .get(&format!("/orders/{order}?order_key={old_key}"))
        .await;
    assert_eq!(stale.status, StatusCode::FORBIDDEN, "{stale:?}");
    let cancel = node
        .post(&format!("/orders/{order}/cancel?order_key={old_key}"))
        .await;
    assert_eq!(cancel.status, StatusCode::FORBIDDEN, "{cancel:?}");
}

// ------------------------------------------------ 6. costly public routes

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replays_and_results_from_one_address_are_held_to_the_costly_limit() {
    let central = spike_core::MemoryCentral::new();
    let event = event("costly");
    create_sale(&central, &event, SaleConfig::new(1).unwrap()).await;
    let limits = spike_node::rate_limit::RateLimits {
        costly_per_ip: std::num::NonZeroU32::new(5),
        ..Default::default()
    };
    let node = spawn_node(central, named("n1").serving(&event).rate_limits(limits)).await;
    assert_eq!(node.buy("ann").await.code(), Code::Success);
    assert_eq!(node.buy("bob").await.code(), Code::SoldOut, "sold out now");
    let calls = node.central_calls();
    let http = Http::new();
    let replays: Vec<String> = (0..20)
        .map(|i| node.url(&format!("/buy/ticket?user_id=m{i}&request_id=guess-{i}")))
        .collect();
    let answered = get_all(&http, replays, 4).await;
    let limited = count(&answered, Code::RateLimited);
    assert!(limited >= 14, "{limited} of 20 held back");
    assert!(
        node.central_calls() - calls <= 6,
        "each one let through costs one call"
    );
    let results: Vec<String> = (0..20)
        .map(|i| node.url(&format!("/buy/result?request_id=guess-{i}")))
        .collect();
    let answered = get_all(&http, results, 4).await;
    assert_eq!(
        count(&answered, Code::RateLimited),
        20,
        "the bucket is empty"
    );
    // Without a request id, a sold-out purchase costs nothing and is not held.
    assert_eq!(node.buy("carl").await.code(), Code::SoldOut);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_purchase_refused_for_its_body_size_still_gets_its_stat_log_line() {
    let central = spike_core::MemoryCentral::new();
    let event = event("bigbody");
    create_sale(&central, &event, SaleConfig::new(3).unwrap()).await;
    let dir = std::env::temp_dir().join(unique("bigbody"));
    std::fs::create_dir_all(&dir).unwrap();
    let stat = dir.join("stat.log");
    let node = spawn_node(central, named("n1").serving(&event).stat_log(&stat)).await;
    let request = format!(
        "POST /buy/ticket?user_id=ann&event={event} HTTP/1.1\r\nHost: spike\r\n\
         Content-Length: 10000000\r\n\r\n"
    );
    assert_eq!(raw_status(node.addr(), request.as_bytes()).await, 413);
    node.stop().await;
    let text = std::fs::read_to_string(&stat).unwrap();
    let lines: Vec<_> = (text.lines())
        .map(|line| spike_core::stat::parse_line(line).expect("parses"))
        .collect();
    assert_eq!(lines.len(), 1, "the refusal was logged: {text}");
    assert_eq!(lines[0].code, Code::Refused);
}

// ------------------------------------------- 8. recovery and the waiting room

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_recovery_the_waiting_room_starts_over_and_old_admissions_admit_nobody() {
    let mut records = Records::with_sale("room", 1).await;
    // The sale under test is a queued token sale of its own (`with_sale`
    // made a plain one): opening in a second, admitting 1,000/s.
    let event = event("room");
    let queue = spike_core::QueueConfig::new(std::num::NonZeroU32::new(1000).unwrap()).unwrap();
    let config = SaleConfig::new(10)
        .unwrap()
        .with_policy(BuyerPolicy::Identified {
            per_user_limit: std::num::NonZeroU32::MIN,
            auth: spike_core::sale::BuyerAuth::Token,
        })
        .opening_at(Some(SystemTime::now() + Duration::from_secs(1)))
        .with_queue(Some(queue))
        .unwrap();
    create_sale(&records.central, &event, config.clone()).await;
    records.ledger.record_sale(&event, &config).await.unwrap();
    let spec = named("n1")
        .serving(&event)
        .tokens(&ring(TOKEN_KEY))
        .refreshing_every(Duration::from_millis(100));
    let node = spawn_node(records.central.clone(), spec).await;
    let http = Http::new();
    let call = |method: Method, route: &str, user: &str| {
        let url = node.url(&format!("{route}?event={event}&token={}", token_for(user)));
        let http = http.clone();
        async move { http.send(method, &url).await }
    };
    for user in ["ann", "ben", "cat"] {
        assert_eq!(
            call(Method::POST, "/queue/join", user).await.code(),
            Code::Ok
        );
    }
    let admission_of = |user: &'static str| {
        let call = &call;
        async move {
            for _ in 0..100 {
                let status = call(Method::GET, "/queue/status", user).await;
                if let Some(token) = status.body["data"]["admission"].as_str() {
                    return token.to_owned();
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            panic!("{user} never admitted")
        }
    };
    let ann = admission_of("ann").await;
    let buy = |user: &'static str, admission: String| {
        let url = node.url(&format!(
            "/buy/ticket?event={event}&token={}&admission={admission}",
            token_for(user)
        ));
        let http = http.clone();
        async move { http.get(&url).await }
    };
    assert_eq!(buy("ann", ann).await.code(), Code::Success);
    let stale = admission_of("ben").await;
    let pipeline = start_pipeline(&records.central, &records.ledger, &event);
    drained(&records.central, &event).await;
    pipeline.stop().await;

    // Redis loses everything; the sale is recovered from the ledger.
    records.redis.kill();
    records.redis.start();
    let (recovered, said) = records.run(&["sale", "recover"], &event);
    assert!(recovered, "{said}");
    assert!(said.contains("waiting room"), "{said}");

    // The node follows the new room: ben's admission from the lost room
    // admits nobody (never a sale), until he joins again and is admitted.
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let answer = buy("ben", stale.clone()).await;
        assert_ne!(
            answer.code(),
            Code::Success,
            "an admission of the lost room"
        );
        if answer.code() == Code::NotAdmitted {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{answer:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Once the node has read the new room (it does at its next step, every
    // 100 ms; until then central stock refuses what the old room admitted),
    // ben joins again.
    loop {
        let stats = http.get(&node.admin_url("/stats")).await;
        if stats.body["events"][0]["queue"]["joined"] == 0 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{:?}", stats.body);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        call(Method::POST, "/queue/join", "ben").await.code(),
        Code::Ok
    );
    let fresh = admission_of("ben").await;
    assert_ne!(fresh, stale);
    let sold = buy("ben", fresh).await;
    assert_eq!(sold.code(), Code::Success, "{sold:?}");
    // Ann, who bought in the lost room, is carried over the reset.
    let (passed, table) = records.run(&["audit"], &event);
    assert!(passed, "{table}");
    assert!(table.contains("holders admitted before a reset"), "{table}");
}
