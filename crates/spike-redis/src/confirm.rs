//! Durable confirmation, grouped: a sale is answered only once `WAIT`
//! says enough replicas hold it. `WAIT` covers every write its connection
//! sent before it, so one `WAIT` confirms every sale whose reply had arrived
//! when it was sent: sales queue here, and one task sends one `WAIT` per
//! group, on each group's own connection (a sale made on a connection that
//! has since been replaced is confirmed on that old connection, or not at
//! all).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use crate::connection::Link;

/// Whether a sale is on enough replicas.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Confirmation {
    /// At least the required replicas acknowledged it.
    Confirmed,
    /// Not confirmed in time (or the connection broke): the outcome stays
    /// unknown to the buyer, who asks `/buy/result`.
    Unconfirmed(String),
}

/// One sale waiting for its confirmation.
struct Waiter {
    link: Arc<Link>,
    done: oneshot::Sender<Confirmation>,
}

/// The handle sales queue on; the task behind it sends the `WAIT`s.
#[derive(Clone)]
pub(crate) struct Confirmer {
    queue: mpsc::UnboundedSender<Waiter>,
}

impl Confirmer {
    /// Starts the task confirming on `replicas` replicas, each `WAIT`
    /// bounded by `timeout`.
    pub(crate) fn start(replicas: u32, timeout: Duration) -> Self {
        let (queue, waiting) = mpsc::unbounded_channel();
        tokio::spawn(confirm_forever(waiting, replicas, timeout));
        Self { queue }
    }

    /// Waits until the sale just made on `link` is confirmed, or is not.
    pub(crate) async fn confirm(&self, link: Arc<Link>) -> Confirmation {
        let (done, outcome) = oneshot::channel();
        if self.queue.send(Waiter { link, done }).is_err() {
            return Confirmation::Unconfirmed("confirmation stopped".into());
        }
        outcome
            .await
            .unwrap_or_else(|_| Confirmation::Unconfirmed("confirmation stopped".into()))
    }
}

/// Takes every sale queued, groups them by connection, and confirms each
/// group with one `WAIT`; repeats while sales keep coming.
async fn confirm_forever(
    mut waiting: mpsc::UnboundedReceiver<Waiter>,
    replicas: u32,
    timeout: Duration,
) {
    // WAIT's own timeout leaves room for its answer within the response
    // deadline of the connection it runs on.
    let wait_ms = (timeout.as_millis() * 4 / 5).max(1) as u64;
    while let Some(first) = waiting.recv().await {
        let mut groups: BTreeMap<u64, Vec<Waiter>> = BTreeMap::new();
        groups.entry(first.link.generation).or_default().push(first);
        while let Ok(more) = waiting.try_recv() {
            groups.entry(more.link.generation).or_default().push(more);
        }
        for (_, group) in groups {
            let mut connection = group[0].link.connection.clone();
            let acknowledged: Result<u32, _> = redis::cmd("WAIT")
                .arg(replicas)
                .arg(wait_ms)
                .query_async(&mut connection)
                .await;
            let confirmation = match acknowledged {
                Ok(count) if count >= replicas => Confirmation::Confirmed,
                Ok(count) => Confirmation::Unconfirmed(format!(
                    "{count} of {replicas} replicas acknowledged within {wait_ms} ms"
                )),
                Err(error) => Confirmation::Unconfirmed(format!("WAIT failed: {error}")),
            };
            for waiter in group {
                let _ = waiter.done.send(confirmation.clone());
            }
        }
    }
}
