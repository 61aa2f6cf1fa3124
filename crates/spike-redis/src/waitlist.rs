//! A train run's waitlist on Redis: `lua/waitlist.lua`'s calls (place,
//! read, withdraw) and the whole list for the audit, decoded into
//! spike-core's types. The fill itself runs inside `lua/release.lua`.

use spike_core::{CentralError, EventId, UserId, WaitEntry, WaitJoin, WaitRequest, WaitStatus};

use crate::client::RedisCentral;
use crate::keys::EventKeys;
use crate::scripts::WaitlistCode;

/// What `waitlist.lua` answered: its code, then the entry it named (as of
/// the script's clock) with the waiting places ahead of it, or the
/// traveller's latest order (`LIMIT_REACHED`).
struct WaitlistReply {
    code: WaitlistCode,
    entry: Option<WaitEntry>,
    ahead: u64,
    latest_order: String,
    /// A refill's count of filled entries.
    count: u64,
}

/// Which `waitlist.lua` operation, with `join`'s request.
enum Operation<'a> {
    Join(&'a WaitRequest),
    Status,
    Leave,
    Refill,
}

impl RedisCentral {
    /// One call of `waitlist.lua` on `event` for `user`.
    async fn waitlist_call(
        &self,
        event: &EventId,
        user: Option<&UserId>,
        operation: Operation<'_>,
    ) -> Result<WaitlistReply, CentralError> {
        let user = user.map_or("", |user| user.as_str());
        let keys = EventKeys::new(event);
        let maps = self.seat_maps(&keys).await?;
        let mut invocation = self.scripts().waitlist.prepare_invoke();
        invocation.key(keys.with_waitlist().as_slice()).key(maps);
        match operation {
            Operation::Join(request) => {
                let seats = request.seats;
                invocation
                    .arg("join")
                    .arg(user)
                    .arg(request.request.as_str())
                    .arg(request.node.as_str())
                    .arg(seats.class)
                    .arg(seats.leg.from())
                    .arg(seats.leg.to())
                    .arg(seats.passengers.get())
                    .arg(seats.preference.bits())
                    .arg(request.deadline_ms);
            }
            Operation::Status => {
                invocation.arg("status").arg(user);
            }
            Operation::Leave => {
                invocation.arg("leave").arg(user);
            }
            Operation::Refill => {
                invocation.arg("refill").arg(user);
            }
        }
        let mut connection = self.connection().await;
        let (code, place, ahead, wire, now_ms): (i64, u64, u64, String, u64) = self
            .with_deadline(invocation.invoke_async(&mut connection))
            .await?;
        let code = WaitlistCode::from_reply(code).ok_or_else(|| {
            CentralError::Protocol(format!("waitlist.lua answered unknown code {code}"))
        })?;
        let entry = match code {
            WaitlistCode::Placed
            | WaitlistCode::AlreadyWaiting
            | WaitlistCode::Found
            | WaitlistCode::Withdrawn => {
                let mut entry = WaitEntry::parse(place, &wire)
                    .map_err(|e| CentralError::Protocol(e.to_string()))?;
                entry.state = entry.state_at(now_ms);
                Some(entry)
            }
            _ => None,
        };
        Ok(WaitlistReply {
            code,
            entry,
            ahead,
            latest_order: wire,
            count: place,
        })
    }

    /// [`spike_core::CentralStock::join_waitlist`] on Redis.
    pub(crate) async fn join_waitlist_call(
        &self,
        request: &WaitRequest,
    ) -> Result<WaitJoin, CentralError> {
        let reply = self
            .waitlist_call(
                &request.event,
                Some(&request.user),
                Operation::Join(request),
            )
            .await?;
        let ahead = reply.ahead;
        Ok(match (reply.code, reply.entry) {
            (WaitlistCode::Placed, Some(entry)) => WaitJoin::Placed { entry, ahead },
            (WaitlistCode::AlreadyWaiting, Some(entry)) => {
                WaitJoin::AlreadyWaiting { entry, ahead }
            }
            (WaitlistCode::Bookable, _) => WaitJoin::Bookable,
            (WaitlistCode::RequestIdTaken, _) => WaitJoin::RequestIdTaken,
            (WaitlistCode::NotOpen, _) => WaitJoin::NotOpen,
            (WaitlistCode::LimitReached, _) => WaitJoin::LimitReached {
                order: spike_core::OrderId::parse(reply.latest_order)
                    .map_err(|e| CentralError::Protocol(e.to_string()))?,
            },
            (WaitlistCode::NoSuchSale, _) => WaitJoin::NoSuchSale,
            (code, _) => {
                return Err(CentralError::Protocol(format!(
                    "waitlist.lua answered {code:?} to a join"
                )))
            }
        })
    }

    /// [`spike_core::CentralStock::waitlist_status`] on Redis.
    pub(crate) async fn waitlist_status_call(
        &self,
        event: &EventId,
        user: &UserId,
    ) -> Result<Option<WaitStatus>, CentralError> {
        let reply = self
            .waitlist_call(event, Some(user), Operation::Status)
            .await?;
        let ahead = reply.ahead;
        Ok(reply.entry.map(|entry| WaitStatus { entry, ahead }))
    }

    /// [`spike_core::CentralStock::leave_waitlist`] on Redis.
    pub(crate) async fn leave_waitlist_call(
        &self,
        event: &EventId,
        user: &UserId,
    ) -> Result<Option<WaitEntry>, CentralError> {
        let reply = self
            .waitlist_call(event, Some(user), Operation::Leave)
            .await?;
        Ok(reply
            .entry
            .filter(|_| reply.code == WaitlistCode::Withdrawn))
    }

    /// [`spike_core::CentralStock::refill_waitlist`] on Redis.
    pub(crate) async fn refill_waitlist_call(&self, event: &EventId) -> Result<u64, CentralError> {
        let reply = self.waitlist_call(event, None, Operation::Refill).await?;
        Ok(match reply.code {
            WaitlistCode::Refilled => reply.count,
            _ => 0,
        })
    }

    /// [`spike_core::CentralStock::waitlist`] on Redis: the whole hash, in
    /// place order.
    pub(crate) async fn waitlist_entries(
        &self,
        event: &EventId,
    ) -> Result<Vec<WaitEntry>, CentralError> {
        let key = EventKeys::new(event).waitlist;
        let wires: Vec<(u64, String)> = self
            .read(|mut connection| {
                let key = key.clone();
                async move {
                    redis::cmd("HGETALL")
                        .arg(key)
                        .query_async(&mut connection)
                        .await
                }
            })
            .await?;
        let mut entries = (wires.iter())
            .map(|(place, wire)| WaitEntry::parse(*place, wire))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| CentralError::Protocol(e.to_string()))?;
        entries.sort_by_key(|entry| entry.place);
        Ok(entries)
    }
}
