//! A sale's waiting room on Redis: `lua/queue_join.lua` and
//! `lua/queue_tick.lua`'s calls, the whole record for the audit (read
//! changing nothing), and the reset after a recovery, decoded into
//! spike-core's types.

use redis::AsyncCommands;
use spike_core::queue::AdmissionStep;
use spike_core::{CentralError, EventId, QueueCounters, QueueJoin, QueueRecord, UserId};

use crate::central::unknown_code;
use crate::client::RedisCentral;
use crate::keys::EventKeys;
use crate::scripts::{JoinCode, TickCode};
use crate::wire;

impl RedisCentral {
    /// [`spike_core::CentralStock::join_queue`] on Redis.
    pub(crate) async fn join_queue_call(
        &self,
        event: &EventId,
        user: &UserId,
        seed: u64,
    ) -> Result<QueueJoin, CentralError> {
        let keys = EventKeys::new(event);
        let mut invocation = self.scripts().queue_join.prepare_invoke();
        invocation
            .key(&keys.sale)
            .key(keys.queue_keys().as_slice())
            .arg(user.as_str())
            .arg(seed.to_string());
        let mut connection = self.connection().await;
        let (code, number): (i64, u64) = self
            .with_deadline(invocation.invoke_async(&mut connection))
            .await?;
        match JoinCode::from_reply(code) {
            Some(JoinCode::Joined) => Ok(QueueJoin::Joined { join_index: number }),
            Some(JoinCode::Passed) => Ok(QueueJoin::Passed { join_index: number }),
            Some(JoinCode::NotYetOpen) => Ok(QueueJoin::NotYetOpen {
                joins_open_at_ms: number,
            }),
            Some(JoinCode::NoQueue) => Ok(QueueJoin::NoQueue),
            Some(JoinCode::NoSuchSale) => Ok(QueueJoin::NoSuchSale),
            None => Err(unknown_code("queue_join", code)),
        }
    }

    /// [`spike_core::CentralStock::queue_place`] on Redis.
    pub(crate) async fn queue_place_call(
        &self,
        event: &EventId,
        user: &UserId,
    ) -> Result<Option<u64>, CentralError> {
        let keys = EventKeys::new(event);
        self.read(|mut connection| {
            let key = keys.queue_places.clone();
            let field = user.as_str().to_owned();
            async move { connection.hget(key, field).await }
        })
        .await
    }

    /// [`spike_core::CentralStock::tick_queue`] on Redis.
    pub(crate) async fn tick_queue_call(
        &self,
        event: &EventId,
        seed: u64,
        steps_after_ms: u64,
    ) -> Result<Option<QueueCounters>, CentralError> {
        let keys = EventKeys::new(event);
        let mut invocation = self.scripts().queue_tick.prepare_invoke();
        invocation
            .key(&keys.sale)
            .key(keys.queue_keys().as_slice())
            .arg(seed.to_string())
            .arg(steps_after_ms);
        let mut connection = self.connection().await;
        let reply: (i64, u64, String, u64, u64, u64, u64, Vec<u64>, u64) = self
            .with_deadline(invocation.invoke_async(&mut connection))
            .await?;
        let (code, joined, seed, early, admitted, now_ms, remaining, steps, active) = reply;
        match TickCode::from_reply(code) {
            Some(TickCode::Ticked) => {}
            Some(TickCode::NoQueue) => return Ok(None),
            None => return Err(unknown_code("queue_tick", code)),
        }
        Ok(Some(QueueCounters {
            joined,
            seal: wire::seal(&seed, early)
                .map_err(|bad| CentralError::Protocol(format!("queue seed {bad:?} of {event}")))?,
            admitted,
            active,
            now_ms,
            remaining,
            steps: wire::steps(&steps),
        }))
    }

    /// [`spike_core::CentralStock::queue_record`] on Redis.
    pub(crate) async fn queue_record_call(
        &self,
        event: &EventId,
    ) -> Result<Option<QueueRecord>, CentralError> {
        let Some(counters) = self.tick_queue_read_only(event).await? else {
            return Ok(None);
        };
        let keys = EventKeys::new(event);
        let places: Vec<(String, u64)> = self
            .read(|mut connection| {
                let key = keys.queue_places.clone();
                async move { connection.hgetall(key).await }
            })
            .await?;
        let bought: Vec<String> = self
            .read(|mut connection| {
                let key = keys.queue_bought.clone();
                async move { connection.zrange(key, 0, -1).await }
            })
            .await?;
        let user = |raw: &str| {
            UserId::parse(raw)
                .map_err(|e| CentralError::Protocol(format!("queue of {event}: user {raw:?}: {e}")))
        };
        let mut joiners = Vec::with_capacity(places.len());
        for (name, index) in places {
            joiners.push((user(&name)?, index));
        }
        joiners.sort_by_key(|(_, index)| *index);
        let mut buyers = Vec::with_capacity(bought.len());
        for member in bought {
            let (position, name) = wire::bought_member(&member).ok_or_else(|| {
                CentralError::Protocol(format!("queue of {event}: bought {member:?}"))
            })?;
            buyers.push((position, user(name)?));
        }
        let carried: Vec<String> = self
            .read(|mut connection| {
                let key = keys.queue_carried.clone();
                async move { connection.smembers(key).await }
            })
            .await?;
        let carried = (carried.iter())
            .map(|name| user(name))
            .collect::<Result<Vec<_>, _>>()?;
        let passed: Vec<u64> = self
            .read(|mut connection| {
                let key = keys.queue_passed.clone();
                async move { connection.zrangebyscore(key, "-inf", "+inf").await }
            })
            .await?;
        let (opens_at_ms, sealed_at_ms, window_ms): (Option<u64>, Option<u64>, Option<u64>) = self
            .read(|mut connection| {
                let (sale, queue) = (keys.sale.clone(), keys.queue.clone());
                async move {
                    let opens: Option<u64> = connection.hget(&sale, "opens_at_ms").await?;
                    let sealed: Option<u64> = connection.hget(queue, "sealed_at_ms").await?;
                    let window: Option<u64> =
                        connection.hget(sale, "queue_admit_window_ms").await?;
                    Ok((opens, sealed, window))
                }
            })
            .await?;
        let positions: Vec<u64> = buyers.iter().map(|(position, _)| *position).collect();
        let active = spike_core::queue::active_at(
            &counters.steps,
            &positions,
            counters.admitted,
            window_ms.unwrap_or(0),
            counters.now_ms,
        );
        Ok(Some(QueueRecord {
            counters: QueueCounters { active, ..counters },
            joiners,
            bought: buyers,
            carried,
            passed,
            origin_ms: spike_core::queue::rate_origin_ms(
                opens_at_ms.unwrap_or(0),
                sealed_at_ms.unwrap_or(0),
            ),
        }))
    }

    /// [`spike_core::CentralStock::reset_queue`] on Redis.
    pub(crate) async fn reset_queue_call(
        &self,
        event: &EventId,
        carried: &[UserId],
    ) -> Result<bool, CentralError> {
        const CHUNK: usize = 1_000;
        let keys = EventKeys::new(event);
        let rate: Option<u64> = self
            .read(|mut connection| {
                let key = keys.sale.clone();
                async move { connection.hget(key, "queue_admit_rate").await }
            })
            .await?;
        if rate.unwrap_or(0) == 0 {
            return Ok(false);
        }
        let mut connection = self.connection().await;
        // The room's hash first: `reset_queue.lua` keeps its revocations.
        let mut invocation = self.scripts().reset_queue.prepare_invoke();
        for key in keys
            .queue_keys()
            .into_iter()
            .chain([keys.queue_carried.as_str()])
        {
            invocation.key(key);
        }
        let _kept: i64 = self
            .with_deadline(invocation.invoke_async(&mut connection))
            .await?;
        let names: Vec<&str> = carried.iter().map(UserId::as_str).collect();
        for chunk in names.chunks(CHUNK) {
            let _: i64 = self
                .with_deadline(connection.sadd(&keys.queue_carried, chunk))
                .await?;
        }
        Ok(true)
    }

    /// The waiting room's counters and every admission step, changing
    /// nothing (for the audit): `None` without a waiting room.
    async fn tick_queue_read_only(
        &self,
        event: &EventId,
    ) -> Result<Option<QueueCounters>, CentralError> {
        let keys = EventKeys::new(event);
        let sale: (Option<u64>, Option<u64>, Option<u64>) = self
            .read_fields(&keys.sale, &["queue_admit_rate", "total", "sold"])
            .await?;
        let (Some(1..), Some(total), Some(sold)) = sale else {
            return Ok(None);
        };
        let state: (Option<String>, Option<u64>, Option<u64>) = self
            .read_fields(&keys.queue, &["seed", "early", "admitted"])
            .await?;
        let joined: u64 = self
            .read(|mut connection| {
                let key = keys.queue_places.clone();
                async move { connection.hlen(key).await }
            })
            .await?;
        let raw_steps: Vec<(u64, u64)> = self
            .read(|mut connection| {
                let key = keys.queue_steps.clone();
                async move { connection.zrange_withscores(key, 0, -1).await }
            })
            .await?;
        let (seed, early, admitted) = state;
        let seal = wire::seal(seed.as_deref().unwrap_or_default(), early.unwrap_or(0))
            .map_err(|bad| CentralError::Protocol(format!("queue seed {bad:?} of {event}")))?;
        let mut steps: Vec<AdmissionStep> = (raw_steps.into_iter())
            .map(|(admitted, at_ms)| AdmissionStep { at_ms, admitted })
            .collect();
        steps.sort_by_key(|step| step.admitted);
        Ok(Some(QueueCounters {
            joined,
            seal,
            admitted: admitted.unwrap_or(0),
            // Counted by queue_record, which reads who bought.
            active: 0,
            now_ms: spike_core::time::unix_millis(std::time::SystemTime::now()),
            remaining: total.saturating_sub(sold),
            steps,
        }))
    }
}
