//! The embedded central stock's waitlist: `lua/waitlist.lua` and the fill
//! of `lua/release.lua`, step for step (the rules are `crate::train`'s
//! waitlist module's).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::SystemTime;

use super::Book;
use crate::ids::{EventId, UserId};
use crate::purchase::Purchase;
use crate::time::unix_millis;
use crate::train::{Leg, Ticket, WaitEntry, WaitJoin, WaitRequest, WaitState, WaitStatus};

/// A run's waitlist, as Redis keeps it: every entry by place, each
/// traveller's latest place, and the places still waiting.
#[derive(Debug, Default)]
pub(super) struct Waitlist {
    entries: BTreeMap<u64, WaitEntry>,
    latest: HashMap<UserId, u64>,
    waiting: BTreeSet<u64>,
}

impl Waitlist {
    /// Waiting places before `place`.
    fn ahead_of(&self, place: u64) -> u64 {
        self.waiting.range(..place).count() as u64
    }

    /// `user`'s latest entry and where it stands at `now_ms`.
    fn status(&self, user: &UserId, now_ms: u64) -> Option<WaitStatus> {
        let entry = self.entries.get(self.latest.get(user)?)?;
        let ahead = match entry.waits_at(now_ms) {
            true => self.ahead_of(entry.place),
            false => 0,
        };
        let mut entry = entry.clone();
        entry.state = entry.state_at(now_ms);
        Some(WaitStatus { entry, ahead })
    }

    /// Takes `place` out of line, in `state`.
    fn settle(&mut self, place: u64, state: WaitState) {
        self.waiting.remove(&place);
        if let Some(entry) = self.entries.get_mut(&place) {
            entry.state = state;
        }
    }

    /// Every entry, in place order.
    pub(super) fn entries(&self) -> Vec<WaitEntry> {
        self.entries.values().cloned().collect()
    }

    /// The waitlist `entries` make (as `RedisCentral::restore` writes it):
    /// each traveller's latest place, the waiting places.
    pub(super) fn restored(entries: &[WaitEntry]) -> Self {
        let mut waitlist = Self::default();
        for entry in entries {
            waitlist.entries.insert(entry.place, entry.clone());
            let latest = waitlist
                .latest
                .entry(entry.user.clone())
                .or_insert(entry.place);
            *latest = (*latest).max(entry.place);
            if entry.state == WaitState::Waiting {
                waitlist.waiting.insert(entry.place);
            }
        }
        waitlist
    }
}

impl Book {
    /// The same steps, in the same order, as `lua/waitlist.lua`'s `join`.
    pub(super) fn join_waitlist(&mut self, request: &WaitRequest, now: SystemTime) -> WaitJoin {
        let now_ms = unix_millis(now);
        let class = request.seats.class;
        let Some((layout, occupancy)) = (self.seats.as_ref())
            .map(|seats| (&seats.layout, seats))
            .filter(|(layout, _)| {
                class < layout.classes().len()
                    && (request.seats.leg.to() as usize) < layout.stations().len()
            })
        else {
            return WaitJoin::NoSuchSale;
        };
        if let Some(status) = self.waitlist.status(&request.user, now_ms) {
            if status.entry.request == request.request {
                return WaitJoin::Placed {
                    entry: status.entry,
                    ahead: status.ahead,
                };
            }
            if status.entry.state == WaitState::Waiting {
                return WaitJoin::AlreadyWaiting {
                    entry: status.entry,
                    ahead: status.ahead,
                };
            }
        }
        if self.requests.contains_key(&request.request) {
            return WaitJoin::RequestIdTaken;
        }
        if !self.config.is_open_at(now) {
            return WaitJoin::NotOpen;
        }
        if let Some(order) = self.at_limit(&request.user) {
            return WaitJoin::LimitReached {
                order: order.clone(),
            };
        }
        let seats = request.seats;
        let free = (layout.classes().get(class))
            .zip(occupancy.classes.get(class))
            .and_then(|(shape, held)| {
                held.find_seats(shape, seats.leg, seats.passengers, seats.preference)
            });
        if free.is_some() {
            return WaitJoin::Bookable;
        }
        // A waiting entry of theirs past its deadline is expired now.
        if let Some(&earlier) = self.waitlist.latest.get(&request.user) {
            if self.waitlist.waiting.contains(&earlier) {
                self.waitlist.settle(earlier, WaitState::Expired);
            }
        }
        self.wait_seq += 1;
        let place = self.wait_seq;
        let entry = WaitEntry::placed(request, place, now_ms);
        self.waitlist.entries.insert(place, entry.clone());
        self.waitlist.latest.insert(request.user.clone(), place);
        self.waitlist.waiting.insert(place);
        WaitJoin::Placed {
            ahead: self.waitlist.ahead_of(place),
            entry,
        }
    }

    /// `lua/waitlist.lua`'s `status`.
    pub(super) fn waitlist_status(&self, user: &UserId, now: SystemTime) -> Option<WaitStatus> {
        self.waitlist.status(user, unix_millis(now))
    }

    /// `lua/waitlist.lua`'s `leave`.
    pub(super) fn leave_waitlist(&mut self, user: &UserId, now: SystemTime) -> Option<WaitEntry> {
        let now_ms = unix_millis(now);
        let place = *self.waitlist.latest.get(user)?;
        let entry = self.waitlist.entries.get(&place)?;
        if entry.state != WaitState::Waiting {
            return None;
        }
        if !entry.waits_at(now_ms) {
            self.waitlist.settle(place, WaitState::Expired);
            return None;
        }
        self.waitlist.settle(place, WaitState::Withdrawn);
        self.waitlist.entries.get(&place).cloned()
    }

    /// The fill rule, after seats of `class` over `leg` came back (every
    /// waiting entry when `returned` is `None`: a refill), as
    /// `lua/waitlist_rules.lua`'s `fill_waitlist`: returns how many entries
    /// became orders.
    pub(super) fn fill_waitlist(
        &mut self,
        event: &EventId,
        returned: Option<(usize, Leg)>,
        now: SystemTime,
    ) -> u64 {
        let now_ms = unix_millis(now);
        let mut filled = 0;
        let places: Vec<u64> = self.waitlist.waiting.iter().copied().collect();
        for place in places {
            let Some(entry) = self.waitlist.entries.get(&place).cloned() else {
                continue;
            };
            if returned.is_some_and(|(class, leg)| !entry.touched_by(class, leg)) {
                continue;
            }
            let class = entry.seats.class;
            if now_ms >= entry.deadline_ms {
                self.waitlist.settle(place, WaitState::Expired);
                continue;
            }
            if self.at_limit(&entry.user).is_some() || self.requests.contains_key(&entry.request) {
                self.waitlist.settle(place, WaitState::Superseded);
                continue;
            }
            let wanted = entry.seats;
            let Some(occupancy) = &mut self.seats else {
                return filled;
            };
            let layout = std::sync::Arc::clone(&occupancy.layout);
            let found = (layout.classes().get(class))
                .zip(occupancy.classes.get_mut(class))
                .and_then(|(shape, held)| {
                    let seats =
                        held.find_seats(shape, wanted.leg, wanted.passengers, wanted.preference)?;
                    held.take(&seats, wanted.leg);
                    Some(seats)
                });
            let Some(seats) = found else {
                continue;
            };
            let ticket = Ticket {
                class,
                leg: wanted.leg,
                seats,
            };
            let purchase = Purchase {
                event: event.clone(),
                user: Some(entry.user.clone()),
                request: entry.request.clone(),
                node: entry.node.clone(),
                admission: None,
            };
            let order = self.record_sale(event, &purchase, Some(ticket), now);
            self.waitlist.settle(place, WaitState::Filled { order });
            filled += 1;
        }
        filled
    }
}
