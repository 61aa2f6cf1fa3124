//! The conformance cases of train runs: seats on route segments, parties
//! kept together, replays and the per-user limit, releases, restores, and
//! the one seat rule under concurrency.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test suite: a panic is a failed case

use super::*;

/// G1's four stations, with one class of `classes` (such as `"second:1x3"`).
pub(super) fn g1(classes: &[&str]) -> TrainLayout {
    TrainLayout::new(&["Beijing", "Jinan", "Nanjing", "Shanghai"], classes).expect("layout")
}

pub(super) async fn create_train<C: CentralStock>(
    central: &C,
    event: &EventId,
    layout: TrainLayout,
) {
    let config = SaleConfig::for_train(layout).expect("train config");
    create(central, event, config).await;
}

pub(super) fn ticket_purchase(
    event: &EventId,
    user: &str,
    request: &str,
    (from, to): (usize, usize),
    passengers: u32,
) -> TicketPurchase {
    TicketPurchase {
        purchase: purchase(event, Some(user), request),
        seats: SeatRequest {
            class: 0,
            leg: Leg::new(from, to).expect("leg"),
            passengers: Passengers::new(passengers).expect("passengers"),
            preference: SeatPreference::ANY,
        },
        replacing: None,
    }
}

pub(super) async fn buy_seats<C: CentralStock>(
    central: &C,
    purchase: &TicketPurchase,
) -> TicketReply {
    central.buy_seats(purchase).await.expect("buy seats")
}

/// The seats a reply sold, or a panic naming what it got.
pub(super) fn seats_of(reply: &TicketReply) -> Vec<u32> {
    match (&reply.verdict, &reply.ticket) {
        (Verdict::Sold { .. }, Some(ticket)) => ticket.seats.clone(),
        other => panic!("expected seats, got {other:?}"),
    }
}

pub(super) async fn occupancy<C: CentralStock>(central: &C, event: &EventId) -> Occupancy {
    central
        .occupancy(event)
        .await
        .expect("occupancy")
        .expect("a train run")
}

/// Conformance case: see its name.
pub async fn a_train_sells_seats_per_segment<C: CentralStock + OrderStream>(
    central: &C,
    prefix: &str,
) {
    let event = event(prefix, "train");
    create_train(central, &event, g1(&["second:1x2"])).await;
    let beijing_nanjing = buy_seats(central, &ticket_purchase(&event, "u1", "r1", (0, 2), 1)).await;
    assert_eq!(seats_of(&beijing_nanjing), [0]);
    // Seat 0 is still free from Nanjing on.
    let onwards = buy_seats(central, &ticket_purchase(&event, "u2", "r2", (2, 3), 1)).await;
    assert_eq!(seats_of(&onwards), [0]);
    let jinan_shanghai = buy_seats(central, &ticket_purchase(&event, "u3", "r3", (1, 3), 1)).await;
    assert_eq!(seats_of(&jinan_shanghai), [1]);
    // Jinan → Nanjing is now held on both seats; Beijing → Jinan is not.
    let refused = buy_seats(central, &ticket_purchase(&event, "u4", "r4", (1, 2), 1)).await;
    assert_eq!((refused.verdict, refused.ticket), (Verdict::SoldOut, None));
    assert_eq!(refused.as_of, 3, "sold out after the third order");
    let wider = buy_seats(central, &ticket_purchase(&event, "u5", "r5", (0, 3), 1)).await;
    assert_eq!(wider.verdict, Verdict::SoldOut);
    let short = buy_seats(central, &ticket_purchase(&event, "u6", "r6", (0, 1), 1)).await;
    assert_eq!(seats_of(&short), [1]);
    let held = occupancy(central, &event).await;
    assert_eq!(held.classes[0].masks(), [0b111, 0b111]);
    assert_eq!(held.as_of, 4);
    let entries = central.unacknowledged(&event).await.expect("stream");
    let tickets: Vec<String> = (entries.iter())
        .map(|e| e.ticket.as_ref().expect("a ticket").to_string())
        .collect();
    assert_eq!(tickets, ["0/0/2/0", "0/2/3/0", "0/1/3/1", "0/0/1/1"]);
    assert_eq!(sold(central, &event).await, 4, "sold counts orders");
}

/// Conformance case: see its name.
pub async fn a_group_sits_together_or_is_refused<C: CentralStock>(central: &C, prefix: &str) {
    let event = event(prefix, "group");
    // Two carriages of 7 seats: rows A-F and a short second row A-B.
    create_train(central, &event, g1(&["second:2x7"])).await;
    let one = buy_seats(central, &ticket_purchase(&event, "u1", "r1", (0, 3), 1)).await;
    assert_eq!(seats_of(&one), [0]);
    let three = buy_seats(central, &ticket_purchase(&event, "u2", "r2", (0, 3), 3)).await;
    assert_eq!(seats_of(&three), [1, 2, 3], "side by side in row 1");
    let two = buy_seats(central, &ticket_purchase(&event, "u3", "r3", (0, 3), 2)).await;
    assert_eq!(seats_of(&two), [5, 6], "row 1 has one seat left: row 2");
    let four = buy_seats(central, &ticket_purchase(&event, "u4", "r4", (0, 3), 4)).await;
    assert_eq!(seats_of(&four), [7, 8, 9, 10], "carriage 2, row 1");
    // Carriage 1 has seat 4 free, carriage 2 seats 11, 12, 13: three
    // free seats, but not side by side, in carriage 2.
    let scattered = buy_seats(central, &ticket_purchase(&event, "u5", "r5", (0, 3), 3)).await;
    assert_eq!(
        seats_of(&scattered),
        [11, 12, 13],
        "one carriage, not one row"
    );
    let too_many = buy_seats(central, &ticket_purchase(&event, "u6", "r6", (0, 3), 2)).await;
    assert_eq!(
        too_many.verdict,
        Verdict::SoldOut,
        "one free seat per carriage"
    );
    let alone = buy_seats(central, &ticket_purchase(&event, "u7", "r7", (0, 3), 1)).await;
    assert_eq!(seats_of(&alone), [4]);
}

/// Conformance case: see its name.
pub async fn a_ticket_replays_and_keeps_the_per_user_limit<C: CentralStock>(
    central: &C,
    prefix: &str,
) {
    let event = event(prefix, "ticket-replay");
    create_train(central, &event, g1(&["second:1x5"])).await;
    let first = buy_seats(central, &ticket_purchase(&event, "ann", "ra", (0, 2), 2)).await;
    let order = order_of(&first.verdict);
    assert_eq!(seats_of(&first), [0, 1]);
    let replay = buy_seats(central, &ticket_purchase(&event, "ann", "ra", (0, 2), 2)).await;
    assert_eq!(
        replay.verdict,
        Verdict::Sold {
            order: order.clone(),
            replayed: true
        }
    );
    assert_eq!(replay.ticket, first.ticket, "the same seats again");
    let again = buy_seats(central, &ticket_purchase(&event, "ann", "ra2", (2, 3), 1)).await;
    assert_eq!(again.verdict, Verdict::AlreadyPurchased { order });
    let stolen = buy_seats(central, &ticket_purchase(&event, "ben", "ra", (2, 3), 1)).await;
    assert_eq!(stolen.verdict, Verdict::RequestIdTaken);
    assert_eq!(
        occupancy(central, &event).await.classes[0].sold_segments(),
        4
    );
    let nobody = TicketPurchase {
        purchase: purchase(&event, None, "rn"),
        ..ticket_purchase(&event, "x", "rn", (0, 1), 1)
    };
    assert_eq!(
        buy_seats(central, &nobody).await.verdict,
        Verdict::UserRequired
    );
}

/// Conformance case: see its name.
pub async fn releasing_a_ticket_clears_exactly_its_bits<C: CentralStock>(
    central: &C,
    prefix: &str,
) {
    let event = event(prefix, "ticket-release");
    create_train(central, &event, g1(&["second:1x3"])).await;
    let kept = buy_seats(central, &ticket_purchase(&event, "u1", "r1", (0, 2), 1)).await;
    assert_eq!(seats_of(&kept), [0]);
    let given_back = buy_seats(central, &ticket_purchase(&event, "u2", "r2", (1, 3), 2)).await;
    assert_eq!(seats_of(&given_back), [1, 2]);
    let masks = |o: Occupancy| o.classes[0].masks().to_vec();
    assert_eq!(
        masks(occupancy(central, &event).await),
        [0b011, 0b110, 0b110]
    );
    let order = order_of(&given_back.verdict);
    let (u2, r2) = (
        UserId::parse("u2").expect("id"),
        RequestId::parse("r2").expect("id"),
    );
    let released = central
        .release(&event, &order, Some(&u2), &r2)
        .await
        .expect("release");
    assert!(matches!(released, Release::Released { .. }), "{released:?}");
    assert_eq!(
        masks(occupancy(central, &event).await),
        [0b011, 0, 0],
        "only its bits"
    );
    let again = central
        .release(&event, &order, Some(&u2), &r2)
        .await
        .expect("release");
    assert_eq!(again, Release::AlreadyReleased);
    assert_eq!(
        masks(occupancy(central, &event).await),
        [0b011, 0, 0],
        "once"
    );
    let resold = buy_seats(central, &ticket_purchase(&event, "u3", "r3", (0, 3), 2)).await;
    assert_eq!(seats_of(&resold), [1, 2]);
    assert_eq!(
        masks(occupancy(central, &event).await),
        [0b011, 0b111, 0b111]
    );
}

/// Conformance case: see its name.
pub async fn a_train_sells_only_seats_and_a_sale_no_seats<C: CentralStock>(
    central: &C,
    prefix: &str,
) {
    let train = event(prefix, "only-seats");
    create_train(central, &train, g1(&["second:1x3"])).await;
    let plain = central
        .buy(&purchase(&train, Some("u1"), "r1"))
        .await
        .expect("buy");
    assert_eq!(
        plain.verdict,
        Verdict::NoSuchSale,
        "a train sells only seats"
    );
    let sale = event(prefix, "no-seats");
    create(central, &sale, SaleConfig::new(3).expect("config")).await;
    let seats = buy_seats(central, &ticket_purchase(&sale, "u1", "r1", (0, 1), 1)).await;
    assert_eq!((seats.verdict, seats.ticket), (Verdict::NoSuchSale, None));
    assert_eq!(central.occupancy(&sale).await.expect("read"), None);
    let missing = event(prefix, "no-train");
    assert_eq!(central.occupancy(&missing).await.expect("read"), None);
    let seats = buy_seats(central, &ticket_purchase(&missing, "u1", "r1", (0, 1), 1)).await;
    assert_eq!(seats.verdict, Verdict::NoSuchSale);
    assert_eq!(sold(central, &train).await + sold(central, &sale).await, 0);
}

/// Conformance case: see its name.
pub async fn restore_rebuilds_a_trains_seats<C: CentralStock>(central: &C, prefix: &str) {
    let event = event(prefix, "train-restore");
    let layout = g1(&["second:1x3"]);
    let config = SaleConfig::for_train(layout).expect("config");
    create(central, &event, config.clone()).await;
    let held = |sequence: u64, user: &str, ticket: &str| Holding {
        order: OrderId::for_sequence(&event, sequence),
        user: Some(UserId::parse(user).expect("id")),
        request: RequestId::parse(format!("r{sequence}")).expect("id"),
        ticket: Some(ticket.parse::<Ticket>().expect("ticket")),
    };
    let restoration = Restoration {
        config,
        last_sequence: 9,
        holding: vec![held(2, "a", "0/0/2/0"), held(5, "b", "0/1/3/1.2")],
        released: vec![OrderId::for_sequence(&event, 3)],
        waitlist: Vec::new(),
        operator_log: Vec::new(),
    };
    central
        .restore(&event, &restoration)
        .await
        .expect("restore");
    let seats = occupancy(central, &event).await;
    assert_eq!(seats.classes[0].masks(), [0b011, 0b110, 0b110]);
    let next = buy_seats(central, &ticket_purchase(&event, "c", "rc", (1, 2), 1)).await;
    assert_eq!(next.verdict, Verdict::SoldOut);
    let next = buy_seats(central, &ticket_purchase(&event, "c", "rc", (2, 3), 1)).await;
    assert_eq!(seats_of(&next), [0]);
    assert_eq!(order_of(&next.verdict), OrderId::for_sequence(&event, 10));
    // The restored order gives back exactly its bits.
    let (b, r5) = (
        UserId::parse("b").expect("id"),
        RequestId::parse("r5").expect("id"),
    );
    let order = OrderId::for_sequence(&event, 5);
    central
        .release(&event, &order, Some(&b), &r5)
        .await
        .expect("release");
    let seats = occupancy(central, &event).await;
    assert_eq!(seats.classes[0].masks(), [0b111, 0, 0]);
}

/// Conformance case: see its name. 400 purchases of random legs, parties
/// and seat preferences on carriages of 23 seats (rows of 5, 5, 5, 5 and 3;
/// carriages that start mid-byte in Redis's maps): every seat central
/// stock picks is the one `ClassOccupancy::find_seats` picks, and every
/// refusal is its refusal.
pub async fn every_seat_choice_is_the_one_rule_over_a_long_random_sale<C: CentralStock>(
    central: &C,
    prefix: &str,
) {
    let event = event(prefix, "one-rule");
    let stations = ["A", "B", "C", "D", "E", "F", "G", "H"];
    let layout = TrainLayout::new(&stations, &["second:3x23"]).expect("layout");
    let class = layout.classes()[0].clone();
    create_train(central, &event, layout).await;
    let mut expected = crate::train::ClassOccupancy::empty(class.seats());
    let mut dice: u64 = 0x1230_6000_0000_0001;
    let mut roll = |n: u64| {
        dice ^= dice << 13;
        dice ^= dice >> 7;
        dice ^= dice << 17;
        dice % n
    };
    let (mut sold, mut refused) = (0, 0);
    for i in 0..400 {
        let from = roll(7) as usize;
        let to = from + 1 + roll((7 - from) as u64) as usize;
        let passengers = 1 + roll(5) as u32;
        let preference = ["any", "any", "window", "aisle", "A", "B", "D", "F"][roll(8) as usize];
        let mut request = ticket_purchase(
            &event,
            &format!("u{i}"),
            &format!("r{i}"),
            (from, to),
            passengers,
        );
        request.seats.preference = SeatPreference::parse(preference).expect("a preference");
        let reply = buy_seats(central, &request).await;
        let leg = request.seats.leg;
        let seats = request.seats;
        match expected.find_seats(&class, leg, seats.passengers, seats.preference) {
            Some(seats) => {
                assert_eq!(
                    seats_of(&reply),
                    seats,
                    "purchase {i}: {leg:?} ×{passengers}, seat {preference}"
                );
                expected.take(&seats, leg);
                sold += 1;
            }
            None => {
                assert_eq!(
                    reply.verdict,
                    Verdict::SoldOut,
                    "purchase {i}: {leg:?} ×{passengers}"
                );
                refused += 1;
            }
        }
    }
    assert!(sold > 50 && refused > 50, "{sold} sold, {refused} refused");
    assert_eq!(occupancy(central, &event).await.classes, [expected]);
}

/// Conformance case: see its name.
pub async fn concurrent_ticket_buyers_never_share_a_seat_segment<C: CentralStock + Clone>(
    central: &C,
    prefix: &str,
) {
    let event = event(prefix, "train-crowd");
    create_train(central, &event, g1(&["first:1x5", "second:2x5"])).await;
    let mut tasks = Vec::new();
    for i in 0..300u32 {
        let central = central.clone();
        let from = (i % 3) as usize;
        let to = from + 1 + (i / 3 % (3 - from as u32)) as usize;
        let mut purchase = ticket_purchase(
            &event,
            &format!("u{i}"),
            &format!("r{i}"),
            (from, to),
            1 + i % 3,
        );
        purchase.seats.class = (i % 2) as usize;
        tasks.push(tokio::spawn(async move {
            (
                purchase.seats,
                central.buy_seats(&purchase).await.expect("buy"),
            )
        }));
    }
    let mut replies = Vec::new();
    for task in tasks {
        replies.push(task.await.expect("task"));
    }
    let held = occupancy(central, &event).await;
    let mut rebuilt = Occupancy::empty(std::sync::Arc::clone(&held.layout));
    for (request, reply) in &replies {
        let Some(ticket) = &reply.ticket else {
            assert_eq!(reply.verdict, Verdict::SoldOut);
            continue;
        };
        assert_eq!(ticket.seats.len() as u32, request.passengers.get());
        let class = &mut rebuilt.classes[ticket.class];
        assert!(
            class.all_free(&ticket.seats, ticket.leg),
            "a seat-segment sold twice"
        );
        class.take(&ticket.seats, ticket.leg);
    }
    assert_eq!(
        rebuilt.classes, held.classes,
        "central's bits are the orders' seats"
    );
    let sold = sold(central, &event).await;
    assert_eq!(
        sold,
        replies.iter().filter(|(_, r)| r.ticket.is_some()).count() as u64
    );
}

/// Conformance case: see its name. A change's new ticket on the same run
/// is bought while the old one is still held: the per-user limit does not
/// count the order it replaces (and only that one).
pub async fn a_change_is_not_held_to_the_limit_by_the_order_it_replaces<C: CentralStock>(
    central: &C,
    prefix: &str,
) {
    let event = event(prefix, "replacing");
    create_train(central, &event, g1(&["second:1x4"])).await;
    let held = buy_seats(central, &ticket_purchase(&event, "ann", "r0", (0, 1), 1)).await;
    let old = order_of(&held.verdict);
    let mut change = ticket_purchase(&event, "ann", "change-r0", (0, 3), 1);
    let limited = buy_seats(central, &change).await;
    assert_eq!(
        limited.verdict,
        Verdict::AlreadyPurchased { order: old.clone() }
    );
    let other = buy_seats(central, &ticket_purchase(&event, "bob", "r1", (0, 1), 1)).await;
    change.replacing = Some(order_of(&other.verdict));
    let not_hers = buy_seats(central, &change).await;
    assert_eq!(
        not_hers.verdict,
        Verdict::AlreadyPurchased { order: old.clone() },
        "another buyer's order exempts nothing"
    );
    change.replacing = Some(old);
    let bought = buy_seats(central, &change).await;
    assert_eq!(seats_of(&bought), [2], "seats 0 and 1 are held from A");
}

/// A verdict with its order named by sequence only (two runs' order ids
/// differ by their event).
fn by_sequence(verdict: &Verdict) -> String {
    let sequence = |order: &OrderId| order.split().map_or(0, |(_, sequence)| sequence);
    match verdict {
        Verdict::Sold { order, replayed } => format!("sold {} {replayed}", sequence(order)),
        Verdict::AlreadyPurchased { order } => format!("held {}", sequence(order)),
        other => format!("{other:?}"),
    }
}

/// Conformance case: see its name. 300 seat purchases (random legs,
/// classes, parties and preferences; buyers who come back, request ids
/// sent twice) go to one run in batches of 1 to 40 and to a twin run one by
/// one: every reply, every seat and the occupancy are the same.
pub async fn batched_and_single_seat_purchases_agree<C: CentralStock>(central: &C, prefix: &str) {
    let batched = event(prefix, "seats-batched");
    let single = event(prefix, "seats-single");
    let stations = ["A", "B", "C", "D", "E"];
    let layout = TrainLayout::new(&stations, &["second:2x12", "first:1x5"]).expect("layout");
    create_train(central, &batched, layout.clone()).await;
    create_train(central, &single, layout).await;
    let mut dice: u64 = 0x0012_3060_0000_0b47;
    let mut roll = |n: u64| {
        dice ^= dice << 13;
        dice ^= dice >> 7;
        dice ^= dice << 17;
        dice % n
    };
    let mut purchases = Vec::new();
    for i in 0..300 {
        let from = roll(4) as usize;
        let to = from + 1 + roll((4 - from) as u64) as usize;
        let request = match roll(10) {
            0 if i > 0 => format!("r{}", roll(i)),
            _ => format!("r{i}"),
        };
        let user = format!("u{}", roll(200));
        let mut ticket = ticket_purchase(&batched, &user, &request, (from, to), 1 + roll(3) as u32);
        ticket.seats.class = roll(2) as usize;
        ticket.seats.preference = [SeatPreference::ANY, SeatPreference::AISLE][roll(2) as usize];
        purchases.push(ticket);
    }
    let mut replies = Vec::new();
    let mut rest = purchases.as_slice();
    while !rest.is_empty() {
        let size = (1 + roll(40) as usize).min(rest.len());
        let (now, later) = rest.split_at(size);
        let mut batch = TicketBatch::new(now[0].clone());
        for ticket in &now[1..] {
            batch.push(ticket.clone()).expect("one run, at most 40");
        }
        let answered = central.buy_seats_many(&batch).await.expect("a batch");
        assert_eq!(answered.len(), size);
        replies.extend(answered);
        rest = later;
    }
    let mut sold = 0;
    for (i, (ticket, reply)) in purchases.iter().zip(&replies).enumerate() {
        let mut alone = ticket.clone();
        alone.purchase.event = single.clone();
        let expected = buy_seats(central, &alone).await;
        assert_eq!(
            by_sequence(&reply.verdict),
            by_sequence(&expected.verdict),
            "purchase {i}"
        );
        assert_eq!(reply.ticket, expected.ticket, "purchase {i}");
        sold += usize::from(matches!(
            reply.verdict,
            Verdict::Sold {
                replayed: false,
                ..
            }
        ));
    }
    assert!(sold > 25, "{sold} sold");
    let (ours, theirs) = (
        occupancy(central, &batched).await,
        occupancy(central, &single).await,
    );
    assert_eq!(ours.classes, theirs.classes);
    assert_eq!(ours.as_of, theirs.as_of);
    let missing = event(prefix, "seats-missing");
    let mut nowhere = purchases[0].clone();
    nowhere.purchase.event = missing;
    let refused = central
        .buy_seats_many(&TicketBatch::new(nowhere))
        .await
        .expect("a batch");
    assert_eq!(refused[0].verdict, Verdict::NoSuchSale);
}
