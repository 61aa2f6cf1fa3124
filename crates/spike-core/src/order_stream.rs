//! The contract of the order stream: every seat central stock sells is
//! appended as one [`StreamEntry`], read by order writers in a consumer group,
//! and removed only when a writer acknowledges it after its database commit.
//! Implemented by Redis Streams (`spike-redis`) and by [`crate::MemoryCentral`].

use std::future::Future;
use std::time::Duration;

use crate::central::{CentralError, Holding};
use crate::ids::{EventId, NodeId, OrderId, RequestId, UserId};
use crate::train::Ticket;

/// One sold seat waiting to become a durable order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamEntry {
    /// The order's sequence number within its sale; also the entry's id.
    pub sequence: u64,
    /// The order.
    pub order: OrderId,
    /// Its buyer (none in anonymous sales).
    pub user: Option<UserId>,
    /// The request that bought it.
    pub request: RequestId,
    /// The node that sold it.
    pub node: NodeId,
    /// When it was sold, Unix milliseconds.
    pub sold_at_ms: u64,
    /// On a train run, the seats the order holds.
    pub ticket: Option<Ticket>,
}

impl From<&StreamEntry> for Holding {
    fn from(entry: &StreamEntry) -> Self {
        Self {
            order: entry.order.clone(),
            user: entry.user.clone(),
            request: entry.request.clone(),
            ticket: entry.ticket.clone(),
        }
    }
}

/// How far the writers are behind on one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Backlog {
    /// Entries not yet acknowledged (delivered or not).
    pub entries: u64,
    /// Of those, entries delivered to a writer and not acknowledged yet.
    pub pending: u64,
}

/// The order stream of every event, read through one consumer group.
pub trait OrderStream: Send + Sync + 'static {
    /// Up to `max` entries never delivered before, now pending for `consumer`.
    fn read_new(
        &self,
        event: &EventId,
        consumer: &NodeId,
        max: usize,
    ) -> impl Future<Output = Result<Vec<StreamEntry>, CentralError>> + Send;

    /// Up to `max` entries pending for longer than `min_idle` (their writer
    /// died or stalled), now pending for `consumer` instead.
    fn reclaim(
        &self,
        event: &EventId,
        consumer: &NodeId,
        min_idle: Duration,
        max: usize,
    ) -> impl Future<Output = Result<Vec<StreamEntry>, CentralError>> + Send;

    /// Marks entries written: they leave the stream for good. Returns how
    /// many were still there.
    fn acknowledge(
        &self,
        event: &EventId,
        sequences: &[u64],
    ) -> impl Future<Output = Result<u64, CentralError>> + Send;

    /// The entry of one order, if it is still in the stream.
    fn entry(
        &self,
        event: &EventId,
        sequence: u64,
    ) -> impl Future<Output = Result<Option<StreamEntry>, CentralError>> + Send;

    /// Every entry still in the stream, oldest first (audits and recovery).
    fn unacknowledged(
        &self,
        event: &EventId,
    ) -> impl Future<Output = Result<Vec<StreamEntry>, CentralError>> + Send;

    /// How far behind the writers are.
    fn backlog(
        &self,
        event: &EventId,
    ) -> impl Future<Output = Result<Backlog, CentralError>> + Send;
}
