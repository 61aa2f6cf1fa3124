//! The conformance cases of a train run's waitlist: placing (one waiting
//! entry per traveller, only when sold out), the fill rule when seats come
//! back (oldest first, a party that does not fit does not block), deadlines,
//! superseded entries, and withdrawing.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test suite: a panic is a failed case

use super::trains::{buy_seats, create_train, g1, occupancy, seats_of, ticket_purchase};
use super::*;
use crate::train::{WaitEntry, WaitJoin, WaitRequest, WaitState};

/// Now, in Unix milliseconds.
fn now_ms() -> u64 {
    crate::time::unix_millis(SystemTime::now())
}

/// `user`'s waitlist request for `passengers` over `(from, to)` of class
/// 0, waiting an hour.
fn wait_request(
    event: &EventId,
    user: &str,
    request: &str,
    leg: (usize, usize),
    passengers: u32,
) -> WaitRequest {
    let ticket = ticket_purchase(event, user, request, leg, passengers);
    WaitRequest {
        event: event.clone(),
        user: UserId::parse(user).expect("user"),
        request: ticket.purchase.request,
        node: ticket.purchase.node,
        seats: ticket.seats,
        deadline_ms: now_ms() + 3_600_000,
    }
}

async fn join<C: CentralStock>(central: &C, request: &WaitRequest) -> WaitJoin {
    central.join_waitlist(request).await.expect("join waitlist")
}

/// The entry and place of a placed request, or a panic naming the answer.
fn placed(join: WaitJoin) -> (WaitEntry, u64) {
    match join {
        WaitJoin::Placed { entry, ahead } => (entry, ahead),
        other => panic!("expected a placed entry, got {other:?}"),
    }
}

async fn state_of<C: CentralStock>(central: &C, event: &EventId, user: &str) -> WaitState {
    let user = UserId::parse(user).expect("user");
    let status = central.waitlist_status(event, &user).await.expect("status");
    status.expect("an entry").entry.state
}

/// Gives back the order `reply` sold to `request` for `user`; returns how
/// many waitlist entries it filled.
async fn give_back<C: CentralStock>(
    central: &C,
    event: &EventId,
    reply: &TicketReply,
    user: &str,
    request: &str,
) -> u64 {
    let order = order_of(&reply.verdict);
    let user = UserId::parse(user).expect("user");
    let request = RequestId::parse(request).expect("request");
    match central.release(event, &order, Some(&user), &request).await {
        Ok(Release::Released { filled, .. }) => filled,
        other => panic!("expected a release, got {other:?}"),
    }
}

/// Conformance case: see its name. Three seats, all sold Beijing →
/// Shanghai; a party of two, then two travellers on shorter legs, wait.
/// One seat back serves both short legs (they share no segment) and not
/// the party, which waits on without blocking them.
pub async fn a_returned_seat_goes_to_the_oldest_waiting_requests_it_can_serve<
    C: CentralStock + OrderStream,
>(
    central: &C,
    prefix: &str,
) {
    let event = event(prefix, "waitlist");
    create_train(central, &event, g1(&["second:1x3"])).await;
    let mut sold = Vec::new();
    for i in 0..3 {
        let user = format!("u{i}");
        let request = format!("r{i}");
        let ticket = ticket_purchase(&event, &user, &request, (0, 3), 1);
        sold.push(buy_seats(central, &ticket).await);
    }
    assert_eq!(
        seats_of(&sold[2]),
        [2],
        "the run is full from Beijing to Shanghai"
    );

    // A first traveller waits, then withdraws.
    let (early, _) = placed(join(central, &wait_request(&event, "early", "w0", (0, 3), 1)).await);
    assert_eq!(early.place, 1);
    let withdrawn = central.leave_waitlist(&event, &early.user).await.unwrap();
    assert_eq!(withdrawn.map(|e| e.state), Some(WaitState::Withdrawn));

    let (party, ahead) =
        placed(join(central, &wait_request(&event, "party", "w1", (0, 3), 2)).await);
    assert_eq!(
        (party.place, ahead),
        (2, 0),
        "the withdrawn entry held place 1"
    );
    assert_eq!(party.state, WaitState::Waiting);
    let (middle, ahead) =
        placed(join(central, &wait_request(&event, "mid", "w2", (1, 2), 1)).await);
    assert_eq!((middle.place, ahead), (3, 1));
    let (short, ahead) =
        placed(join(central, &wait_request(&event, "short", "w3", (0, 1), 1)).await);
    assert_eq!((short.place, ahead), (4, 2));

    // One waiting entry per traveller; the same request id finds it again.
    let again = join(central, &wait_request(&event, "mid", "w2", (1, 2), 1)).await;
    assert_eq!(placed(again).0, middle);
    let other = join(central, &wait_request(&event, "mid", "w9", (0, 3), 1)).await;
    assert!(
        matches!(other, WaitJoin::AlreadyWaiting { ref entry, ahead: 1 } if *entry == middle),
        "{other:?}"
    );
    // A traveller at the per-user limit, and a request id that bought.
    let holder = join(central, &wait_request(&event, "u0", "w4", (0, 3), 1)).await;
    assert_eq!(
        holder,
        WaitJoin::LimitReached {
            order: order_of(&sold[0].verdict)
        }
    );
    let taken = join(central, &wait_request(&event, "someone", "r1", (0, 3), 1)).await;
    assert_eq!(taken, WaitJoin::RequestIdTaken);

    // Seat 0 comes back: the party cannot use one seat; mid and short can.
    let filled = give_back(central, &event, &sold[0], "u0", "r0").await;
    assert_eq!(filled, 2);
    assert_eq!(state_of(central, &event, "party").await, WaitState::Waiting);
    let entries = central.waitlist(&event).await.unwrap();
    let states: Vec<&str> = entries.iter().map(|e| e.state.name()).collect();
    assert_eq!(states, ["withdrawn", "waiting", "filled", "filled"]);
    // Each fill is an order, sold to the entry's request, with seat 0.
    let stream = central.unacknowledged(&event).await.unwrap();
    for entry in &entries[2..] {
        let WaitState::Filled { order } = &entry.state else {
            unreachable!("filled")
        };
        let sale = (stream.iter())
            .find(|sale| sale.order == *order)
            .expect("the fill's stream entry");
        assert_eq!(sale.user.as_ref(), Some(&entry.user));
        assert_eq!(sale.request, entry.request);
        let ticket = sale.ticket.as_ref().expect("a ticket");
        assert_eq!(
            (ticket.leg, ticket.seats.as_slice()),
            (entry.seats.leg, &[0][..])
        );
        let record = central
            .request_record(&event, &entry.request)
            .await
            .unwrap()
            .expect("the request bought the order");
        assert_eq!(record.order, *order);
    }
    let held = occupancy(central, &event).await;
    assert_eq!(held.classes[0].masks(), [0b011, 0b111, 0b111]);

    // Seat 1 back: still no two seats for the party; it goes on sale.
    assert_eq!(give_back(central, &event, &sold[1], "u1", "r1").await, 0);
    let buyer = buy_seats(central, &ticket_purchase(&event, "late", "r5", (0, 3), 1)).await;
    assert_eq!(seats_of(&buyer), [1]);

    // The party withdraws; then nothing of theirs waits.
    let party_user = UserId::parse("party").unwrap();
    let withdrawn = central.leave_waitlist(&event, &party_user).await.unwrap();
    assert_eq!(withdrawn.map(|e| e.state), Some(WaitState::Withdrawn));
    assert_eq!(
        central.leave_waitlist(&event, &party_user).await.unwrap(),
        None
    );
    let status = central.waitlist_status(&event, &party_user).await.unwrap();
    assert_eq!(
        status.map(|s| (s.entry.state, s.ahead)),
        Some((WaitState::Withdrawn, 0))
    );
    let nobody = UserId::parse("nobody").unwrap();
    assert_eq!(
        central.waitlist_status(&event, &nobody).await.unwrap(),
        None
    );
}

/// Conformance case: see its name.
pub async fn only_a_sold_out_request_waits_and_only_on_a_train_run<C: CentralStock>(
    central: &C,
    prefix: &str,
) {
    let event = event(prefix, "bookable");
    create_train(central, &event, g1(&["second:1x2"])).await;
    let half = buy_seats(central, &ticket_purchase(&event, "a", "r0", (0, 2), 1)).await;
    assert_eq!(seats_of(&half), [0]);
    assert_eq!(
        join(central, &wait_request(&event, "b", "w0", (0, 3), 1)).await,
        WaitJoin::Bookable,
        "seat 1 is free"
    );
    assert_eq!(
        join(central, &wait_request(&event, "b", "w1", (2, 3), 1)).await,
        WaitJoin::Bookable,
        "seat 0 is free after Nanjing"
    );
    assert_eq!(central.waitlist(&event).await.unwrap(), []);
    let mut beyond = wait_request(&event, "b", "w2", (0, 3), 1);
    beyond.seats.class = 3;
    assert_eq!(join(central, &beyond).await, WaitJoin::NoSuchSale);
    let counter = event.clone();
    let plain = EventId::parse(format!("{counter}-plain")).unwrap();
    create(central, &plain, SaleConfig::new(3).unwrap()).await;
    let mut on_counter = wait_request(&plain, "b", "w3", (0, 1), 1);
    on_counter.event = plain.clone();
    assert_eq!(join(central, &on_counter).await, WaitJoin::NoSuchSale);
    let missing = EventId::parse(format!("{counter}-missing")).unwrap();
    let mut nowhere = wait_request(&missing, "b", "w4", (0, 1), 1);
    nowhere.event = missing;
    assert_eq!(join(central, &nowhere).await, WaitJoin::NoSuchSale);
}

/// Conformance case: see its name. An entry past its deadline expires
/// when seats come back, and one whose traveller bought elsewhere in the
/// meantime is superseded: the seat goes to the next entry.
pub async fn expired_and_superseded_entries_are_passed_over<C: CentralStock>(
    central: &C,
    prefix: &str,
) {
    let event = event(prefix, "lapsed");
    create_train(central, &event, g1(&["second:1x1", "first:1x1"])).await;
    let first = buy_seats(central, &ticket_purchase(&event, "a", "r0", (0, 3), 1)).await;
    assert_eq!(seats_of(&first), [0]);
    let mut hurried = wait_request(&event, "hurried", "w0", (0, 3), 1);
    hurried.deadline_ms = now_ms() + 300;
    placed(join(central, &hurried).await);
    placed(join(central, &wait_request(&event, "switcher", "w1", (0, 3), 1)).await);
    placed(join(central, &wait_request(&event, "patient", "w2", (0, 3), 1)).await);
    // The switcher buys a first-class seat instead (one order per traveller).
    let mut elsewhere = ticket_purchase(&event, "switcher", "r1", (0, 3), 1);
    elsewhere.seats.class = 1;
    assert_eq!(seats_of(&buy_seats(central, &elsewhere).await), [0]);
    tokio::time::sleep(Duration::from_millis(400)).await;
    let hurried_user = UserId::parse("hurried").unwrap();
    let status = central
        .waitlist_status(&event, &hurried_user)
        .await
        .unwrap();
    assert_eq!(
        status.map(|s| s.entry.state),
        Some(WaitState::Expired),
        "past its deadline, it reads as expired"
    );

    assert_eq!(give_back(central, &event, &first, "a", "r0").await, 1);
    let states: Vec<WaitState> = (central.waitlist(&event).await.unwrap().into_iter())
        .map(|entry| entry.state)
        .collect();
    assert!(
        matches!(
            states.as_slice(),
            [
                WaitState::Expired,
                WaitState::Superseded,
                WaitState::Filled { .. }
            ]
        ),
        "{states:?}"
    );
    // An expired traveller may wait again.
    hurried.request = RequestId::parse("w3").unwrap();
    hurried.deadline_ms = now_ms() + 60_000;
    let (entry, ahead) = placed(join(central, &hurried).await);
    assert_eq!((entry.place, ahead), (4, 0));
}

/// Conformance case: see its name. A run restored with its waitlist keeps
/// every entry where it stood and places on after them; a refill then
/// fills, oldest first, what the restored free seats can serve.
pub async fn a_restored_waitlist_stands_as_it_was_and_a_refill_fills_it<
    C: CentralStock + OrderStream,
>(
    central: &C,
    prefix: &str,
) {
    let event = event(prefix, "restored-waitlist");
    let layout = g1(&["second:1x2"]);
    create_train(central, &event, layout.clone()).await;
    let first = buy_seats(central, &ticket_purchase(&event, "a", "r0", (0, 3), 1)).await;
    let second = buy_seats(central, &ticket_purchase(&event, "b", "r1", (0, 3), 1)).await;
    let (party, _) = placed(join(central, &wait_request(&event, "party", "w0", (0, 3), 2)).await);
    let (single, _) = placed(join(central, &wait_request(&event, "one", "w1", (0, 3), 1)).await);
    let (gone, _) = placed(join(central, &wait_request(&event, "gone", "w2", (0, 3), 1)).await);
    let gone_user = gone.user.clone();
    central.leave_waitlist(&event, &gone_user).await.unwrap();
    let entries = central.waitlist(&event).await.unwrap();

    // Rebuilt as if the ledger held only the first order: seat 1 is free.
    let holding = vec![Holding {
        order: order_of(&first.verdict),
        user: Some(UserId::parse("a").unwrap()),
        request: RequestId::parse("r0").unwrap(),
        ticket: first.ticket.clone(),
    }];
    let config = SaleConfig::for_train(layout).expect("train config");
    let restoration = Restoration {
        config,
        last_sequence: 2,
        holding,
        released: vec![order_of(&second.verdict)],
        waitlist: entries.clone(),
        operator_log: Vec::new(),
    };
    central.restore(&event, &restoration).await.unwrap();
    assert_eq!(
        central.waitlist(&event).await.unwrap(),
        entries,
        "as it was"
    );
    let status = central.waitlist_status(&event, &party.user).await.unwrap();
    assert_eq!(
        status.map(|s| (s.entry.place, s.ahead)),
        Some((party.place, 0))
    );

    assert_eq!(central.refill_waitlist(&event).await.unwrap(), 1);
    let states: Vec<&str> = (central.waitlist(&event).await.unwrap().iter())
        .map(|e| e.state.name())
        .collect();
    assert_eq!(
        states,
        ["waiting", "filled", "withdrawn"],
        "one seat: the single, not the party"
    );
    assert_eq!(single.place, 2);
    let filled = central
        .request_record(&event, &single.request)
        .await
        .unwrap();
    assert_eq!(
        filled.map(|r| r.order),
        Some(OrderId::for_sequence(&event, 3))
    );
    let (next, _) = placed(join(central, &wait_request(&event, "late", "w3", (0, 3), 1)).await);
    assert_eq!(next.place, 4, "places continue after the restored ones");
    assert_eq!(
        central.refill_waitlist(&event).await.unwrap(),
        0,
        "nothing more to fill"
    );
}

/// What a step of the recorded sequence answered, without its times.
#[derive(Debug, PartialEq, Eq)]
enum Step {
    Bought(Verdict, Option<crate::train::Ticket>),
    Joined(String, u64, u64),
    Released(Release),
    Left(Option<u64>),
}

/// An entry without its times (placed and deadline), to compare backends.
fn timeless(entry: &WaitEntry) -> (u64, String, String, WaitState) {
    let seats = entry.seats;
    let what = format!(
        "{}/{:?}/{}/{}",
        seats.class,
        seats.leg,
        seats.passengers.get(),
        seats.preference.bits()
    );
    (
        entry.place,
        entry.user.to_string(),
        what,
        entry.state.clone(),
    )
}

/// Conformance case: see its name. A recorded sequence of 400 steps
/// (purchases of random legs, parties and preferences, waitlist
/// placements and withdrawals, releases of random held orders as cancels,
/// refunds and expiries make them) gives every answer, the seats and the
/// waitlist's fills exactly as the embedded central stock gives them.
pub async fn a_recorded_sequence_gives_the_same_seats_and_fills_as_embedded<C: CentralStock>(
    central: &C,
    prefix: &str,
) {
    let event = event(prefix, "recorded");
    let stations = ["A", "B", "C", "D", "E", "F"];
    let layout = TrainLayout::new(&stations, &["second:2x7", "first:1x3"]).expect("layout");
    let model = crate::MemoryCentral::new();
    create_train(central, &event, layout.clone()).await;
    create_train(&model, &event, layout).await;
    let mut dice: u64 = 0x0012_3060_0000_0025;
    let mut roll = |n: u64| {
        dice ^= dice << 13;
        dice ^= dice >> 7;
        dice ^= dice << 17;
        dice % n
    };
    let deadline = now_ms() + 3_600_000;
    let mut held: Vec<(OrderId, String, String)> = Vec::new();
    let (mut fills, mut steps) = (0, Vec::new());
    for i in 0..400 {
        let user = format!("u{}", roll(60));
        let from = roll(5) as usize;
        let to = from + 1 + roll((5 - from) as u64) as usize;
        let passengers = 1 + roll(3) as u32;
        let mut ticket = ticket_purchase(&event, &user, &format!("r{i}"), (from, to), passengers);
        ticket.seats.class = roll(2) as usize;
        ticket.seats.preference = [SeatPreference::ANY, SeatPreference::WINDOW][roll(2) as usize];
        let (ours, theirs) = match roll(10) {
            0..=4 => {
                let (a, b) = (
                    buy_seats(central, &ticket).await,
                    buy_seats(&model, &ticket).await,
                );
                if let Verdict::Sold { order, .. } = &a.verdict {
                    held.push((order.clone(), user.clone(), format!("r{i}")));
                }
                (
                    Step::Bought(a.verdict, a.ticket),
                    Step::Bought(b.verdict, b.ticket),
                )
            }
            5..=7 => {
                let mut wait =
                    wait_request(&event, &user, &format!("w{i}"), (from, to), passengers);
                wait.seats = ticket.seats;
                wait.deadline_ms = deadline;
                let joined = |join: WaitJoin| match join {
                    WaitJoin::Placed { entry, ahead } => {
                        Step::Joined("placed".into(), entry.place, ahead)
                    }
                    WaitJoin::AlreadyWaiting { entry, ahead } => {
                        Step::Joined("waiting".into(), entry.place, ahead)
                    }
                    other => Step::Joined(format!("{other:?}"), 0, 0),
                };
                (
                    joined(join(central, &wait).await),
                    joined(join(&model, &wait).await),
                )
            }
            8 if !held.is_empty() => {
                let (order, user, request) = held.swap_remove(roll(held.len() as u64) as usize);
                let user = UserId::parse(user).expect("user");
                let request = RequestId::parse(request).expect("request");
                let a = central
                    .release(&event, &order, Some(&user), &request)
                    .await
                    .unwrap();
                let b = model
                    .release(&event, &order, Some(&user), &request)
                    .await
                    .unwrap();
                if let Release::Released { filled, .. } = a {
                    fills += filled;
                }
                (Step::Released(a), Step::Released(b))
            }
            _ => {
                let user = UserId::parse(user).expect("user");
                let a = central.leave_waitlist(&event, &user).await.unwrap();
                let b = model.leave_waitlist(&event, &user).await.unwrap();
                (
                    Step::Left(a.map(|e| e.place)),
                    Step::Left(b.map(|e| e.place)),
                )
            }
        };
        assert_eq!(ours, theirs, "step {i}");
        steps.push(ours);
    }
    let placed = steps
        .iter()
        .filter(|s| matches!(s, Step::Joined(how, ..) if how == "placed"))
        .count();
    assert!(
        fills > 5 && placed > 20,
        "{fills} fills of {placed} placed: the sequence exercised the waitlist"
    );
    assert_eq!(
        occupancy(central, &event).await.classes,
        occupancy(&model, &event).await.classes
    );
    let ours: Vec<_> = central
        .waitlist(&event)
        .await
        .unwrap()
        .iter()
        .map(timeless)
        .collect();
    let theirs: Vec<_> = model
        .waitlist(&event)
        .await
        .unwrap()
        .iter()
        .map(timeless)
        .collect();
    assert_eq!(ours, theirs);
}
