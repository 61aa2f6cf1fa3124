//! Parked connections: a connection that has sent nothing holds no buffers;
//! an idle keep-alive connection gives its buffers back
//! and waits as a bare socket, yet answers its next request on the same
//! socket; a head begun before parking is completed after it; parking never
//! extends the head timeout; pipelined requests are all answered; a parked
//! connection is closed at the idle limit and when the server shuts down.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failure

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response};
use spike_http::{serve, Connections, Server, ServerOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};

const PARK_AFTER: Duration = Duration::from_millis(200);
const HEAD_TIMEOUT: Duration = Duration::from_secs(2);

/// A server answering each request with its path, parking after 200 ms.
async fn echo_server() -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let options = ServerOptions {
        head_timeout: Some(HEAD_TIMEOUT),
        park_after: Some(PARK_AFTER),
        grace: Duration::from_secs(5),
        ..ServerOptions::default()
    };
    let echo = |request: Request<Incoming>| async move {
        Response::new(Full::new(Bytes::from(request.uri().path().to_string())))
    };
    serve(listener, Arc::new(echo), options)
}

fn get(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: spike\r\n\r\n").into_bytes()
}

/// Reads one response; returns its body, or None if the server closed first.
async fn read_answer(stream: &mut TcpStream) -> Option<String> {
    let mut seen = Vec::new();
    let mut buf = [0u8; 1024];
    let read = async {
        loop {
            if let Some(end) = find(&seen, b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&seen[..end]).to_lowercase();
                let length: usize = head
                    .lines()
                    .find_map(|line| line.strip_prefix("content-length: "))
                    .map(|n| n.trim().parse().unwrap())
                    .unwrap_or(0);
                if seen.len() >= end + 4 + length {
                    let body = String::from_utf8_lossy(&seen[end + 4..end + 4 + length]);
                    let answer = body.to_string();
                    seen.drain(..end + 4 + length);
                    assert!(seen.is_empty(), "one answer at a time in these tests");
                    return Some(answer);
                }
            }
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(5), read)
        .await
        .expect("an answer or a close within 5 s")
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Waits (bounded) until the server's counts satisfy `check`.
async fn until(server: &Server, check: impl Fn(Connections) -> bool) -> Connections {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let now = server.connections();
        if check(now) || Instant::now() > deadline {
            return now;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn an_idle_connection_is_parked_and_still_answers_on_the_same_socket() {
    let server = echo_server().await;
    let mut client = TcpStream::connect(server.addr()).await.unwrap();
    client.write_all(&get("/first")).await.unwrap();
    assert_eq!(read_answer(&mut client).await.as_deref(), Some("/first"));

    let counts = until(&server, |c| c.parked == 1).await;
    assert_eq!(
        counts,
        Connections { open: 1, parked: 1 },
        "parked once idle"
    );

    client.write_all(&get("/second")).await.unwrap();
    assert_eq!(read_answer(&mut client).await.as_deref(), Some("/second"));
    let counts = server.connections();
    assert_eq!(counts.open, 1, "the same connection");
}

#[tokio::test]
async fn a_connection_that_has_sent_nothing_is_parked_from_the_start() {
    let server = echo_server().await;
    let _silent = TcpStream::connect(server.addr()).await.unwrap();
    let counts = until(&server, |c| c.open == 1 && c.parked == 1).await;
    assert_eq!(counts, Connections { open: 1, parked: 1 });
}

#[tokio::test]
async fn a_busy_connection_is_not_parked_between_requests() {
    let server = echo_server().await;
    let mut client = TcpStream::connect(server.addr()).await.unwrap();
    let until = Instant::now() + PARK_AFTER * 4;
    let mut parked_seen = 0;
    while Instant::now() < until {
        client.write_all(&get("/busy")).await.unwrap();
        assert_eq!(read_answer(&mut client).await.as_deref(), Some("/busy"));
        parked_seen += server.connections().parked;
        tokio::time::sleep(PARK_AFTER / 10).await;
    }
    assert_eq!(parked_seen, 0, "never parked while requests keep coming");
}

#[tokio::test]
async fn a_head_begun_before_parking_is_completed_after_it() {
    let server = echo_server().await;
    let mut client = TcpStream::connect(server.addr()).await.unwrap();
    client.write_all(&get("/warm")).await.unwrap();
    assert_eq!(read_answer(&mut client).await.as_deref(), Some("/warm"));

    let request = get("/split");
    let (begun, rest) = request.split_at(12);
    client.write_all(begun).await.unwrap();
    // Quiet for more than two park periods, well inside the head timeout.
    tokio::time::sleep(PARK_AFTER * 3).await;
    client.write_all(rest).await.unwrap();
    assert_eq!(read_answer(&mut client).await.as_deref(), Some("/split"));
}

/// A connection that has had one request answered, split in two halves.
async fn answered_connection(server: &Server) -> (OwnedReadHalf, OwnedWriteHalf) {
    let stream = TcpStream::connect(server.addr()).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    writer.write_all(&get("/warm")).await.unwrap();
    let mut answer = [0u8; 256];
    assert!(reader.read(&mut answer).await.unwrap() > 0, "answered");
    (reader, writer)
}

/// Sends `first`, then one header byte every `every`, never finishing the
/// head, until the server closes the connection (which it must).
async fn trickle_until_cut_off(
    mut reader: OwnedReadHalf,
    mut writer: OwnedWriteHalf,
    first: &'static [u8],
    every: Duration,
) {
    let trickle = tokio::spawn(async move {
        let mut sent = writer.write_all(first).await;
        while sent.is_ok() {
            tokio::time::sleep(every).await;
            sent = writer.write_all(b"X").await;
        }
    });
    let mut answer = [0u8; 256];
    let closed = tokio::time::timeout(HEAD_TIMEOUT * 3, reader.read(&mut answer)).await;
    trickle.abort();
    assert!(
        matches!(closed, Ok(Ok(0)) | Ok(Err(_))),
        "cut off: {closed:?}"
    );
}

#[tokio::test]
async fn parking_never_extends_the_head_timeout() {
    let server = echo_server().await;
    let (reader, writer) = answered_connection(&server).await;
    // Then a head, one header byte every 450 ms: quiet for a whole park
    // period, so the connection is taken back mid-head, and never finished.
    let started = Instant::now();
    let every = Duration::from_millis(450);
    trickle_until_cut_off(reader, writer, b"GET /slow HTTP/1.1\r\n", every).await;
    let cut_off = started.elapsed();
    assert!(
        cut_off > HEAD_TIMEOUT - Duration::from_millis(100),
        "not before the head timeout: {cut_off:?}"
    );
    assert!(
        cut_off < HEAD_TIMEOUT + Duration::from_millis(250),
        "the head keeps its deadline across parking: {cut_off:?}"
    );
}

#[tokio::test]
async fn pipelined_requests_are_all_answered() {
    let server = echo_server().await;
    let mut client = TcpStream::connect(server.addr()).await.unwrap();
    let mut both = get("/one");
    both.extend_from_slice(&get("/two"));
    client.write_all(&both).await.unwrap();
    let mut answers = Vec::new();
    let mut buf = [0u8; 1024];
    while find(&answers, b"/two").is_none() {
        let n = tokio::time::timeout(Duration::from_secs(5), client.read(&mut buf))
            .await
            .expect("answers within 5 s")
            .unwrap();
        assert!(n > 0, "closed before both answers");
        answers.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&answers);
    assert!(text.contains("/one") && text.contains("/two"), "{text}");
}

#[tokio::test]
async fn a_parked_connection_is_closed_at_the_idle_limit() {
    let server = echo_server().await;
    let mut client = TcpStream::connect(server.addr()).await.unwrap();
    client.write_all(&get("/then-idle")).await.unwrap();
    assert_eq!(
        read_answer(&mut client).await.as_deref(),
        Some("/then-idle")
    );
    let started = Instant::now();
    let mut buf = [0u8; 16];
    let closed = tokio::time::timeout(HEAD_TIMEOUT * 3, client.read(&mut buf)).await;
    assert!(
        matches!(closed, Ok(Ok(0)) | Ok(Err(_))),
        "closed: {closed:?}"
    );
    let idle = started.elapsed();
    assert!(
        idle >= HEAD_TIMEOUT - Duration::from_millis(50)
            && idle < HEAD_TIMEOUT + Duration::from_millis(500),
        "closed at the idle limit, counted from the last answer: {idle:?}"
    );
    assert_eq!(until(&server, |c| c.open == 0).await.open, 0);
}

#[tokio::test]
async fn shutting_down_closes_parked_connections_at_once() {
    let server = echo_server().await;
    let mut client = TcpStream::connect(server.addr()).await.unwrap();
    client.write_all(&get("/park-me")).await.unwrap();
    assert_eq!(read_answer(&mut client).await.as_deref(), Some("/park-me"));
    until(&server, |c| c.parked == 1).await;
    let started = Instant::now();
    server.shutdown().await;
    assert!(
        started.elapsed() < Duration::from_millis(2500),
        "no grace period spent on a parked connection"
    );
    let mut buf = [0u8; 16];
    let closed = tokio::time::timeout(Duration::from_secs(2), client.read(&mut buf)).await;
    assert!(
        matches!(closed, Ok(Ok(0)) | Ok(Err(_))),
        "closed: {closed:?}"
    );
}

#[tokio::test]
async fn idling_first_never_earns_a_head_more_time() {
    let server = echo_server().await;
    let (reader, writer) = answered_connection(&server).await;
    let answered = Instant::now();
    // Parked and idle for most of the limit, then a head sent byte by byte.
    tokio::time::sleep(HEAD_TIMEOUT * 3 / 4).await;
    trickle_until_cut_off(reader, writer, b"G", Duration::from_millis(100)).await;
    let cut_off = answered.elapsed();
    assert!(
        cut_off < HEAD_TIMEOUT + Duration::from_millis(250),
        "the head's deadline counts from the last answer: {cut_off:?}"
    );
}
