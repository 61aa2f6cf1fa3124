//! Batched central calls, the group commit of a hot sale: one [`Lane`] per
//! sale sends one call to central stock at a time, and every purchase of
//! that sale arriving while the call is in flight waits in the lane and
//! goes out with the next call, as one [`PurchaseBatch`] (at most
//! `max_batch`). A purchase that finds the lane idle goes out at once:
//! batching adds no wait, it only fills the time a call already takes.
//!
//! A purchase waits in the lane for a bounded time, not in a bounded count
//! ([`spike_http::backlog`]: controlled delay, newest first when congested);
//! one that waited too long is told [`LaneError::Shed`] at once, even while
//! a call is stuck. The lane runs on the runtime it is given: the central
//! link's own thread, where it never waits behind connection tasks.
//!
//! The lane knows nothing of Redis or of the node: it is given the function
//! that sends a batch, and keeps the distribution of batch sizes.

use std::future::Future;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use spike_core::{Batch, BatchRefusal, CentralError, CentralReply, OfSale, Purchase, MAX_BATCH};
use tokio::runtime::Handle;
use tokio::sync::{mpsc, oneshot};

use spike_http::backlog::{Backlog, Discipline};

/// The default bound on a batch: [`MAX_BATCH`].
pub const DEFAULT_MAX_BATCH: NonZeroUsize = match NonZeroUsize::new(MAX_BATCH) {
    Some(bound) => bound,
    None => NonZeroUsize::MIN,
};

/// The default [`LaneSettings::gather`]: 1 ms.
pub const DEFAULT_GATHER: std::time::Duration = std::time::Duration::from_millis(1);

/// Why a purchase in a lane got no verdict.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LaneError {
    /// It waited in the lane past what the lane's [`Discipline`] allows, and
    /// was never sent: nothing was sold.
    #[error("waited too long for central stock; never sent")]
    Shed,
    /// Central stock failed the call it went out with.
    #[error(transparent)]
    Central(#[from] CentralError),
}

/// What a purchase in a lane is eventually told (`R`: a single-counter
/// purchase's [`CentralReply`], or a seat purchase's `TicketReply`).
pub type LaneReply<R = CentralReply> = Result<R, LaneError>;

/// One purchase waiting in a lane, and where its reply goes.
struct Waiting<T, R> {
    arrived: Instant,
    purchase: T,
    reply: Replier<R>,
}

/// Where a purchase's reply goes, and its place among the purchases
/// waiting on central stock (an in-flight gate's, say), given back with
/// the reply: a purchase stops counting as waiting the moment central
/// stock answers, however long its connection's task then takes to run.
struct Replier<R> {
    to: oneshot::Sender<LaneReply<R>>,
    place: Box<dyn Send>,
}

impl<R> Replier<R> {
    fn send(self, reply: LaneReply<R>) {
        let _ = self.to.send(reply);
        drop(self.place);
    }
}

/// How a lane batches and how long its purchases may wait.
#[derive(Debug, Clone)]
pub struct LaneSettings {
    /// The most purchases in one call.
    pub max_batch: NonZeroUsize,
    /// How long a purchase may wait for its call (see [`spike_http::backlog`]).
    pub discipline: Discipline,
    /// The shortest time from one call to the next while purchases keep
    /// coming: purchases arriving meanwhile go out together. On its own
    /// thread the lane wakes for every purchase; without it, a fast central
    /// stock would get one purchase per call. A purchase that finds the lane
    /// idle for longer goes out at once.
    pub gather: std::time::Duration,
    /// Where the lane's task runs: the runtime of the central link's own
    /// thread, so that it never waits behind the connection tasks.
    pub runtime: Handle,
}

/// One sale's line to central stock, for its purchases `T` (single-counter
/// [`Purchase`]s by default, or a train run's `TicketPurchase`s) and their
/// replies `R`.
pub struct Lane<T = Purchase, R = CentralReply> {
    queue: mpsc::UnboundedSender<Waiting<T, R>>,
}

impl<T, R> Clone for Lane<T, R> {
    fn clone(&self) -> Self {
        Self {
            queue: self.queue.clone(),
        }
    }
}

impl<T, R> std::fmt::Debug for Lane<T, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lane").finish_non_exhaustive()
    }
}

impl<T: OfSale + Send + 'static, R: Send + 'static> Lane<T, R> {
    /// Starts a lane that sends batches as `settings` say with `send`, one
    /// call at a time, counting their sizes in `sizes`. The lane stops when
    /// its last handle is dropped.
    pub fn start<S, F>(settings: LaneSettings, sizes: Arc<BatchSizes>, send: S) -> Self
    where
        S: Fn(Batch<T>) -> F + Send + 'static,
        F: Future<Output = Result<Vec<R>, CentralError>> + Send + 'static,
    {
        let (queue, waiting) = mpsc::unbounded_channel();
        (settings.runtime.clone()).spawn(drain(waiting, settings, sizes, send));
        Self { queue }
    }

    /// Sends `purchase` with the lane's next call and waits for its reply;
    /// `place` is dropped as soon as the reply is known.
    pub async fn buy(&self, purchase: T, place: impl Send + 'static) -> LaneReply<R> {
        let (to, replied) = oneshot::channel();
        let stopped = || CentralError::Unavailable("the node's central lane stopped".into());
        let waiting = Waiting {
            arrived: Instant::now(),
            purchase,
            reply: Replier {
                to,
                place: Box::new(place),
            },
        };
        self.queue.send(waiting).map_err(|_| stopped())?;
        replied.await.unwrap_or_else(|_| Err(stopped().into()))
    }
}

/// Tells every purchase in `expired` that it was shed.
fn shed<T, R>(expired: Vec<Waiting<T, R>>) {
    for waiting in expired {
        waiting.reply.send(Err(LaneError::Shed));
    }
}

/// Takes the purchases to send next (up to `max_batch`, newest first when
/// congested) as one batch of one sale, with where their replies go; any
/// purchase of another sale goes back to wait for a batch of its own.
fn next_batch<T: OfSale, R>(
    backlog: &mut Backlog<Waiting<T, R>>,
    max_batch: usize,
    now: Instant,
) -> Option<(Batch<T>, Vec<Replier<R>>)> {
    let mut taken = backlog.take(max_batch, now).into_iter();
    let first = taken.next()?;
    let mut batch = Batch::new(first.purchase);
    let mut replies = vec![first.reply];
    for next in taken {
        match batch.push(next.purchase) {
            Ok(()) => replies.push(next.reply),
            // A lane serves one sale, so this does not happen; were it to,
            // the purchase is told to try again rather than be lost.
            Err(BatchRefusal::OtherEvent(_) | BatchRefusal::Full(_)) => {
                next.reply.send(Err(LaneError::Shed));
            }
        }
    }
    Some((batch, replies))
}

/// The lane's task: keeps the backlog (time-bounded: see
/// [`spike_http::backlog`]), sends one batch at a time, hands each purchase its
/// reply, and while a call is out keeps taking arrivals and shedding those
/// that waited too long.
async fn drain<T: OfSale, R, S, F>(
    mut arrivals: mpsc::UnboundedReceiver<Waiting<T, R>>,
    settings: LaneSettings,
    sizes: Arc<BatchSizes>,
    send: S,
) where
    S: Fn(Batch<T>) -> F,
    F: Future<Output = Result<Vec<R>, CentralError>>,
{
    let max_batch = settings.max_batch.get().min(MAX_BATCH);
    let discipline = settings.discipline;
    let mut backlog = Backlog::new(discipline, Instant::now());
    let mut last_sent: Option<Instant> = None;
    loop {
        if backlog.is_empty() {
            match arrivals.recv().await {
                Some(first) => backlog.push(first.arrived, first),
                None => return,
            }
        }
        if let Some(ready) = last_sent.map(|sent| sent + settings.gather) {
            if ready > Instant::now() {
                tokio::time::sleep_until(ready.into()).await;
            }
        }
        while let Ok(next) = arrivals.try_recv() {
            backlog.push(next.arrived, next);
        }
        let now = Instant::now();
        shed(backlog.expired(now));
        let Some((batch, replies)) = next_batch(&mut backlog, max_batch, now) else {
            continue;
        };
        sizes.count(batch.len());
        let sent = Instant::now();
        last_sent = Some(sent);
        let call = send(batch);
        tokio::pin!(call);
        // While the call is out, arrivals are not awaited one by one (each
        // would wake this thread); every `target`, those that arrived are
        // taken in and the ones that waited too long are shed.
        let mut look = tokio::time::interval(discipline.target);
        look.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        look.reset();
        let answered = loop {
            tokio::select! {
                biased;
                answered = &mut call => break answered,
                _ = look.tick() => {
                    while let Ok(next) = arrivals.try_recv() {
                        backlog.push(next.arrived, next);
                    }
                    shed(backlog.expired(Instant::now()));
                }
            }
        };
        if answered.is_ok() {
            backlog.serve_in(sent.elapsed());
        }
        deliver(answered, replies);
    }
}

/// Hands each purchase of a call its reply.
fn deliver<R>(answered: Result<Vec<R>, CentralError>, replies: Vec<Replier<R>>) {
    let error = match answered {
        Ok(answers) if answers.len() == replies.len() => {
            for (reply, answer) in replies.into_iter().zip(answers) {
                reply.send(Ok(answer));
            }
            return;
        }
        Ok(answers) => CentralError::Protocol(format!(
            "{} replies for {} purchases",
            answers.len(),
            replies.len()
        )),
        Err(error) => error,
    };
    for reply in replies {
        reply.send(Err(error.clone().into()));
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

    use spike_core::{EventId, NodeId, PurchaseBatch, RequestId, Verdict};

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

    fn settings(max: usize) -> LaneSettings {
        LaneSettings {
            max_batch: NonZeroUsize::new(max).unwrap(),
            discipline: spike_http::backlog::DEFAULT_DISCIPLINE,
            gather: std::time::Duration::ZERO,
            runtime: Handle::current(),
        }
    }

    /// A central stock that takes 20 ms per call and records each batch.
    fn recording_lane(max: usize) -> (Lane, Sent, Arc<BatchSizes>) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sizes = Arc::new(BatchSizes::default());
        let record = Arc::clone(&seen);
        let lane = Lane::start(
            settings(max),
            Arc::clone(&sizes),
            move |batch: PurchaseBatch| {
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
        let reply = lane.buy(purchase("alone"), ()).await.unwrap();
        assert_eq!(reply.remaining, 1);
        assert!(started.elapsed() < Duration::from_secs(1));
        assert_eq!(*seen.lock().unwrap(), vec![vec!["alone".to_string()]]);
    }

    #[tokio::test]
    async fn purchases_arriving_during_a_call_share_the_next_one_in_order() {
        let (lane, seen, sizes) = recording_lane(3);
        let first = tokio::spawn({
            let lane = lane.clone();
            async move { lane.buy(purchase("r0"), ()).await }
        });
        tokio::time::sleep(Duration::from_millis(5)).await;
        let mut later = Vec::new();
        for i in 1..=4 {
            let lane = lane.clone();
            later.push(tokio::spawn(async move {
                lane.buy(purchase(&format!("r{i}")), ()).await
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
        let lane: Lane = Lane::start(settings(4), sizes, |_batch: PurchaseBatch| async {
            Err(CentralError::OutcomeUnknown("no answer".into()))
        });
        let reply = lane.buy(purchase("r"), ()).await;
        assert!(matches!(
            reply,
            Err(LaneError::Central(CentralError::OutcomeUnknown(_)))
        ));
    }

    #[tokio::test]
    async fn purchases_behind_a_stuck_call_are_shed_within_the_interval_never_sent() {
        let sizes = Arc::new(BatchSizes::default());
        let (release, released) = tokio::sync::watch::channel(false);
        let lane = Lane::start(settings(4), Arc::clone(&sizes), move |batch| {
            let mut released = released.clone();
            async move {
                let _ = released.wait_for(|go| *go).await;
                Ok(vec![
                    CentralReply {
                        verdict: Verdict::SoldOut,
                        remaining: 0,
                    };
                    batch.len()
                ])
            }
        });
        let stuck = tokio::spawn({
            let lane = lane.clone();
            async move { lane.buy(purchase("stuck"), ()).await }
        });
        tokio::time::sleep(Duration::from_millis(5)).await;
        let asked = std::time::Instant::now();
        let behind = lane.buy(purchase("behind"), ()).await;
        let waited = asked.elapsed();
        assert!(matches!(behind, Err(LaneError::Shed)), "{behind:?}");
        assert!(
            waited >= spike_http::backlog::DEFAULT_DISCIPLINE.target
                && waited < Duration::from_secs(2),
            "shed after waiting {waited:?}"
        );
        release.send_replace(true);
        assert!(
            stuck.await.unwrap().is_ok(),
            "the call in flight still answers"
        );
        assert_eq!(sizes.json()["calls"], 1, "the shed purchase was never sent");
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
