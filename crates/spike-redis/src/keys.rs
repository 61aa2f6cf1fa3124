//! Key names. All of one event's keys carry the hash tag `{event}`, so a
//! script touching them runs on one Redis Cluster slot.

use spike_core::EventId;

/// The set of every event that has a sale (outside any hash tag).
pub const EVENTS_KEY: &str = "spike:events";

/// The Redis keys of one event's sale.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventKeys {
    /// Hash: total, sold, order_seq, per_user_limit, opens_at_ms, payment_window_ms, event.
    pub sale: String,
    /// Hash: user id → space-separated order ids.
    pub buyers: String,
    /// Hash: request id → order id.
    pub requests: String,
    /// Stream: one entry per sold seat, read by the order pipeline.
    pub orders: String,
    /// Set: orders whose seat went back to the sale (expired, cancelled).
    pub released: String,
    /// Hash: the waiting room's counters (admitted; seed and early once sealed).
    pub queue: String,
    /// Hash: user id → join index, one per buyer who joined the waiting room.
    pub queue_places: String,
    /// Sorted set: admission steps, member `admitted`, score the time (ms).
    pub queue_steps: String,
    /// Sorted set: admitted positions that bought, member `"position user"`,
    /// score the position.
    pub queue_bought: String,
    /// Set: buyers holding seats when a recovery reset the waiting room.
    pub queue_carried: String,
    /// Sorted set: the positions of buyers who passed straight through a
    /// spillover room (member and score the position).
    pub queue_passed: String,
    /// Hash: a train run's held orders → their tickets.
    pub tickets: String,
    /// A train run's seat maps are `<seat_maps><class>:<segment>` (see
    /// [`EventKeys::seat_map`]).
    pub seat_maps: String,
    /// Where `ticket.lua` ORs a leg's maps, for the length of one call.
    pub seat_scratch: String,
    /// Hash: a train run's waitlist, place → entry (`WaitEntry::to_wire`).
    pub waitlist: String,
    /// Hash: user id → the place of their latest waitlist entry.
    pub waitlist_users: String,
    /// Sorted set: the waiting places (member and score the place).
    pub waitlist_queue: String,
    /// List: the sale's operator log, one control per item
    /// (`OperatorEntry::to_wire`), oldest first.
    pub operator_log: String,
    /// A counter written only to confirm what was read: a replayed sale or
    /// a request's result is confirmed by `WAIT` on a write made after
    /// reading it (see `RedisCentral::confirm_read`).
    pub confirmations: String,
}

impl EventKeys {
    /// The keys of `event`'s sale.
    pub fn new(event: &EventId) -> Self {
        let key = |suffix: &str| format!("spike:{{{event}}}:{suffix}");
        Self {
            sale: key("sale"),
            buyers: key("buyers"),
            requests: key("requests"),
            orders: key("orders"),
            released: key("released"),
            queue: key("queue"),
            queue_places: key("queue:places"),
            queue_steps: key("queue:steps"),
            queue_bought: key("queue:bought"),
            queue_carried: key("queue:carried"),
            queue_passed: key("queue:passed"),
            tickets: key("tickets"),
            seat_maps: key("seats:"),
            seat_scratch: key("seats:scratch"),
            waitlist: key("waitlist"),
            waitlist_users: key("waitlist:users"),
            waitlist_queue: key("waitlist:queue"),
            operator_log: key("operator_log"),
            confirmations: key("confirmations"),
        }
    }

    /// The bitmap of one class on one segment: bit `i` (`SETBIT` order) set
    /// when seat `i` of the class is sold there.
    pub fn seat_map(&self, class: usize, segment: u32) -> String {
        format!("{}{class}:{segment}", self.seat_maps)
    }

    /// The maps of `class` on segments `from..to` (a leg), in order.
    pub fn leg_maps(&self, class: usize, from: u32, to: u32) -> Vec<String> {
        (from..to)
            .map(|segment| self.seat_map(class, segment))
            .collect()
    }

    /// Every seat map of a run of `classes` classes over `segments`
    /// segments, class by class: map `(c, s)` at index `c * segments + s`.
    pub fn all_maps(&self, classes: usize, segments: u32) -> Vec<String> {
        (0..classes)
            .flat_map(|class| self.leg_maps(class, 0, segments))
            .collect()
    }

    /// The waiting room's keys, in the order its scripts expect them (after
    /// the sale hash): counters, places, steps, bought, passed.
    pub fn queue_keys(&self) -> [&str; 5] {
        [
            &self.queue,
            &self.queue_places,
            &self.queue_steps,
            &self.queue_bought,
            &self.queue_passed,
        ]
    }

    /// Every key of the event but its seat maps: the sale's, the waiting
    /// room's, the tickets, the waitlist's, then the operator log (as
    /// `create.lua` expects them).
    pub fn everything(&self) -> Vec<&str> {
        let mut keys = self.all().to_vec();
        keys.extend(self.queue_keys());
        keys.push(&self.tickets);
        keys.extend([
            self.waitlist.as_str(),
            &self.waitlist_users,
            &self.waitlist_queue,
            &self.operator_log,
        ]);
        keys
    }

    /// The keys every seat script takes before seat maps: `sell.lua`'s
    /// seven, the tickets, the scratch key (`ticket.lua`,
    /// `ticket_many.lua`).
    pub fn seat_keys(&self) -> [&str; 9] {
        [
            &self.sale,
            &self.buyers,
            &self.requests,
            &self.orders,
            &self.released,
            &self.queue,
            &self.queue_bought,
            &self.tickets,
            &self.seat_scratch,
        ]
    }

    /// The keys `release.lua` and `waitlist.lua` take before the run's seat
    /// maps (`lua/waitlist_rules.lua` lays them out): [`EventKeys::seat_keys`],
    /// then the waitlist's three.
    pub fn with_waitlist(&self) -> Vec<&str> {
        let mut keys = self.seat_keys().to_vec();
        keys.extend([
            self.waitlist.as_str(),
            &self.waitlist_users,
            &self.waitlist_queue,
        ]);
        keys
    }

    /// The sale's keys in the order every script expects them.
    pub fn all(&self) -> [&str; 5] {
        [
            &self.sale,
            &self.buyers,
            &self.requests,
            &self.orders,
            &self.released,
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_share_one_hash_tag() {
        let keys = EventKeys::new(&EventId::parse("G1").unwrap());
        assert_eq!(keys.sale, "spike:{G1}:sale");
        assert!(keys.everything().iter().all(|k| k.contains("{G1}")));
        assert_eq!(keys.everything().len(), 15);
        assert!(keys.with_waitlist().iter().all(|k| k.contains("{G1}")));
        assert_eq!(keys.seat_map(1, 7), "spike:{G1}:seats:1:7");
        assert!(keys.seat_scratch.contains("{G1}"));
    }
}
