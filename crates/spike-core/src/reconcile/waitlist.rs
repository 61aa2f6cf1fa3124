//! The audit's checks of a train run's waitlist: every fill is an order of
//! its traveller, made by the placement's request, on the seats it waited
//! for; no order fills two entries; and no waiting entry could be served by
//! the seats central stock holds free (the invariant every step of central
//! stock keeps: see the fill rule in `crate::train`'s waitlist module).

use std::collections::{HashMap, HashSet};

use super::AuditLine;
use crate::ids::{OrderId, RequestId, UserId};
use crate::order::Order;
use crate::order_stream::StreamEntry;
use crate::train::{Occupancy, Ticket, WaitEntry, WaitState};

/// An order as the fill check needs it, from the ledger or the stream.
struct Made<'a> {
    user: Option<&'a UserId>,
    request: &'a RequestId,
    ticket: Option<&'a Ticket>,
}

/// The waitlist's lines, for `waitlist` against the orders (ledger and
/// unwritten stream entries) and central's `occupancy`, at `now_ms`.
pub(super) fn waitlist_lines(
    waitlist: &[WaitEntry],
    orders: &[Order],
    stream: &[StreamEntry],
    occupancy: &Occupancy,
    now_ms: u64,
) -> Vec<AuditLine> {
    let made: HashMap<&OrderId, Made<'_>> = (orders.iter())
        .map(|o| {
            let made = Made {
                user: o.user.as_ref(),
                request: &o.request,
                ticket: o.ticket.as_ref(),
            };
            (&o.id, made)
        })
        .chain(stream.iter().map(|e| {
            let made = Made {
                user: e.user.as_ref(),
                request: &e.request,
                ticket: e.ticket.as_ref(),
            };
            (&e.order, made)
        }))
        .collect();
    let (mut filled, mut waiting, mut unmatched, mut serveable) = (0, 0, 0, 0);
    let mut fills: HashSet<&OrderId> = HashSet::new();
    let mut filled_twice = 0;
    for entry in waitlist {
        match &entry.state {
            WaitState::Filled { order } => {
                filled += 1;
                if !fills.insert(order) {
                    filled_twice += 1;
                }
                let matches = made.get(order).is_some_and(|made| {
                    made.user == Some(&entry.user)
                        && *made.request == entry.request
                        && made.ticket.is_some_and(|ticket| {
                            ticket.class == entry.seats.class && ticket.leg == entry.seats.leg
                        })
                });
                if !matches {
                    unmatched += 1;
                }
            }
            WaitState::Waiting if entry.waits_at(now_ms) => {
                waiting += 1;
                let seats = entry.seats;
                let free = (occupancy.layout.classes().get(seats.class))
                    .zip(occupancy.classes.get(seats.class))
                    .and_then(|(shape, held)| {
                        held.find_seats(shape, seats.leg, seats.passengers, seats.preference)
                    });
                if free.is_some() {
                    serveable += 1;
                }
            }
            _ => {}
        }
    }
    vec![
        AuditLine::figure("waitlist orders placed", waitlist.len() as u64),
        AuditLine::figure("waitlist orders waiting", waiting),
        AuditLine::figure("waitlist orders filled", filled),
        AuditLine::check("waitlist fills that are not their order", unmatched, 0),
        AuditLine::check("orders that filled two waitlist orders", filled_twice, 0),
        AuditLine::check(
            "waiting waitlist orders the free seats could serve",
            serveable,
            0,
        ),
    ]
}

/// The waitlist a recovery restores: `central`'s entries where it kept
/// them, else the ledger's `mirrored` ones, by place; and a waiting entry
/// whose request bought an order among `orders` or `stream` (a fill the
/// mirror had not caught) is restored as filled by it.
pub fn restored_waitlist(
    central: &[WaitEntry],
    mirrored: &[WaitEntry],
    orders: &[Order],
    stream: &[StreamEntry],
) -> Vec<WaitEntry> {
    let mut by_place: std::collections::BTreeMap<u64, WaitEntry> =
        mirrored.iter().map(|e| (e.place, e.clone())).collect();
    by_place.extend(central.iter().map(|e| (e.place, e.clone())));
    let bought: HashMap<(&RequestId, Option<&UserId>), &OrderId> = (orders.iter())
        .map(|o| ((&o.request, o.user.as_ref()), &o.id))
        .chain(
            stream
                .iter()
                .map(|e| ((&e.request, e.user.as_ref()), &e.order)),
        )
        .collect();
    let mut entries: Vec<WaitEntry> = by_place.into_values().collect();
    for entry in &mut entries {
        if entry.state != WaitState::Waiting {
            continue;
        }
        if let Some(order) = bought.get(&(&entry.request, Some(&entry.user))) {
            entry.state = WaitState::Filled {
                order: (*order).clone(),
            };
        }
    }
    entries
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::ids::{EventId, NodeId};
    use crate::train::{Leg, Passengers, SeatPreference, SeatRequest, TrainLayout};

    fn entry(place: u64, user: &str, state: WaitState) -> WaitEntry {
        WaitEntry {
            place,
            user: UserId::parse(user).unwrap(),
            request: RequestId::parse(format!("w-{user}")).unwrap(),
            node: NodeId::parse("n").unwrap(),
            seats: SeatRequest {
                class: 0,
                leg: Leg::new(0, 1).unwrap(),
                passengers: Passengers::ONE,
                preference: SeatPreference::ANY,
            },
            placed_at_ms: 1,
            deadline_ms: 10_000,
            state,
        }
    }

    fn fill_entry(order: &OrderId, user: &str, request: &str) -> StreamEntry {
        StreamEntry {
            sequence: 1,
            order: order.clone(),
            user: Some(UserId::parse(user).unwrap()),
            request: RequestId::parse(request).unwrap(),
            node: NodeId::parse("n").unwrap(),
            sold_at_ms: 1,
            ticket: Some("0/0/1/0".parse().unwrap()),
        }
    }

    fn failed(lines: &[AuditLine]) -> Vec<&str> {
        lines
            .iter()
            .filter(|l| l.failed())
            .map(|l| l.name.as_str())
            .collect()
    }

    #[test]
    fn fills_must_be_their_orders_once_and_no_waiting_order_may_be_serveable() {
        let layout = Arc::new(TrainLayout::new(&["A", "B"], &["c:1x1"]).unwrap());
        let mut full = Occupancy::empty(Arc::clone(&layout));
        full.classes[0].take(&[0], Leg::new(0, 1).unwrap());
        let order = OrderId::for_sequence(&EventId::parse("G1").unwrap(), 1);
        let filled = entry(
            1,
            "ann",
            WaitState::Filled {
                order: order.clone(),
            },
        );
        let waiting = entry(2, "bob", WaitState::Waiting);
        let good = [fill_entry(&order, "ann", "w-ann")];
        let lines = waitlist_lines(&[filled.clone(), waiting.clone()], &[], &good, &full, 5);
        assert_eq!(failed(&lines), Vec::<&str>::new());

        let stranger = [fill_entry(&order, "ann", "someone-else")];
        let lines = waitlist_lines(std::slice::from_ref(&filled), &[], &stranger, &full, 5);
        assert_eq!(failed(&lines), ["waitlist fills that are not their order"]);
        let twice = entry(
            3,
            "cat",
            WaitState::Filled {
                order: order.clone(),
            },
        );
        let lines = waitlist_lines(&[filled, twice], &[], &good, &full, 5);
        assert!(failed(&lines).contains(&"orders that filled two waitlist orders"));

        let free = Occupancy::empty(layout);
        let lines = waitlist_lines(std::slice::from_ref(&waiting), &[], &[], &free, 5);
        assert_eq!(
            failed(&lines),
            ["waiting waitlist orders the free seats could serve"]
        );
        let lines = waitlist_lines(&[waiting], &[], &[], &free, 10_000);
        assert_eq!(
            failed(&lines),
            Vec::<&str>::new(),
            "past its deadline it no longer waits"
        );
    }
}
