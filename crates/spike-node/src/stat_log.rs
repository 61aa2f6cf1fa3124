//! The stat log: one line per answered request, written by a dedicated
//! thread so that the request path only pushes onto a lock-free channel and
//! never waits for the disk. The writer drains the channel on its own clock
//! (every few milliseconds) instead of being woken per line, so a request
//! costs no system call; lines are written whole (several nodes may append
//! to one file) and every line is on disk before [`StatLog::close`] returns.
//!
//! The queue is bounded: a request first reserves a place for its line
//! ([`StatLog::reserve`]); when the disk stalls and the queue is full, the
//! node refuses the request (503) instead of losing its line or growing
//! without bound, and counts the refusal.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use spike_core::control::OperatorEntry;
use spike_core::stat::{ControlLine, MillisClock, StatLine, StatRecord};
use spike_core::{EventId, NodeId};

/// Write to the file once this many bytes are buffered.
const BATCH_BYTES: usize = 64 * 1024;

/// How long the writer sleeps when it finds nothing to write.
const IDLE_PAUSE: Duration = Duration::from_millis(5);

/// The longest a line waits in the writer's batch: under a steady stream of
/// lines the queue may never be empty, and a sale's line must still reach
/// the file promptly (a recovery reads the files while nodes answer).
const MAX_BATCH_AGE: Duration = Duration::from_millis(20);

/// Lines the queue holds by default before requests are refused: about two
/// seconds of a flash crowd at 100,000 answers a second (some 30 MB).
pub const DEFAULT_QUEUE_LINES: u64 = 200_000;

/// Lines accepted, written and lost by a stat log.
#[derive(Debug, Default)]
pub struct StatCounters {
    /// Lines handed to the writer.
    pub accepted: AtomicU64,
    /// Lines on disk (written to the file).
    pub written: AtomicU64,
    /// Lines lost (writer gone or I/O error). Must stay 0.
    pub dropped: AtomicU64,
    /// Requests refused because the queue was full (the disk stalled).
    pub refused: AtomicU64,
    /// Lines reserved or queued and not yet written (or dropped).
    pub queued: AtomicU64,
}

/// Why the stat log could not be opened.
#[derive(Debug, thiserror::Error)]
#[error("cannot open stat log {path}: {source}")]
pub struct StatLogError {
    path: PathBuf,
    source: std::io::Error,
}

/// What the request path sends to the writer thread.
#[derive(Debug)]
enum Message {
    Line(StatRecord),
    /// An operator control the node followed (see [`ControlLine`]).
    Control(EventId, OperatorEntry),
    Close,
}

/// A handle to the stat-log writer; cheap to share between requests.
#[derive(Debug)]
pub struct StatLog {
    sender: Sender<Message>,
    counters: Arc<StatCounters>,
    writer: Mutex<Option<JoinHandle<()>>>,
    capacity: u64,
}

/// A place reserved in the stat log's queue for one line.
#[derive(Debug)]
#[must_use = "a reserved place is given back when dropped unused"]
pub struct StatSlot {
    log: Arc<StatLog>,
    used: bool,
}

impl StatSlot {
    /// Queues the line this place was reserved for.
    pub fn record(mut self, record: StatRecord) {
        self.used = true;
        self.log.send(record);
    }
}

impl Drop for StatSlot {
    fn drop(&mut self) {
        if !self.used {
            self.log.counters.queued.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

impl StatLog {
    /// Opens `path` for appending and starts the writer thread, which signs
    /// every line with `node`; the queue holds [`DEFAULT_QUEUE_LINES`].
    pub fn open(path: &Path, node: NodeId) -> Result<Self, StatLogError> {
        Self::open_with_queue(path, node, DEFAULT_QUEUE_LINES)
    }

    /// [`StatLog::open`] with a queue of `capacity` lines.
    pub fn open_with_queue(path: &Path, node: NodeId, capacity: u64) -> Result<Self, StatLogError> {
        let error = |source| StatLogError {
            path: path.to_owned(),
            source,
        };
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(error)?;
        let (sender, receiver) = mpsc::channel();
        let counters = Arc::new(StatCounters::default());
        let writer = Writer {
            file,
            node,
            counters: Arc::clone(&counters),
            batch: Vec::with_capacity(BATCH_BYTES * 2),
            lines: 0,
            batch_since: None,
            clock: MillisClock::default(),
        };
        let thread = std::thread::Builder::new()
            .name("stat-log".into())
            .spawn(move || writer.run(&receiver))
            .map_err(error)?;
        Ok(Self {
            sender,
            counters,
            writer: Mutex::new(Some(thread)),
            capacity: capacity.max(1),
        })
    }

    /// Reserves a place for one line, or `None` (counted as a refusal) when
    /// the queue is full because the writer cannot keep up. The place owns a
    /// handle on the log, so that a purchase finishing on its own task (its
    /// client gone) still writes its line.
    pub fn reserve(self: &Arc<Self>) -> Option<StatSlot> {
        let reserved = self
            .counters
            .queued
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |queued| {
                (queued < self.capacity).then_some(queued + 1)
            })
            .is_ok();
        if !reserved {
            self.counters.refused.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        Some(StatSlot {
            log: Arc::clone(self),
            used: false,
        })
    }

    /// Queues one line at once, reserving its place (tests and tools; the
    /// request path reserves first, before it decides anything).
    pub fn record(&self, record: StatRecord) {
        self.counters.queued.fetch_add(1, Ordering::AcqRel);
        self.send(record);
    }

    /// Queues the line of an operator control the node followed, so that
    /// the stat logs hold the operator log for a recovery.
    pub fn record_control(&self, event: &EventId, entry: &OperatorEntry) {
        self.counters.queued.fetch_add(1, Ordering::AcqRel);
        self.deliver(Message::Control(event.clone(), entry.clone()));
    }

    /// Hands a reserved line to the writer; never blocks, never wakes it.
    fn send(&self, record: StatRecord) {
        self.deliver(Message::Line(record));
    }

    fn deliver(&self, message: Message) {
        self.counters.accepted.fetch_add(1, Ordering::Relaxed);
        if self.sender.send(message).is_err() {
            self.counters.dropped.fetch_add(1, Ordering::Relaxed);
            self.counters.queued.fetch_sub(1, Ordering::AcqRel);
        }
    }

    /// Counters so far.
    pub fn counters(&self) -> &StatCounters {
        &self.counters
    }

    /// Writes every queued line, flushes, and stops the writer. Lines recorded
    /// afterwards are counted as dropped.
    pub fn close(&self) {
        let writer = self.writer.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(writer) = writer {
            let _ = self.sender.send(Message::Close);
            let _ = writer.join();
        }
    }
}

/// The writer thread's state.
struct Writer {
    file: File,
    node: NodeId,
    counters: Arc<StatCounters>,
    batch: Vec<u8>,
    lines: u64,
    /// When the batch's first line was taken; `None` while it is empty.
    batch_since: Option<Instant>,
    clock: MillisClock,
}

impl Writer {
    fn run(mut self, receiver: &Receiver<Message>) {
        loop {
            match receiver.try_recv() {
                Ok(Message::Line(record)) => {
                    let line = StatLine {
                        node: &self.node,
                        record: &record,
                    };
                    line.write_to(&mut self.batch, &mut self.clock);
                    self.taken();
                }
                Ok(Message::Control(event, entry)) => {
                    let line = ControlLine {
                        node: &self.node,
                        event: &event,
                        entry: &entry,
                    };
                    let now = std::time::SystemTime::now();
                    line.write_to(&mut self.batch, &mut self.clock, now);
                    self.taken();
                }
                Ok(Message::Close) | Err(TryRecvError::Disconnected) => {
                    self.flush();
                    return;
                }
                Err(TryRecvError::Empty) => {
                    self.flush();
                    std::thread::sleep(IDLE_PAUSE);
                }
            }
        }
    }

    /// Counts a line put in the batch, and writes the batch once it is big
    /// or old enough.
    fn taken(&mut self) {
        self.lines += 1;
        let since = *self.batch_since.get_or_insert_with(Instant::now);
        // The clock is read every 64 lines, not every line.
        let old = self.lines.is_multiple_of(64) && since.elapsed() >= MAX_BATCH_AGE;
        if self.batch.len() >= BATCH_BYTES || old {
            self.flush();
        }
    }

    fn flush(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        match self.file.write_all(&self.batch) {
            Ok(()) => self
                .counters
                .written
                .fetch_add(self.lines, Ordering::Relaxed),
            Err(error) => {
                tracing::error!(%error, lines = self.lines, "stat log write failed");
                self.counters
                    .dropped
                    .fetch_add(self.lines, Ordering::Relaxed)
            }
        };
        self.counters.queued.fetch_sub(self.lines, Ordering::AcqRel);
        self.batch.clear();
        self.lines = 0;
        self.batch_since = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use spike_core::Code;

    fn record(code: Code) -> StatRecord {
        StatRecord {
            at: std::time::SystemTime::now(),
            code,
            local_sales: 0,
            event: None,
            user: None,
            order: None,
            request: None,
            ticket: None,
        }
    }

    #[test]
    fn a_followed_control_is_written_as_its_own_line() {
        let dir = std::env::temp_dir().join(format!("spike-stat-ctl-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("stat.log");
        let _ = std::fs::remove_file(&path);
        let log = StatLog::open(&path, NodeId::parse("t").unwrap()).unwrap();
        let event = EventId::parse("G1").unwrap();
        let entry = OperatorEntry::parse(0, "1700000000000 ops pause").unwrap();
        log.record(record(Code::SoldOut));
        log.record_control(&event, &entry);
        log.close();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        let parsed = spike_core::stat::parse_control_line(lines[1]);
        assert_eq!(parsed, Some(("G1", entry)));
        assert_eq!(log.counters().written.load(Ordering::Relaxed), 2);
        assert_eq!(log.counters().queued.load(Ordering::Relaxed), 0);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn every_line_from_many_threads_is_on_disk_after_close() {
        let dir = std::env::temp_dir().join(format!("spike-stat-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("stat.log");
        let _ = std::fs::remove_file(&path);
        let log = Arc::new(StatLog::open(&path, NodeId::parse("t").unwrap()).unwrap());
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let log = Arc::clone(&log);
                std::thread::spawn(move || {
                    for i in 0..5_000 {
                        log.record(record(if (i + t) % 10 == 0 {
                            Code::Success
                        } else {
                            Code::SoldOut
                        }));
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        log.close();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 20_000);
        assert_eq!(
            text.lines().filter(|l| l.contains(" result:1,")).count(),
            2_000
        );
        assert!(text.lines().all(|l| l.contains(",node:t,")));
        assert_eq!(log.counters().written.load(Ordering::Relaxed), 20_000);
        assert_eq!(log.counters().dropped.load(Ordering::Relaxed), 0);
        log.record(record(Code::Success));
        assert_eq!(
            log.counters().dropped.load(Ordering::Relaxed),
            1,
            "late lines are counted"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
