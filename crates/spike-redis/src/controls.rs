//! Operators' controls on Redis: `lua/control.lua` applies one and appends
//! it to the sale's operator log; the log is read back with `LRANGE`, each
//! entry decoded by spike-core's `OperatorEntry::parse`. A restore writes
//! the log back with what it leaves in force.

use std::collections::HashSet;

use redis::AsyncCommands;
use spike_core::control::{
    Control, ControlOutcome, OperatorEntry, OperatorOrder, StandingControls,
};
use spike_core::{CentralError, EventId, UserId};

use crate::client::RedisCentral;
use crate::connection::RedisConnection;
use crate::keys::EventKeys;
use crate::scripts::ControlCode;

fn malformed(error: impl std::fmt::Display) -> CentralError {
    CentralError::Protocol(error.to_string())
}

/// The prefix of a revocation's field in the room's hash, as
/// `lua/control.lua`, `lua/sell.lua` and `lua/reset_queue.lua` spell it.
const REVOKED_FIELD: &str = "revoked:";

impl RedisCentral {
    /// A restore's operator state, written before the sale is visible: the
    /// log as it is, and exactly the revocations it leaves standing in the
    /// room's hash. Returns what the log leaves in force, for the sale's
    /// `paused` field.
    pub(crate) async fn restore_controls(
        &self,
        keys: &EventKeys,
        log: &[OperatorEntry],
        connection: &mut RedisConnection,
    ) -> Result<StandingControls, CentralError> {
        const CHUNK: usize = 1_000;
        let standing = StandingControls::of(log);
        let _: i64 = self
            .with_deadline(connection.del(&keys.operator_log))
            .await?;
        let wires: Vec<String> = log.iter().map(OperatorEntry::to_wire).collect();
        for chunk in wires.chunks(CHUNK) {
            let _: i64 = self
                .with_deadline(connection.rpush(&keys.operator_log, chunk))
                .await?;
        }
        let fields: Vec<String> = self.with_deadline(connection.hkeys(&keys.queue)).await?;
        let kept: HashSet<&str> = standing.revoked.keys().map(UserId::as_str).collect();
        let stale: Vec<&String> = (fields.iter())
            .filter(|field| {
                (field.strip_prefix(REVOKED_FIELD)).is_some_and(|user| !kept.contains(user))
            })
            .collect();
        for chunk in stale.chunks(CHUNK) {
            let _: i64 = self
                .with_deadline(connection.hdel(&keys.queue, chunk))
                .await?;
        }
        let revoked: Vec<(String, &str)> = (standing.revoked.iter())
            .map(|(user, reason)| (format!("{REVOKED_FIELD}{user}"), reason.as_str()))
            .collect();
        for chunk in revoked.chunks(CHUNK) {
            let _: () = self
                .with_deadline(connection.hset_multiple(&keys.queue, chunk))
                .await?;
        }
        Ok(standing)
    }

    /// [`spike_core::CentralStock::control`] on Redis.
    pub(crate) async fn control_call(
        &self,
        event: &EventId,
        order: &OperatorOrder,
    ) -> Result<ControlOutcome, CentralError> {
        let keys = EventKeys::new(event);
        let mut invocation = self.scripts().control.prepare_invoke();
        invocation
            .key(&keys.sale)
            .key(&keys.queue)
            .key(&keys.operator_log)
            .arg(order.by.as_str())
            .arg(order.control.action().name());
        match &order.control {
            Control::Pause | Control::Resume => {}
            Control::Admission(settings) => {
                let cap = settings.max_active.map_or(0, |cap| cap.get());
                invocation.arg(settings.admit_rate.get()).arg(cap);
            }
            Control::Revoke { user, reason } => {
                invocation.arg(user.as_str()).arg(reason.as_str());
            }
            Control::Reinstate { user } => {
                invocation.arg(user.as_str());
            }
        }
        let mut connection = self.connection().await;
        let (code, index, wire): (i64, u64, String) = self
            .with_deadline(invocation.invoke_async(&mut connection))
            .await?;
        match ControlCode::from_reply(code) {
            Some(ControlCode::Applied) => {
                let entry = OperatorEntry::parse(index, &wire).map_err(malformed)?;
                Ok(ControlOutcome::Applied(entry))
            }
            Some(ControlCode::NoQueue) => Ok(ControlOutcome::NoQueue),
            Some(ControlCode::NoSuchSale) => Ok(ControlOutcome::NoSuchSale),
            None => Err(malformed(format!(
                "control.lua answered unknown code {code}"
            ))),
        }
    }

    /// [`spike_core::CentralStock::operator_log`] on Redis.
    pub(crate) async fn operator_log_range(
        &self,
        event: &EventId,
        since: u64,
    ) -> Result<Vec<OperatorEntry>, CentralError> {
        let key = EventKeys::new(event).operator_log;
        let start = isize::try_from(since).unwrap_or(isize::MAX);
        let wires: Vec<String> = self
            .read(|mut connection| {
                let key = key.clone();
                async move { connection.lrange(key, start, -1).await }
            })
            .await?;
        (wires.iter().enumerate())
            .map(|(offset, wire)| OperatorEntry::parse(since + offset as u64, wire))
            .collect::<Result<_, _>>()
            .map_err(malformed)
    }
}
