//! Operators' controls on Redis: `lua/control.lua` applies one and appends
//! it to the sale's operator log; the log is read back with `LRANGE`, each
//! entry decoded by spike-core's `OperatorEntry::parse`.

use redis::AsyncCommands;
use spike_core::control::{Control, ControlOutcome, OperatorEntry, OperatorOrder};
use spike_core::{CentralError, EventId};

use crate::client::RedisCentral;
use crate::keys::EventKeys;
use crate::scripts::ControlCode;

fn malformed(error: impl std::fmt::Display) -> CentralError {
    CentralError::Protocol(error.to_string())
}

impl RedisCentral {
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
            .arg(order.control.action());
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
