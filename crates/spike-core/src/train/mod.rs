//! Trains: seats on route segments. A train run (a train number on a date)
//! has ordered stations, seat classes and seats; each seat is a bitmask
//! over the run's segments (segment `s` runs from station `s` to `s + 1`).
//! This module holds the rules every central stock applies the same way —
//! which seats a purchase gets ([`ClassOccupancy::find_seats`]), what a
//! ticket is on the wire ([`Ticket`]) — and what a node derives from them:
//! availability per station pair and the sold-out memo ([`SoldOutMemo`]).

use std::fmt;

use crate::ids::EventId;

mod grid;
mod memo;
mod seats;
mod waitlist;

pub use grid::{GridDelta, GridLog, SeatChange, KEPT_VERSIONS};
pub use memo::SoldOutMemo;
pub use seats::{ClassOccupancy, LegAvailability, Occupancy, SeatPreference, PARTY_SIZES};
pub use waitlist::{
    WaitEntry, WaitJoin, WaitRequest, WaitState, WaitStatus, DEFAULT_WAIT, MAX_WAIT,
};

/// Most stations a run may have: 63 segments fit one `u64` mask.
pub const MAX_STATIONS: usize = 64;

/// Most passengers one order may carry.
pub const MAX_PASSENGERS: u8 = 5;

/// Seats in one row, lettered as 12306 letters a second-class row.
pub const ROW_LETTERS: [char; 5] = ['A', 'B', 'C', 'D', 'F'];

/// Most carriages a run may have (carriage numbers have two digits).
pub const MAX_CARRIAGES: u32 = 99;

/// Most seats one carriage may have (rows numbered up to 50).
pub const MAX_SEATS_PER_CARRIAGE: u32 = 250;

/// Why a train, a station, a class or a ticket was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrainError {
    /// The train number is not 1–16 letters and digits.
    #[error("train must be 1-16 letters and digits (such as G1)")]
    BadTrain,
    /// The date is not `YYYY-MM-DD`.
    #[error("date must be YYYY-MM-DD")]
    BadDate,
    /// A station name is empty, too long or holds `,` `|` `:` or spaces.
    #[error("station {0:?} must be 1-32 letters, digits, '.', '_' or '-'")]
    BadStation(String),
    /// Fewer than two or more than [`MAX_STATIONS`] stations.
    #[error("a train stops at 2 to {MAX_STATIONS} stations")]
    StationCount,
    /// A station appears twice.
    #[error("station {0} appears twice")]
    RepeatedStation(String),
    /// A class is not `name:CARRIAGESxSEATS`.
    #[error("class {0:?} must be NAME:CARRIAGESxSEATS (such as second:8x80)")]
    BadClass(String),
    /// A class name appears twice.
    #[error("class {0} appears twice")]
    RepeatedClass(String),
    /// No class at all.
    #[error("a train needs at least one seat class")]
    NoClass,
    /// Too many carriages or seats.
    #[error(
        "a train has at most {MAX_CARRIAGES} carriages of at most {MAX_SEATS_PER_CARRIAGE} seats"
    )]
    TooBig,
    /// The station is not on this train's route.
    #[error("{0} is not a station of this train")]
    UnknownStation(String),
    /// `from` is not before `to` on the route.
    #[error("from must be a station before to")]
    Backwards,
    /// The class is not one of this train's.
    #[error("{0} is not a seat class of this train")]
    UnknownClass(String),
    /// A seat preference that is not `window`, `aisle`, `any` or a letter
    /// of the row.
    #[error("seat {0:?} must be window, aisle, any or a letter of A, B, C, D, F")]
    BadSeat(String),
    /// Passengers outside 1–[`MAX_PASSENGERS`].
    #[error("passengers must be 1 to {MAX_PASSENGERS}")]
    Passengers,
    /// A stored train layout or ticket does not parse.
    #[error("malformed train record: {0}")]
    Malformed(String),
}

/// Days in `month` (1–12) of `year`, in the Gregorian calendar.
fn days_in_month(year: u32, month: u32) -> u32 {
    let leap = (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400);
    match month {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// A train run: a train number on a date, sold as one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrainRun {
    train: String,
    date: String,
}

impl TrainRun {
    /// Validates `train` (letters and digits) and `date` (`YYYY-MM-DD`).
    pub fn parse(train: &str, date: &str) -> Result<Self, TrainError> {
        if train.is_empty() || train.len() > 16 || !train.chars().all(|c| c.is_ascii_alphanumeric())
        {
            return Err(TrainError::BadTrain);
        }
        let parts: Vec<&str> = date.split('-').collect();
        let valid = match parts.as_slice() {
            [y, m, d] if y.len() == 4 && m.len() == 2 && d.len() == 2 => {
                let number = |s: &str| s.parse::<u32>().ok();
                let digits = date.chars().all(|c| c.is_ascii_digit() || c == '-');
                match (number(y), number(m), number(d)) {
                    (Some(year), Some(month @ 1..=12), Some(day)) => {
                        digits && (1..=days_in_month(year, month)).contains(&day)
                    }
                    _ => false,
                }
            }
            _ => false,
        };
        if !valid {
            return Err(TrainError::BadDate);
        }
        Ok(Self {
            train: train.to_owned(),
            date: date.to_owned(),
        })
    }

    /// The event the run is sold as: `<train>_<date>`, such as `G1_2026-12-01`.
    pub fn event(&self) -> EventId {
        // Letters, digits, '_' and '-' only: always a valid event id.
        EventId::parse(format!("{}_{}", self.train, self.date))
            .unwrap_or_else(|e| unreachable!("train event id: {e}"))
    }

    /// The run an event id names (`<train>_<date>`), if it names one.
    pub fn of_event(event: &EventId) -> Option<Self> {
        let (train, date) = event.as_str().rsplit_once('_')?;
        Self::parse(train, date).ok()
    }

    /// The train number.
    pub fn train(&self) -> &str {
        &self.train
    }

    /// The date.
    pub fn date(&self) -> &str {
        &self.date
    }
}

/// One seat class: its name and how many carriages of how many seats.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeatClass {
    name: String,
    carriages: u32,
    seats_per_carriage: u32,
    /// The number of its first carriage (classes are numbered in order).
    first_carriage: u32,
}

impl SeatClass {
    /// The class's name (`first`, `second`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its carriages.
    pub fn carriages(&self) -> u32 {
        self.carriages
    }

    /// Seats in each of its carriages.
    pub fn seats_per_carriage(&self) -> u32 {
        self.seats_per_carriage
    }

    /// Its seats (numbered 0.. within the class).
    pub fn seats(&self) -> u32 {
        self.carriages * self.seats_per_carriage
    }

    /// The name of seat `index` of this class: carriage, row and letter,
    /// such as `03-12A`.
    pub fn seat_name(&self, index: u32) -> String {
        let carriage = self.first_carriage + index / self.seats_per_carriage;
        let within = index % self.seats_per_carriage;
        let row = within / ROW_LETTERS.len() as u32 + 1;
        let letter = ROW_LETTERS[(within % ROW_LETTERS.len() as u32) as usize];
        format!("{carriage:02}-{row:02}{letter}")
    }
}

fn station_ok(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 32
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// A run's stations and seat classes; built only valid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrainLayout {
    stations: Vec<String>,
    classes: Vec<SeatClass>,
}

impl TrainLayout {
    /// Stations in route order, and classes as `name:CARRIAGESxSEATS`.
    pub fn new<S: AsRef<str>, C: AsRef<str>>(
        stations: &[S],
        classes: &[C],
    ) -> Result<Self, TrainError> {
        if !(2..=MAX_STATIONS).contains(&stations.len()) {
            return Err(TrainError::StationCount);
        }
        let mut names: Vec<String> = Vec::with_capacity(stations.len());
        for station in stations {
            let station = station.as_ref();
            if !station_ok(station) {
                return Err(TrainError::BadStation(station.to_owned()));
            }
            if names.iter().any(|s| s == station) {
                return Err(TrainError::RepeatedStation(station.to_owned()));
            }
            names.push(station.to_owned());
        }
        if classes.is_empty() {
            return Err(TrainError::NoClass);
        }
        let mut parsed: Vec<SeatClass> = Vec::with_capacity(classes.len());
        let mut next_carriage = 1;
        for spec in classes {
            let spec = spec.as_ref();
            let bad = || TrainError::BadClass(spec.to_owned());
            let (name, shape) = spec.split_once(':').ok_or_else(bad)?;
            let (carriages, seats) = shape.split_once('x').ok_or_else(bad)?;
            let carriages: u32 = carriages.parse().map_err(|_| bad())?;
            let seats_per_carriage: u32 = seats.parse().map_err(|_| bad())?;
            let name_ok = !name.is_empty()
                && name.len() <= 16
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !name_ok || carriages == 0 || seats_per_carriage == 0 {
                return Err(bad());
            }
            if parsed.iter().any(|c| c.name == name) {
                return Err(TrainError::RepeatedClass(name.to_owned()));
            }
            if seats_per_carriage > MAX_SEATS_PER_CARRIAGE
                || next_carriage + carriages - 1 > MAX_CARRIAGES
            {
                return Err(TrainError::TooBig);
            }
            parsed.push(SeatClass {
                name: name.to_owned(),
                carriages,
                seats_per_carriage,
                first_carriage: next_carriage,
            });
            next_carriage += carriages;
        }
        Ok(Self {
            stations: names,
            classes: parsed,
        })
    }

    /// The stations, in route order.
    pub fn stations(&self) -> &[String] {
        &self.stations
    }

    /// The segments between consecutive stations (stations − 1).
    pub fn segments(&self) -> u32 {
        self.stations.len() as u32 - 1
    }

    /// The seat classes, in carriage order.
    pub fn classes(&self) -> &[SeatClass] {
        &self.classes
    }

    /// Every seat of every class.
    pub fn seats(&self) -> u64 {
        self.classes.iter().map(|c| u64::from(c.seats())).sum()
    }

    /// The most seat-segments the run can sell: seats × segments.
    pub fn capacity(&self) -> u64 {
        self.seats() * u64::from(self.segments())
    }

    /// The index of the class called `name`.
    pub fn class_index(&self, name: &str) -> Result<usize, TrainError> {
        (self.classes.iter())
            .position(|c| c.name == name)
            .ok_or_else(|| TrainError::UnknownClass(name.to_owned()))
    }

    /// The leg from station `from` to station `to`, by name.
    pub fn leg(&self, from: &str, to: &str) -> Result<Leg, TrainError> {
        let find = |name: &str| {
            (self.stations.iter())
                .position(|s| s == name)
                .ok_or_else(|| TrainError::UnknownStation(name.to_owned()))
        };
        Leg::new(find(from)?, find(to)?)
    }

    /// One line that gives the layout back through [`TrainLayout::parse`]:
    /// `Beijing,Jinan,Shanghai|first:2x50,second:8x80`.
    pub fn to_wire(&self) -> String {
        let classes: Vec<String> = (self.classes.iter())
            .map(|c| format!("{}:{}x{}", c.name, c.carriages, c.seats_per_carriage))
            .collect();
        format!("{}|{}", self.stations.join(","), classes.join(","))
    }

    /// Reads [`TrainLayout::to_wire`]'s form.
    pub fn parse(wire: &str) -> Result<Self, TrainError> {
        let (stations, classes) = wire
            .split_once('|')
            .ok_or_else(|| TrainError::Malformed(wire.to_owned()))?;
        let stations: Vec<&str> = stations.split(',').collect();
        let classes: Vec<&str> = classes.split(',').collect();
        Self::new(&stations, &classes)
    }

    /// A ticket's seat names.
    pub fn seat_names(&self, ticket: &Ticket) -> Vec<String> {
        match self.classes.get(ticket.class) {
            Some(class) => ticket.seats.iter().map(|&s| class.seat_name(s)).collect(),
            None => Vec::new(),
        }
    }

    /// A ticket's station names.
    pub fn leg_names(&self, leg: Leg) -> (&str, &str) {
        let name = |i: u32| self.stations.get(i as usize).map_or("?", String::as_str);
        (name(leg.from), name(leg.to))
    }
}

/// A stretch of the route: from station `from` to station `to` (`from <
/// to`), covering segments `from..to`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Leg {
    from: u32,
    to: u32,
}

impl Leg {
    /// The leg between station indices `from` and `to`.
    pub fn new(from: usize, to: usize) -> Result<Self, TrainError> {
        if from >= to || to >= MAX_STATIONS {
            return Err(TrainError::Backwards);
        }
        Ok(Self {
            from: from as u32,
            to: to as u32,
        })
    }

    /// The first station's index.
    pub fn from(self) -> u32 {
        self.from
    }

    /// The last station's index.
    pub fn to(self) -> u32 {
        self.to
    }

    /// Its segments as bits: bit `s` for segment `s`.
    pub fn mask(self) -> u64 {
        let upto = if self.to >= 64 {
            u64::MAX
        } else {
            (1u64 << self.to) - 1
        };
        upto & !((1u64 << self.from) - 1)
    }

    /// How many segments it covers.
    pub fn segments(self) -> u32 {
        self.to - self.from
    }

    /// Whether `self` covers every segment of `inner`.
    pub fn covers(self, inner: Leg) -> bool {
        self.from <= inner.from && inner.to <= self.to
    }
}

/// How many travel together on one order: 1 to [`MAX_PASSENGERS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Passengers(u8);

impl Passengers {
    /// One passenger.
    pub const ONE: Self = Self(1);

    /// Validates a count.
    pub fn new(count: u32) -> Result<Self, TrainError> {
        match u8::try_from(count) {
            Ok(n @ 1..=MAX_PASSENGERS) => Ok(Self(n)),
            _ => Err(TrainError::Passengers),
        }
    }

    /// The count.
    pub fn get(self) -> u32 {
        u32::from(self.0)
    }
}

/// What a ticket purchase asks for: a class, a leg and how many seats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SeatRequest {
    /// The class's index in the layout.
    pub class: usize,
    /// From where to where.
    pub leg: Leg,
    /// How many seats, side by side where possible.
    pub passengers: Passengers,
    /// Which seat the traveller would like, where one is free.
    pub preference: SeatPreference,
}

/// The seats one order holds: a class, a leg and seat indices within the
/// class. Its wire form (stream entries, ledger rows, Redis) is
/// `"<class index>/<from>/<to>/<seat>.<seat>…"` (`1/1/3/11.12`: no space
/// or comma, so that it sits in a stat-log field as is), written and read
/// only here.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Ticket {
    /// The class's index in the layout.
    pub class: usize,
    /// From where to where.
    pub leg: Leg,
    /// Seat indices within the class, ascending.
    pub seats: Vec<u32>,
}

impl fmt::Display for Ticket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}/", self.class, self.leg.from, self.leg.to)?;
        for (i, seat) in self.seats.iter().enumerate() {
            if i > 0 {
                f.write_str(".")?;
            }
            write!(f, "{seat}")?;
        }
        Ok(())
    }
}

impl std::str::FromStr for Ticket {
    type Err = TrainError;

    fn from_str(wire: &str) -> Result<Self, TrainError> {
        let bad = || TrainError::Malformed(wire.to_owned());
        let mut parts = wire.split('/');
        let mut number = || -> Result<usize, TrainError> {
            parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)
        };
        let class = number()?;
        let leg = Leg::new(number()?, number()?).map_err(|_| bad())?;
        let seats: Vec<u32> = (parts.next().ok_or_else(bad)?.split('.'))
            .map(|s| s.parse().map_err(|_| bad()))
            .collect::<Result<_, _>>()?;
        if parts.next().is_some() || seats.is_empty() || seats.len() > MAX_PASSENGERS as usize {
            return Err(bad());
        }
        Ok(Self { class, leg, seats })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// G1's four stations, two classes: the layout the train module's tests share.
    pub(super) fn g1() -> TrainLayout {
        TrainLayout::new(
            &["Beijing", "Jinan", "Nanjing", "Shanghai"],
            &["first:2x10", "second:3x8"],
        )
        .unwrap()
    }

    #[test]
    fn a_run_is_on_a_day_the_calendar_has() {
        for day in [
            "2026-02-28",
            "2028-02-29",
            "2000-02-29",
            "2026-04-30",
            "2026-12-31",
        ] {
            assert!(TrainRun::parse("G1", day).is_ok(), "{day}");
        }
        for day in [
            "2026-02-29",
            "2100-02-29",
            "2026-02-30",
            "2026-04-31",
            "2026-13-01",
            "2026-00-10",
        ] {
            assert_eq!(
                TrainRun::parse("G1", day),
                Err(TrainError::BadDate),
                "{day}"
            );
        }
    }

    #[test]
    fn a_run_is_an_event_and_bad_names_are_refused() {
        let run = TrainRun::parse("G1", "2026-12-01").unwrap();
        assert_eq!(run.event().as_str(), "G1_2026-12-01");
        assert_eq!(TrainRun::of_event(&run.event()), Some(run.clone()));
        assert_eq!(
            TrainRun::of_event(&EventId::parse("concert").unwrap()),
            None
        );
        assert_eq!(
            TrainRun::parse("G 1", "2026-12-01"),
            Err(TrainError::BadTrain)
        );
        assert_eq!(
            TrainRun::parse("G1", "2026-13-01"),
            Err(TrainError::BadDate)
        );
        assert_eq!(TrainRun::parse("G1", "26-12-01"), Err(TrainError::BadDate));
    }

    #[test]
    fn layouts_number_carriages_across_classes_and_round_trip() {
        let layout = g1();
        assert_eq!(layout.segments(), 3);
        assert_eq!(layout.seats(), 20 + 24);
        assert_eq!(layout.capacity(), 44 * 3);
        let second = &layout.classes()[1];
        assert_eq!(second.seat_name(0), "03-01A");
        assert_eq!(second.seat_name(4), "03-01F");
        assert_eq!(second.seat_name(5), "03-02A");
        assert_eq!(second.seat_name(8), "04-01A");
        assert_eq!(TrainLayout::parse(&layout.to_wire()), Ok(layout));
        assert_eq!(
            TrainLayout::new(&["A", "A"], &["x:1x1"]),
            Err(TrainError::RepeatedStation("A".into()))
        );
        assert!(TrainLayout::new(&["A", "B"], &["x:1"]).is_err());
        assert!(TrainLayout::new(&["A", "B,C"], &["x:1x1"]).is_err());
        assert!(TrainLayout::new(&["A"], &["x:1x1"]).is_err());
        let many: Vec<String> = (0..65).map(|i| format!("S{i}")).collect();
        assert_eq!(
            TrainLayout::new(&many, &["x:1x1"]),
            Err(TrainError::StationCount)
        );
        assert_eq!(
            TrainLayout::new(&many[..64], &["x:1x1"])
                .unwrap()
                .segments(),
            63
        );
    }

    #[test]
    fn legs_are_masks_of_their_segments() {
        let layout = g1();
        let leg = layout.leg("Jinan", "Shanghai").unwrap();
        assert_eq!(leg.mask(), 0b110);
        assert_eq!(Leg::new(0, 63).unwrap().mask(), u64::MAX >> 1);
        assert_eq!(layout.leg("Shanghai", "Jinan"), Err(TrainError::Backwards));
        assert_eq!(
            layout.leg("Jinan", "Tianjin"),
            Err(TrainError::UnknownStation("Tianjin".into()))
        );
        assert!(leg.covers(Leg::new(2, 3).unwrap()));
        assert!(!leg.covers(Leg::new(0, 2).unwrap()));
    }

    #[test]
    fn tickets_round_trip_their_wire_form() {
        let ticket = Ticket {
            class: 1,
            leg: Leg::new(1, 3).unwrap(),
            seats: vec![11, 12],
        };
        assert_eq!(ticket.to_string(), "1/1/3/11.12");
        assert_eq!("1/1/3/11.12".parse(), Ok(ticket));
        for bad in [
            "",
            "1/3/1/4",
            "1/1/3",
            "1/1/3/",
            "x/1/3/4",
            "1/1/3/1.2.3.4.5.6",
        ] {
            assert!(bad.parse::<Ticket>().is_err(), "{bad:?}");
        }
    }
}
