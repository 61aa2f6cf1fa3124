//! Batched central calls, the group commit of a hot sale: one [`Lane`] per
//! sale sends one call to central stock at a time, and every purchase of
//! that sale arriving while the call is in flight waits in the lane and
//! goes out with the next call, as one [`PurchaseBatch`] (at most
//! `max_batch`). A purchase that finds the lane idle goes out at once:
//! batching adds no wait, it only fills the time a call already takes.
//!
//! The lane knows nothing of Redis or of the node: it is given the function
//! that sends a batch, and keeps the distribution of batch sizes.

use std::future::Future;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use spike_core::{BatchRefusal, CentralError, CentralReply, Purchase, PurchaseBatch, MAX_BATCH};
use tokio::sync::{mpsc, oneshot};

/// The default bound on a batch: [`MAX_BATCH`].
pub const DEFAULT_MAX_BATCH: NonZeroUsize = match NonZeroUsize::new(MAX_BATCH) {
    Some(bound) => bound,
    None => NonZeroUsize::MIN,
};

/// What a purchase in a lane is eventually told.
type Reply = Result<CentralReply, CentralError>;

/// One purchase waiting in a lane, and where its reply goes.
struct Waiting {
    purchase: Purchase,
    reply: oneshot::Sender<Reply>,
}

/// One sale's line to central stock.
#[derive(Debug, Clone)]
pub struct Lane {
    queue: mpsc::UnboundedSender<Waiting>,
}

impl std::fmt::Debug for Waiting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Waiting")
            .field("request", &self.purchase.request)
            .finish_non_exhaustive()
    }
}

impl Lane {
    /// Starts a lane that sends batches of at most `max_batch` purchases
    /// with `send`, one call at a time, counting their sizes in `sizes`.
    /// The lane stops when its last handle is dropped.
    pub fn start<S, F>(max_batch: NonZeroUsize, sizes: Arc<BatchSizes>, send: S) -> Self
    where
        S: Fn(PurchaseBatch) -> F + Send + 'static,
        F: Future<Output = Result<Vec<CentralReply>, CentralError>> + Send + 'static,
    {
        let (queue, waiting) = mpsc::unbounded_channel();
        let max_batch = max_batch.get().min(MAX_BATCH);
        tokio::spawn(drain(waiting, max_batch, sizes, send));
        Self { queue }
    }

    /// Sends `purchase` with the lane's next call and waits for its reply.
    pub async fn buy(&self, purchase: Purchase) -> Reply {
        let (reply, replied) = oneshot::channel();
        let stopped = || CentralError::Unavailable("the node's central lane stopped".into());
        self.queue
            .send(Waiting { purchase, reply })
            .map_err(|_| stopped())?;
        replied.await.unwrap_or_else(|_| Err(stopped()))
    }
}

/// Takes every purchase waiting (up to `max_batch`), sends them as one
/// batch, hands each its reply; repeats while purchases keep coming.
async fn drain<S, F>(
    mut waiting: mpsc::UnboundedReceiver<Waiting>,
    max_batch: usize,
    sizes: Arc<BatchSizes>,
    send: S,
) where
    S: Fn(PurchaseBatch) -> F,
    F: Future<Output = Result<Vec<CentralReply>, CentralError>>,
{
    let mut held_over: Option<Waiting> = None;
    loop {
        let first = match held_over.take() {
            Some(first) => first,
            None => match waiting.recv().await {
                Some(first) => first,
                None => return,
            },
        };
        let mut batch = PurchaseBatch::new(first.purchase);
        let mut replies = vec![first.reply];
        while batch.len() < max_batch {
            let Ok(next) = waiting.try_recv() else { break };
            match batch.push(next.purchase) {
                Ok(()) => replies.push(next.reply),
                // A lane serves one sale; anything else waits for a batch
                // of its own rather than be lost.
                Err(BatchRefusal::OtherEvent(purchase) | BatchRefusal::Full(purchase)) => {
                    held_over = Some(Waiting {
                        purchase,
                        reply: next.reply,
                    });
                    break;
                }
            }
        }
        sizes.count(batch.len());
        match send(batch).await {
            Ok(answers) if answers.len() == replies.len() => {
                for (reply, answer) in replies.into_iter().zip(answers) {
                    let _ = reply.send(Ok(answer));
                }
            }
            Ok(answers) => {
                let error = CentralError::Protocol(format!(
                    "{} replies for {} purchases",
                    answers.len(),
                    replies.len()
                ));
                for reply in replies {
                    let _ = reply.send(Err(error.clone()));
                }
            }
            Err(error) => {
                for reply in replies {
                    let _ = reply.send(Err(error.clone()));
                }
            }
        }
    }
}

/// How many batches of each size went out: powers-of-two buckets, the
/// `i`-th counting sizes in `(2^(i-1), 2^i]` (the first, size 1).
#[derive(Debug, Default)]
pub struct BatchSizes {
    buckets: [AtomicU64; BUCKETS],
}

/// Buckets up to [`MAX_BATCH`] (256 = 2^8).
const BUCKETS: usize = 9;

impl BatchSizes {
    /// Counts one batch of `size` purchases.
    pub fn count(&self, size: usize) {
        let bucket = (size.max(1).next_power_of_two().trailing_zeros() as usize).min(BUCKETS - 1);
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
    }

    /// Each bucket's upper bound and count, smallest first.
    pub fn snapshot(&self) -> Vec<(usize, u64)> {
        (self.buckets.iter().enumerate())
            .map(|(i, count)| (1 << i, count.load(Ordering::Relaxed)))
            .collect()
    }

    /// For `/stats`: `{"calls": n, "purchases_at_most": {"1": a, "2": b, "4": c, …}}`.
    pub fn json(&self) -> serde_json::Value {
        let snapshot = self.snapshot();
        let calls: u64 = snapshot.iter().map(|(_, count)| count).sum();
        let sizes: serde_json::Map<String, serde_json::Value> = (snapshot.into_iter())
            .map(|(bound, count)| (bound.to_string(), count.into()))
            .collect();
        serde_json::json!({ "calls": calls, "purchases_at_most": sizes })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::time::Duration;

    use spike_core::{EventId, NodeId, RequestId, Verdict};

    use super::*;

    fn purchase(request: &str) -> Purchase {
        Purchase {
            event: EventId::parse("e").unwrap(),
            user: None,
            request: RequestId::parse(request).unwrap(),
            node: NodeId::parse("n").unwrap(),
            admission: None,
        }
    }

    /// The request ids of each batch sent, in order.
    type Sent = Arc<Mutex<Vec<Vec<String>>>>;

    /// A central stock that takes 20 ms per call and records each batch.
    fn recording_lane(max: usize) -> (Lane, Sent, Arc<BatchSizes>) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sizes = Arc::new(BatchSizes::default());
        let record = Arc::clone(&seen);
        let lane = Lane::start(
            NonZeroUsize::new(max).unwrap(),
            Arc::clone(&sizes),
            move |batch| {
                let record = Arc::clone(&record);
                async move {
                    let requests: Vec<String> = batch
                        .purchases()
                        .iter()
                        .map(|p| p.request.to_string())
                        .collect();
                    record.lock().unwrap().push(requests);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    let replies = (batch.purchases().iter())
                        .map(|_| CentralReply {
                            verdict: Verdict::SoldOut,
                            remaining: batch.len() as u64,
                        })
                        .collect();
                    Ok(replies)
                }
            },
        );
        (lane, seen, sizes)
    }

    #[tokio::test]
    async fn a_lone_purchase_goes_out_at_once() {
        let (lane, seen, _) = recording_lane(8);
        let started = std::time::Instant::now();
        let reply = lane.buy(purchase("alone")).await.unwrap();
        assert_eq!(reply.remaining, 1);
        assert!(started.elapsed() < Duration::from_secs(1));
        assert_eq!(*seen.lock().unwrap(), vec![vec!["alone".to_string()]]);
    }

    #[tokio::test]
    async fn purchases_arriving_during_a_call_share_the_next_one_in_order() {
        let (lane, seen, sizes) = recording_lane(3);
        let first = tokio::spawn({
            let lane = lane.clone();
            async move { lane.buy(purchase("r0")).await }
        });
        tokio::time::sleep(Duration::from_millis(5)).await;
        let mut later = Vec::new();
        for i in 1..=4 {
            let lane = lane.clone();
            later.push(tokio::spawn(async move {
                lane.buy(purchase(&format!("r{i}"))).await
            }));
            tokio::task::yield_now().await;
        }
        first.await.unwrap().unwrap();
        for reply in later {
            reply.await.unwrap().unwrap();
        }
        let batches = seen.lock().unwrap().clone();
        assert_eq!(batches, [vec!["r0"], vec!["r1", "r2", "r3"], vec!["r4"]]);
        let counts: Vec<u64> = sizes.snapshot().iter().map(|(_, n)| *n).collect();
        assert_eq!(&counts[..3], [2, 0, 1], "two of size 1, one of size 3");
    }

    #[tokio::test]
    async fn a_failed_call_fails_each_of_its_purchases() {
        let sizes = Arc::new(BatchSizes::default());
        let lane = Lane::start(NonZeroUsize::new(4).unwrap(), sizes, |_batch| async {
            Err(CentralError::OutcomeUnknown("no answer".into()))
        });
        let reply = lane.buy(purchase("r")).await;
        assert!(matches!(reply, Err(CentralError::OutcomeUnknown(_))));
    }

    #[test]
    fn batch_sizes_fall_in_power_of_two_buckets() {
        let sizes = BatchSizes::default();
        for size in [1, 2, 3, 4, 5, 256, 300] {
            sizes.count(size);
        }
        let counts: Vec<u64> = sizes.snapshot().iter().map(|(_, n)| *n).collect();
        assert_eq!(counts, [1, 1, 2, 1, 0, 0, 0, 0, 2]);
        assert_eq!(sizes.json()["calls"], 7);
    }
}
