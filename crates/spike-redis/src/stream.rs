//! The order stream in Redis: each event's `spike:{E}:orders` stream read
//! through the consumer group [`ORDER_GROUP`], with entries reclaimed by
//! `XAUTOCLAIM` and removed by `lua/ack.lua` once written.

use std::time::Duration;

use redis::streams::{
    StreamAutoClaimOptions, StreamAutoClaimReply, StreamId, StreamRangeReply, StreamReadOptions,
    StreamReadReply,
};
use redis::{AsyncCommands, RedisError, Value};
use spike_core::{
    Backlog, CentralError, EventId, NodeId, OrderId, OrderStream, RequestId, StreamEntry, UserId,
};

use crate::client::{classify, RedisCentral};
use crate::keys::EventKeys;

/// The consumer group every order writer joins.
pub const ORDER_GROUP: &str = "spike-orders";

/// Entries read per `XRANGE` page when listing a whole stream.
const RANGE_PAGE: usize = 5_000;

fn is_missing_group(error: &RedisError) -> bool {
    error.code() == Some("NOGROUP")
}

/// Parses one stream entry written by `lua/sell.lua` (a train run's
/// carries its `ticket`).
fn parse_entry(event: &EventId, raw: &StreamId) -> Result<StreamEntry, CentralError> {
    let bad =
        |what: &str| CentralError::Protocol(format!("stream {event} entry {}: {what}", raw.id));
    let field = |name: &str| raw.get::<String>(name).ok_or_else(|| bad(name));
    let sequence = (raw.id.strip_suffix("-0"))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("id is not <sequence>-0"))?;
    let user = field("user")?;
    Ok(StreamEntry {
        sequence,
        order: OrderId::parse(field("order")?).map_err(|_| bad("order"))?,
        user: (!user.is_empty())
            .then(|| UserId::parse(user))
            .transpose()
            .map_err(|_| bad("user"))?,
        request: RequestId::parse(field("request")?).map_err(|_| bad("request"))?,
        node: NodeId::parse(field("node")?).map_err(|_| bad("node"))?,
        sold_at_ms: field("sold_at_ms")?
            .parse()
            .map_err(|_| bad("sold_at_ms"))?,
        ticket: (raw.get::<String>("ticket"))
            .map(|t| t.parse())
            .transpose()
            .map_err(|_| bad("ticket"))?,
    })
}

fn parse_all(event: &EventId, raw: &[StreamId]) -> Result<Vec<StreamEntry>, CentralError> {
    raw.iter().map(|entry| parse_entry(event, entry)).collect()
}

impl RedisCentral {
    /// Creates the consumer group (from the stream's first entry) if missing.
    async fn ensure_group(&self, keys: &EventKeys) -> Result<(), CentralError> {
        let mut connection = self.connection().await;
        let created: Result<Value, RedisError> = self
            .deadline_raw(connection.xgroup_create_mkstream(&keys.orders, ORDER_GROUP, "0"))
            .await?;
        match created {
            Err(e) if e.code() != Some("BUSYGROUP") => Err(classify(e)),
            _ => Ok(()),
        }
    }

    /// Runs a group command, creating the group once if it does not exist.
    async fn in_group<T, F, Fut>(&self, keys: &EventKeys, call: F) -> Result<T, CentralError>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<T, RedisError>>,
    {
        match self.deadline_raw(call()).await? {
            Err(e) if is_missing_group(&e) => {
                self.ensure_group(keys).await?;
                self.with_deadline(call()).await
            }
            other => other.map_err(classify),
        }
    }
}

impl OrderStream for RedisCentral {
    async fn read_new(
        &self,
        event: &EventId,
        consumer: &NodeId,
        max: usize,
    ) -> Result<Vec<StreamEntry>, CentralError> {
        let keys = EventKeys::new(event);
        let reply: Option<StreamReadReply> = self
            .in_group(&keys, || {
                let options = StreamReadOptions::default()
                    .group(ORDER_GROUP, consumer.as_str())
                    .count(max);
                let key = keys.orders.clone();
                async move {
                    let mut connection = self.connection().await;
                    connection.xread_options(&[key], &[">"], &options).await
                }
            })
            .await?;
        let raw = reply
            .into_iter()
            .flat_map(|r| r.keys)
            .flat_map(|k| k.ids)
            .collect::<Vec<_>>();
        parse_all(event, &raw)
    }

    async fn reclaim(
        &self,
        event: &EventId,
        consumer: &NodeId,
        min_idle: Duration,
        max: usize,
    ) -> Result<Vec<StreamEntry>, CentralError> {
        let keys = EventKeys::new(event);
        let idle_ms = u64::try_from(min_idle.as_millis()).unwrap_or(u64::MAX);
        let reply: StreamAutoClaimReply = self
            .in_group(&keys, || {
                let options = StreamAutoClaimOptions::default().count(max);
                let key = keys.orders.clone();
                let consumer = consumer.as_str().to_owned();
                async move {
                    let mut connection = self.connection().await;
                    (connection.xautoclaim_options(
                        key,
                        ORDER_GROUP,
                        consumer,
                        idle_ms,
                        "0",
                        options,
                    ))
                    .await
                }
            })
            .await?;
        parse_all(event, &reply.claimed)
    }

    async fn acknowledge(&self, event: &EventId, sequences: &[u64]) -> Result<u64, CentralError> {
        if sequences.is_empty() {
            return Ok(0);
        }
        let keys = EventKeys::new(event);
        let mut invocation = self.scripts().ack.prepare_invoke();
        invocation.key(&keys.orders).arg(ORDER_GROUP);
        for sequence in sequences {
            invocation.arg(format!("{sequence}-0"));
        }
        let mut connection = self.connection().await;
        self.with_deadline(invocation.invoke_async(&mut connection))
            .await
    }

    async fn entry(
        &self,
        event: &EventId,
        sequence: u64,
    ) -> Result<Option<StreamEntry>, CentralError> {
        let keys = EventKeys::new(event);
        let id = format!("{sequence}-0");
        let mut connection = self.connection().await;
        let reply: StreamRangeReply = self
            .with_deadline(connection.xrange(&keys.orders, &id, &id))
            .await?;
        reply
            .ids
            .first()
            .map(|raw| parse_entry(event, raw))
            .transpose()
    }

    async fn unacknowledged(&self, event: &EventId) -> Result<Vec<StreamEntry>, CentralError> {
        let keys = EventKeys::new(event);
        let mut entries = Vec::new();
        let mut start = "-".to_owned();
        loop {
            let mut connection = self.connection().await;
            let reply: StreamRangeReply = self
                .with_deadline(connection.xrange_count(&keys.orders, &start, "+", RANGE_PAGE))
                .await?;
            entries.extend(parse_all(event, &reply.ids)?);
            match reply.ids.last() {
                Some(last) if reply.ids.len() == RANGE_PAGE => start = format!("({}", last.id),
                _ => return Ok(entries),
            }
        }
    }

    async fn backlog(&self, event: &EventId) -> Result<Backlog, CentralError> {
        let keys = EventKeys::new(event);
        let mut connection = self.connection().await;
        let (entries, pending): (u64, Result<Value, RedisError>) = {
            let entries = self.with_deadline(connection.xlen(&keys.orders)).await?;
            let pending = self
                .deadline_raw(
                    redis::cmd("XPENDING")
                        .arg(&keys.orders)
                        .arg(ORDER_GROUP)
                        .query_async(&mut connection),
                )
                .await?;
            (entries, pending)
        };
        let pending = match pending {
            // [count, first id, last id, consumers]
            Ok(Value::Array(fields)) => match fields.first() {
                Some(Value::Int(count)) => u64::try_from(*count).unwrap_or(0),
                _ => 0,
            },
            Err(e) if is_missing_group(&e) => 0,
            Err(e) => return Err(classify(e)),
            Ok(_) => 0,
        };
        Ok(Backlog { entries, pending })
    }
}
