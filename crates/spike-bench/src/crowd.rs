//! A crowd through a sale's waiting room, as browsers on the waiting-room
//! page would go: every user joins (`POST /queue/join`), polls
//! `/queue/status` at the opening, then again after the estimated wait but
//! at least once a second (as the page does), buys with the admission token
//! once admitted, and stops when told the sale sold out. Used by
//! `spike demo --queue`.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};
use spike_core::time::unix_millis;
use spike_core::{Code, UserId};

use crate::client::Connection;

/// How soon a waiting user polls again at the earliest.
const SHORTEST_POLL_MS: u64 = 100;

/// How long a waiting user waits between polls at most (the page polls
/// once a second).
const LONGEST_POLL_MS: u64 = 1_000;

/// How long a crowd user's token lasts: the whole demo.
const TOKEN_TTL: Duration = Duration::from_secs(3600);

/// What the crowd is and where it goes.
#[derive(Debug, Clone)]
pub struct CrowdConfig {
    /// The front door (`host:port`).
    pub address: String,
    /// The sale.
    pub event: String,
    /// Users, `user_id` 1..=users.
    pub users: u64,
    /// Keep-alive connections the users share.
    pub connections: usize,
    /// The sale's admission window (to tell when a buyer was admitted).
    pub admit_window: Duration,
    /// The sale's opening (Unix milliseconds).
    pub opens_at_ms: u64,
    /// The key the users' tokens are signed with, as the operator's login
    /// system would: a waiting room is a token sale, and each user sends
    /// their own token (`token=`).
    pub token_key: spike_auth::SecretKey,
}

/// The admitted buyer with the last position who bought.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct LastBuyer {
    /// Their position (from 1).
    pub position: u64,
    /// From their join (or the opening, if they joined before it) to their
    /// admission, in milliseconds.
    pub waited_ms: u64,
}

/// What became of the crowd.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CrowdReport {
    /// Users who joined before the opening (shuffled), and after it.
    pub joined_early: u64,
    /// Users who joined after the opening (in arrival order).
    pub joined_late: u64,
    /// Of those, users a spillover room let straight through (demand under
    /// its rate: admitted as they joined).
    pub passed: u64,
    /// Seats bought (answer code 1).
    pub bought: u64,
    /// Users told the sale sold out (by the status or by a purchase).
    pub told_sold_out: u64,
    /// Admitted users whose admission lapsed before they bought.
    pub expired: u64,
    /// Requests that got no answer, or an unexpected one.
    pub errors: u64,
    /// Every request sent: joins, polls and purchases.
    pub requests: u64,
    /// Status polls among them.
    pub polls: u64,
    /// Joining, from the first join to the last.
    pub join_seconds: f64,
    /// From the opening until the last user had their final answer.
    pub after_opening_seconds: f64,
    /// The last admitted buyer.
    pub last_buyer: Option<LastBuyer>,
}

impl CrowdReport {
    /// Whether every user ended with a seat or a "sold out".
    pub fn everyone_answered(&self, users: u64) -> bool {
        self.errors == 0 && self.bought + self.told_sold_out + self.expired == users
    }
}

/// The `data` of a join or status answer, as far as the crowd reads it.
#[derive(Debug, Default, Deserialize)]
struct Standing {
    #[serde(default)]
    standing: String,
    position: Option<u64>,
    estimated_wait_ms: Option<u64>,
    opens_at_ms: Option<u64>,
    expires_at_ms: Option<u64>,
    admission: Option<String>,
    /// In a spillover room: `passed` or `queued`.
    entry: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Envelope {
    #[serde(default)]
    data: Standing,
}

fn standing(body: &[u8]) -> Standing {
    serde_json::from_slice::<Envelope>(body)
        .map(|envelope| envelope.data)
        .unwrap_or_default()
}

/// One user's next step, due at a time (Unix ms).
type Due = Reverse<(u64, u64)>;

/// What the workers share.
struct Shared {
    config: CrowdConfig,
    next_join: AtomicU64,
    /// Joiners still at work (pollers stop only once none is).
    joining: AtomicU64,
    joined_at_ms: Vec<AtomicU64>,
    due: Mutex<BinaryHeap<Due>>,
    report: Mutex<CrowdReport>,
}

/// Runs the crowd to the end; the sale must have a waiting room.
pub async fn run_crowd(config: CrowdConfig) -> io::Result<CrowdReport> {
    let users = usize::try_from(config.users).unwrap_or(usize::MAX);
    let connections = config.connections.max(1);
    let shared = Arc::new(Shared {
        joined_at_ms: (0..users).map(|_| AtomicU64::new(0)).collect(),
        next_join: AtomicU64::new(1),
        joining: AtomicU64::new(connections as u64),
        due: Mutex::new(BinaryHeap::with_capacity(users)),
        report: Mutex::new(CrowdReport::default()),
        config,
    });
    let started = Instant::now();
    // Users poll from the moment they joined, while others still join.
    let joiners: Vec<_> = (0..connections)
        .map(|_| tokio::spawn(join_all(Arc::clone(&shared))))
        .collect();
    let pollers: Vec<_> = (0..connections)
        .map(|_| tokio::spawn(poll_until_done(Arc::clone(&shared))))
        .collect();
    let mut joined_all_at = started;
    for joiner in joiners {
        let joined = joiner.await.map_err(io::Error::other);
        shared.joining.fetch_sub(1, Ordering::Relaxed);
        joined??;
        joined_all_at = Instant::now();
    }
    let join_seconds = joined_all_at.duration_since(started).as_secs_f64();
    let opens_at_ms = shared.config.opens_at_ms;
    for poller in pollers {
        poller.await.map_err(io::Error::other)??;
    }
    let mut report = lock(&shared.report).clone();
    report.join_seconds = join_seconds;
    let now = unix_millis(SystemTime::now());
    report.after_opening_seconds = now.saturating_sub(opens_at_ms) as f64 / 1000.0;
    Ok(report)
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Shared {
    fn path(&self, route: &str, user: u64) -> String {
        let token = match UserId::parse(user.to_string()) {
            Ok(user) => spike_auth::mint(
                &self.config.token_key,
                &user,
                SystemTime::now(),
                TOKEN_TTL,
                None,
            ),
            Err(_) => String::new(),
        };
        format!("{route}?event={}&token={token}", self.config.event)
    }

    fn schedule(&self, at_ms: u64, user: u64) {
        lock(&self.due).push(Reverse((at_ms, user)));
    }

    fn count(&self, update: impl FnOnce(&mut CrowdReport)) {
        update(&mut lock(&self.report));
    }
}

async fn join_all(shared: Arc<Shared>) -> io::Result<()> {
    let address = shared.config.address.clone();
    let mut connection = Connection::open(&address).await?;
    loop {
        let user = shared.next_join.fetch_add(1, Ordering::Relaxed);
        if user > shared.config.users {
            return Ok(());
        }
        let now = unix_millis(SystemTime::now());
        let path = shared.path("/queue/join", user);
        let (answer, told) = connection
            .exchange("POST", &address, &path, standing)
            .await?;
        shared.count(|r| r.requests += 1);
        if let Some(slot) = usize::try_from(user - 1)
            .ok()
            .and_then(|i| shared.joined_at_ms.get(i))
        {
            slot.store(now, Ordering::Relaxed);
        }
        match (answer.code, told.standing.as_str()) {
            (0, "waiting_for_start") => {
                shared.count(|r| r.joined_early += 1);
                shared.schedule(told.opens_at_ms.unwrap_or(now), user);
            }
            (0, _) => {
                let passed = told.entry.as_deref() == Some("passed");
                shared.count(|r| {
                    r.joined_late += 1;
                    r.passed += u64::from(passed);
                });
                shared.schedule(now, user);
            }
            _ => shared.count(|r| r.errors += 1),
        }
    }
}

async fn poll_until_done(shared: Arc<Shared>) -> io::Result<()> {
    let address = shared.config.address.clone();
    let mut connection = Connection::open(&address).await?;
    loop {
        let next = lock(&shared.due).pop();
        let Some(Reverse((due_ms, user))) = next else {
            if shared.joining.load(Ordering::Relaxed) == 0 {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let now = unix_millis(SystemTime::now());
        if due_ms > now {
            tokio::time::sleep(Duration::from_millis(due_ms - now)).await;
        }
        let path = shared.path("/queue/status", user);
        let (answer, told) = connection
            .exchange("GET", &address, &path, standing)
            .await?;
        shared.count(|r| {
            r.requests += 1;
            r.polls += 1;
        });
        let now = unix_millis(SystemTime::now());
        match (answer.code, told.standing.as_str()) {
            (0, "admitted") => buy(&shared, &mut connection, user, &told).await?,
            (0, "waiting" | "waiting_for_start") => {
                let wait =
                    (told.estimated_wait_ms.unwrap_or(0)).clamp(SHORTEST_POLL_MS, LONGEST_POLL_MS);
                let at = told.opens_at_ms.map_or(now + wait, |opens| opens.max(now));
                shared.schedule(at, user);
            }
            (0, "sold_out") => shared.count(|r| r.told_sold_out += 1),
            (0, "expired") => shared.count(|r| r.expired += 1),
            _ => shared.count(|r| r.errors += 1),
        }
    }
}

async fn buy(
    shared: &Shared,
    connection: &mut Connection,
    user: u64,
    told: &Standing,
) -> io::Result<()> {
    let token = told.admission.as_deref().unwrap_or_default();
    let path = format!("{}&admission={token}", shared.path("/buy/ticket", user));
    let address = shared.config.address.clone();
    let (answer, ()) = connection.exchange("GET", &address, &path, |_| ()).await?;
    let code = Code::from_number(answer.code);
    let window = u64::try_from(shared.config.admit_window.as_millis()).unwrap_or(u64::MAX);
    let admitted_at = told.expires_at_ms.unwrap_or(0).saturating_sub(window);
    let joined_at = usize::try_from(user - 1)
        .ok()
        .and_then(|i| shared.joined_at_ms.get(i))
        .map_or(0, |slot| slot.load(Ordering::Relaxed));
    let waiting_since = joined_at.max(shared.config.opens_at_ms);
    shared.count(|r| {
        r.requests += 1;
        match code {
            Some(Code::Success) => {
                r.bought += 1;
                let position = told.position.unwrap_or(0);
                if r.last_buyer.is_none_or(|last| last.position < position) {
                    r.last_buyer = Some(LastBuyer {
                        position,
                        waited_ms: admitted_at.saturating_sub(waiting_since),
                    });
                }
            }
            Some(Code::SoldOut) => r.told_sold_out += 1,
            _ => r.errors += 1,
        }
    });
    Ok(())
}
