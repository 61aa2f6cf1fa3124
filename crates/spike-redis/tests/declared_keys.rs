//! Every key a script touches is one it declared in `KEYS`, as Redis's
//! scripting contract asks (Redis Cluster routes by them; ACL key
//! patterns, Redis Functions and other engines hold a script to them).
//! Checked on a real server: `MONITOR` shows each command a script runs,
//! `COMMAND GETKEYS` names that command's keys, and each must be among the
//! keys of the `EVALSHA` that ran it.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failure

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use spike_core::{
    BuyerPolicy, CentralStock, EventId, Leg, NodeId, OrderStream, Passengers, PurchaseBatch,
    Release, RequestId, SaleConfig, SeatPreference, SeatRequest, TicketBatch, TicketPurchase,
    TrainLayout, UserId, Verdict, WaitJoin, WaitRequest,
};
use spike_testkit::{unique, TestRedis};

mod common;

use common::purchase;

/// One `MONITOR` line's command: who ran it (a script, or a client) and its
/// words, unquoted.
#[derive(Debug)]
struct Seen {
    by_script: bool,
    words: Vec<Vec<u8>>,
}

/// Parses `+1700000000.1 [0 lua] "HGET" "k" "f"` (quoted, with `\"`, `\\`
/// and `\xHH` escapes).
fn parse_monitor_line(line: &str) -> Option<Seen> {
    let line = line.strip_prefix('+')?;
    let open = line.find('[')?;
    let close = line[open..].find(']')? + open;
    let by_script = line[open..close].contains("lua");
    let mut words = Vec::new();
    let mut bytes = line[close + 1..].bytes().peekable();
    while let Some(byte) = bytes.next() {
        if byte != b'"' {
            continue;
        }
        let mut word = Vec::new();
        while let Some(byte) = bytes.next() {
            match byte {
                b'"' => break,
                b'\\' => match bytes.next()? {
                    b'x' => {
                        let hex = [bytes.next()?, bytes.next()?];
                        let text = std::str::from_utf8(&hex).ok()?;
                        word.push(u8::from_str_radix(text, 16).ok()?);
                    }
                    b'n' => word.push(b'\n'),
                    b'r' => word.push(b'\r'),
                    b't' => word.push(b'\t'),
                    b'a' => word.push(7),
                    b'b' => word.push(8),
                    other => word.push(other),
                },
                other => word.push(other),
            }
        }
        words.push(word);
    }
    Some(Seen { by_script, words })
}

/// Reads `MONITOR` on its own connection into a shared list, until dropped.
fn monitor(redis: &TestRedis) -> Arc<Mutex<Vec<Seen>>> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let mut stream = TcpStream::connect(("127.0.0.1", redis.port())).unwrap();
    stream.write_all(b"MONITOR\r\n").unwrap();
    let mut reader = BufReader::new(stream);
    let mut ok = String::new();
    reader.read_line(&mut ok).unwrap();
    assert_eq!(ok.trim(), "+OK");
    let sink = Arc::clone(&seen);
    std::thread::spawn(move || {
        for line in reader.lines() {
            let Ok(line) = line else { return };
            if let Some(command) = parse_monitor_line(&line) {
                sink.lock().unwrap().push(command);
            }
        }
    });
    seen
}

/// The keys `COMMAND GETKEYS` names for `words` (none for a keyless command).
fn keys_of(connection: &mut redis::Connection, words: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let mut command = redis::cmd("COMMAND");
    command.arg("GETKEYS");
    for word in words {
        command.arg(word.as_slice());
    }
    command.query(connection).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_key_a_script_touches_is_declared() {
    let redis = TestRedis::spawn();
    let central = common::connect(redis.url()).await;
    let seen = monitor(&redis);

    // A train run: create, legs of one and several segments, parties, a
    // replay, the occupancy, the waitlist (placed, read, withdrawn, filled
    // by a release), a release, a re-creation with --force.
    let run = EventId::parse(unique("keys-run")).unwrap();
    let layout = TrainLayout::new(
        &["A", "B", "C", "D"],
        &["first:1x10", "second:2x10", "third:1x1"],
    )
    .unwrap();
    let config = SaleConfig::for_train(layout.clone()).unwrap();
    central.create_sale(&run, &config, false).await.unwrap();
    let mut sold = Vec::new();
    for (i, (class, from, to, party)) in [
        (0, 0, 3, 1),
        (1, 1, 3, 2),
        (1, 0, 1, 1),
        (0, 2, 3, 3),
        (2, 0, 3, 1),
    ]
    .into_iter()
    .enumerate()
    {
        let ticket = TicketPurchase {
            purchase: purchase(&run, &format!("t{i}")),
            seats: SeatRequest {
                class,
                leg: Leg::new(from, to).unwrap(),
                passengers: Passengers::new(party).unwrap(),
                preference: [SeatPreference::ANY, SeatPreference::WINDOW][i % 2],
            },
            replacing: None,
        };
        let reply = central.buy_seats(&ticket).await.unwrap();
        let again = central.buy_seats(&ticket).await.unwrap();
        assert_eq!(again.ticket, reply.ticket, "a replay");
        sold.push((ticket.purchase, reply.verdict));
    }
    central.occupancy(&run).await.unwrap().expect("a run");
    let mut many = TicketBatch::new(TicketPurchase {
        purchase: purchase(&run, "m0"),
        seats: SeatRequest {
            class: 1,
            leg: Leg::new(0, 2).unwrap(),
            passengers: Passengers::new(2).unwrap(),
            preference: SeatPreference::AISLE,
        },
        replacing: None,
    });
    let mut second = many.purchases()[0].clone();
    second.purchase = purchase(&run, "m1");
    second.seats.leg = Leg::new(1, 3).unwrap();
    many.push(second).unwrap();
    central.buy_seats_many(&many).await.unwrap();
    let wait = |user: &str| WaitRequest {
        event: run.clone(),
        user: UserId::parse(user).unwrap(),
        request: RequestId::parse(format!("wait-{user}")).unwrap(),
        node: NodeId::parse("test").unwrap(),
        seats: SeatRequest {
            class: 2,
            leg: Leg::new(0, 3).unwrap(),
            passengers: Passengers::ONE,
            preference: SeatPreference::AISLE,
        },
        deadline_ms: spike_core::time::unix_millis(std::time::SystemTime::now()) + 3_600_000,
    };
    for user in ["w0", "w1"] {
        let placed = central.join_waitlist(&wait(user)).await.unwrap();
        assert!(matches!(placed, WaitJoin::Placed { .. }), "{placed:?}");
    }
    let (w0, w1) = (UserId::parse("w0").unwrap(), UserId::parse("w1").unwrap());
    central
        .waitlist_status(&run, &w0)
        .await
        .unwrap()
        .expect("w0 waits");
    central
        .leave_waitlist(&run, &w1)
        .await
        .unwrap()
        .expect("w1 withdrew");
    let (third, verdict) = &sold[4];
    let Verdict::Sold { order, .. } = verdict else {
        panic!("{verdict:?}")
    };
    let released = central
        .release(&run, order, third.user.as_ref(), &third.request)
        .await
        .unwrap();
    assert_eq!(
        released,
        Release::Released {
            remaining: config.total() - 7,
            filled: 1
        },
        "w0 got the seat"
    );
    assert_eq!(central.waitlist(&run).await.unwrap().len(), 2);
    let (first, verdict) = &sold[1];
    let Verdict::Sold { order, .. } = verdict else {
        panic!("{verdict:?}")
    };
    central
        .release(&run, order, first.user.as_ref(), &first.request)
        .await
        .unwrap();
    central.create_sale(&run, &config, true).await.unwrap();

    // A sale of seats: one purchase, a batch, the stream, a snapshot.
    let sale = EventId::parse(unique("keys-sale")).unwrap();
    let anonymous = SaleConfig::new(10)
        .unwrap()
        .with_policy(BuyerPolicy::Anonymous);
    central.create_sale(&sale, &anonymous, false).await.unwrap();
    central.buy(&purchase(&sale, "s0")).await.unwrap();
    let mut batch = PurchaseBatch::new(purchase(&sale, "s1"));
    batch.push(purchase(&sale, "s2")).unwrap();
    central.buy_many(&batch).await.unwrap();
    let writer = NodeId::parse("keys-writer").unwrap();
    let entries = central.read_new(&sale, &writer, 10).await.unwrap();
    let sequences: Vec<u64> = entries.iter().map(|e| e.sequence).collect();
    central.acknowledge(&sale, &sequences).await.unwrap();
    central.snapshot(&sale).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;

    let seen = std::mem::take(&mut *seen.lock().unwrap());
    let mut lookup = redis.connection();
    let mut declared: Vec<Vec<u8>> = Vec::new();
    let (mut scripts, mut checked, mut seat_maps) = (0, 0, 0);
    let mut undeclared = Vec::new();
    for command in &seen {
        let name = String::from_utf8_lossy(&command.words[0]).to_ascii_uppercase();
        if !command.by_script {
            if name == "EVALSHA" || name == "EVAL" {
                scripts += 1;
                let count: usize = String::from_utf8_lossy(&command.words[2]).parse().unwrap();
                declared = command.words[3..3 + count].to_vec();
            }
            continue;
        }
        for key in keys_of(&mut lookup, &command.words) {
            checked += 1;
            if String::from_utf8_lossy(&key).contains(":seats:") {
                seat_maps += 1;
            }
            if !declared.contains(&key) {
                undeclared.push(format!("{name} {}", String::from_utf8_lossy(&key)));
            }
        }
    }
    assert!(scripts >= 15, "the scenario ran its scripts: {scripts}");
    assert!(
        checked > 100 && seat_maps > 20,
        "{checked} keys, {seat_maps} maps"
    );
    assert!(undeclared.is_empty(), "undeclared: {undeclared:?}");
}
