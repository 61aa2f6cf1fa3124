//! Embedded central stock: the same contract as the Redis scripts, held in
//! this process. One mutex per event plays the part of Redis's single
//! thread, so every purchase is atomic exactly as a Lua script is.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, SystemTime};

use crate::central::{
    CentralError, CentralStock, CreateSaleError, QueueJoin, QueueRecord, Release, Restoration,
};
use crate::control::{ControlOutcome, OperatorEntry, OperatorOrder, StandingControls};
use crate::ids::{EventId, NodeId, OrderId, RequestId, UserId};
use crate::order_stream::{Backlog, OrderStream, StreamEntry};
use crate::purchase::{
    CentralReply, Purchase, PurchaseBatch, RequestRecord, TicketBatch, TicketPurchase, TicketReply,
    Verdict,
};
use crate::queue::QueueCounters;
use crate::sale::{BuyerPolicy, SaleConfig, SaleSnapshot};
use crate::time::{unix_millis, Clock, SystemClock};
use crate::train::{Occupancy, Ticket, WaitEntry, WaitJoin, WaitRequest, WaitStatus};

mod controls;
mod queue;
mod waitlist;

use queue::WaitingRoom;
use waitlist::Waitlist;

#[derive(Debug)]
struct Book {
    config: SaleConfig,
    sold: u64,
    order_seq: u64,
    buyers: HashMap<UserId, Vec<OrderId>>,
    /// Request id → the order it bought and for whom.
    requests: HashMap<RequestId, (OrderId, Option<UserId>)>,
    /// Unacknowledged stream entries by sequence.
    stream: BTreeMap<u64, StreamEntry>,
    /// The highest sequence ever delivered to a writer.
    delivered: u64,
    /// Delivered, unacknowledged entries: who holds them and since when.
    pending: HashMap<u64, (NodeId, SystemTime)>,
    released: HashSet<OrderId>,
    queue: WaitingRoom,
    /// A train run's seats, as `lua/ticket.lua` keeps them in Redis.
    seats: Option<Occupancy>,
    /// A train run's held orders and their seats.
    tickets: HashMap<OrderId, Ticket>,
    /// A train run's waitlist.
    waitlist: Waitlist,
    /// The last waitlist place handed out.
    wait_seq: u64,
    /// Whether an operator paused the sale.
    paused: bool,
    /// Every operator control, in order.
    operator_log: Vec<OperatorEntry>,
}

impl Book {
    fn new(config: SaleConfig) -> Self {
        Self {
            seats: config
                .train()
                .map(|layout| Occupancy::empty(Arc::clone(layout))),
            tickets: HashMap::new(),
            config,
            sold: 0,
            order_seq: 0,
            buyers: HashMap::new(),
            requests: HashMap::new(),
            stream: BTreeMap::new(),
            delivered: 0,
            pending: HashMap::new(),
            released: HashSet::new(),
            queue: WaitingRoom::default(),
            waitlist: Waitlist::default(),
            wait_seq: 0,
            paused: false,
            operator_log: Vec::new(),
        }
    }

    /// Takes up a sale again from a restoration; the stream stays.
    fn restore(&mut self, restoration: &Restoration) {
        self.config = restoration.config.clone();
        self.sold = restoration.holding.len() as u64;
        self.order_seq = restoration.last_sequence;
        self.buyers.clear();
        self.requests.clear();
        self.tickets.clear();
        self.seats = (self.config.train()).map(|layout| Occupancy::empty(Arc::clone(layout)));
        for holding in &restoration.holding {
            if let (Some(seats), Some(ticket)) = (&mut self.seats, &holding.ticket) {
                if let Some(class) = seats.classes.get_mut(ticket.class) {
                    class.take(&ticket.seats, ticket.leg);
                }
                self.tickets.insert(holding.order.clone(), ticket.clone());
            }
            if let (BuyerPolicy::Identified { .. }, Some(user)) =
                (self.config.policy(), &holding.user)
            {
                let held = self.buyers.entry(user.clone()).or_default();
                held.push(holding.order.clone());
            }
            let bought = (holding.order.clone(), holding.user.clone());
            self.requests.insert(holding.request.clone(), bought);
        }
        self.released = restoration.released.iter().cloned().collect();
        self.waitlist = Waitlist::restored(&restoration.waitlist);
        self.wait_seq = (restoration.waitlist.iter())
            .map(|entry| entry.place)
            .max()
            .unwrap_or(0);
        if let Some(seats) = &mut self.seats {
            seats.as_of = self.order_seq;
        }
        let standing = StandingControls::of(&restoration.operator_log);
        self.operator_log = restoration.operator_log.clone();
        self.paused = standing.paused;
        self.queue.revoked = standing.revoked.into_iter().collect();
    }

    /// Hands `entries` to `consumer` as pending.
    fn deliver(
        &mut self,
        sequences: Vec<u64>,
        consumer: &NodeId,
        now: SystemTime,
    ) -> Vec<StreamEntry> {
        let mut entries = Vec::with_capacity(sequences.len());
        for sequence in sequences {
            if let Some(entry) = self.stream.get(&sequence) {
                self.pending.insert(sequence, (consumer.clone(), now));
                self.delivered = self.delivered.max(sequence);
                entries.push(entry.clone());
            }
        }
        entries
    }

    fn remaining(&self) -> u64 {
        self.config.total().saturating_sub(self.sold)
    }

    /// The same steps, in the same order, as `lua/release.lua`: the seat
    /// back, then the waitlist filled from it.
    fn release(
        &mut self,
        event: &EventId,
        order: &OrderId,
        user: Option<&UserId>,
        request: &RequestId,
        now: SystemTime,
    ) -> Release {
        if self.released.contains(order) {
            return Release::AlreadyReleased;
        }
        match self.requests.get(request) {
            Some((sold, buyer)) if sold == order && buyer.as_ref() == user => {}
            _ => return Release::NotSold,
        }
        if let Some(user) = user {
            if let Some(held) = self.buyers.get_mut(user) {
                held.retain(|o| o != order);
                if held.is_empty() {
                    self.buyers.remove(user);
                }
            }
        }
        self.requests.remove(request);
        let returned = self.tickets.remove(order);
        if let (Some(seats), Some(ticket)) = (&mut self.seats, &returned) {
            if let Some(class) = seats.classes.get_mut(ticket.class) {
                class.give_back(&ticket.seats, ticket.leg);
            }
        }
        self.released.insert(order.clone());
        self.sold = self.sold.saturating_sub(1);
        let filled = match returned {
            Some(ticket) => self.fill_waitlist(event, Some((ticket.class, ticket.leg)), now),
            None => 0,
        };
        Release::Released {
            remaining: self.remaining(),
            filled,
        }
    }

    /// The same steps, in the same order, as `lua/buy.lua`.
    fn buy(&mut self, event: &EventId, purchase: &Purchase, now: SystemTime) -> CentralReply {
        if self.seats.is_some() {
            // A train run sells nothing but seats (lua/sell.lua's rule too).
            return CentralReply {
                verdict: Verdict::NoSuchSale,
                remaining: 0,
            };
        }
        self.sell(event, purchase, None, now).0
    }

    /// The same steps, in the same order, as `lua/ticket.lua`.
    fn buy_seats(
        &mut self,
        event: &EventId,
        purchase: &TicketPurchase,
        now: SystemTime,
    ) -> TicketReply {
        let (reply, ticket) = match self.seats {
            Some(_) => self.sell(event, &purchase.purchase, Some(purchase), now),
            None => (
                CentralReply {
                    verdict: Verdict::NoSuchSale,
                    remaining: 0,
                },
                None,
            ),
        };
        TicketReply {
            verdict: reply.verdict,
            ticket,
            as_of: self.order_seq,
        }
    }

    /// Sells to one purchase by `lua/sell.lua`'s rules: one seat of the
    /// counter, or, with `ticket`, the seats the train run's occupancy
    /// gives (and the ticket that records them).
    fn sell(
        &mut self,
        event: &EventId,
        purchase: &Purchase,
        ticket: Option<&TicketPurchase>,
        now: SystemTime,
    ) -> (CentralReply, Option<Ticket>) {
        let seats = ticket.map(|ticket| &ticket.seats);
        let replacing = ticket.and_then(|ticket| ticket.replacing.as_ref());
        let reply = |verdict, remaining| (CentralReply { verdict, remaining }, None);
        if let Some((order, buyer)) = self.requests.get(&purchase.request) {
            if *buyer == purchase.user {
                let ticket = self.tickets.get(order).cloned();
                let verdict = Verdict::Sold {
                    order: order.clone(),
                    replayed: true,
                };
                return (
                    CentralReply {
                        verdict,
                        remaining: self.remaining(),
                    },
                    ticket,
                );
            }
            let verdict = if *buyer == purchase.user {
                Verdict::Sold {
                    order: order.clone(),
                    replayed: true,
                }
            } else {
                Verdict::RequestIdTaken
            };
            return reply(verdict, self.remaining());
        }
        if self.paused {
            return reply(Verdict::Paused, self.remaining());
        }
        if !self.config.is_open_at(now) {
            return reply(Verdict::NotOpen, self.remaining());
        }
        if let BuyerPolicy::Identified { .. } = self.config.policy() {
            let Some(user) = &purchase.user else {
                return reply(Verdict::UserRequired, self.remaining());
            };
            if self.config.queue().is_some()
                && (purchase
                    .admission
                    .is_none_or(|position| position >= self.queue.admitted)
                    || self.queue.revoked.contains_key(user))
            {
                return reply(Verdict::NotAdmitted, self.remaining());
            }
            if let Some(last) = self.at_limit_but(user, replacing) {
                let verdict = Verdict::AlreadyPurchased {
                    order: last.clone(),
                };
                return reply(verdict, self.remaining());
            }
        }
        if self.sold >= self.config.total() {
            return reply(Verdict::SoldOut, 0);
        }
        let ticket = match (seats, &mut self.seats) {
            (Some(request), Some(occupancy)) => {
                let layout = Arc::clone(&occupancy.layout);
                let found = (layout.classes().get(request.class))
                    .zip(occupancy.classes.get_mut(request.class))
                    .and_then(|(class, held)| {
                        let seats = held.find_seats(
                            class,
                            request.leg,
                            request.passengers,
                            request.preference,
                        )?;
                        held.take(&seats, request.leg);
                        Some(seats)
                    });
                let Some(seats) = found else {
                    return reply(Verdict::SoldOut, self.remaining());
                };
                Some(Ticket {
                    class: request.class,
                    leg: request.leg,
                    seats,
                })
            }
            _ => None,
        };
        if let (Some(_), Some(position), Some(user)) =
            (self.config.queue(), purchase.admission, &purchase.user)
        {
            if let BuyerPolicy::Identified { .. } = self.config.policy() {
                self.queue.bought.insert((position, user.clone()));
            }
        }
        let order = self.record_sale(event, purchase, ticket.clone(), now);
        let verdict = Verdict::Sold {
            order,
            replayed: false,
        };
        (
            CentralReply {
                verdict,
                remaining: self.remaining(),
            },
            ticket,
        )
    }

    /// Records one sale, as `lua/sell.lua`'s `record_order` does: the next
    /// order, the buyer's orders, the request index, the stream entry and
    /// the ticket.
    fn record_sale(
        &mut self,
        event: &EventId,
        purchase: &Purchase,
        ticket: Option<Ticket>,
        now: SystemTime,
    ) -> OrderId {
        self.order_seq += 1;
        self.sold += 1;
        let order = OrderId::for_sequence(event, self.order_seq);
        if let (BuyerPolicy::Identified { .. }, Some(user)) = (self.config.policy(), &purchase.user)
        {
            self.buyers
                .entry(user.clone())
                .or_default()
                .push(order.clone());
        }
        self.requests.insert(
            purchase.request.clone(),
            (order.clone(), purchase.user.clone()),
        );
        let entry = StreamEntry {
            sequence: self.order_seq,
            order: order.clone(),
            user: purchase.user.clone(),
            request: purchase.request.clone(),
            node: purchase.node.clone(),
            sold_at_ms: unix_millis(now),
            ticket: ticket.clone(),
        };
        self.stream.insert(self.order_seq, entry);
        if let Some(ticket) = ticket {
            self.tickets.insert(order.clone(), ticket);
        }
        if let Some(seats) = &mut self.seats {
            seats.as_of = self.order_seq;
        }
        order
    }

    /// Whether `user` holds as many orders as the sale allows, and their
    /// latest order if so.
    fn at_limit(&self, user: &UserId) -> Option<&OrderId> {
        self.at_limit_but(user, None)
    }

    /// [`Book::at_limit`], not counting `replacing` (a change's old order).
    fn at_limit_but(&self, user: &UserId, replacing: Option<&OrderId>) -> Option<&OrderId> {
        let BuyerPolicy::Identified { per_user_limit, .. } = self.config.policy() else {
            return None;
        };
        let held = self.buyers.get(user)?;
        let counted: Vec<&OrderId> = (held.iter())
            .filter(|order| Some(*order) != replacing)
            .collect();
        let limit = usize::try_from(per_user_limit.get()).unwrap_or(usize::MAX);
        (counted.len() >= limit)
            .then(|| counted.last().copied())
            .flatten()
    }
}

/// In-process central stock for the embedded mode (no external servers).
/// It reads the time from the [`Clock`] it is given (the system's, unless
/// [`MemoryCentral::with_clock`] says otherwise), as Redis reads its own.
#[derive(Debug, Clone)]
pub struct MemoryCentral {
    books: Arc<RwLock<HashMap<EventId, Arc<Mutex<Book>>>>>,
    clock: Arc<dyn Clock>,
}

impl Default for MemoryCentral {
    fn default() -> Self {
        Self::with_clock(Arc::new(SystemClock))
    }
}

fn lock(book: &Mutex<Book>) -> MutexGuard<'_, Book> {
    // A panic while holding the lock cannot leave a half-applied purchase:
    // every mutation above happens after the last early return.
    book.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl MemoryCentral {
    /// An empty central stock.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty central stock that reads the time from `clock`.
    pub fn with_clock(clock: Arc<dyn Clock>) -> Self {
        Self {
            books: Arc::default(),
            clock,
        }
    }

    fn now(&self) -> SystemTime {
        self.clock.now()
    }

    fn book(&self, event: &EventId) -> Option<Arc<Mutex<Book>>> {
        let books = self.books.read().unwrap_or_else(|p| p.into_inner());
        books.get(event).cloned()
    }

    /// The entries still in an event's stream (not yet acknowledged), oldest first.
    pub fn stream(&self, event: &EventId) -> Vec<StreamEntry> {
        self.book(event)
            .map(|book| lock(&book).stream.values().cloned().collect())
            .unwrap_or_default()
    }

    /// Runs `f` on an event's book, or returns `default` without one.
    fn with_book<T>(&self, event: &EventId, default: T, f: impl FnOnce(&mut Book) -> T) -> T {
        match self.book(event) {
            Some(book) => f(&mut lock(&book)),
            None => default,
        }
    }
}

impl CentralStock for MemoryCentral {
    async fn create_sale(
        &self,
        event: &EventId,
        config: &SaleConfig,
        force: bool,
    ) -> Result<(), CreateSaleError> {
        let mut books = self.books.write().unwrap_or_else(|p| p.into_inner());
        if books.contains_key(event) && !force {
            return Err(CreateSaleError::AlreadyExists(event.clone()));
        }
        books.insert(
            event.clone(),
            Arc::new(Mutex::new(Book::new(config.clone()))),
        );
        Ok(())
    }

    async fn buy(&self, purchase: &Purchase) -> Result<CentralReply, CentralError> {
        let Some(book) = self.book(&purchase.event) else {
            return Ok(CentralReply {
                verdict: Verdict::NoSuchSale,
                remaining: 0,
            });
        };
        let reply = lock(&book).buy(&purchase.event, purchase, self.now());
        Ok(reply)
    }

    async fn buy_many(&self, batch: &PurchaseBatch) -> Result<Vec<CentralReply>, CentralError> {
        let Some(book) = self.book(batch.event()) else {
            let missing = CentralReply {
                verdict: Verdict::NoSuchSale,
                remaining: 0,
            };
            return Ok(vec![missing; batch.len()]);
        };
        let now = self.now();
        let mut book = lock(&book);
        let replies = (batch.purchases().iter())
            .map(|purchase| book.buy(batch.event(), purchase, now))
            .collect();
        Ok(replies)
    }

    async fn buy_seats(&self, purchase: &TicketPurchase) -> Result<TicketReply, CentralError> {
        let event = &purchase.purchase.event;
        Ok(self.with_book(
            event,
            TicketReply {
                verdict: Verdict::NoSuchSale,
                ticket: None,
                as_of: 0,
            },
            |book| book.buy_seats(event, purchase, self.now()),
        ))
    }

    async fn buy_seats_many(&self, batch: &TicketBatch) -> Result<Vec<TicketReply>, CentralError> {
        let event = batch.event();
        let Some(book) = self.book(event) else {
            let missing = TicketReply {
                verdict: Verdict::NoSuchSale,
                ticket: None,
                as_of: 0,
            };
            return Ok(vec![missing; batch.len()]);
        };
        let now = self.now();
        let mut book = lock(&book);
        let replies = (batch.purchases().iter())
            .map(|purchase| book.buy_seats(event, purchase, now))
            .collect();
        Ok(replies)
    }

    async fn occupancy(&self, event: &EventId) -> Result<Option<Occupancy>, CentralError> {
        Ok(self.with_book(event, None, |book| book.seats.clone()))
    }

    async fn snapshot(&self, event: &EventId) -> Result<Option<SaleSnapshot>, CentralError> {
        Ok(self.book(event).map(|book| {
            let book = lock(&book);
            SaleSnapshot {
                config: book.config.clone(),
                sold: book.sold,
                buyers: book.buyers.len() as u64,
                orders_in_stream: book.stream.len() as u64,
            }
        }))
    }

    async fn request_record(
        &self,
        event: &EventId,
        request: &RequestId,
    ) -> Result<Option<RequestRecord>, CentralError> {
        Ok(self.book(event).and_then(|book| {
            (lock(&book).requests.get(request)).map(|(order, buyer)| RequestRecord {
                order: order.clone(),
                buyer: buyer.clone(),
            })
        }))
    }

    async fn release(
        &self,
        event: &EventId,
        order: &OrderId,
        user: Option<&UserId>,
        request: &RequestId,
    ) -> Result<Release, CentralError> {
        Ok(match self.book(event) {
            Some(book) => lock(&book).release(event, order, user, request, self.now()),
            None => Release::NoSuchSale,
        })
    }

    async fn join_waitlist(&self, request: &WaitRequest) -> Result<WaitJoin, CentralError> {
        Ok(
            self.with_book(&request.event, WaitJoin::NoSuchSale, |book| {
                book.join_waitlist(request, self.now())
            }),
        )
    }

    async fn waitlist_status(
        &self,
        event: &EventId,
        user: &UserId,
    ) -> Result<Option<WaitStatus>, CentralError> {
        Ok(self.with_book(event, None, |book| book.waitlist_status(user, self.now())))
    }

    async fn leave_waitlist(
        &self,
        event: &EventId,
        user: &UserId,
    ) -> Result<Option<WaitEntry>, CentralError> {
        Ok(self.with_book(event, None, |book| book.leave_waitlist(user, self.now())))
    }

    async fn refill_waitlist(&self, event: &EventId) -> Result<u64, CentralError> {
        Ok(self.with_book(event, 0, |book| book.fill_waitlist(event, None, self.now())))
    }

    async fn waitlist(&self, event: &EventId) -> Result<Vec<WaitEntry>, CentralError> {
        Ok(self.with_book(event, Vec::new(), |book| book.waitlist.entries()))
    }

    async fn restore(
        &self,
        event: &EventId,
        restoration: &Restoration,
    ) -> Result<(), CentralError> {
        let mut books = self.books.write().unwrap_or_else(|p| p.into_inner());
        let book = books
            .entry(event.clone())
            .or_insert_with(|| Arc::new(Mutex::new(Book::new(restoration.config.clone()))));
        lock(book).restore(restoration);
        Ok(())
    }

    async fn events(&self) -> Result<Vec<EventId>, CentralError> {
        let books = self.books.read().unwrap_or_else(|p| p.into_inner());
        let mut events: Vec<_> = books.keys().cloned().collect();
        events.sort();
        Ok(events)
    }

    async fn join_queue(
        &self,
        event: &EventId,
        user: &UserId,
        seed: u64,
    ) -> Result<QueueJoin, CentralError> {
        Ok(self.with_book(event, QueueJoin::NoSuchSale, |book| {
            book.join_queue(user, seed, self.now())
        }))
    }

    async fn queue_place(
        &self,
        event: &EventId,
        user: &UserId,
    ) -> Result<Option<u64>, CentralError> {
        Ok(self.with_book(event, None, |book| book.queue.places.get(user).copied()))
    }

    async fn tick_queue(
        &self,
        event: &EventId,
        seed: u64,
        steps_after_ms: u64,
    ) -> Result<Option<QueueCounters>, CentralError> {
        Ok(self.with_book(event, None, |book| {
            book.tick_queue(seed, steps_after_ms, self.now())
        }))
    }

    async fn queue_record(&self, event: &EventId) -> Result<Option<QueueRecord>, CentralError> {
        Ok(self.with_book(event, None, |book| {
            book.config.queue()?;
            let mut joiners: Vec<(UserId, u64)> = (book.queue.places.iter())
                .map(|(user, index)| (user.clone(), *index))
                .collect();
            joiners.sort_by_key(|(_, index)| *index);
            let window_ms = book.config.queue()?.admit_window_millis();
            Some(QueueRecord {
                counters: book.queue.counters(
                    unix_millis(self.now()),
                    book.remaining(),
                    0,
                    window_ms,
                ),
                joiners,
                bought: book.queue.bought.iter().cloned().collect(),
                carried: book.queue.carried.iter().cloned().collect(),
                passed: book.queue.passed.iter().copied().collect(),
                origin_ms: book.rate_origin_ms(),
            })
        }))
    }

    async fn reset_queue(&self, event: &EventId, carried: &[UserId]) -> Result<bool, CentralError> {
        Ok(self.with_book(event, false, |book| {
            if book.config.queue().is_none() {
                return false;
            }
            // Revocations are the operator's, not the room's progress: they
            // stand.
            book.queue = WaitingRoom {
                carried: carried.iter().cloned().collect(),
                revoked: std::mem::take(&mut book.queue.revoked),
                ..WaitingRoom::default()
            };
            true
        }))
    }

    async fn control(
        &self,
        event: &EventId,
        order: &OperatorOrder,
    ) -> Result<ControlOutcome, CentralError> {
        let now = self.now();
        Ok(self.with_book(event, ControlOutcome::NoSuchSale, |book| {
            book.control(order, now)
        }))
    }

    async fn operator_log(
        &self,
        event: &EventId,
        since: u64,
    ) -> Result<Vec<OperatorEntry>, CentralError> {
        Ok(self.with_book(event, Vec::new(), |book| book.operator_log_since(since)))
    }
}

impl OrderStream for MemoryCentral {
    async fn read_new(
        &self,
        event: &EventId,
        consumer: &NodeId,
        max: usize,
    ) -> Result<Vec<StreamEntry>, CentralError> {
        let now = self.now();
        Ok(self.with_book(event, Vec::new(), |book| {
            let fresh = book.stream.range(book.delivered + 1..).take(max);
            let sequences = fresh.map(|(&sequence, _)| sequence).collect();
            book.deliver(sequences, consumer, now)
        }))
    }

    async fn reclaim(
        &self,
        event: &EventId,
        consumer: &NodeId,
        min_idle: Duration,
        max: usize,
    ) -> Result<Vec<StreamEntry>, CentralError> {
        let now = self.now();
        Ok(self.with_book(event, Vec::new(), |book| {
            let mut stale: Vec<u64> = (book.pending.iter())
                .filter(|(_, (_, since))| {
                    now.duration_since(*since).unwrap_or_default() >= min_idle
                })
                .map(|(&sequence, _)| sequence)
                .collect();
            stale.sort_unstable();
            stale.truncate(max);
            book.deliver(stale, consumer, now)
        }))
    }

    async fn acknowledge(&self, event: &EventId, sequences: &[u64]) -> Result<u64, CentralError> {
        Ok(self.with_book(event, 0, |book| {
            let mut removed = 0;
            for sequence in sequences {
                book.pending.remove(sequence);
                removed += u64::from(book.stream.remove(sequence).is_some());
            }
            removed
        }))
    }

    async fn entry(
        &self,
        event: &EventId,
        sequence: u64,
    ) -> Result<Option<StreamEntry>, CentralError> {
        Ok(self.with_book(event, None, |book| book.stream.get(&sequence).cloned()))
    }

    async fn unacknowledged(&self, event: &EventId) -> Result<Vec<StreamEntry>, CentralError> {
        Ok(self.stream(event))
    }

    async fn backlog(&self, event: &EventId) -> Result<Backlog, CentralError> {
        Ok(self.with_book(event, Backlog::default(), |book| Backlog {
            entries: book.stream.len() as u64,
            pending: book.pending.len() as u64,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The conformance suite, one test per case.
    mod conformance {
        async fn embedded() -> ((), crate::MemoryCentral) {
            ((), crate::MemoryCentral::new())
        }

        crate::conformance_tests!(embedded);
    }

    #[tokio::test]
    async fn stream_records_each_sale_once() {
        let central = MemoryCentral::new();
        let event = EventId::parse("mem-stream").unwrap();
        central
            .create_sale(&event, &SaleConfig::new(2).unwrap(), false)
            .await
            .unwrap();
        for i in 0..5 {
            let purchase = Purchase {
                event: event.clone(),
                user: Some(UserId::parse(format!("u{i}")).unwrap()),
                request: RequestId::parse(format!("r{i}")).unwrap(),
                node: NodeId::parse("n").unwrap(),
                admission: None,
            };
            central.buy(&purchase).await.unwrap();
        }
        let orders: Vec<_> = central
            .stream(&event)
            .into_iter()
            .map(|e| e.order)
            .collect();
        assert_eq!(
            orders,
            ["mem-stream-1", "mem-stream-2"].map(|o| OrderId::parse(o).unwrap())
        );
    }

    /// The embedded store reads the time only from its clock: a sale that
    /// opens in an hour is "not open" until the clock says otherwise, and
    /// a delivered stream entry turns idle only as the clock moves.
    #[tokio::test]
    async fn time_comes_from_the_clock_it_is_given() {
        let start = std::time::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let clock = Arc::new(crate::time::ManualClock::at(start));
        let central = MemoryCentral::with_clock(clock.clone());
        let event = EventId::parse("mem-clock").unwrap();
        let config =
            (SaleConfig::new(1).unwrap()).opening_at(Some(start + Duration::from_secs(3600)));
        central.create_sale(&event, &config, false).await.unwrap();
        let purchase = Purchase {
            event: event.clone(),
            user: Some(UserId::parse("u").unwrap()),
            request: RequestId::parse("r").unwrap(),
            node: NodeId::parse("n").unwrap(),
            admission: None,
        };
        assert_eq!(
            central.buy(&purchase).await.unwrap().verdict,
            Verdict::NotOpen
        );
        clock.advance(Duration::from_secs(3600));
        let sold = central.buy(&purchase).await.unwrap().verdict;
        assert!(matches!(sold, Verdict::Sold { .. }), "{sold:?}");

        let writer = NodeId::parse("w").unwrap();
        assert_eq!(
            central.read_new(&event, &writer, 10).await.unwrap().len(),
            1
        );
        let idle = Duration::from_secs(60);
        assert!(central
            .reclaim(&event, &writer, idle, 10)
            .await
            .unwrap()
            .is_empty());
        clock.advance(idle);
        assert_eq!(
            central
                .reclaim(&event, &writer, idle, 10)
                .await
                .unwrap()
                .len(),
            1
        );
    }
}
