//! The train property: random sequences of purchases, cancellations and
//! expiries on random routes, against embedded central stock (which the
//! conformance suite holds to the same answers as Redis). After every step:
//! no seat-segment is held by two orders, central's bits are exactly the
//! held orders' seats, a group sits in one carriage (side by side whenever
//! a row allows it), and a purchase is refused only when no carriage has
//! enough seats free over its leg.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use proptest::prelude::*;
use spike_core::{
    CentralStock, ClassOccupancy, EventId, Leg, NodeId, OrderId, Passengers, Purchase, RequestId,
    SaleConfig, SeatClass, SeatPreference, SeatRequest, Ticket, TicketPurchase, TrainLayout,
    UserId, Verdict,
};

/// One step of a sale.
#[derive(Debug, Clone)]
enum Step {
    /// Someone buys `passengers` seats of `class` between two stations.
    Buy {
        class: usize,
        from: usize,
        to: usize,
        passengers: u32,
    },
    /// The `nth` held order (modulo how many there are) is cancelled or
    /// expires: central stock gets its seats back.
    GiveBack { nth: usize },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (0..2usize, 0..8usize, 0..8usize, 1..=5u32).prop_map(|(class, a, b, passengers)| {
            Step::Buy { class, from: a.min(b), to: a.max(b) + 1, passengers }
        }),
        1 => any::<usize>().prop_map(|nth| Step::GiveBack { nth }),
    ]
}

fn layout() -> impl Strategy<Value = TrainLayout> {
    (
        2..=9usize,
        prop::collection::vec((1..=3u32, 1..=12u32), 1..=2),
    )
        .prop_map(|(stations, classes)| {
            let names: Vec<String> = (0..stations).map(|i| format!("S{i}")).collect();
            let specs: Vec<String> = (classes.iter().enumerate())
                .map(|(i, (carriages, seats))| format!("c{i}:{carriages}x{seats}"))
                .collect();
            TrainLayout::new(&names, &specs).expect("a valid layout")
        })
}

/// Whether some carriage of `class` has `k` seats free over `leg`, and
/// whether some row has `k` of them side by side.
fn room_for(held: &ClassOccupancy, class: &SeatClass, leg: Leg, k: usize) -> (bool, bool) {
    let per = class.seats_per_carriage() as usize;
    let free = |seat: usize| held.masks()[seat] & leg.mask() == 0;
    let mut in_carriage = false;
    let mut in_row = false;
    for carriage in 0..class.carriages() as usize {
        let seats: Vec<usize> = (carriage * per..(carriage + 1) * per).collect();
        in_carriage |= seats.iter().filter(|&&s| free(s)).count() >= k;
        for row in seats.chunks(spike_core::train::ROW_LETTERS.len()) {
            in_row |= row.windows(k).any(|w| w.iter().all(|&s| free(s)));
        }
    }
    (in_carriage, in_row)
}

fn side_by_side(class: &SeatClass, seats: &[u32]) -> bool {
    let width = spike_core::train::ROW_LETTERS.len() as u32;
    let per = class.seats_per_carriage();
    let row = |s: u32| (s / per, s % per / width);
    seats
        .windows(2)
        .all(|w| w[1] == w[0] + 1 && row(w[0]) == row(w[1]))
}

fn run(layout: TrainLayout, steps: Vec<Step>) -> Result<(), TestCaseError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    runtime.block_on(async move {
        let central = spike_core::MemoryCentral::new();
        let event = EventId::parse("prop").unwrap();
        let config = SaleConfig::for_train(layout.clone()).unwrap();
        central.create_sale(&event, &config, true).await.unwrap();
        let mut held: Vec<(OrderId, UserId, RequestId, Ticket)> = Vec::new();
        for (i, step) in steps.into_iter().enumerate() {
            let before = central.occupancy(&event).await.unwrap().unwrap();
            match step {
                Step::Buy {
                    class,
                    from,
                    to,
                    passengers,
                } => {
                    let stations = layout.stations().len();
                    let (from, to) = (from % (stations - 1), to.min(stations - 1));
                    let (class, Ok(leg)) = (class % layout.classes().len(), Leg::new(from, to))
                    else {
                        continue;
                    };
                    let user = UserId::parse(format!("u{i}")).unwrap();
                    let request = RequestId::parse(format!("r{i}")).unwrap();
                    let purchase = TicketPurchase {
                        purchase: Purchase {
                            event: event.clone(),
                            user: Some(user.clone()),
                            request: request.clone(),
                            node: NodeId::parse("n").unwrap(),
                            admission: None,
                        },
                        seats: SeatRequest {
                            class,
                            leg,
                            passengers: Passengers::new(passengers).unwrap(),
                            preference: SeatPreference::ANY,
                        },
                        replacing: None,
                    };
                    let reply = central.buy_seats(&purchase).await.unwrap();
                    let shape = &layout.classes()[class];
                    let k = passengers as usize;
                    let (in_carriage, in_row) = room_for(&before.classes[class], shape, leg, k);
                    match (reply.verdict, reply.ticket) {
                        (Verdict::Sold { order, .. }, Some(ticket)) => {
                            prop_assert!(in_carriage, "sold with no room");
                            prop_assert_eq!(ticket.seats.len(), k);
                            let per = shape.seats_per_carriage();
                            let carriage = ticket.seats[0] / per;
                            prop_assert!(ticket.seats.iter().all(|s| s / per == carriage));
                            if in_row {
                                prop_assert!(side_by_side(shape, &ticket.seats), "{:?}", ticket);
                            }
                            held.push((order, user, request, ticket));
                        }
                        (Verdict::SoldOut, None) => {
                            prop_assert!(!in_carriage, "refused though a carriage had room");
                        }
                        other => prop_assert!(false, "unexpected {:?}", other),
                    }
                }
                Step::GiveBack { nth } => {
                    if held.is_empty() {
                        continue;
                    }
                    let (order, user, request, _) = held.remove(nth % held.len());
                    let released = central
                        .release(&event, &order, Some(&user), &request)
                        .await
                        .unwrap();
                    let given_back = matches!(released, spike_core::Release::Released { .. });
                    prop_assert!(given_back, "{:?}", released);
                }
            }
            // No seat-segment held twice; central's bits are the held seats.
            let after = central.occupancy(&event).await.unwrap().unwrap();
            let mut rebuilt: Vec<ClassOccupancy> = (layout.classes().iter())
                .map(|c| ClassOccupancy::empty(c.seats()))
                .collect();
            for (_, _, _, ticket) in &held {
                let class = &mut rebuilt[ticket.class];
                prop_assert!(class.all_free(&ticket.seats, ticket.leg), "held twice");
                class.take(&ticket.seats, ticket.leg);
            }
            prop_assert_eq!(&rebuilt, &after.classes);
        }
        Ok(())
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn no_seat_segment_is_ever_held_twice(
        layout in layout(),
        steps in prop::collection::vec(step(), 1..120),
    ) {
        run(layout, steps)?;
    }
}
