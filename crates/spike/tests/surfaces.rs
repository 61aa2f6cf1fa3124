//! Two surfaces: buyers reach purchases and orders; what an operator reads
//! (`/metrics`, `/stats`, `/sale`, the dashboard) is served only on admin
//! listeners, and neither `spike front` nor real nginx running `spike
//! nginx-conf`'s configuration forwards it. Every server answers 405 with an
//! `Allow` header to a method it does not serve.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failure

mod common;

use std::num::NonZeroU32;

use common::*;
use hyper::{Method, StatusCode};
use spike_core::{EventId, MemoryCentral, SaleConfig};
use spike_dashboard::{serve_dashboard, DashboardConfig};
use spike_front::nginx::{render, NginxOptions};
use spike_front::{serve_front, FrontConfig, Upstream};
use spike_testkit::{free_port, unique, TestNginx};
use tokio::net::TcpListener;

const ADMIN_ONLY: [&str; 5] = [
    "/metrics",
    "/stats",
    "/sale",
    "/dashboard",
    "/dashboard/data",
];

async fn one_node() -> (TestNode<MemoryCentral>, Upstream) {
    let central = MemoryCentral::new();
    let event = EventId::parse(unique("surf")).unwrap();
    create_sale(&central, &event, SaleConfig::new(100).unwrap()).await;
    let node = spawn_node(central, named("n1").serving(&event)).await;
    let upstream = Upstream {
        address: node.addr().to_string(),
        weight: NonZeroU32::MIN,
    };
    (node, upstream)
}

/// Every admin path answers 404 at `base`, and a purchase goes through.
async fn only_the_public_surface_at(base: &str) {
    let http = Http::new();
    for path in ADMIN_ONLY {
        let reply = http.get(&format!("{base}{path}")).await;
        assert_eq!(
            reply.status,
            StatusCode::NOT_FOUND,
            "{base}{path}: {:?}",
            reply.body
        );
    }
    let bought = http.get(&format!("{base}/buy/ticket?user_id=ann")).await;
    assert_eq!(bought.code(), Code::Success, "{:?}", bought.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_serves_operators_on_its_admin_listener_only() {
    let (node, _) = one_node().await;
    only_the_public_surface_at(&format!("http://{}", node.addr())).await;
    let http = Http::new();
    for path in ["/metrics", "/stats", "/sale", "/healthz"] {
        let (status, _, _) = http.exchange(Method::GET, &node.admin_url(path)).await;
        assert_eq!(status, StatusCode::OK, "admin {path}");
    }
    let buy = http.get(&node.admin_url("/buy/ticket?user_id=bob")).await;
    assert_eq!(
        buy.status,
        StatusCode::NOT_FOUND,
        "no purchases on the admin surface"
    );
    let health = node.get("/healthz").await;
    assert_eq!(health.status, StatusCode::OK, "healthz is on both");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spike_front_never_forwards_the_operators_surface() {
    let (_node, upstream) = one_node().await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let front = serve_front(listener, FrontConfig::new(vec![upstream])).unwrap();
    only_the_public_surface_at(&format!("http://{}", front.addr())).await;
    front.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_running_spike_nginx_conf_never_forwards_the_operators_surface() {
    let (_node, upstream) = one_node().await;
    let port = free_port();
    let options = NginxOptions {
        listen: format!("127.0.0.1:{port}"),
        workers: "1".into(),
        access_log: false,
        max_in_flight_per_node: spike_front::DEFAULT_MAX_IN_FLIGHT_PER_UPSTREAM.get(),
    };
    let _nginx = TestNginx::start(&render(&options, &[upstream]), port);
    only_the_public_surface_at(&format!("http://127.0.0.1:{port}")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_server_answers_405_with_allow_to_a_method_it_does_not_serve() {
    let (node, upstream) = one_node().await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dashboard = serve_dashboard(
        listener,
        DashboardConfig::new(vec![node.app.admin_addr().to_string()]),
    );
    let http = Http::new();
    let cases = [
        (node.url("/buy/ticket"), Method::DELETE, "GET, POST"),
        (node.url("/healthz"), Method::POST, "GET"),
        (node.url("/orders/x-1/pay"), Method::GET, "POST"),
        (node.admin_url("/metrics"), Method::PUT, "GET"),
        (
            format!("http://{}/dashboard", dashboard.addr()),
            Method::DELETE,
            "GET",
        ),
        (
            format!("http://{}/dashboard/data", dashboard.addr()),
            Method::PUT,
            "GET",
        ),
        (
            format!("http://{}/dashboard", dashboard.addr()),
            Method::TRACE,
            "GET",
        ),
    ];
    for (url, method, allowed) in cases {
        let (status, headers, _) = http.exchange(method.clone(), &url).await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {url}");
        assert_eq!(headers["allow"], allowed, "{method} {url}");
    }
    let page = http
        .exchange(
            Method::GET,
            &format!("http://{}/dashboard", dashboard.addr()),
        )
        .await;
    assert_eq!(page.0, StatusCode::OK);
    dashboard.shutdown().await;
    drop(upstream);
}
