//! Running a load: connections, users, pacing, and the raw tallies the
//! report is built from.

use spike_core::Code;
use std::collections::HashMap;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};

use crate::client::Connection;
use crate::seeded::splitmix64;
use crate::tickets::TicketChoices;

/// Where the load goes: `http://HOST:PORT/PATH[?QUERY]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// `host:port` to connect to.
    pub address: String,
    /// Path and any fixed query, e.g. `/buy/ticket?event=G1`.
    pub path: String,
}

/// Why a benchmark could not run.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The URL is not `http://HOST:PORT/PATH`.
    #[error("{0:?} is not http://HOST:PORT/PATH")]
    BadUrl(String),
    /// Nothing to do.
    #[error("need at least one user and one connection")]
    Empty,
    /// No connection could be opened at all.
    #[error("cannot connect to {address}: {source}")]
    Connect {
        /// The target.
        address: String,
        /// Why.
        source: std::io::Error,
    },
}

impl FromStr for Target {
    type Err = BenchError;

    fn from_str(url: &str) -> Result<Self, BenchError> {
        let bad = || BenchError::BadUrl(url.to_string());
        let rest = url.strip_prefix("http://").ok_or_else(bad)?;
        let (authority, path) = match rest.find('/') {
            Some(slash) => (&rest[..slash], &rest[slash..]),
            None => (rest, "/buy/ticket"),
        };
        let (host, port) = authority.rsplit_once(':').ok_or_else(bad)?;
        if host.is_empty() || port.parse::<u16>().is_err() {
            return Err(bad());
        }
        Ok(Self {
            address: authority.to_string(),
            path: path.to_string(),
        })
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "http://{}{}", self.address, self.path)
    }
}

/// Which user makes the i-th request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Users {
    /// Users 1..=N, each buying once.
    Distinct,
    /// Users drawn at random (with this seed) from 1..=N, so some retry.
    Seeded(u64),
}

/// A benchmark run's settings.
#[derive(Debug, Clone)]
pub struct BenchConfig {
    /// Where to send purchases.
    pub target: Target,
    /// Requests to send, and the size of the user population.
    pub users: u64,
    /// How user ids are chosen.
    pub user_ids: Users,
    /// Added to every user id (to run a second wave of new users).
    pub user_offset: u64,
    /// Keep-alive connections.
    pub connections: usize,
    /// Fixed total request rate (requests per second), or as fast as possible.
    pub rate: Option<f64>,
    /// Longest wait for one answer before it counts as an error.
    pub timeout: Duration,
    /// Draw a progress bar on stderr (when it is a terminal).
    pub progress: bool,
    /// A train run's buyers: each request also asks for a station pair,
    /// a class and a party ([`TicketChoices`]).
    pub tickets: Option<TicketChoices>,
    /// Open the connections after the clock starts (a connection storm),
    /// rather than before it, as fast as this process can: at most
    /// [`STORM_OPENINGS`] handshakes at once, each request's latency
    /// counted from when its own connection began to open.
    pub storm: bool,
}

/// Most connections a storm opens at once. Without a bound, this process
/// would start all its handshakes before sending any request (its tasks
/// run in turn), and every request would count the opening of every
/// connection as its own latency: on one core, 10,000 loopback handshakes
/// take about 2 s here, both ends' kernel work running on the connecting
/// CPU (BENCHMARKS.md, "The stampede").
pub const STORM_OPENINGS: usize = 256;

impl BenchConfig {
    /// As fast as possible, distinct users, 5 s timeout, progress bar on.
    pub fn new(target: Target, users: u64, connections: usize) -> Self {
        Self {
            target,
            users,
            user_ids: Users::Distinct,
            user_offset: 0,
            connections,
            rate: None,
            timeout: Duration::from_secs(5),
            progress: true,
            tickets: None,
            storm: false,
        }
    }

    /// The user id of request `index` (0-based).
    pub fn user_of(&self, index: u64) -> u64 {
        let user = match self.user_ids {
            Users::Distinct => index + 1,
            Users::Seeded(seed) => {
                splitmix64(seed ^ index.wrapping_mul(0x9E37_79B9_7F4A_7C15)) % self.users + 1
            }
        };
        user + self.user_offset
    }
}

/// Counts for one second of the run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SecondCounts {
    /// Answers received.
    pub requests: u64,
    /// Successes (code 1).
    pub successes: u64,
    /// "Try again" answers (code -5): shed.
    pub shed: u64,
    /// Transport errors.
    pub errors: u64,
}

/// Everything a run observed.
#[derive(Debug)]
pub struct RunData {
    /// Wall time from first request to last answer.
    pub elapsed: Duration,
    /// Latency of every answer, in microseconds.
    pub latency_us: Histogram<u64>,
    /// Answers by JSON code.
    pub by_code: HashMap<i64, u64>,
    /// Latency of the answers with each JSON code, in microseconds (a shed
    /// answer and a sale are not the same work).
    pub latency_by_code_us: HashMap<i64, Histogram<u64>>,
    /// Answers by HTTP status.
    pub by_status: HashMap<u16, u64>,
    /// Answers by `X-Spike-Node`.
    pub by_node: HashMap<String, u64>,
    /// (user, order) of every success.
    pub successes: Vec<(u64, String)>,
    /// Requests that got no answer (connection error, timeout).
    pub errors: u64,
    /// Per-second counts.
    pub seconds: Vec<SecondCounts>,
    /// Per-second latency, in microseconds.
    pub second_latency_us: Vec<Histogram<u64>>,
}

fn histogram() -> Histogram<u64> {
    // 1 µs to 60 s at 3 significant figures; the bounds are constants.
    Histogram::new_with_bounds(1, 60_000_000, 3).unwrap_or_else(|_| unreachable!())
}

/// One connection's tallies, merged at the end.
struct Tally {
    latency_us: Histogram<u64>,
    by_code: HashMap<i64, u64>,
    latency_by_code_us: HashMap<i64, Histogram<u64>>,
    by_status: HashMap<u16, u64>,
    by_node: HashMap<String, u64>,
    successes: Vec<(u64, String)>,
    errors: u64,
    seconds: Vec<SecondCounts>,
    current_second: usize,
    second_histogram: Histogram<u64>,
}

impl Tally {
    fn new() -> Self {
        Self {
            latency_us: histogram(),
            by_code: HashMap::new(),
            latency_by_code_us: HashMap::new(),
            by_status: HashMap::new(),
            by_node: HashMap::new(),
            successes: Vec::new(),
            errors: 0,
            seconds: Vec::new(),
            current_second: 0,
            second_histogram: histogram(),
        }
    }

    /// Files one answer's latency under the second it finished in (the
    /// second's histogram is switched first, so that an answer never lands
    /// in the second this connection answered before).
    fn record_second_latency(&mut self, second: usize, micros: u64, shared: &SharedSeconds) {
        self.second(second, shared);
        let _ = self.second_histogram.record(micros);
    }

    fn second(&mut self, second: usize, shared: &SharedSeconds) -> &mut SecondCounts {
        if second != self.current_second {
            shared.merge(self.current_second, &mut self.second_histogram);
            self.current_second = second;
        }
        if self.seconds.len() <= second {
            self.seconds.resize(second + 1, SecondCounts::default());
        }
        &mut self.seconds[second]
    }
}

/// Per-second latency histograms shared by all connections (each merges
/// its own once per second, so the lock is rarely taken).
struct SharedSeconds(Mutex<Vec<Histogram<u64>>>);

impl SharedSeconds {
    fn merge(&self, second: usize, local: &mut Histogram<u64>) {
        if local.is_empty() {
            return;
        }
        let mut seconds = self.0.lock().unwrap_or_else(|p| p.into_inner());
        while seconds.len() <= second {
            seconds.push(histogram());
        }
        let _ = seconds[second].add(&*local);
        local.reset();
    }
}

/// Runs the load described by `config` and returns what it observed.
pub async fn run(config: &BenchConfig) -> Result<RunData, BenchError> {
    if config.users == 0 || config.connections == 0 {
        return Err(BenchError::Empty);
    }
    // Fail fast if the target is not there at all.
    Connection::open(&config.target.address)
        .await
        .map_err(|source| BenchError::Connect {
            address: config.target.address.clone(),
            source,
        })?;
    let config = Arc::new(config.clone());
    let next = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicU64::new(0));
    let shared = Arc::new(SharedSeconds(Mutex::new(Vec::new())));
    let progress = progress_bar(&config);
    let ticker = {
        let (done, progress) = (Arc::clone(&done), progress.clone());
        tokio::spawn(async move {
            loop {
                progress.set_position(done.load(Ordering::Relaxed));
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    // Every connection is opened before the clock starts: at a fixed rate,
    // requests due while thousands of connections were still being opened
    // would otherwise count the opening as the server's latency.
    // In a storm, each connection is opened by its first request instead,
    // and the opening counts in that request's latency.
    let mut opened = Vec::with_capacity(config.connections);
    if config.storm {
        opened.resize_with(config.connections, || None);
    } else {
        let mut opening = tokio::task::JoinSet::new();
        for _ in 0..config.connections {
            let address = config.target.address.clone();
            opening.spawn(async move { Connection::open(&address).await.ok() });
        }
        while let Some(connection) = opening.join_next().await {
            opened.push(connection.ok().flatten());
        }
    }
    let start = Instant::now();
    let openings = Arc::new(tokio::sync::Semaphore::new(STORM_OPENINGS));
    let mut workers = tokio::task::JoinSet::new();
    for connection in opened {
        let (config, next, done, shared, openings) = (
            Arc::clone(&config),
            Arc::clone(&next),
            Arc::clone(&done),
            Arc::clone(&shared),
            Arc::clone(&openings),
        );
        workers.spawn(async move {
            let run = Run {
                config: &config,
                next: &next,
                done: &done,
                shared: &shared,
                openings: &openings,
                start,
            };
            drive(&run, connection).await
        });
    }
    let mut tallies = Vec::with_capacity(config.connections);
    while let Some(tally) = workers.join_next().await {
        if let Ok(tally) = tally {
            tallies.push(tally);
        }
    }
    let elapsed = start.elapsed();
    ticker.abort();
    progress.finish_and_clear();
    Ok(merge(tallies, &shared, elapsed))
}

fn progress_bar(config: &BenchConfig) -> ProgressBar {
    if !config.progress {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(config.users);
    let style = ProgressStyle::with_template(
        "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} requests ({per_sec}, eta {eta})",
    );
    if let Ok(style) = style {
        bar.set_style(style);
    }
    bar
}

/// What every connection's driver shares.
struct Run<'a> {
    config: &'a BenchConfig,
    next: &'a AtomicU64,
    done: &'a AtomicU64,
    shared: &'a SharedSeconds,
    /// Connections being opened after the clock started, bounded.
    openings: &'a tokio::sync::Semaphore,
    start: Instant,
}

async fn drive(run: &Run<'_>, mut connection: Option<Connection>) -> Tally {
    let Run {
        config,
        next,
        done,
        shared,
        openings,
        start,
    } = *run;
    let mut tally = Tally::new();
    let separator = if config.target.path.contains('?') {
        '&'
    } else {
        '?'
    };
    let mut path = String::with_capacity(config.target.path.len() + 32);
    loop {
        let index = next.fetch_add(1, Ordering::Relaxed);
        if index >= config.users {
            break;
        }
        let user = config.user_of(index);
        path.clear();
        path.push_str(&config.target.path);
        path.push(separator);
        path.push_str("user_id=");
        path.push_str(&user.to_string());
        if let Some(tickets) = &config.tickets {
            path.push('&');
            path.push_str(&tickets.query_of(index));
        }
        // With a fixed rate, latency counts from when the request was due
        // (no coordinated omission).
        let mut due = match config.rate {
            Some(rate) => {
                let due = start + Duration::from_secs_f64(index as f64 / rate);
                tokio::time::sleep_until(due.into()).await;
                due
            }
            None => Instant::now(),
        };
        if connection.is_none() {
            let opening = openings.acquire().await.ok();
            if config.rate.is_none() {
                due = Instant::now();
            }
            let opened = Connection::open(&config.target.address).await;
            drop(opening);
            match opened {
                Ok(opened) => connection = Some(opened),
                Err(_) => {
                    let second = start.elapsed().as_secs() as usize;
                    tally.errors += 1;
                    tally.second(second, shared).errors += 1;
                    done.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            }
        }
        let Some(open) = connection.as_mut() else {
            continue;
        };
        let answered =
            tokio::time::timeout(config.timeout, open.get(&config.target.address, &path)).await;
        let finished = Instant::now();
        let second = finished.duration_since(start).as_secs() as usize;
        done.fetch_add(1, Ordering::Relaxed);
        match answered {
            Ok(Ok(answer)) => {
                let micros =
                    u64::try_from(finished.duration_since(due).as_micros()).unwrap_or(u64::MAX);
                let micros = micros.clamp(1, 60_000_000);
                let _ = tally.latency_us.record(micros);
                tally.record_second_latency(second, micros, shared);
                let counts = tally.second(second, shared);
                counts.requests += 1;
                if answer.code == i64::from(Code::TryAgain.number()) {
                    counts.shed += 1;
                }
                if answer.code == i64::from(Code::Success.number()) {
                    counts.successes += 1;
                    tally
                        .successes
                        .push((user, answer.order.unwrap_or_default()));
                }
                *tally.by_code.entry(answer.code).or_default() += 1;
                let _ = (tally.latency_by_code_us.entry(answer.code))
                    .or_insert_with(histogram)
                    .record(micros);
                *tally.by_status.entry(answer.status).or_default() += 1;
                if let Some(node) = answer.node {
                    *tally.by_node.entry(node).or_default() += 1;
                }
            }
            _ => {
                tally.errors += 1;
                tally.second(second, shared).errors += 1;
                connection = None;
            }
        }
    }
    let last = tally.current_second;
    shared.merge(last, &mut tally.second_histogram);
    tally
}

fn merge(tallies: Vec<Tally>, shared: &SharedSeconds, elapsed: Duration) -> RunData {
    let mut data = RunData {
        elapsed,
        latency_us: histogram(),
        by_code: HashMap::new(),
        latency_by_code_us: HashMap::new(),
        by_status: HashMap::new(),
        by_node: HashMap::new(),
        successes: Vec::new(),
        errors: 0,
        seconds: Vec::new(),
        second_latency_us: Vec::new(),
    };
    for tally in tallies {
        let _ = data.latency_us.add(&tally.latency_us);
        for (code, n) in tally.by_code {
            *data.by_code.entry(code).or_default() += n;
        }
        for (code, latency) in tally.latency_by_code_us {
            let _ = (data.latency_by_code_us.entry(code))
                .or_insert_with(histogram)
                .add(&latency);
        }
        for (status, n) in tally.by_status {
            *data.by_status.entry(status).or_default() += n;
        }
        for (node, n) in tally.by_node {
            *data.by_node.entry(node).or_default() += n;
        }
        data.successes.extend(tally.successes);
        data.errors += tally.errors;
        if data.seconds.len() < tally.seconds.len() {
            data.seconds
                .resize(tally.seconds.len(), SecondCounts::default());
        }
        for (total, part) in data.seconds.iter_mut().zip(tally.seconds) {
            total.requests += part.requests;
            total.successes += part.successes;
            total.shed += part.shed;
            total.errors += part.errors;
        }
    }
    data.second_latency_us =
        std::mem::take(&mut *shared.0.lock().unwrap_or_else(|p| p.into_inner()));
    data
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse_with_a_default_path() {
        let t: Target = "http://127.0.0.1:8080".parse().unwrap();
        assert_eq!(
            (t.address.as_str(), t.path.as_str()),
            ("127.0.0.1:8080", "/buy/ticket")
        );
        let t: Target = "http://h:1/buy/ticket?event=G1".parse().unwrap();
        assert_eq!(t.path, "/buy/ticket?event=G1");
        for bad in ["https://h:1/", "h:1/x", "http://h/x", "http://:1/"] {
            assert!(bad.parse::<Target>().is_err(), "{bad}");
        }
    }

    #[test]
    fn an_answer_is_filed_under_the_second_it_finished_in() {
        let shared = SharedSeconds(Mutex::new(Vec::new()));
        let mut tally = Tally::new();
        // A connection's only answer, 2.4 s after the start (a storm).
        tally.record_second_latency(2, 2_400_000, &shared);
        let last = tally.current_second;
        shared.merge(last, &mut tally.second_histogram);
        let seconds = shared.0.lock().unwrap();
        assert_eq!(seconds.len(), 3);
        assert_eq!(seconds[0].len(), 0, "not under the second it opened in");
        assert_eq!(seconds[2].len(), 1);
    }

    #[test]
    fn seeded_users_stay_in_range_and_repeat() {
        let mut config = BenchConfig::new("http://h:1/".parse().unwrap(), 100, 1);
        assert_eq!(config.user_of(0), 1);
        config.user_ids = Users::Seeded(7);
        let users: Vec<u64> = (0..1000).map(|i| config.user_of(i)).collect();
        assert!(users.iter().all(|u| (1..=100).contains(u)));
        let distinct: std::collections::HashSet<_> = users.iter().collect();
        assert!(distinct.len() < 1000 && distinct.len() > 50);
    }
}
