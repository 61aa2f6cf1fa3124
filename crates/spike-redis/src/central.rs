//! The [`CentralStock`] contract in Redis: each call is one script of
//! `lua/` (or one plain command) on [`RedisCentral`]'s shared connection,
//! and each script reply is decoded here into the domain's types.

use redis::AsyncCommands;
use spike_core::sale::{SaleConfig, SaleSnapshot};
use spike_core::{
    CentralError, CentralReply, CentralStock, CreateSaleError, EventId, Occupancy, OrderId,
    Purchase, PurchaseBatch, QueueCounters, QueueJoin, QueueRecord, Release, RequestId,
    RequestRecord, Restoration, SaleRecord, Ticket, TicketBatch, TicketPurchase, TicketReply,
    UserId, Verdict, WaitEntry, WaitJoin, WaitRequest, WaitStatus,
};

use crate::client::RedisCentral;
use crate::confirm::Confirmation;
use crate::keys::{EventKeys, EVENTS_KEY};
use crate::scripts::{BuyCode, CreateCode, ReleaseCode};
use crate::wire;

/// What `ticket_many.lua` says when the seat-map shape it was given is not
/// the run's (it was re-created since it was cached).
const STALE_SHAPE: &str = "stale seat-map shape";

pub(crate) fn unknown_code(script: &str, code: i64) -> CentralError {
    CentralError::Protocol(format!("{script}.lua answered unknown code {code}"))
}

/// One purchase's reply as a script returns it: code, order id, remaining.
type RawReply = (i64, String, u64);

/// The user argument of a purchase script ('' when none).
fn purchase_user(purchase: &Purchase) -> &str {
    purchase.user.as_ref().map_or("", |u| u.as_str())
}

/// The admitted-position argument of a purchase script ('' when none).
fn purchase_admission(purchase: &Purchase) -> String {
    (purchase.admission)
        .map(|p| p.to_string())
        .unwrap_or_default()
}

/// A seat purchase's nine arguments, as `ticket.lua` and `ticket_many.lua`
/// read them: user, request id, admitted position, class, from, to,
/// passengers, preferred letters, the order it replaces.
fn seat_purchase_args(invocation: &mut redis::ScriptInvocation<'_>, ticket: &TicketPurchase) {
    let (purchase, seats) = (&ticket.purchase, ticket.seats);
    invocation
        .arg(purchase_user(purchase))
        .arg(purchase.request.as_str())
        .arg(purchase_admission(purchase))
        .arg(seats.class)
        .arg(seats.leg.from())
        .arg(seats.leg.to())
        .arg(seats.passengers.get())
        .arg(seats.preference.bits())
        .arg(ticket.replacing.as_ref().map_or("", |order| order.as_str()));
}

/// Decodes one seat purchase's reply from `ticket.lua` or
/// `ticket_many.lua`: the verdict, the ticket's wire form, the sequence.
fn decode_ticket_reply(
    event: &EventId,
    raw: RawReply,
    ticket: &str,
    as_of: u64,
) -> Result<TicketReply, CentralError> {
    let reply = decode_reply(event, raw)?;
    let ticket = match &reply.verdict {
        Verdict::Sold { .. } => Some(ticket.parse::<Ticket>().map_err(|e| {
            CentralError::Protocol(format!("a seat purchase answered a bad ticket: {e}"))
        })?),
        _ => None,
    };
    Ok(TicketReply {
        verdict: reply.verdict,
        ticket,
        as_of,
    })
}

/// Decodes one purchase's reply from `buy.lua` or `buy_many.lua`.
fn decode_reply(
    event: &EventId,
    (code, order, remaining): RawReply,
) -> Result<CentralReply, CentralError> {
    let Some(code) = BuyCode::from_reply(code) else {
        return Err(unknown_code("buy", code));
    };
    let verdict = match code {
        BuyCode::Sold | BuyCode::Replayed => Verdict::Sold {
            order: parse_order(event, order)?,
            replayed: code == BuyCode::Replayed,
        },
        BuyCode::SoldOut => Verdict::SoldOut,
        BuyCode::LimitReached => Verdict::AlreadyPurchased {
            order: parse_order(event, order)?,
        },
        BuyCode::NotOpen => Verdict::NotOpen,
        BuyCode::UserRequired => Verdict::UserRequired,
        BuyCode::NoSuchSale => Verdict::NoSuchSale,
        BuyCode::RequestIdTaken => Verdict::RequestIdTaken,
        BuyCode::NotAdmitted => Verdict::NotAdmitted,
        BuyCode::Paused => Verdict::Paused,
    };
    Ok(CentralReply { verdict, remaining })
}

impl RedisCentral {
    /// A restore's train seats: the tickets hash and every seat map, built
    /// from the held orders' tickets (a sale that is not a train run has
    /// neither).
    async fn restore_seats(
        &self,
        keys: &EventKeys,
        restoration: &Restoration,
        connection: &mut crate::connection::RedisConnection,
    ) -> Result<(), CentralError> {
        let Some(layout) = restoration.config.train() else {
            return Ok(());
        };
        let tickets: Vec<(&OrderId, &Ticket)> = (restoration.holding.iter())
            .filter_map(|h| Some((&h.order, h.ticket.as_ref()?)))
            .collect();
        for chunk in tickets.chunks(1_000) {
            let fields: Vec<(&str, String)> = (chunk.iter())
                .map(|(order, ticket)| (order.as_str(), ticket.to_string()))
                .collect();
            let _: () = self
                .with_deadline(connection.hset_multiple(&keys.tickets, &fields))
                .await?;
        }
        for (index, class) in layout.classes().iter().enumerate() {
            let held = (tickets.iter())
                .map(|(_, ticket)| *ticket)
                .filter(|ticket| ticket.class == index);
            let maps = wire::seat_maps(class, layout.segments(), held);
            for (segment, map) in maps.into_iter().enumerate() {
                let key = keys.seat_map(index, segment as u32);
                let _: () = self.with_deadline(connection.set(key, map)).await?;
            }
        }
        Ok(())
    }
}

impl RedisCentral {
    /// `ticket_many.lua` on `batch`, with the run's seat-map shape from
    /// the cache, or read afresh when `reread` (or not cached yet).
    async fn buy_seats_many_shaped(
        &self,
        batch: &TicketBatch,
        reread: bool,
    ) -> Result<Vec<TicketReply>, CentralError> {
        let event = batch.event();
        let keys = EventKeys::new(event);
        let (classes, segments) = self.map_shape(&keys, event, reread).await?;
        let maps = keys.all_maps(classes, segments);
        let mut invocation = self.scripts().ticket_many.prepare_invoke();
        invocation
            .key(keys.seat_keys().as_slice())
            .key(maps)
            .arg(batch.purchases()[0].purchase.node.as_str())
            .arg(classes)
            .arg(segments);
        for ticket in batch.purchases() {
            seat_purchase_args(&mut invocation, ticket);
        }
        let link = self.link().await;
        let mut connection = link.connection.clone();
        let raw: Vec<String> = self
            .with_deadline(invocation.invoke_async(&mut connection))
            .await?;
        let bad = |what: &str| CentralError::Protocol(format!("ticket_many.lua answered {what}"));
        let (as_of, replies) = raw.split_last().ok_or_else(|| bad("nothing"))?;
        if replies.len() != 4 * batch.len() {
            return Err(bad(&format!(
                "{} fields for {} purchases",
                replies.len(),
                batch.len()
            )));
        }
        let as_of: u64 = as_of.parse().map_err(|_| bad("a bad sequence"))?;
        let number = |text: &str| text.parse::<i64>().map_err(|_| bad("a bad number"));
        let mut decoded = Vec::with_capacity(batch.len());
        for fields in replies.chunks(4) {
            let remaining = u64::try_from(number(&fields[2])?).map_err(|_| bad("a bad count"))?;
            let raw = (number(&fields[0])?, fields[1].clone(), remaining);
            decoded.push(decode_ticket_reply(event, raw, &fields[3], as_of)?);
        }
        // One confirmation covers the whole batch: it was one write.
        let verdicts = decoded.iter().map(|reply| &reply.verdict);
        self.confirm_sales(&keys, link, verdicts).await?;
        Ok(decoded)
    }

    /// The run's seat-map shape: cached, or read (and cached) when
    /// `reread` or unknown.
    async fn map_shape(
        &self,
        keys: &EventKeys,
        event: &EventId,
        reread: bool,
    ) -> Result<(usize, u32), CentralError> {
        let cached = self
            .map_shapes
            .lock()
            .ok()
            .and_then(|shapes| shapes.get(event).copied());
        if let (Some(shape), false) = (cached, reread) {
            return Ok(shape);
        }
        let shape = self.seat_map_shape(keys).await?;
        if let Ok(mut shapes) = self.map_shapes.lock() {
            shapes.insert(event.clone(), shape);
        }
        Ok(shape)
    }

    /// Writes a restored waitlist (as `lua/waitlist_rules.lua` keeps it):
    /// every entry by place, each traveller's latest place, the waiting
    /// places, and the sale's last place handed out.
    async fn restore_waitlist(
        &self,
        keys: &EventKeys,
        entries: &[WaitEntry],
        connection: &mut crate::connection::RedisConnection,
    ) -> Result<(), CentralError> {
        let Some(last) = entries.iter().map(|entry| entry.place).max() else {
            return Ok(());
        };
        let mut latest: std::collections::HashMap<&str, u64> = std::collections::HashMap::new();
        for chunk in entries.chunks(1_000) {
            let wires: Vec<(u64, String)> = (chunk.iter())
                .map(|entry| (entry.place, entry.to_wire()))
                .collect();
            let _: () = self
                .with_deadline(connection.hset_multiple(&keys.waitlist, &wires))
                .await?;
            let waiting: Vec<(u64, u64)> = (chunk.iter())
                .filter(|entry| entry.state == spike_core::WaitState::Waiting)
                .map(|entry| (entry.place, entry.place))
                .collect();
            if !waiting.is_empty() {
                let _: i64 = self
                    .with_deadline(connection.zadd_multiple(&keys.waitlist_queue, &waiting))
                    .await?;
            }
            for entry in chunk {
                let place = latest.entry(entry.user.as_str()).or_insert(entry.place);
                *place = (*place).max(entry.place);
            }
        }
        let users: Vec<(&str, u64)> = latest.into_iter().collect();
        for chunk in users.chunks(1_000) {
            let _: () = self
                .with_deadline(connection.hset_multiple(&keys.waitlist_users, chunk))
                .await?;
        }
        let _: () = self
            .with_deadline(connection.hset(&keys.sale, "waitlist_seq", last))
            .await?;
        Ok(())
    }
}

fn parse_order(event: &EventId, raw: String) -> Result<OrderId, CentralError> {
    OrderId::parse(raw)
        .map_err(|e| CentralError::Protocol(format!("bad order id for {event}: {e}")))
}

impl CentralStock for RedisCentral {
    async fn create_sale(
        &self,
        event: &EventId,
        config: &SaleConfig,
        force: bool,
    ) -> Result<(), CreateSaleError> {
        let keys = EventKeys::new(event);
        let record = SaleRecord::from(config);
        let old_maps = self.seat_maps(&keys).await?;
        let new_maps = match config.train() {
            Some(layout) => keys.all_maps(layout.classes().len(), layout.segments()),
            None => Vec::new(),
        };
        let mut invocation = self.scripts().create.prepare_invoke();
        invocation
            .key(keys.everything().as_slice())
            .key(old_maps.as_slice())
            .key(new_maps)
            .arg(if force { "1" } else { "0" })
            .arg(event.as_str())
            .arg(record.rules().as_slice())
            .arg(record.train_wire())
            .arg(old_maps.len())
            .arg(wire::create_train_args(&record).as_slice());
        let mut connection = self.connection().await;
        let created: i64 = self
            .with_deadline(invocation.invoke_async(&mut connection))
            .await?;
        match CreateCode::from_reply(created) {
            Some(CreateCode::Created) => {}
            Some(CreateCode::Exists) => return Err(CreateSaleError::AlreadyExists(event.clone())),
            None => return Err(unknown_code("create", created).into()),
        }
        let _: i64 = self
            .with_deadline(connection.sadd(EVENTS_KEY, event.as_str()))
            .await?;
        Ok(())
    }

    async fn buy(&self, purchase: &Purchase) -> Result<CentralReply, CentralError> {
        let keys = EventKeys::new(&purchase.event);
        let mut invocation = self.scripts().buy.prepare_invoke();
        invocation
            .key(keys.all().as_slice())
            .key(&keys.queue)
            .key(&keys.queue_bought)
            .arg(purchase_user(purchase))
            .arg(purchase.request.as_str())
            .arg(purchase.node.as_str())
            .arg(purchase_admission(purchase));
        let link = self.link().await;
        let mut connection = link.connection.clone();
        let raw: RawReply = self
            .with_deadline(invocation.invoke_async(&mut connection))
            .await?;
        let reply = decode_reply(&purchase.event, raw)?;
        self.confirm_sales(&keys, link, [&reply.verdict]).await?;
        Ok(reply)
    }

    async fn buy_many(&self, batch: &PurchaseBatch) -> Result<Vec<CentralReply>, CentralError> {
        let event = batch.event();
        let keys = EventKeys::new(event);
        let mut invocation = self.scripts().buy_many.prepare_invoke();
        invocation
            .key(keys.all().as_slice())
            .key(&keys.queue)
            .key(&keys.queue_bought)
            .arg(batch.purchases()[0].node.as_str());
        for purchase in batch.purchases() {
            invocation
                .arg(purchase_user(purchase))
                .arg(purchase.request.as_str())
                .arg(purchase_admission(purchase));
        }
        let link = self.link().await;
        let mut connection = link.connection.clone();
        let raw: Vec<RawReply> = self
            .with_deadline(invocation.invoke_async(&mut connection))
            .await?;
        if raw.len() != batch.len() {
            return Err(CentralError::Protocol(format!(
                "buy_many.lua answered {} replies for {} purchases",
                raw.len(),
                batch.len()
            )));
        }
        let replies = (raw.into_iter())
            .map(|raw| decode_reply(event, raw))
            .collect::<Result<Vec<_>, _>>()?;
        // One confirmation covers the whole batch: it was one write.
        let verdicts = replies.iter().map(|reply| &reply.verdict);
        self.confirm_sales(&keys, link, verdicts).await?;
        Ok(replies)
    }

    async fn buy_seats(&self, ticket: &TicketPurchase) -> Result<TicketReply, CentralError> {
        let (purchase, seats) = (&ticket.purchase, ticket.seats);
        let keys = EventKeys::new(&purchase.event);
        let mut invocation = self.scripts().ticket.prepare_invoke();
        invocation
            .key(keys.seat_keys().as_slice())
            .key(keys.leg_maps(seats.class, seats.leg.from(), seats.leg.to()))
            .arg(purchase.node.as_str());
        seat_purchase_args(&mut invocation, ticket);
        let link = self.link().await;
        let mut connection = link.connection.clone();
        let (code, order, remaining, ticket, as_of): (i64, String, u64, String, u64) = self
            .with_deadline(invocation.invoke_async(&mut connection))
            .await?;
        let reply = decode_ticket_reply(&purchase.event, (code, order, remaining), &ticket, as_of)?;
        self.confirm_sales(&keys, link, [&reply.verdict]).await?;
        Ok(reply)
    }

    async fn buy_seats_many(&self, batch: &TicketBatch) -> Result<Vec<TicketReply>, CentralError> {
        match self.buy_seats_many_shaped(batch, false).await {
            // The run was re-created with another shape: read it, once more.
            Err(CentralError::Protocol(error)) if error.contains(STALE_SHAPE) => {
                self.buy_seats_many_shaped(batch, true).await
            }
            other => other,
        }
    }

    async fn occupancy(&self, event: &EventId) -> Result<Option<Occupancy>, CentralError> {
        let keys = EventKeys::new(event);
        let maps = self.seat_maps(&keys).await?;
        let mut invocation = self.scripts().occupancy.prepare_invoke();
        invocation.key(&keys.sale).key(maps);
        let reply: Vec<Vec<u8>> = self
            .read(|mut connection| {
                let invocation = &invocation;
                async move { invocation.invoke_async(&mut connection).await }
            })
            .await?;
        wire::occupancy(&reply)
            .map_err(|e| CentralError::Protocol(format!("occupancy.lua for {event}: {e}")))
    }

    async fn snapshot(&self, event: &EventId) -> Result<Option<SaleSnapshot>, CentralError> {
        let keys = EventKeys::new(event);
        let mut invocation = self.scripts().snapshot.prepare_invoke();
        invocation.key(keys.all().as_slice());
        let fields: Vec<String> = self
            .read(|mut connection| {
                let invocation = &invocation;
                async move { invocation.invoke_async(&mut connection).await }
            })
            .await?;
        let Some(fields) = wire::snapshot_fields(&fields)
            .map_err(|what| CentralError::Protocol(format!("snapshot.lua answered {what}")))?
        else {
            return Ok(None);
        };
        let config = SaleConfig::try_from(fields.record)
            .map_err(|e| CentralError::Protocol(format!("sale {event}: {e}")))?;
        Ok(Some(SaleSnapshot {
            config,
            sold: fields.sold,
            buyers: fields.buyers,
            orders_in_stream: fields.stream,
        }))
    }

    async fn request_record(
        &self,
        event: &EventId,
        request: &RequestId,
    ) -> Result<Option<RequestRecord>, CentralError> {
        let keys = EventKeys::new(event);
        let link = self.link().await;
        let mut connection = link.connection.clone();
        let entry: Option<String> = self
            .with_deadline(connection.hget(&keys.requests, request.as_str()))
            .await?;
        let Some(entry) = entry else {
            return Ok(None);
        };
        let (order, buyer) = wire::request_entry_parts(&entry);
        let record = RequestRecord {
            order: parse_order(event, order.to_owned())?,
            buyer: (!buyer.is_empty())
                .then(|| UserId::parse(buyer))
                .transpose()
                .map_err(|e| CentralError::Protocol(format!("request index of {event}: {e}")))?,
        };
        self.confirm_read(&keys, link).await?;
        Ok(Some(record))
    }

    async fn release(
        &self,
        event: &EventId,
        order: &OrderId,
        user: Option<&UserId>,
        request: &RequestId,
    ) -> Result<Release, CentralError> {
        let keys = EventKeys::new(event);
        let maps = self.seat_maps(&keys).await?;
        let mut invocation = self.scripts().release.prepare_invoke();
        invocation
            .key(keys.with_waitlist().as_slice())
            .key(maps)
            .arg(order.as_str())
            .arg(user.map_or("", |u| u.as_str()))
            .arg(request.as_str());
        let mut connection = self.connection().await;
        let (code, remaining, filled): (i64, u64, u64) = self
            .with_deadline(invocation.invoke_async(&mut connection))
            .await?;
        match ReleaseCode::from_reply(code) {
            Some(ReleaseCode::Released) => Ok(Release::Released { remaining, filled }),
            Some(ReleaseCode::AlreadyReleased) => Ok(Release::AlreadyReleased),
            Some(ReleaseCode::NotSold) => Ok(Release::NotSold),
            Some(ReleaseCode::NoSuchSale) => Ok(Release::NoSuchSale),
            None => Err(unknown_code("release", code)),
        }
    }

    async fn join_waitlist(&self, request: &WaitRequest) -> Result<WaitJoin, CentralError> {
        self.join_waitlist_call(request).await
    }

    async fn waitlist_status(
        &self,
        event: &EventId,
        user: &UserId,
    ) -> Result<Option<WaitStatus>, CentralError> {
        self.waitlist_status_call(event, user).await
    }

    async fn leave_waitlist(
        &self,
        event: &EventId,
        user: &UserId,
    ) -> Result<Option<WaitEntry>, CentralError> {
        self.leave_waitlist_call(event, user).await
    }

    async fn refill_waitlist(&self, event: &EventId) -> Result<u64, CentralError> {
        self.refill_waitlist_call(event).await
    }

    async fn waitlist(&self, event: &EventId) -> Result<Vec<WaitEntry>, CentralError> {
        self.waitlist_entries(event).await
    }

    async fn restore(
        &self,
        event: &EventId,
        restoration: &Restoration,
    ) -> Result<(), CentralError> {
        const CHUNK: usize = 1_000;
        let keys = EventKeys::new(event);
        let record = SaleRecord::from(&restoration.config);
        let mut connection = self.connection().await;
        // First the sale disappears, so every node refuses it while the
        // indexes are rebuilt; the stream is left alone.
        let wipe = [
            &keys.sale,
            &keys.buyers,
            &keys.requests,
            &keys.released,
            &keys.tickets,
            &keys.waitlist,
            &keys.waitlist_users,
            &keys.waitlist_queue,
        ];
        let _: i64 = self.with_deadline(connection.del(&wipe[..])).await?;
        self.restore_seats(&keys, restoration, &mut connection)
            .await?;
        let buyers = wire::buyer_index(
            (restoration.holding.iter())
                .filter(|_| record.per_user_limit > 0)
                .filter_map(|h| Some((h.user.as_ref()?, &h.order))),
        );
        let buyers: Vec<(&str, String)> = buyers.into_iter().collect();
        for chunk in buyers.chunks(CHUNK) {
            let _: () = self
                .with_deadline(connection.hset_multiple(&keys.buyers, chunk))
                .await?;
        }
        let requests: Vec<(&str, String)> = (restoration.holding.iter())
            .map(|h| {
                (
                    h.request.as_str(),
                    wire::request_entry(&h.order, h.user.as_ref()),
                )
            })
            .collect();
        for chunk in requests.chunks(CHUNK) {
            let _: () = self
                .with_deadline(connection.hset_multiple(&keys.requests, chunk))
                .await?;
        }
        let released: Vec<&str> = restoration.released.iter().map(OrderId::as_str).collect();
        for chunk in released.chunks(CHUNK) {
            let _: i64 = self
                .with_deadline(connection.sadd(&keys.released, chunk))
                .await?;
        }
        // Before the sale's fields make it visible: no purchase may take a
        // seat the waitlist needs (the recovery refills it next).
        self.restore_waitlist(&keys, &restoration.waitlist, &mut connection)
            .await?;
        let standing = self
            .restore_controls(&keys, &restoration.operator_log, &mut connection)
            .await?;
        let sold = restoration.holding.len() as u64;
        let mut sale = wire::sale_fields(event, &record, sold, restoration.last_sequence);
        // In the same step that makes the sale visible: a paused sale never
        // sells between its rebuild and its pause.
        sale.push(("paused", u8::from(standing.paused).to_string()));
        let _: () = self
            .with_deadline(connection.hset_multiple(&keys.sale, &sale))
            .await?;
        let train = wire::train_fields(&record);
        let _: () = self
            .with_deadline(connection.hset_multiple(&keys.sale, &train))
            .await?;

        let _: i64 = self
            .with_deadline(connection.sadd(EVENTS_KEY, event.as_str()))
            .await?;
        Ok(())
    }

    async fn events(&self) -> Result<Vec<EventId>, CentralError> {
        let names: Vec<String> = self
            .read(|mut connection| async move { connection.smembers(EVENTS_KEY).await })
            .await?;
        let mut events: Vec<_> = names
            .into_iter()
            .filter_map(|n| EventId::parse(n).ok())
            .collect();
        events.sort();
        Ok(events)
    }

    async fn join_queue(
        &self,
        event: &EventId,
        user: &UserId,
        seed: u64,
    ) -> Result<QueueJoin, CentralError> {
        self.join_queue_call(event, user, seed).await
    }

    async fn queue_place(
        &self,
        event: &EventId,
        user: &UserId,
    ) -> Result<Option<u64>, CentralError> {
        self.queue_place_call(event, user).await
    }

    async fn tick_queue(
        &self,
        event: &EventId,
        seed: u64,
        steps_after_ms: u64,
    ) -> Result<Option<QueueCounters>, CentralError> {
        self.tick_queue_call(event, seed, steps_after_ms).await
    }

    async fn queue_record(&self, event: &EventId) -> Result<Option<QueueRecord>, CentralError> {
        self.queue_record_call(event).await
    }
    async fn control(
        &self,
        event: &EventId,
        order: &spike_core::OperatorOrder,
    ) -> Result<spike_core::ControlOutcome, CentralError> {
        self.control_call(event, order).await
    }

    async fn operator_log(
        &self,
        event: &EventId,
        since: u64,
    ) -> Result<Vec<spike_core::OperatorEntry>, CentralError> {
        self.operator_log_range(event, since).await
    }

    async fn reset_queue(&self, event: &EventId, carried: &[UserId]) -> Result<bool, CentralError> {
        self.reset_queue_call(event, carried).await
    }
}

impl RedisCentral {
    /// Every seat map of the event's run as its sale hash lays it out
    /// (`train_classes` × `train_segments`; none for other sales), for the
    /// scripts that declare them. The layout of a sale never changes in its
    /// life; a script given another count refuses, and is asked again.
    pub(crate) async fn seat_maps(&self, keys: &EventKeys) -> Result<Vec<String>, CentralError> {
        let (classes, segments) = self.seat_map_shape(keys).await?;
        Ok(keys.all_maps(classes, segments))
    }

    /// A run's classes and segments, read from its sale hash (0, 0 for
    /// other sales).
    async fn seat_map_shape(&self, keys: &EventKeys) -> Result<(usize, u32), CentralError> {
        let (classes, segments): (Option<usize>, Option<u32>) = self
            .read_fields(&keys.sale, &["train_classes", "train_segments"])
            .await?;
        Ok((classes.unwrap_or(0), segments.unwrap_or(0)))
    }

    /// Confirms the sales among `verdicts`, made or read on `link`, when
    /// sales are confirmed. A new sale is a write of its own; a replay
    /// wrote nothing, so it is confirmed as a read is
    /// ([`RedisCentral::confirm_read`]).
    async fn confirm_sales(
        &self,
        keys: &EventKeys,
        link: std::sync::Arc<crate::connection::Link>,
        verdicts: impl IntoIterator<Item = &Verdict>,
    ) -> Result<(), CentralError> {
        let (mut sold, mut replayed) = (false, false);
        for verdict in verdicts {
            if let Verdict::Sold {
                replayed: again, ..
            } = verdict
            {
                (sold, replayed) = (true, replayed || *again);
            }
        }
        match (sold, replayed) {
            (_, true) => self.confirm_read(keys, link).await,
            (true, false) => self.confirm(link).await,
            (false, false) => Ok(()),
        }
    }

    /// Confirms that what was just read on `link` (a sale, made on any
    /// connection) is on enough replicas. `WAIT` only covers its own
    /// connection's writes, and a read writes nothing: so a small write
    /// (`INCR` of the event's confirmation counter) goes first, on the same
    /// link. A primary applies and replicates commands in one order, so a
    /// replica that holds that write holds every write before it, the sale
    /// among them.
    async fn confirm_read(
        &self,
        keys: &EventKeys,
        link: std::sync::Arc<crate::connection::Link>,
    ) -> Result<(), CentralError> {
        if self.confirmer().is_none() {
            return Ok(());
        }
        let mut connection = link.connection.clone();
        let _: i64 = self
            .with_deadline(connection.incr(&keys.confirmations, 1))
            .await?;
        self.confirm(link).await
    }

    /// Answers a sale (new or replayed) only once it is durable beyond the
    /// primary's memory, when that is asked for (`WAIT`, grouped).
    async fn confirm(
        &self,
        link: std::sync::Arc<crate::connection::Link>,
    ) -> Result<(), CentralError> {
        let Some(confirmer) = self.confirmer() else {
            return Ok(());
        };
        match confirmer.confirm(link).await {
            Confirmation::Confirmed => Ok(()),
            Confirmation::Unconfirmed(why) => Err(CentralError::OutcomeUnknown(format!(
                "sale not confirmed by replicas: {why}"
            ))),
        }
    }
}
