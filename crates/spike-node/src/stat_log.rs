//! The stat log: one line per answered request, written by a dedicated
//! thread so that the request path only pushes onto a lock-free channel and
//! never waits for the disk. Lines are written whole (several nodes may
//! append to one file) and every line is flushed before [`StatLog::close`]
//! returns.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use spike_core::stat::StatRecord;

/// Flush to the file once this many bytes are buffered (and whenever idle).
const BATCH_BYTES: usize = 64 * 1024;

/// Lines accepted, written and lost by a stat log.
#[derive(Debug, Default)]
pub struct StatCounters {
    /// Lines handed to the writer.
    pub accepted: AtomicU64,
    /// Lines on disk (written and flushed).
    pub written: AtomicU64,
    /// Lines lost (writer gone or I/O error). Must stay 0.
    pub dropped: AtomicU64,
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
    Close,
}

/// A handle to the stat-log writer; cheap to share between requests.
#[derive(Debug)]
pub struct StatLog {
    sender: Sender<Message>,
    counters: Arc<StatCounters>,
    writer: Mutex<Option<JoinHandle<()>>>,
}

impl StatLog {
    /// Opens `path` for appending and starts the writer thread.
    pub fn open(path: &Path) -> Result<Self, StatLogError> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|source| StatLogError {
                path: path.to_owned(),
                source,
            })?;
        let (sender, receiver) = mpsc::channel();
        let counters = Arc::new(StatCounters::default());
        let thread_counters = Arc::clone(&counters);
        let writer = std::thread::Builder::new()
            .name("stat-log".into())
            .spawn(move || write_lines(file, &receiver, &thread_counters))
            .map_err(|source| StatLogError {
                path: path.to_owned(),
                source,
            })?;
        Ok(Self {
            sender,
            counters,
            writer: Mutex::new(Some(writer)),
        })
    }

    /// Queues one line; never blocks.
    pub fn record(&self, record: StatRecord) {
        self.counters.accepted.fetch_add(1, Ordering::Relaxed);
        if self.sender.send(Message::Line(record)).is_err() {
            self.counters.dropped.fetch_add(1, Ordering::Relaxed);
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

fn write_lines(mut file: std::fs::File, receiver: &Receiver<Message>, counters: &StatCounters) {
    let mut batch = Vec::with_capacity(BATCH_BYTES * 2);
    let mut lines = 0u64;
    let mut flush = |batch: &mut Vec<u8>, lines: &mut u64| {
        if batch.is_empty() {
            return;
        }
        match file.write_all(batch) {
            Ok(()) => counters.written.fetch_add(*lines, Ordering::Relaxed),
            Err(error) => {
                tracing::error!(%error, lines = *lines, "stat log write failed");
                counters.dropped.fetch_add(*lines, Ordering::Relaxed)
            }
        };
        batch.clear();
        *lines = 0;
    };
    while let Ok(first) = receiver.recv() {
        let mut next = Some(first);
        while let Some(message) = next {
            let Message::Line(record) = message else {
                flush(&mut batch, &mut lines);
                return;
            };
            // Writing into a Vec cannot fail.
            let _ = writeln!(batch, "{record}");
            lines += 1;
            if batch.len() >= BATCH_BYTES {
                flush(&mut batch, &mut lines);
            }
            next = receiver.try_recv().ok();
        }
        flush(&mut batch, &mut lines);
    }
    flush(&mut batch, &mut lines);
}

#[cfg(test)]
mod tests {
    use super::*;
    use spike_core::NodeId;

    fn record(code: i8) -> StatRecord {
        StatRecord {
            at: std::time::SystemTime::now(),
            code,
            local_sales: 0,
            node: NodeId::parse("t").unwrap(),
            event: None,
            user: None,
            order: None,
        }
    }

    #[test]
    fn every_line_from_many_threads_is_on_disk_after_close() {
        let dir = std::env::temp_dir().join(format!("spike-stat-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("stat.log");
        let _ = std::fs::remove_file(&path);
        let log = Arc::new(StatLog::open(&path).unwrap());
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let log = Arc::clone(&log);
                std::thread::spawn(move || {
                    for i in 0..5_000 {
                        log.record(record(if (i + t) % 10 == 0 { 1 } else { -1 }));
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
        assert_eq!(log.counters().written.load(Ordering::Relaxed), 20_000);
        assert_eq!(log.counters().dropped.load(Ordering::Relaxed), 0);
        log.record(record(1));
        assert_eq!(
            log.counters().dropped.load(Ordering::Relaxed),
            1,
            "late lines are counted"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
