//! Operators' live controls, end to end: only the operator key may give
//! them (a stranger gets 401 or 403 and changes nothing, bad input a clear
//! 400); a pause given to one of four nodes stops sales on all four within
//! a second, loses nothing, and a resume sells again; a waiting room's
//! rate changed mid-sale admits at the new rate; a revoked buyer is refused
//! and told why, and buys once reinstated; and the operator log (who,
//! what, when) is in the audit.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failure

mod common;

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use common::*;
use hyper::{Method, StatusCode};
use spike_core::queue::AdmissionStep;
use spike_core::{CentralStock, EventId, QueueConfig, SaleConfig};
use spike_orders::{audit_event, OrderLedger};
use spike_testkit::{unique, TestDatabase, TestRedis};

/// The key buyer tokens are signed with: a waiting room needs a token sale.
const TOKEN_KEY: &str = "the-control-tests-login-system-signs-with-this";

fn token_of(user: &str) -> String {
    token_signed_with(TOKEN_KEY, user)
}

/// A token sale of `seats` behind a waiting room admitting `rate` a second,
/// opening `opens_in` from now.
fn queued_sale(seats: u64, rate: u32, opens_in: Duration) -> SaleConfig {
    let room = QueueConfig::new(NonZeroU32::new(rate).unwrap()).unwrap();
    token_sale_behind(seats, room, Some(SystemTime::now() + opens_in))
}

/// An operator at the admin surface of one node.
struct Operator<'a, C> {
    node: &'a TestNode<C>,
    event: &'a EventId,
    http: Http,
}

impl<'a, C: CentralStock> Operator<'a, C> {
    fn at(node: &'a TestNode<C>, event: &'a EventId) -> Self {
        Self {
            node,
            event,
            http: Http::new(),
        }
    }

    /// `POST /control/{action}?event&by=ops&…` with the operator key.
    async fn control(&self, action: &str, extra: &str) -> Reply {
        let url = self.node.admin_url(&format!(
            "/control/{action}?event={}&by=ops@test{extra}",
            self.event
        ));
        self.http
            .send_as(Method::POST, &url, Some(OPERATOR_KEY))
            .await
    }

    async fn pause(&self) -> Reply {
        self.control("pause", "").await
    }

    async fn resume(&self) -> Reply {
        self.control("resume", "").await
    }

    async fn read(&self, what: &str) -> Reply {
        let url = (self.node).admin_url(&format!("/control/{what}?event={}", self.event));
        self.http
            .send_as(Method::GET, &url, Some(OPERATOR_KEY))
            .await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strangers_and_bad_input_are_refused_and_change_nothing() {
    let central = spike_core::MemoryCentral::new();
    let event = EventId::parse(unique("ctl-trust")).unwrap();
    create_sale(&central, &event, SaleConfig::new(10).unwrap()).await;
    let node = spawn_node(central.clone(), named("n1").serving(&event)).await;
    let http = Http::new();
    let pause = node.admin_url(&format!("/control/pause?event={event}&by=ops"));

    let none = http.send(Method::POST, &pause).await;
    assert_eq!(none.status, StatusCode::UNAUTHORIZED, "{:?}", none.body);
    let stranger = http.send_as(Method::POST, &pause, Some("a-guess")).await;
    assert_eq!(
        stranger.status,
        StatusCode::FORBIDDEN,
        "{:?}",
        stranger.body
    );
    let public = node.url(&format!("/control/pause?event={event}&by=ops"));
    let outside = http
        .send_as(Method::POST, &public, Some(OPERATOR_KEY))
        .await;
    assert_eq!(
        outside.status,
        StatusCode::NOT_FOUND,
        "not on the public surface"
    );
    let read = node.admin_url(&format!("/control/log?event={event}"));
    assert_eq!(
        http.send(Method::GET, &read).await.status,
        StatusCode::UNAUTHORIZED
    );

    let operator = Operator::at(&node, &event);
    let bad = |reply: Reply| {
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{:?}", reply.body);
        reply.body["msg"].as_str().unwrap().to_owned()
    };
    let unnamed = node.admin_url(&format!("/control/pause?event={event}"));
    let message = bad(http
        .send_as(Method::POST, &unnamed, Some(OPERATOR_KEY))
        .await);
    assert!(message.contains("by is required"), "{message}");
    let zero = operator.control("admission", "&rate=0").await;
    assert!(bad(zero).contains("rate"));
    let unexplained = operator.control("revoke", "&user_id=ann").await;
    assert!(bad(unexplained).contains("reason"));
    let no_room = operator.control("admission", "&rate=5").await;
    assert_eq!(no_room.status, StatusCode::CONFLICT, "{:?}", no_room.body);
    let get_pause = http.send_as(Method::GET, &pause, Some(OPERATOR_KEY)).await;
    assert_eq!(get_pause.status, StatusCode::METHOD_NOT_ALLOWED);

    assert_eq!(central.operator_log(&event, 0).await.unwrap(), []);
    assert_eq!(node.buy("ann").await.code(), Code::Success, "still selling");
    let log = operator.read("log").await;
    assert_eq!(log.body["data"]["entries"], serde_json::json!([]));
}

/// One purchase's answer and when it came.
struct Answered {
    at: Instant,
    code: Code,
    paused: bool,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pause_on_one_node_stops_all_four_within_a_second_and_loses_nothing() {
    let redis = TestRedis::shared_or_spawn();
    let central = redis_central(redis.url()).await;
    let event = EventId::parse(unique("ctl-pause")).unwrap();
    create_sale(&central, &event, SaleConfig::new(100_000).unwrap()).await;
    let database = TestDatabase::sqlite();
    let ledger = OrderLedger::connect(database.url()).await.unwrap();
    let pipeline = start_pipeline(&central, &ledger, &event);
    let mut nodes = Vec::new();
    for name in ["n1", "n2", "n3", "n4"] {
        nodes.push(spawn_node(central.clone(), named(name).serving(&event)).await);
    }
    let urls: Vec<String> = nodes.iter().map(|node| node.url("/buy/ticket")).collect();

    // Buyers keep buying on all four nodes while the operator pauses and
    // resumes through the first.
    let answered: Arc<Mutex<Vec<Vec<Answered>>>> =
        Arc::new(Mutex::new((0..4).map(|_| Vec::new()).collect()));
    let stop = Arc::new(AtomicBool::new(false));
    let mut buyers = Vec::new();
    for (index, url) in urls.iter().enumerate() {
        for lane in 0..4 {
            let (answered, stop, url) = (Arc::clone(&answered), Arc::clone(&stop), url.clone());
            buyers.push(tokio::spawn(async move {
                let http = Http::new();
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    let reply = http
                        .get(&format!("{url}?user_id=b{index}x{lane}x{i}"))
                        .await;
                    let paused = reply.body["data"]["reason"]
                        .as_str()
                        .is_some_and(|why| why.contains("paused"));
                    let at = Instant::now();
                    let code = reply.code();
                    answered.lock().unwrap()[index].push(Answered { at, code, paused });
                    i += 1;
                }
            }));
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let operator = Operator::at(&nodes[0], &event);
    let pausing = Instant::now();
    let paused = operator.pause().await;
    assert_eq!(paused.status, StatusCode::OK, "{:?}", paused.body);
    assert_eq!(paused.body["data"]["action"], "pause");
    assert_eq!(paused.body["data"]["by"], "ops@test");
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let resuming = Instant::now();
    let resumed = operator.resume().await;
    assert_eq!(resumed.status, StatusCode::OK, "{:?}", resumed.body);
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    stop.store(true, Ordering::Relaxed);
    for buyer in buyers {
        buyer.await.unwrap();
    }

    let answered = std::mem::take(&mut *answered.lock().unwrap());
    let mut told_sold = 0;
    for (index, answers) in answered.iter().enumerate() {
        let node = index + 1;
        told_sold += answers.iter().filter(|a| a.code == Code::Success).count();
        let sold_in = |from: Instant, until: Instant| {
            (answers.iter())
                .filter(|a| a.code == Code::Success && a.at > from && a.at < until)
                .count()
        };
        assert!(
            sold_in(Instant::now() - Duration::from_secs(60), pausing) > 0,
            "n{node} sold before"
        );
        assert_eq!(
            sold_in(pausing + Duration::from_secs(1), resuming),
            0,
            "n{node} sold more than a second after the pause"
        );
        let told_paused = (answers.iter()).filter(|a| a.at > pausing && a.at < resuming);
        let told_paused = told_paused
            .filter(|a| a.code == Code::TryAgain && a.paused)
            .count();
        assert!(told_paused > 0, "n{node} never answered \"paused\"");
        assert!(
            sold_in(resuming, Instant::now()) > 0,
            "n{node} did not sell again"
        );
    }

    // Nothing lost: every sale a buyer was told of is an order, and the
    // audit finds no order sold while the sale was paused.
    drained(&central, &event).await;
    let snapshot = central.snapshot(&event).await.unwrap().unwrap();
    assert_eq!(snapshot.sold as usize, told_sold);
    assert_eq!(
        ledger.orders_of_event(&event).await.unwrap().len(),
        told_sold
    );
    let report = audit_event(&central, &ledger, &event, None).await.unwrap();
    assert!(report.passed(), "{report:#?}");
    let line = |name: &str| {
        let line = report.lines.iter().find(|line| line.name == name);
        line.unwrap_or_else(|| panic!("no audit line {name:?}: {report:#?}"))
            .actual
    };
    assert_eq!(line("operator controls: pauses"), 1);
    assert_eq!(line("operator controls: resumes"), 1);
    assert_eq!(line("orders sold while the sale was paused"), 0);
    let log = operator.read("log").await;
    let actions: Vec<&str> = (log.body["data"]["entries"].as_array().unwrap().iter())
        .map(|entry| entry["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["pause", "resume"]);
    drop(pipeline);
}

/// Positions admitted by `at_ms`, from central stock's steps.
fn admitted_by(steps: &[AdmissionStep], at_ms: u64) -> u64 {
    spike_core::queue::admitted_by(steps, at_ms)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_changed_mid_sale_admits_at_the_new_rate() {
    const OLD: u32 = 100;
    const NEW: u32 = 400;
    let redis = TestRedis::shared_or_spawn();
    let central = redis_central(redis.url()).await;
    let event = EventId::parse(unique("ctl-rate")).unwrap();
    let opens_in = Duration::from_secs(3);
    create_sale(&central, &event, queued_sale(10_000, OLD, opens_in)).await;
    let opens = Instant::now() + opens_in;
    let keys = ring(TOKEN_KEY);
    let n1 = spawn_node(central.clone(), named("n1").serving(&event).tokens(&keys)).await;
    let n2 = spawn_node(central.clone(), named("n2").serving(&event).tokens(&keys)).await;
    let http = Http::new();
    let joins: Vec<(Method, String, Option<&'static str>)> = (0..3_000)
        .map(|i| {
            let node = if i % 2 == 0 { &n1 } else { &n2 };
            let url = node.url(&format!(
                "/queue/join?event={event}&token={}",
                token_of(&format!("r{i}"))
            ));
            (Method::POST, url, None)
        })
        .collect();
    let joined = send_all(&http, joins, 64).await;
    assert!(joined.iter().all(|reply| reply.status == StatusCode::OK));
    assert!(Instant::now() < opens, "everyone joined before the opening");

    // Three and a half seconds at the old rate, then the operator raises it through
    // the CLI, on the other node.
    tokio::time::sleep(opens - Instant::now() + Duration::from_millis(3_500)).await;
    let dir = tempfile_dir();
    let key_file = dir.join("operator.key");
    std::fs::write(&key_file, OPERATOR_KEY).unwrap();
    let admin = format!("http://{}", n2.app.admin_addr());
    // `spike WORDS… --admin … --event … --operator-key-file … EXTRA…`.
    let operator_cli = |words: &[&str], extra: &[&str]| {
        let mut args = words.to_vec();
        args.extend_from_slice(&["--admin", &admin, "--event", event.as_str()]);
        args.extend_from_slice(&["--operator-key-file", key_file.to_str().unwrap()]);
        args.extend_from_slice(extra);
        spike(&args)
    };
    let new_rate = NEW.to_string();
    let (ok, said) = operator_cli(
        &["queue", "set"],
        &["--by", "ops@test", "--rate", &new_rate],
    );
    assert!(ok, "{said}");
    assert!(said.contains("admission"), "{said}");
    tokio::time::sleep(Duration::from_millis(2_800)).await;

    let record = central.queue_record(&event).await.unwrap().unwrap();
    let log = central.operator_log(&event, 0).await.unwrap();
    let changed_at = log.first().expect("the change is logged").at_ms;
    let steps = &record.counters.steps;
    let rate = |from: u64, until: u64| {
        let moved = admitted_by(steps, until) - admitted_by(steps, from);
        moved as f64 * 1000.0 / (until - from) as f64
    };
    let opened_at = steps.first().unwrap().at_ms;
    let before = rate(opened_at + 1_500, changed_at);
    let after = rate(changed_at + 300, changed_at + 2_300);
    eprintln!("admitted {before:.1}/s at {OLD}/s, then {after:.1}/s at {NEW}/s");
    let within = |measured: f64, target: u32| {
        (measured - f64::from(target)).abs() <= 0.15 * f64::from(target)
    };
    assert!(
        within(before, OLD),
        "{before:.0}/s before the change, not {OLD}"
    );
    assert!(
        within(after, NEW),
        "{after:.0}/s after the change, not {NEW}"
    );

    // Every node follows: the room shows the new rate on both.
    for node in [&n1, &n2] {
        let room = Operator::at(node, &event).read("queue").await;
        assert_eq!(
            room.body["data"]["admit_rate_per_s"], NEW,
            "{:?}",
            room.body
        );
    }
    let (ok, said) = operator_cli(&["queue", "show"], &["--json"]);
    assert!(ok, "{said}");
    let shown: serde_json::Value = serde_json::from_str(&said).unwrap();
    assert_eq!(shown["joined"], 3_000);
    assert!(shown["admitted"].as_u64().unwrap() > 0);
    assert_eq!(shown["admit_rate_per_s"], NEW);
    let (ok, said) = operator_cli(&["sale", "log"], &[]);
    assert!(
        ok && said.contains("rate 100/s → 400/s") && said.contains("ops@test"),
        "{said}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(unique("spike-controls"));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_redis_a_revoked_admission_is_refused_and_its_owner_told_why() {
    let redis = TestRedis::shared_or_spawn();
    a_revoked_admission_is_refused_and_its_owner_told_why(redis_central(redis.url()).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_a_revoked_admission_is_refused_and_its_owner_told_why() {
    a_revoked_admission_is_refused_and_its_owner_told_why(spike_core::MemoryCentral::new()).await;
}

async fn a_revoked_admission_is_refused_and_its_owner_told_why<C: Central>(central: C) {
    let event = EventId::parse(unique("ctl-revoke")).unwrap();
    create_sale(&central, &event, queued_sale(10, 1_000, Duration::ZERO)).await;
    let keys = ring(TOKEN_KEY);
    let n1 = spawn_node(central.clone(), named("n1").serving(&event).tokens(&keys)).await;
    let n2 = spawn_node(central.clone(), named("n2").serving(&event).tokens(&keys)).await;
    let admission = |node: &TestNode<C>, user: &'static str| {
        let url = node.url(&format!(
            "/queue/join?event={event}&token={}",
            token_of(user)
        ));
        async move {
            let deadline = Instant::now() + Duration::from_secs(5);
            loop {
                let reply = Http::new().send(Method::POST, &url).await;
                if let Some(admission) = reply.body["data"]["admission"].as_str() {
                    return admission.to_owned();
                }
                assert!(
                    Instant::now() < deadline,
                    "{user} never admitted: {:?}",
                    reply.body
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    let ann = admission(&n1, "ann").await;
    let bob = admission(&n1, "bob").await;

    let revoked = Operator::at(&n2, &event)
        .control("revoke", "&user_id=ann&reason=resale%20bot")
        .await;
    assert_eq!(revoked.status, StatusCode::OK, "{:?}", revoked.body);
    assert_eq!(revoked.body["data"]["user_id"], "ann");
    tokio::time::sleep(Duration::from_secs(1)).await;

    let buy = |user: &str, admission: &str| {
        n1.url(&format!(
            "/buy/ticket?event={event}&token={}&admission={admission}",
            token_of(user)
        ))
    };
    let http = Http::new();
    let refused = http.get(&buy("ann", &ann)).await;
    assert_eq!(
        (refused.status, refused.code()),
        (StatusCode::FORBIDDEN, Code::NotAdmitted)
    );
    let reason = refused.body["data"]["reason"].as_str().unwrap();
    assert!(
        reason.contains("revoked") && reason.contains("resale bot"),
        "{reason}"
    );
    assert_eq!(refused.body["data"]["standing"], "revoked");
    let status = n1
        .get(&format!(
            "/queue/status?event={event}&token={}",
            token_of("ann")
        ))
        .await;
    assert_eq!(
        status.body["data"]["standing"], "revoked",
        "{:?}",
        status.body
    );
    assert_eq!(status.body["data"]["reason"], "resale bot");
    assert!(
        status.body["data"]["admission"].is_null(),
        "no token for a revoked buyer"
    );

    let sold = http.get(&buy("bob", &bob)).await;
    assert_eq!(sold.code(), Code::Success, "{:?}", sold.body);
    let snapshot = central.snapshot(&event).await.unwrap().unwrap();
    assert_eq!(snapshot.sold, 1, "ann bought nothing");

    // A revocation made by mistake is given back, on every node.
    let reinstated = Operator::at(&n2, &event)
        .control("reinstate", "&user_id=ann")
        .await;
    assert_eq!(reinstated.status, StatusCode::OK, "{:?}", reinstated.body);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let again = http.get(&buy("ann", &ann)).await;
    assert_eq!(again.code(), Code::Success, "{:?}", again.body);
}

/// Whether `reply` is the "paused" refusal.
fn is_paused(reply: &Reply) -> bool {
    reply.code_if_any() == Some(Code::TryAgain)
        && reply.body["data"]["reason"]
            .as_str()
            .is_some_and(|why| why.contains("paused"))
}

/// Central stock loses everything while a sale is paused: the recovery
/// brings it back paused, with its operator log whole, from the stat log
/// of a node that only followed the pause (another node took it); a resume
/// sells again, and the audit passes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_sale_comes_back_paused_after_central_stock_loses_everything() {
    let mut redis = TestRedis::spawn();
    let database = TestDatabase::postgres();
    let central = redis_central(redis.url()).await;
    let ledger = OrderLedger::connect(database.url()).await.unwrap();
    let event = EventId::parse(unique("ctl-lost")).unwrap();
    let config = SaleConfig::new(10).unwrap();
    create_sale(&central, &event, config.clone()).await;
    ledger.record_sale(&event, &config).await.unwrap();
    let stat_log = tempfile_dir().join("follower.stat.log");
    let follower = named("follower").serving(&event).stat_log(&stat_log);
    let follower = spawn_node(central.clone(), follower).await;
    let operated = spawn_node(central.clone(), named("operated").serving(&event)).await;
    assert_eq!(follower.buy("early").await.code(), Code::Success);

    let paused = Operator::at(&operated, &event).pause().await;
    assert_eq!(paused.status, StatusCode::OK, "{:?}", paused.body);
    let deadline = Instant::now() + Duration::from_secs(5);
    let followed = loop {
        let logged = std::fs::read_to_string(&stat_log).unwrap_or_default();
        if logged.contains(" control:0,node:follower,") {
            break logged;
        }
        assert!(
            Instant::now() < deadline,
            "the follower never logged the pause: {logged}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(followed.contains(" ops@test pause"), "{followed}");
    assert!(is_paused(&follower.buy("eager").await));
    follower.stop().await;
    operated.stop().await;

    redis.kill();
    redis.start(); // same port, empty
    assert!(central.snapshot(&event).await.unwrap().is_none(), "gone");
    let records = |words: &[&str]| {
        let mut args = words.to_vec();
        args.extend_from_slice(&["--redis", redis.url(), "--event", event.as_str()]);
        args.extend_from_slice(&["--database-url", database.url()]);
        args.extend_from_slice(&["--stat-log", stat_log.to_str().unwrap()]);
        spike(&args)
    };
    let (recovered, said) = records(&["sale", "recover"]);
    assert!(recovered, "{said}");
    assert!(
        said.contains("restored: 1 entry; the sale is paused, 0 buyers revoked"),
        "{said}"
    );
    let log = central.operator_log(&event, 0).await.unwrap();
    assert_eq!(log.len(), 1, "the log is back: {log:?}");
    assert_eq!(log[0].by.as_str(), "ops@test");
    assert_eq!(log[0].applied, spike_core::control::Applied::Paused);

    let after = named("after").serving(&event).stat_log(&stat_log);
    let node = spawn_node(central.clone(), after).await;
    let refused = node.buy("late").await;
    assert!(is_paused(&refused), "still paused: {:?}", refused.body);
    let resumed = Operator::at(&node, &event).resume().await;
    assert_eq!(resumed.status, StatusCode::OK, "{:?}", resumed.body);
    assert_eq!(resumed.body["data"]["index"], 1, "the log goes on");
    let sold = node.buy("late").await;
    assert_eq!(sold.code(), Code::Success, "{:?}", sold.body);
    node.stop().await;
    let pipeline = start_pipeline(&central, &ledger, &event);
    drained(&central, &event).await;
    pipeline.stop().await;
    let (audited, table) = records(&["audit"]);
    assert!(audited, "{table}");
    assert!(
        table.contains("orders sold while the sale was paused"),
        "{table}"
    );
}

/// A sale recreated under its name (`sale create --force`) starts a new
/// operator log: a node that followed the old log's pause follows the new
/// log from its start, sells the new sale, and takes the new log's first
/// entry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sale_recreated_under_its_name_is_followed_from_its_new_log() {
    let redis = TestRedis::shared_or_spawn();
    let central = redis_central(redis.url()).await;
    let event = EventId::parse(unique("ctl-recreated")).unwrap();
    let config = SaleConfig::new(10).unwrap();
    create_sale(&central, &event, config.clone()).await;
    let node = spawn_node(central.clone(), named("n1").serving(&event)).await;
    let operator = Operator::at(&node, &event);
    assert_eq!(operator.pause().await.status, StatusCode::OK);
    assert!(is_paused(&node.buy("early").await));

    central.create_sale(&event, &config, true).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let reply = node.buy("fresh").await;
        if reply.code() == Code::Success {
            break;
        }
        assert!(is_paused(&reply), "{:?}", reply.body);
        assert!(
            Instant::now() < deadline,
            "the node still answers from the old log"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let paused = operator.pause().await;
    assert_eq!(paused.body["data"]["index"], 0, "{:?}", paused.body);
    assert!(is_paused(&node.buy("late").await));
    node.stop().await;
}
