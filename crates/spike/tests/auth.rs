//! Buyer identity on a sale created with `--auth token`, against real Redis
//! and embedded: purchases without a valid token are refused with 401 and
//! sell nothing, a valid token buys exactly once, and a token minted by
//! PyJWT with the same key works.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failure

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, SystemTime};

use common::*;
use hyper::StatusCode;
use spike::app::{AppError, NodeApp, NodeSettings};
use spike_auth::{mint, KeyRing, SecretKey};
use spike_core::sale::BuyerAuth;
use spike_core::{BuyerPolicy, CentralStock, EventId, MemoryCentral, NodeId, SaleConfig, UserId};
use spike_node::{NodeConfig, NodeError};
use spike_testkit::{unique, TestRedis};

const HOUR: Duration = Duration::from_secs(3600);
const KEY: &str = "a-test-key-that-is-long-enough-for-hs256";
const OTHER_KEY: &str = "another-key-nobody-gave-to-the-nodes-xyz";

fn key_file(keys: &[&str]) -> PathBuf {
    let path = std::env::temp_dir().join(format!("{}.keys", unique("keys")));
    std::fs::write(&path, keys.join("\n")).unwrap();
    path
}

fn user(name: &str) -> UserId {
    UserId::parse(name).unwrap()
}

fn token_sale(stock: u64) -> SaleConfig {
    SaleConfig::new(stock)
        .unwrap()
        .with_policy(BuyerPolicy::Identified {
            per_user_limit: std::num::NonZeroU32::MIN,
            auth: BuyerAuth::Token,
        })
}

fn token(key: &str, name: &str, issued: SystemTime) -> String {
    mint(
        &SecretKey::new(key).unwrap(),
        &user(name),
        issued,
        HOUR,
        None,
    )
}

/// A token minted by PyJWT, the reference implementation most login systems use.
fn pyjwt_token(key: &str, name: &str, event: &EventId) -> String {
    let exp = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600;
    let script = format!(
        "import jwt; print(jwt.encode({{'sub': '{name}', 'exp': {exp}, 'aud': '{event}'}}, '{key}', algorithm='HS256'))"
    );
    let out = Command::new("python3")
        .args(["-c", &script])
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "PyJWT must be installed (scripts/test installs it): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

fn alg_none(name: &str) -> String {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    let claims = format!(r#"{{"sub":"{name}","exp":4102444800}}"#);
    format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#),
        URL_SAFE_NO_PAD.encode(claims)
    )
}

async fn token_scenario<C: Central>(central: C) {
    let event = EventId::parse(unique("tok")).unwrap();
    create_sale(&central, &event, token_sale(5)).await;
    let keys = KeyRing::from_file(&key_file(&[KEY])).unwrap();
    let dir = std::env::temp_dir().join(unique("tok-stat"));
    std::fs::create_dir_all(&dir).unwrap();
    let stat = dir.join("stat.log");
    let spec = named("n1").serving(&event).tokens(&keys).stat_log(&stat);
    let node = spawn_node(central.clone(), spec).await;
    let now = SystemTime::now();

    let refused = [
        (node.buy("alice").await, "token is required"),
        (
            node.buy_with_token(&token(KEY, "alice", now - 2 * HOUR), "")
                .await,
            "expired",
        ),
        (
            node.buy_with_token(&token(OTHER_KEY, "alice", now), "")
                .await,
            "signature",
        ),
        (
            node.buy_with_token(&alg_none("alice"), "").await,
            "algorithm",
        ),
        (
            node.buy_with_token(&token(KEY, "alice", now), "user_id=bob")
                .await,
            "does not match",
        ),
        (node.buy_with_token("not-a-jwt", "").await, "not a JWT"),
    ];
    for (reply, reason) in &refused {
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{:?}", reply.body);
        assert_eq!(reply.code(), Code::Unauthorized);
        let message = reply.body["msg"].as_str().unwrap_or_default();
        assert!(
            message.contains(reason),
            "{message:?} should say {reason:?}"
        );
    }
    let snapshot = central.snapshot(&event).await.unwrap().unwrap();
    assert_eq!(snapshot.sold, 0, "a refused token sells nothing");
    assert_eq!(node.central_calls(), 0, "and never reaches central stock");

    let alice = token(KEY, "alice", now);
    let bought = node.buy_with_token(&alice, "").await;
    assert_eq!(bought.code(), Code::Success, "{:?}", bought.body);
    let again = node.buy_with_token(&alice, "user_id=alice").await;
    assert_eq!(again.code(), Code::AlreadyPurchased, "exactly once");
    assert_eq!(again.order(), bought.order());
    let in_query = node
        .get(&format!("/buy/ticket?token={}", token(KEY, "carol", now)))
        .await;
    assert_eq!(
        in_query.code(),
        Code::Success,
        "token= in the query, for ab"
    );
    let pyjwt = node
        .buy_with_token(&pyjwt_token(KEY, "dave", &event), "")
        .await;
    assert_eq!(pyjwt.code(), Code::Success, "{:?}", pyjwt.body);
    let snapshot = central.snapshot(&event).await.unwrap().unwrap();
    assert_eq!((snapshot.sold, snapshot.buyers), (3, 3));

    node.stop().await;
    let lines = std::fs::read_to_string(&stat).unwrap();
    let unauthorized = lines.lines().filter(|l| l.contains(",code:-6,")).count();
    assert_eq!(unauthorized, refused.len(), "one stat-log line per refusal");
    assert_eq!(lines.lines().count(), refused.len() + 4);
    assert!(!lines.contains(&alice), "tokens never reach the stat log");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_sale_sells_only_to_verified_buyers_on_redis() {
    let redis = TestRedis::shared_or_spawn();
    token_scenario(redis_central(redis.url()).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_sale_sells_only_to_verified_buyers_embedded() {
    token_scenario(MemoryCentral::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotated_keys_both_verify_and_an_audience_binds_a_token_to_its_sale() {
    let central = MemoryCentral::new();
    let event = EventId::parse(unique("rot")).unwrap();
    create_sale(&central, &event, token_sale(5)).await;
    let keys = KeyRing::from_file(&key_file(&[OTHER_KEY, KEY])).unwrap();
    let node = spawn_node(central.clone(), named("n1").serving(&event).tokens(&keys)).await;
    let now = SystemTime::now();
    for (key, name) in [(KEY, "old-key"), (OTHER_KEY, "new-key")] {
        let reply = node.buy_with_token(&token(key, name, now), "").await;
        assert_eq!(reply.code(), Code::Success, "{name}: {:?}", reply.body);
    }
    let elsewhere = EventId::parse("another-sale").unwrap();
    let bound = mint(keys.signing(), &user("erin"), now, HOUR, Some(&elsewhere));
    let reply = node.buy_with_token(&bound, "").await;
    assert_eq!(reply.code(), Code::Unauthorized);
    assert!(reply.body["msg"].as_str().unwrap().contains("aud"));
}

#[tokio::test]
async fn a_node_without_a_token_key_refuses_to_serve_a_token_sale() {
    let central = MemoryCentral::new();
    let event = EventId::parse(unique("nokey")).unwrap();
    create_sale(&central, &event, token_sale(1)).await;
    let config = NodeConfig::new(NodeId::parse("n1").unwrap(), vec![event.clone()]);
    let settings = NodeSettings::new("127.0.0.1:0".parse().unwrap(), config);
    let built = NodeApp::build(settings, central).await;
    assert!(
        matches!(built, Err(AppError::Node(NodeError::NoTokenKey(ref e))) if *e == event),
        "{:?}",
        built.err()
    );
}

#[test]
fn spike_token_prints_a_token_the_nodes_accept_and_sale_show_names_the_mode() {
    let redis = TestRedis::shared_or_spawn();
    let keys = key_file(&[KEY]);
    let event = unique("cli-tok");
    let spike = env!("CARGO_BIN_EXE_spike");
    let run = |args: &[&str]| Command::new(spike).args(args).output().unwrap();
    let created = run(&[
        "sale",
        "create",
        "--redis",
        redis.url(),
        "--event",
        &event,
        "--stock",
        "2",
        "--auth",
        "token",
    ]);
    assert!(created.status.success(), "{created:?}");
    let shown = run(&[
        "sale",
        "show",
        "--redis",
        redis.url(),
        "--event",
        &event,
        "--json",
    ]);
    let shown: serde_json::Value = serde_json::from_slice(&shown.stdout).unwrap();
    assert_eq!(shown["auth"], "token");
    let printed = run(&[
        "token",
        "--key-file",
        keys.to_str().unwrap(),
        "--user",
        "frank",
        "--event",
        &event,
        "--ttl",
        "10m",
    ]);
    assert!(printed.status.success(), "{printed:?}");
    let token = String::from_utf8(printed.stdout).unwrap();
    let verifier = spike_auth::TokenVerifier::new(KeyRing::from_file(&keys).unwrap());
    let event = EventId::parse(event).unwrap();
    let claims = verifier
        .verify(token.trim(), &event, SystemTime::now())
        .unwrap();
    assert_eq!(claims.sub, user("frank"));
    let bad = run(&[
        "sale",
        "create",
        "--redis",
        redis.url(),
        "--event",
        "x",
        "--stock",
        "2",
        "--auth",
        "token",
        "--anonymous",
    ]);
    assert!(!bad.status.success(), "an anonymous token sale is refused");
}

/// On a token sale, an order answers to its buyer's token and to the
/// operator key: another buyer and a stranger get 401 or 403, and nothing
/// changes; the buyer sees, lists and cancels their own order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_token_sale_an_order_answers_only_to_its_buyer_and_the_operator() {
    use hyper::Method;
    use spike_orders::{OrderLedger, Pipeline, PipelineConfig};
    let database = spike_testkit::TestDatabase::sqlite();
    let ledger = OrderLedger::connect(database.url()).await.unwrap();
    let central = MemoryCentral::new();
    let event = EventId::parse(unique("tok-orders")).unwrap();
    create_sale(&central, &event, token_sale(5)).await;
    let consumer = NodeId::parse("writer").unwrap();
    let pipeline = Pipeline::start(
        central.clone(),
        ledger.clone(),
        PipelineConfig::new(consumer, vec![event.clone()]),
    )
    .unwrap();
    let keys = KeyRing::from_file(&key_file(&[KEY])).unwrap();
    let spec = named("n1")
        .serving(&event)
        .tokens(&keys)
        .orders_from(&ledger);
    let node = spawn_node(central.clone(), spec).await;
    let now = SystemTime::now();
    let (alice, mallory) = (token(KEY, "alice", now), token(KEY, "mallory", now));
    let bought = node.buy_with_token(&alice, "").await;
    assert_eq!(bought.code(), Code::Success);
    assert!(
        bought.body["data"].get("order_key").is_none(),
        "a token sale's orders are reached with the token, not a key"
    );
    let order = bought.order().unwrap();
    let http = Http::new();
    let ask = |method: Method, path: String, bearer: Option<String>| {
        let http = http.clone();
        let url = node.url(&path);
        async move { http.send_as(method, &url, bearer.as_deref()).await }
    };
    let refused = [
        (
            Method::GET,
            format!("/orders/{order}"),
            None,
            StatusCode::UNAUTHORIZED,
        ),
        (
            Method::GET,
            format!("/orders/{order}"),
            Some(mallory.clone()),
            StatusCode::FORBIDDEN,
        ),
        (
            Method::POST,
            format!("/orders/{order}/cancel"),
            Some(mallory.clone()),
            StatusCode::FORBIDDEN,
        ),
        (
            Method::POST,
            format!("/orders/{order}/pay"),
            Some(alice.clone()),
            StatusCode::FORBIDDEN,
        ),
        (
            Method::GET,
            "/users/alice/orders".to_owned(),
            Some(mallory.clone()),
            StatusCode::FORBIDDEN,
        ),
        (
            Method::GET,
            "/users/alice/orders".to_owned(),
            None,
            StatusCode::UNAUTHORIZED,
        ),
    ];
    for (method, path, bearer, status) in refused {
        let reply = ask(method.clone(), path.clone(), bearer).await;
        assert_eq!(reply.status, status, "{method} {path}: {:?}", reply.body);
    }
    let seen = ask(Method::GET, format!("/orders/{order}"), Some(alice.clone())).await;
    assert_eq!(
        seen.body["data"]["state"], "reserved",
        "nothing changed: {:?}",
        seen.body
    );
    let cancelled = ask(
        Method::POST,
        format!("/orders/{order}/cancel"),
        Some(alice.clone()),
    )
    .await;
    assert_eq!(
        cancelled.body["data"]["state"], "cancelled",
        "{:?}",
        cancelled.body
    );
    let listed = ask(Method::GET, "/users/alice/orders".into(), Some(alice)).await;
    assert_eq!(listed.body["data"][0]["order_id"], order.as_str());
    let snapshot = central.snapshot(&event).await.unwrap().unwrap();
    assert_eq!(snapshot.sold, 0, "the cancelled seat is back");
    node.stop().await;
    pipeline.stop().await;
}
