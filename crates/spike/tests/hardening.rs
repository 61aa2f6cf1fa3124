//! Hardened servers: a client sending its request head byte by byte is cut
//! off by the head timeout while others are served; an idle keep-alive
//! connection is closed; a declared huge body is refused unread; past the
//! connection cap new connections get a quick 503 and the process stays up.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failure

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::*;
use spike_core::{EventId, MemoryCentral, SaleConfig};
use spike_front::{serve_front, FrontConfig, Upstream};
use spike_http::ServerOptions;
use spike_testkit::unique;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

fn strict() -> ServerOptions {
    ServerOptions {
        head_timeout: Some(Duration::from_secs(1)),
        park_after: Some(Duration::from_millis(250)),
        max_connections: Some(4),
        ..ServerOptions::default()
    }
}

async fn strict_node() -> TestNode<MemoryCentral> {
    let central = MemoryCentral::new();
    let event = EventId::parse(unique("hard")).unwrap();
    create_sale(&central, &event, SaleConfig::new(100).unwrap()).await;
    spawn_node(central, named("n1").serving(&event).server(strict())).await
}

/// Reads until the peer closes or `limit` passes; returns what was read and when it ended.
async fn read_until_closed(
    stream: &mut tokio::net::tcp::OwnedReadHalf,
    limit: Duration,
) -> (Vec<u8>, Option<Instant>) {
    let mut seen = Vec::new();
    let mut buf = [0u8; 1024];
    let deadline = Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (seen, Some(Instant::now())),
            Ok(Ok(n)) => seen.extend_from_slice(&buf[..n]),
            Err(_) => return (seen, None),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_head_sent_byte_by_byte_is_cut_off_while_others_are_served() {
    let node = strict_node().await;
    let stream = TcpStream::connect(node.addr()).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    let head =
        b"GET /buy/ticket?user_id=slowpoke HTTP/1.1\r\nHost: spike\r\nX-Pad: aaaaaaaaaa\r\n\r\n";
    let started = Instant::now();
    let trickle = tokio::spawn(async move {
        for byte in head {
            if writer.write_all(&[*byte]).await.is_err() {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        true
    });
    // Others are served meanwhile.
    for user in ["a", "b", "c"] {
        assert_eq!(node.buy(user).await.code(), Code::Success);
    }
    let (answer, closed) = read_until_closed(&mut reader, Duration::from_secs(6)).await;
    let closed = closed.expect("the slow client is cut off");
    let took = closed - started;
    assert!(
        took >= Duration::from_millis(900),
        "not before the timeout: {took:?}"
    );
    assert!(
        took < Duration::from_secs(4),
        "cut off by the 1 s head timeout, not the whole head: {took:?}"
    );
    assert!(
        !String::from_utf8_lossy(&answer).contains("200 OK"),
        "never served"
    );
    trickle.abort();
    let snapshot = node.get("/healthz").await;
    assert_eq!(snapshot.status, hyper::StatusCode::OK, "still serving");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_keep_alive_connection_is_closed() {
    let node = strict_node().await;
    let stream = TcpStream::connect(node.addr()).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    writer
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: spike\r\n\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    let (answer, closed) = read_until_closed(&mut reader, Duration::from_secs(5)).await;
    assert!(
        String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 200"),
        "served first"
    );
    let idle = closed.expect("closed once idle") - started;
    assert!(
        idle < Duration::from_secs(3),
        "closed after about 1 s idle: {idle:?}"
    );
}

async fn status_of(addr: SocketAddr, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let _ = stream.write_all(request).await;
    let mut head = vec![0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(3), stream.read(&mut head))
        .await
        .expect("an answer at once, without the body")
        .unwrap_or(0);
    String::from_utf8_lossy(&head[..read]).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declared_huge_body_is_refused_unread_by_node_and_front_door() {
    let node = strict_node().await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream = Upstream {
        address: node.addr().to_string(),
        weight: std::num::NonZeroU32::MIN,
    };
    let front = serve_front(listener, FrontConfig::new(vec![upstream])).unwrap();
    let request = b"POST /buy/ticket?user_id=big HTTP/1.1\r\nHost: spike\r\nContent-Length: 1000000000000\r\n\r\nxx";
    for addr in [node.addr(), front.addr()] {
        let answer = status_of(addr, request).await;
        assert!(answer.starts_with("HTTP/1.1 413"), "{addr}: {answer:?}");
    }
    assert_eq!(node.central_calls(), 0, "nothing reached central stock");
    front.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_connection_cap_new_connections_get_a_quick_503() {
    let node = strict_node().await;
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(TcpStream::connect(node.addr()).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    let answer = status_of(node.addr(), b"GET /healthz HTTP/1.1\r\nHost: spike\r\n\r\n").await;
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer:?}");
    assert!(started.elapsed() < Duration::from_secs(1), "quickly");
    drop(held);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        node.buy("after").await.code(),
        Code::Success,
        "the process stays up"
    );
}

/// The stat log's disk stalls (a FIFO nobody reads): once its queue is full
/// the node refuses purchases with 503 instead of losing lines or growing;
/// when the disk moves again it sells again, and every answer it gave has
/// its line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_stat_log_refuses_purchases_and_loses_no_line() {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = std::env::temp_dir().join(unique("fifo"));
    std::fs::create_dir_all(&dir).unwrap();
    let fifo = dir.join("stat.log");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    // The reader end, open but not read: the "disk" stalls once the pipe's
    // buffer (64 KiB) is full.
    const O_NONBLOCK: i32 = 0o4000;
    let mut disk = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(O_NONBLOCK)
        .open(&fifo)
        .unwrap();
    let central = MemoryCentral::new();
    let event = EventId::parse(unique("stall")).unwrap();
    create_sale(&central, &event, SaleConfig::new(100).unwrap()).await;
    let spec = named("n1")
        .serving(&event)
        .stat_log(&fifo)
        .stat_log_queue(200);
    let node = spawn_node(central, spec).await;
    let mut answered = 0u64;
    let mut refused = None;
    for user in 0..5_000 {
        let reply = node.buy(&format!("u{user}")).await;
        // Any other answer (a sale, or a purchase shed because a loaded
        // machine slowed central stock) was given, and has its line.
        if refused_by_stat_log(&reply) {
            refused = Some(answered);
            break;
        }
        answered += 1;
    }
    let before = refused.expect("a full queue refuses purchases");
    assert!(
        before >= 200,
        "the queue took its 200 lines first: {before}"
    );
    // The disk moves again: drain it while buying.
    let mut text = Vec::new();
    let mut resumed = false;
    for user in 5_000..5_050 {
        drain(&mut disk, &mut text);
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let reply = node.buy(&format!("u{user}")).await;
        if !refused_by_stat_log(&reply) {
            answered += 1;
            resumed = true;
        }
    }
    assert!(resumed, "it answers purchases again once the disk moves");
    let reader = tokio::task::spawn_blocking(move || {
        let mut text = text;
        while !drain(&mut disk, &mut text) {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        text
    });
    let node = node.stop().await;
    let text = reader.await.unwrap();
    let lines = String::from_utf8(text).unwrap().lines().count() as u64;
    assert_eq!(
        lines, answered,
        "one line for every answer given, none lost"
    );
    let counters = node.stat_log().unwrap().counters();
    assert!(counters.refused.load(std::sync::atomic::Ordering::Relaxed) >= 1);
    assert_eq!(
        counters.dropped.load(std::sync::atomic::Ordering::Relaxed),
        0
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Whether `reply` is the refusal of a purchase the stat log had no room
/// for (503 -5, "stat log"): the one answer given without a line.
fn refused_by_stat_log(reply: &Reply) -> bool {
    let reason = reply.body["data"]["reason"].as_str().unwrap_or_default();
    reply.code() == Code::TryAgain && reason.contains("stat log")
}

/// Reads what the FIFO holds into `text`; true once the writer closed it.
fn drain(disk: &mut std::fs::File, text: &mut Vec<u8>) -> bool {
    use std::io::Read;
    let mut chunk = [0u8; 65_536];
    loop {
        match disk.read(&mut chunk) {
            Ok(0) => return true,
            Ok(n) => text.extend_from_slice(&chunk[..n]),
            Err(_) => return false, // nothing more for now
        }
    }
}
