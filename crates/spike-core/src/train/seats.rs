//! Which seats of a train run are sold ([`ClassOccupancy`], [`Occupancy`]),
//! and the one rule every central stock applies to pick a purchase's seats
//! ([`ClassOccupancy::find_seats`], with the traveller's [`SeatPreference`]).

use std::sync::Arc;

use super::{Leg, Passengers, SeatClass, TrainError, TrainLayout, MAX_PASSENGERS, ROW_LETTERS};

/// Which seat a traveller would like, as 12306's seat picker offers it:
/// any seat, a window (A or F), an aisle (C or D), or one letter of the
/// row. Kept as a set of the row's letters; its wire form (`lua/ticket.lua`'s
/// argument) is that set as bits, bit `i` for `ROW_LETTERS[i]`, 0 for any.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SeatPreference {
    letters: u8,
}

impl SeatPreference {
    /// No preference.
    pub const ANY: Self = Self { letters: 0 };
    /// A window: A or F.
    pub const WINDOW: Self = Self {
        letters: 1 | 1 << 4,
    };
    /// An aisle: C or D.
    pub const AISLE: Self = Self {
        letters: 1 << 2 | 1 << 3,
    };

    /// Reads `window`, `aisle`, `any` or one letter of the row (`A`).
    pub fn parse(text: &str) -> Result<Self, TrainError> {
        match text {
            "any" | "" => Ok(Self::ANY),
            "window" => Ok(Self::WINDOW),
            "aisle" => Ok(Self::AISLE),
            letter => (ROW_LETTERS.iter())
                .position(|l| letter.len() == 1 && letter.starts_with(*l))
                .map(|i| Self { letters: 1 << i })
                .ok_or_else(|| TrainError::BadSeat(letter.to_owned())),
        }
    }

    /// Its name, as [`SeatPreference::parse`] reads it.
    pub fn name(self) -> String {
        match self {
            Self::ANY => "any".to_owned(),
            Self::WINDOW => "window".to_owned(),
            Self::AISLE => "aisle".to_owned(),
            Self { letters } => (ROW_LETTERS.iter().enumerate())
                .filter(|(i, _)| letters & (1 << i) != 0)
                .map(|(_, l)| *l)
                .collect(),
        }
    }

    /// Whether it is no preference at all.
    pub fn is_any(self) -> bool {
        self.letters == 0
    }

    /// The preferred letters as bits (the wire form; 0 for any).
    pub fn bits(self) -> u8 {
        self.letters
    }

    /// Reads [`SeatPreference::bits`]; `None` for a bit beyond the row.
    pub fn from_bits(letters: u8) -> Option<Self> {
        (letters < 1 << ROW_LETTERS.len()).then_some(Self { letters })
    }

    /// Whether seat `seat` of `class` has a preferred letter.
    pub fn prefers(self, class: &SeatClass, seat: usize) -> bool {
        let per = class.seats_per_carriage() as usize;
        let letter = (seat % per) % ROW_LETTERS.len();
        self.letters & (1 << letter) != 0
    }

    /// Whether `seats` met it: `None` when there was no preference, else
    /// whether one of them has a preferred letter.
    pub fn met_by(self, class: &SeatClass, seats: &[u32]) -> Option<bool> {
        (!self.is_any()).then(|| seats.iter().any(|&s| self.prefers(class, s as usize)))
    }
}

/// Which segments of each seat of one class are sold: one mask per seat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassOccupancy {
    masks: Vec<u64>,
}

impl ClassOccupancy {
    /// A class of `seats` seats, all free.
    pub fn empty(seats: u32) -> Self {
        Self {
            masks: vec![0; seats as usize],
        }
    }

    /// From one bitmap per segment, as Redis keeps them (`SETBIT` order: seat
    /// `i` is bit `7 - i % 8` of byte `i / 8`; missing bytes are free).
    pub fn from_segment_maps(seats: u32, maps: &[Vec<u8>]) -> Self {
        let mut masks = vec![0u64; seats as usize];
        for (segment, map) in maps.iter().enumerate() {
            for (seat, mask) in masks.iter_mut().enumerate() {
                let byte = map.get(seat / 8).copied().unwrap_or(0);
                if byte & (0x80 >> (seat % 8)) != 0 {
                    *mask |= 1 << segment;
                }
            }
        }
        Self { masks }
    }

    /// Each seat's mask.
    pub fn masks(&self) -> &[u64] {
        &self.masks
    }

    fn free(&self, seat: usize, want: u64) -> bool {
        self.masks.get(seat).is_some_and(|m| m & want == 0)
    }

    /// Seats free over all of `leg`.
    pub fn free_seats(&self, leg: Leg) -> u32 {
        let want = leg.mask();
        self.masks.iter().filter(|m| *m & want == 0).count() as u32
    }

    /// The seats a purchase of `passengers` over `leg` gets, or `None` when
    /// no carriage has that many seats free over it. The one rule every
    /// central stock applies (`lua/ticket.lua` is its mirror):
    /// - with a preference, first: the first free seat (one passenger), or
    ///   the first run of free seats side by side in one row (a party),
    ///   that holds a preferred letter; failing that, the usual rule;
    /// - one passenger: the lowest free seat;
    /// - several: the first run of that many free seats side by side in one
    ///   row (carriages, then rows, then letters in order); failing that,
    ///   the lowest free seats of the first carriage with enough of them.
    ///
    /// "First run" means the run that ends first in that order.
    pub fn find_seats(
        &self,
        class: &SeatClass,
        leg: Leg,
        passengers: Passengers,
        preference: SeatPreference,
    ) -> Option<Vec<u32>> {
        let want = leg.mask();
        let k = passengers.get() as usize;
        if !preference.is_any() {
            let preferred = |first: usize| (first..first + k).any(|s| preference.prefers(class, s));
            if let Some(seats) = self.side_by_side(class, want, k, preferred) {
                return Some(seats);
            }
        }
        if k == 1 {
            return (0..self.masks.len())
                .find(|&s| self.free(s, want))
                .map(|s| vec![s as u32]);
        }
        if let Some(seats) = self.side_by_side(class, want, k, |_| true) {
            return Some(seats);
        }
        let per = class.seats_per_carriage as usize;
        for carriage in 0..class.carriages as usize {
            let base = carriage * per;
            let free: Vec<u32> = (base..base + per)
                .filter(|&s| self.free(s, want))
                .take(k)
                .map(|s| s as u32)
                .collect();
            if free.len() == k {
                return Some(free);
            }
        }
        None
    }

    /// The first run of `k` seats free over `want`, side by side in one row,
    /// that `accept` takes (given the run's first seat), scanning carriages,
    /// rows and letters in order and looking at each run where it ends.
    fn side_by_side(
        &self,
        class: &SeatClass,
        want: u64,
        k: usize,
        accept: impl Fn(usize) -> bool,
    ) -> Option<Vec<u32>> {
        let per = class.seats_per_carriage as usize;
        let width = ROW_LETTERS.len();
        for carriage in 0..class.carriages as usize {
            let base = carriage * per;
            for row_start in (0..per).step_by(width) {
                let row_end = (row_start + width).min(per);
                let mut run = 0;
                for within in row_start..row_end {
                    run = if self.free(base + within, want) {
                        run + 1
                    } else {
                        0
                    };
                    let first = (base + within + 1).saturating_sub(k);
                    if run >= k && accept(first) {
                        return Some((first..first + k).map(|s| s as u32).collect());
                    }
                }
            }
        }
        None
    }
    /// Whether every seat of `seats` is free over `leg`.
    pub fn all_free(&self, seats: &[u32], leg: Leg) -> bool {
        seats.iter().all(|&s| self.free(s as usize, leg.mask()))
    }

    /// For parties of 2 to [`MAX_PASSENGERS`] over `leg`: how many could
    /// sit side by side in a row at once (each row's runs of free seats,
    /// cut into groups of that size). Parties who accept seats apart in one
    /// carriage (`find_seats`' fallback) may find more.
    pub fn side_by_side_groups(&self, class: &SeatClass, leg: Leg) -> [u32; PARTY_SIZES] {
        let want = leg.mask();
        let per = class.seats_per_carriage as usize;
        let width = ROW_LETTERS.len();
        let mut groups = [0u32; PARTY_SIZES];
        let mut count = |run: usize| {
            for (i, groups) in groups.iter_mut().enumerate() {
                *groups += (run / (i + 2)) as u32;
            }
        };
        for carriage in 0..class.carriages as usize {
            let base = carriage * per;
            for row_start in (0..per).step_by(width) {
                let mut run = 0;
                for within in row_start..(row_start + width).min(per) {
                    if self.free(base + within, want) {
                        run += 1;
                    } else {
                        count(run);
                        run = 0;
                    }
                }
                count(run);
            }
        }
        groups
    }

    /// Marks `seats` sold over `leg`.
    pub fn take(&mut self, seats: &[u32], leg: Leg) {
        for &seat in seats {
            if let Some(mask) = self.masks.get_mut(seat as usize) {
                *mask |= leg.mask();
            }
        }
    }

    /// Marks `seats` free over `leg` again.
    pub fn give_back(&mut self, seats: &[u32], leg: Leg) {
        for &seat in seats {
            if let Some(mask) = self.masks.get_mut(seat as usize) {
                *mask &= !leg.mask();
            }
        }
    }

    /// Seat-segments sold.
    pub fn sold_segments(&self) -> u64 {
        self.masks.iter().map(|m| u64::from(m.count_ones())).sum()
    }
}

/// What one leg has free, per class.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegAvailability {
    /// The leg.
    pub leg: Leg,
    /// Per class, seats free over it (for one passenger each).
    pub free: Vec<u32>,
    /// Per class, for parties of 2, 3, 4 and 5: how many such parties
    /// could sit side by side in a row at once.
    pub parties: Vec<[u32; PARTY_SIZES]>,
}

/// How many party sizes availability counts: 2 to [`MAX_PASSENGERS`].
pub const PARTY_SIZES: usize = MAX_PASSENGERS as usize - 1;

/// A whole run's occupancy: one [`ClassOccupancy`] per class, as central
/// stock held it after order `as_of`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Occupancy {
    /// The layout it is about.
    pub layout: Arc<TrainLayout>,
    /// Per class, in the layout's order.
    pub classes: Vec<ClassOccupancy>,
    /// The last order sequence handed out when it was read.
    pub as_of: u64,
}

impl Occupancy {
    /// Every seat free.
    pub fn empty(layout: Arc<TrainLayout>) -> Self {
        let classes = (layout.classes().iter())
            .map(|c| ClassOccupancy::empty(c.seats()))
            .collect();
        Self {
            layout,
            classes,
            as_of: 0,
        }
    }

    /// Seats free per class, for every station pair `(from, to)`; and per
    /// class, for parties of 2 to [`MAX_PASSENGERS`], how many could sit
    /// side by side at once ([`ClassOccupancy::side_by_side_groups`]).
    pub fn availability(&self) -> Vec<LegAvailability> {
        let stations = self.layout.stations().len();
        let mut pairs = Vec::with_capacity(stations * (stations - 1) / 2);
        for from in 0..stations {
            for to in from + 1..stations {
                let Ok(leg) = Leg::new(from, to) else {
                    continue;
                };
                let free = self.classes.iter().map(|c| c.free_seats(leg)).collect();
                let parties = (self.layout.classes().iter())
                    .zip(&self.classes)
                    .map(|(shape, held)| held.side_by_side_groups(shape, leg))
                    .collect();
                pairs.push(LegAvailability { leg, free, parties });
            }
        }
        pairs
    }

    /// Seat-segments sold, over every class.
    pub fn sold_segments(&self) -> u64 {
        self.classes.iter().map(ClassOccupancy::sold_segments).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::g1;
    use super::*;

    #[test]
    fn a_seat_sold_part_of_the_way_is_free_for_the_rest() {
        let layout = g1();
        let first = &layout.classes()[0];
        let mut occupancy = ClassOccupancy::empty(first.seats());
        let beijing_nanjing = layout.leg("Beijing", "Nanjing").unwrap();
        let seats = occupancy
            .find_seats(first, beijing_nanjing, Passengers::ONE, SeatPreference::ANY)
            .unwrap();
        assert_eq!(seats, [0]);
        occupancy.take(&seats, beijing_nanjing);
        let onwards = layout.leg("Nanjing", "Shanghai").unwrap();
        assert_eq!(
            occupancy
                .find_seats(first, onwards, Passengers::ONE, SeatPreference::ANY)
                .unwrap(),
            [0]
        );
        let jinan_shanghai = layout.leg("Jinan", "Shanghai").unwrap();
        assert_eq!(
            occupancy
                .find_seats(first, jinan_shanghai, Passengers::ONE, SeatPreference::ANY)
                .unwrap(),
            [1]
        );
        occupancy.give_back(&seats, beijing_nanjing);
        assert_eq!(occupancy.sold_segments(), 0);
    }

    #[test]
    fn a_group_sits_side_by_side_or_at_least_in_one_carriage() {
        let layout = TrainLayout::new(&["A", "B"], &["c:2x10"]).unwrap();
        let class = &layout.classes()[0];
        let leg = Leg::new(0, 1).unwrap();
        let three = Passengers::new(3).unwrap();
        let mut occupancy = ClassOccupancy::empty(class.seats());
        // Row 1 of carriage 1 has A, B free then C taken: no run of three.
        occupancy.take(&[2], leg);
        assert_eq!(
            occupancy
                .find_seats(class, leg, three, SeatPreference::ANY)
                .unwrap(),
            [5, 6, 7]
        );
        // Break every row of three in carriage 1 and 2: scattered in carriage 1.
        for row in 0..4 {
            occupancy.take(&[row * 5 + 2], leg);
        }
        occupancy.take(&[12, 17], leg);
        let scattered = occupancy
            .find_seats(class, leg, three, SeatPreference::ANY)
            .unwrap();
        assert_eq!(scattered, [0, 1, 3]);
        // No carriage with five free: refused, though ten seats are free.
        let five = Passengers::new(5).unwrap();
        occupancy.take(&[0, 1, 3, 5, 6, 10, 11, 13, 14], leg);
        assert!(occupancy.free_seats(leg) >= 5);
        assert_eq!(
            occupancy.find_seats(class, leg, five, SeatPreference::ANY),
            None
        );
    }

    #[test]
    fn a_preference_is_met_where_a_seat_is_free_and_falls_back_otherwise() {
        let layout = TrainLayout::new(&["A", "B"], &["c:2x10"]).unwrap();
        let class = &layout.classes()[0];
        let leg = Leg::new(0, 1).unwrap();
        let find = |held: &ClassOccupancy, n, preference| {
            held.find_seats(class, leg, Passengers::new(n).unwrap(), preference)
                .unwrap()
        };
        let mut held = ClassOccupancy::empty(class.seats());
        let aisle = SeatPreference::parse("aisle").unwrap();
        let f = SeatPreference::parse("F").unwrap();
        assert_eq!(find(&held, 1, SeatPreference::WINDOW), [0], "A is a window");
        assert_eq!(find(&held, 1, aisle), [2]);
        assert_eq!(find(&held, 1, f), [4]);
        assert_eq!(
            find(&held, 2, aisle),
            [1, 2],
            "the first pair holding C or D"
        );
        assert_eq!(find(&held, 2, f), [3, 4]);
        // Every window taken: the usual rule, and the preference not met.
        for seat in [0, 4, 5, 9, 10, 14, 15, 19] {
            held.take(&[seat], leg);
        }
        let seats = find(&held, 1, SeatPreference::WINDOW);
        assert_eq!(seats, [1]);
        assert_eq!(SeatPreference::WINDOW.met_by(class, &seats), Some(false));
        assert_eq!(SeatPreference::ANY.met_by(class, &seats), None);
        assert_eq!(aisle.met_by(class, &[2]), Some(true));
        // The second carriage's letters start again at A.
        assert!(SeatPreference::WINDOW.prefers(class, 10));
        for text in ["window", "aisle", "any", "A", "B", "C", "D", "F"] {
            assert_eq!(SeatPreference::parse(text).unwrap().name(), text);
        }
        for bad in ["E", "a", "AB", "middle"] {
            assert!(SeatPreference::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(SeatPreference::WINDOW.bits(), 0b10001);
    }

    #[test]
    fn availability_counts_groups_side_by_side_per_row() {
        let layout = TrainLayout::new(&["A", "B"], &["c:1x7"]).unwrap();
        let class = &layout.classes()[0];
        let leg = Leg::new(0, 1).unwrap();
        let mut held = ClassOccupancy::empty(class.seats());
        // Rows of 5 and 2: A B C D F | A B.
        assert_eq!(held.side_by_side_groups(class, leg), [3, 1, 1, 1]);
        held.take(&[2], leg); // C: row 1 is A B _ D F
        assert_eq!(held.side_by_side_groups(class, leg), [3, 0, 0, 0]);
        let table = Occupancy {
            layout: std::sync::Arc::new(layout.clone()),
            classes: vec![held],
            as_of: 1,
        }
        .availability();
        assert_eq!(table[0].free, [6]);
        assert_eq!(table[0].parties, [[3, 0, 0, 0]]);
    }

    #[test]
    fn segment_maps_read_as_masks() {
        // Seat 0 and seat 9 sold on segment 1; seat 3 on segment 0.
        let maps = vec![vec![0b0001_0000, 0], vec![0b1000_0000, 0b0100_0000]];
        let occupancy = ClassOccupancy::from_segment_maps(10, &maps);
        assert_eq!(occupancy.masks()[0], 0b10);
        assert_eq!(occupancy.masks()[3], 0b01);
        assert_eq!(occupancy.masks()[9], 0b10);
        assert_eq!(occupancy.sold_segments(), 3);
    }
}
