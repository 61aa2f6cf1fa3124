//! What a node has learnt is sold out on a train run ([`SoldOutMemo`]), so
//! that it refuses such purchases from memory.

use super::{Leg, Passengers, SeatRequest};

/// What a node has learnt is sold out, per class: if no group of `k` seats
/// is free over a leg, none is free over any leg covering it, nor for more
/// passengers. Kept as the smallest such facts; a purchase any of them
/// covers is refused from memory. Cleared at each refresh, when returned
/// seats may have freed what was sold out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SoldOutMemo {
    /// Per class: (leg, passengers, order sequence it was true after).
    facts: Vec<Vec<(Leg, Passengers, u64)>>,
}

impl SoldOutMemo {
    /// An empty memo for `classes` classes.
    pub fn new(classes: usize) -> Self {
        Self {
            facts: vec![Vec::new(); classes],
        }
    }

    /// The order sequence after which some fact covering `request` was
    /// learnt, if one does: the request is sold out.
    pub fn covering(&self, request: &SeatRequest) -> Option<u64> {
        let facts = self.facts.get(request.class)?;
        (facts.iter())
            .find(|(leg, passengers, _)| {
                request.leg.covers(*leg) && *passengers <= request.passengers
            })
            .map(|(_, _, as_of)| *as_of)
    }

    /// Remembers that `request` was sold out after order `as_of`.
    pub fn learn(&mut self, request: &SeatRequest, as_of: u64) {
        if self.covering(request).is_some() {
            return;
        }
        let Some(facts) = self.facts.get_mut(request.class) else {
            return;
        };
        facts.retain(|(leg, passengers, _)| {
            !(leg.covers(request.leg) && request.passengers <= *passengers)
        });
        facts.push((request.leg, request.passengers, as_of));
    }

    /// How many facts it holds.
    pub fn len(&self) -> usize {
        self.facts.iter().map(Vec::len).sum()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_memo_refuses_wider_legs_and_bigger_groups_only() {
        let request = |from, to, n| SeatRequest {
            class: 0,
            leg: Leg::new(from, to).unwrap(),
            passengers: Passengers::new(n).unwrap(),
            preference: crate::train::SeatPreference::ANY,
        };
        let mut memo = SoldOutMemo::new(2);
        memo.learn(&request(1, 2, 2), 7);
        assert_eq!(memo.covering(&request(0, 3, 2)), Some(7));
        assert_eq!(memo.covering(&request(1, 2, 5)), Some(7));
        assert_eq!(memo.covering(&request(1, 2, 1)), None, "one may still fit");
        assert_eq!(memo.covering(&request(2, 3, 2)), None, "another segment");
        let mut other_class = request(1, 2, 2);
        other_class.class = 1;
        assert_eq!(memo.covering(&other_class), None);
        memo.learn(&request(1, 2, 1), 9);
        assert_eq!(memo.len(), 1, "the smaller fact replaces the wider one");
        assert_eq!(memo.covering(&request(0, 2, 3)), Some(9));
    }
}
