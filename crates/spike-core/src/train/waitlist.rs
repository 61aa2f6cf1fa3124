//! The waitlist (候补购票) of a train run, as 12306 has run it since 2019:
//! a traveller whose class and leg are sold out places a waitlist order, and
//! seats that come back (a cancel, an expiry, a refund, a change) fill the
//! waiting orders, oldest first, before anyone else can buy them.
//!
//! **The fill rule**, which every central stock applies in the same atomic
//! step that gives seats back (`lua/release.lua`, and the embedded
//! `Book`'s mirror of it):
//! 1. the waiting entries are tried in the order they were placed, each
//!    with [`crate::ClassOccupancy::find_seats`] on the seats free now (its
//!    party size and seat preference included);
//! 2. only entries of the returned seats' class whose leg overlaps theirs
//!    are tried: no other entry can have become servable;
//! 3. an entry past its deadline expires instead, and one whose traveller
//!    already holds as many orders as the run allows is superseded;
//! 4. an entry the free seats cannot serve (a party of three, when one
//!    seat came back) waits on, and **does not block** the entries behind
//!    it: the next one the seats can serve is filled;
//! 5. a filled entry becomes an order, exactly as a purchase by its
//!    request id would have: its stream entry, its ticket, its payment
//!    window. What no waiting entry takes is for sale again.
//!
//! So after every step of central stock, **no waiting entry could be served
//! by the free seats**: placing is refused while the request is bookable,
//! a purchase only takes seats, and every step that frees seats fills
//! first. A buyer therefore never needs to check the waitlist.
//!
//! Each traveller has at most one waiting entry per run. An entry's wire
//! form (Redis's `spike:{E}:waitlist` hash, keyed by its place) is written
//! and read only here and in the scripts' mirror ([`WaitEntry::to_wire`]).

use std::time::Duration;

use super::{Leg, Passengers, SeatPreference, SeatRequest, TrainError};
use crate::ids::{EventId, NodeId, OrderId, RequestId, UserId};

/// How long a waitlist order waits when the traveller does not say.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(60 * 60);

/// The longest a waitlist order may wait.
pub const MAX_WAIT: Duration = Duration::from_secs(7 * 24 * 60 * 60);

/// A traveller's request to wait for seats, as sent to central stock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaitRequest {
    /// The train run.
    pub event: EventId,
    /// The traveller.
    pub user: UserId,
    /// Idempotency key: placing again with it finds the same entry, and the
    /// order a fill makes is bought by it.
    pub request: RequestId,
    /// The node that took the request (recorded with the order).
    pub node: NodeId,
    /// Which class, which leg, how many seats, which seat.
    pub seats: SeatRequest,
    /// When it stops waiting (Unix milliseconds).
    pub deadline_ms: u64,
}

/// Where a waitlist entry stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WaitState {
    /// In line for seats.
    Waiting,
    /// Seats came back and became this order (reserved, to be paid).
    Filled {
        /// The order.
        order: OrderId,
    },
    /// The traveller withdrew it.
    Withdrawn,
    /// Its deadline passed before seats came back.
    Expired,
    /// When seats came back, the traveller already held as many orders as
    /// the run allows (they bought elsewhere meanwhile).
    Superseded,
}

impl WaitState {
    /// Its name on the wire and in answers.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Waiting => "waiting",
            Self::Filled { .. } => "filled",
            Self::Withdrawn => "withdrawn",
            Self::Expired => "expired",
            Self::Superseded => "superseded",
        }
    }
}

/// One waitlist entry, as central stock keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaitEntry {
    /// Its place in line: 1 for the run's first entry, then in the order
    /// they were placed.
    pub place: u64,
    /// The traveller.
    pub user: UserId,
    /// The request id it was placed with.
    pub request: RequestId,
    /// The node that placed it.
    pub node: NodeId,
    /// What it waits for.
    pub seats: SeatRequest,
    /// When it was placed (Unix milliseconds).
    pub placed_at_ms: u64,
    /// When it stops waiting (Unix milliseconds).
    pub deadline_ms: u64,
    /// Where it stands.
    pub state: WaitState,
}

impl WaitEntry {
    /// The entry `request` becomes at `place`, placed at `now_ms`.
    pub fn placed(request: &WaitRequest, place: u64, now_ms: u64) -> Self {
        Self {
            place,
            user: request.user.clone(),
            request: request.request.clone(),
            node: request.node.clone(),
            seats: request.seats,
            placed_at_ms: now_ms,
            deadline_ms: request.deadline_ms,
            state: WaitState::Waiting,
        }
    }

    /// Whether it is still in line at `now_ms` (waiting, deadline not passed).
    pub fn waits_at(&self, now_ms: u64) -> bool {
        self.state == WaitState::Waiting && now_ms < self.deadline_ms
    }

    /// Its state as seen at `now_ms`: a waiting entry past its deadline is
    /// expired, though central stock marks it so only when it next looks.
    pub fn state_at(&self, now_ms: u64) -> WaitState {
        match self.state {
            WaitState::Waiting if now_ms >= self.deadline_ms => WaitState::Expired,
            ref state => state.clone(),
        }
    }

    /// Its wire form, the place aside (it is the key): `"<user> <state>
    /// <placed_at_ms> <deadline_ms> <request> <node> <class> <from> <to>
    /// <passengers> <preferred letters as bits> <order or ->"`. Ids hold no
    /// whitespace, so spaces separate the fields.
    pub fn to_wire(&self) -> String {
        let order = match &self.state {
            WaitState::Filled { order } => order.as_str(),
            _ => "-",
        };
        format!(
            "{} {} {} {} {} {} {} {} {} {} {} {order}",
            self.user,
            self.state.name(),
            self.placed_at_ms,
            self.deadline_ms,
            self.request,
            self.node,
            self.seats.class,
            self.seats.leg.from(),
            self.seats.leg.to(),
            self.seats.passengers.get(),
            self.seats.preference.bits(),
        )
    }

    /// Reads [`WaitEntry::to_wire`]'s form, for the entry at `place`.
    pub fn parse(place: u64, wire: &str) -> Result<Self, TrainError> {
        let bad = || TrainError::Malformed(wire.to_owned());
        let fields: Vec<&str> = wire.split(' ').collect();
        let [user, state, placed_at, deadline, request, node, class, from, to, passengers, preference, order] =
            fields.as_slice()
        else {
            return Err(bad());
        };
        let number = |text: &str| text.parse::<u64>().map_err(|_| bad());
        let state = match (*state, *order) {
            ("waiting", "-") => WaitState::Waiting,
            ("filled", order) if order != "-" => WaitState::Filled {
                order: OrderId::parse(order).map_err(|_| bad())?,
            },
            ("withdrawn", "-") => WaitState::Withdrawn,
            ("expired", "-") => WaitState::Expired,
            ("superseded", "-") => WaitState::Superseded,
            _ => return Err(bad()),
        };
        let preference = u8::try_from(number(preference)?).map_err(|_| bad())?;
        let passengers = u32::try_from(number(passengers)?).map_err(|_| bad())?;
        Ok(Self {
            place,
            user: UserId::parse(*user).map_err(|_| bad())?,
            request: RequestId::parse(*request).map_err(|_| bad())?,
            node: NodeId::parse(*node).map_err(|_| bad())?,
            seats: SeatRequest {
                class: usize::try_from(number(class)?).map_err(|_| bad())?,
                leg: Leg::new(number(from)? as usize, number(to)? as usize).map_err(|_| bad())?,
                passengers: Passengers::new(passengers).map_err(|_| bad())?,
                preference: SeatPreference::from_bits(preference).ok_or_else(bad)?,
            },
            placed_at_ms: number(placed_at)?,
            deadline_ms: number(deadline)?,
            state,
        })
    }

    /// Whether seats returned over `leg` of class `class` may serve it:
    /// the same class, and legs that share a segment (rule 2).
    pub fn touched_by(&self, class: usize, leg: Leg) -> bool {
        self.seats.class == class && self.seats.leg.mask() & leg.mask() != 0
    }
}

/// What placing a waitlist order did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WaitJoin {
    /// The entry waits (new, or this request id had placed it before).
    Placed {
        /// The entry.
        entry: WaitEntry,
        /// Waiting entries placed before it.
        ahead: u64,
    },
    /// The traveller already has a waiting entry on this run (placed with
    /// another request id): nothing changed.
    AlreadyWaiting {
        /// Their waiting entry.
        entry: WaitEntry,
        /// Waiting entries placed before it.
        ahead: u64,
    },
    /// Seats are free for this request: buy them instead. Nothing changed.
    Bookable,
    /// This request id already bought seats: nothing changed.
    RequestIdTaken,
    /// The traveller holds as many orders as the run allows; `order` is
    /// the latest. Nothing changed.
    LimitReached {
        /// Their latest order.
        order: OrderId,
    },
    /// The run is not on sale yet.
    NotOpen,
    /// No such run (or no such sale, or not a train run).
    NoSuchSale,
}

/// Where a traveller's latest waitlist entry stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaitStatus {
    /// The entry.
    pub entry: WaitEntry,
    /// Waiting entries placed before it (0 once it stopped waiting).
    pub ahead: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(state: WaitState) -> WaitEntry {
        WaitEntry {
            place: 7,
            user: UserId::parse("张三").unwrap(),
            request: RequestId::parse("r-1").unwrap(),
            node: NodeId::parse("n1").unwrap(),
            seats: SeatRequest {
                class: 1,
                leg: Leg::new(2, 5).unwrap(),
                passengers: Passengers::new(3).unwrap(),
                preference: SeatPreference::WINDOW,
            },
            placed_at_ms: 1_000,
            deadline_ms: 9_000,
            state,
        }
    }

    #[test]
    fn entries_round_trip_their_wire_form_in_every_state() {
        let order = OrderId::parse("G1_2026-12-01-4").unwrap();
        for state in [
            WaitState::Waiting,
            WaitState::Filled { order },
            WaitState::Withdrawn,
            WaitState::Expired,
            WaitState::Superseded,
        ] {
            let entry = entry(state);
            assert_eq!(WaitEntry::parse(7, &entry.to_wire()), Ok(entry));
        }
        assert_eq!(
            entry(WaitState::Waiting).to_wire(),
            "张三 waiting 1000 9000 r-1 n1 1 2 5 3 17 -"
        );
        for bad in [
            "",
            "u waiting 1 2 r n 0 0 1 1 0",
            "u waiting 1 2 r n 0 1 0 1 0 -",
            "u filled 1 2 r n 0 0 1 1 0 -",
            "u waiting 1 2 r n 0 0 1 6 0 -",
            "u waiting 1 2 r n 0 0 1 1 32 -",
            "u lost 1 2 r n 0 0 1 1 0 -",
        ] {
            assert!(WaitEntry::parse(1, bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn an_entry_lapses_at_its_deadline_and_is_touched_only_by_its_class_and_leg() {
        let waiting = entry(WaitState::Waiting);
        assert!(waiting.waits_at(8_999));
        assert!(!waiting.waits_at(9_000));
        assert_eq!(waiting.state_at(9_000), WaitState::Expired);
        assert_eq!(
            entry(WaitState::Withdrawn).state_at(1),
            WaitState::Withdrawn
        );
        assert!(waiting.touched_by(1, Leg::new(4, 6).unwrap()));
        assert!(
            !waiting.touched_by(1, Leg::new(5, 6).unwrap()),
            "no shared segment"
        );
        assert!(
            !waiting.touched_by(0, Leg::new(2, 5).unwrap()),
            "another class"
        );
    }
}
