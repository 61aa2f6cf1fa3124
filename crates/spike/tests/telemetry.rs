//! What a node tells its operator: `/metrics` is valid Prometheus exposition
//! (read with a real parser) whose counters match the answers given, and
//! `/stats` and `/sale` feed the dashboard.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failure

mod common;

use std::collections::HashMap;

use common::{create_sale, get_all, get_prometheus_text, named, spawn_node, Code, Http};
use prometheus_parse::{Scrape, Value};
use spike_core::{EventId, MemoryCentral, SaleConfig};
use spike_testkit::unique;

async fn scrape(url: &str) -> Scrape {
    let response = common::get_prometheus_text(url).await;
    Scrape::parse(response.lines().map(|l| Ok(l.to_string()))).expect("valid Prometheus exposition")
}

fn counter(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == name)
        .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match &s.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
            other => panic!("{name} is not a counter or gauge: {other:?}"),
        })
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_parse_and_count_exactly_the_answers_given() {
    let central = MemoryCentral::new();
    let event = EventId::parse(unique("metrics")).unwrap();
    create_sale(&central, &event, SaleConfig::new(5).unwrap()).await;
    let name = unique("m");
    let node = spawn_node(central, named(&name).serving(&event)).await;
    let mut urls: Vec<String> = (0..12)
        .map(|u| node.url(&format!("/buy/ticket?user_id=u{u}")))
        .collect();
    urls.push(node.url("/buy/ticket?user_id="));
    urls.push(node.url("/buy/ticket"));
    let replies = get_all(&Http::new(), urls, 4).await;
    let answered: HashMap<Code, usize> = replies.iter().fold(HashMap::new(), |mut m, r| {
        *m.entry(r.code()).or_default() += 1;
        m
    });
    assert_eq!(
        (
            answered[&Code::Success],
            answered[&Code::SoldOut],
            answered[&Code::Refused]
        ),
        (5, 7, 2)
    );

    let scrape = scrape(&node.admin_url("/metrics")).await;
    for (code, count) in &answered {
        let code = code.number_text();
        let labels = [("node", name.as_str()), ("route", "buy"), ("code", code)];
        assert_eq!(
            counter(&scrape, "spike_requests_total", &labels),
            *count as f64,
            "code {code}"
        );
    }
    // Real histogram buckets (a summary could not be summed across nodes).
    let histogram = scrape
        .samples
        .iter()
        .find(|s| {
            s.metric == "spike_request_duration_seconds"
                && s.labels.get("node") == Some(name.as_str())
                && s.labels.get("route") == Some("buy")
        })
        .expect("latency histogram");
    let Value::Histogram(buckets) = &histogram.value else {
        panic!("latency must be a histogram, got {:?}", histogram.value);
    };
    let total = buckets.iter().map(|b| b.count).fold(0.0, f64::max);
    assert_eq!(total, 14.0, "every answer has a latency");
    assert!(
        buckets.len() >= 10,
        "configured buckets, not the exporter's defaults"
    );
    let labels = [("node", name.as_str()), ("event", event.as_str())];
    assert_eq!(counter(&scrape, "spike_local_stock", &labels), 0.0);
    assert_eq!(counter(&scrape, "spike_sold_out", &labels), 1.0);
    assert_eq!(counter(&scrape, "spike_local_sales", &labels), 5.0);
    assert_eq!(counter(&scrape, "spike_order_stream_entries", &labels), 5.0);
    assert_eq!(counter(&scrape, "spike_central_sold", &labels), 5.0);
    let calls = counter(
        &scrape,
        "spike_central_calls_total",
        &[("node", name.as_str())],
    );
    assert_eq!(
        calls,
        node.central_calls() as f64,
        "the metric counts every central call"
    );
    assert!(
        (5.0..=8.0).contains(&calls),
        "5 sales plus at most the in-flight overflow: {calls}"
    );
    assert!(
        scrape.docs.contains_key("spike_requests_total"),
        "metrics carry HELP text"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_and_sale_feed_the_dashboard() {
    let central = MemoryCentral::new();
    let event = EventId::parse(unique("stats")).unwrap();
    create_sale(&central, &event, SaleConfig::new(3).unwrap()).await;
    let node = spawn_node(central, named("dash").serving(&event)).await;
    let urls = (0..5)
        .map(|u| node.url(&format!("/buy/ticket?user_id=u{u}")))
        .collect();
    get_all(&Http::new(), urls, 1).await;
    let http = Http::new();
    let stats = http.get(&node.admin_url("/stats")).await.body;
    assert_eq!(stats["answers"]["1"], 3);
    assert_eq!(stats["answers"]["-1"], 2);
    let latency: u64 = stats["latency_counts"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v.as_u64())
        .sum();
    assert_eq!(latency, 5);
    let sale = http.get(&node.admin_url("/sale")).await.body;
    assert_eq!(
        (
            sale["total"].as_u64(),
            sale["sold"].as_u64(),
            sale["remaining"].as_u64()
        ),
        (Some(3), Some(3), Some(0))
    );
}

/// `promtool check metrics` (Debian's prometheus package, installed by
/// scripts/test) accepts a node's exposition: every metric has HELP text
/// and follows Prometheus's naming rules.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promtool_accepts_a_nodes_metrics() {
    let central = MemoryCentral::new();
    let event = EventId::parse(unique("promtool")).unwrap();
    create_sale(&central, &event, SaleConfig::new(2).unwrap()).await;
    let dir = std::env::temp_dir().join(unique("promtool"));
    std::fs::create_dir_all(&dir).unwrap();
    let spec = named("prom")
        .serving(&event)
        .stat_log(&dir.join("stat.log"));
    let node = spawn_node(central, spec).await;
    for user in ["ann", "bob", "cy", "ann"] {
        node.buy(user).await;
    }
    node.get("/buy/ticket?user_id=").await;
    node.get("/healthz").await;
    let text = get_prometheus_text(&node.admin_url("/metrics")).await;
    let mut promtool = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool (Debian package prometheus) must be installed; scripts/test installs it");
    {
        use std::io::Write;
        let mut stdin = promtool.stdin.take().unwrap();
        stdin.write_all(text.as_bytes()).unwrap();
    }
    let checked = promtool.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );
    assert!(checked.status.success(), "promtool: {said}\n{text}");
    assert!(said.trim().is_empty(), "promtool found problems: {said}");
    let _ = std::fs::remove_dir_all(&dir);
}
