//! The ledger's contract, run on both backends: SQLite (embedded) and a real
//! PostgreSQL database.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failure

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use spike_core::order::{OrderState, Refusal, Transition};
use spike_core::time::unix_millis;
use spike_core::{EventId, NodeId, OrderId, RequestId, SaleConfig, StreamEntry, UserId};
use spike_orders::{Moved, OrderLedger};
use spike_testkit::TestDatabase;

fn entry(event: &EventId, sequence: u64, sold_at_ms: u64) -> StreamEntry {
    StreamEntry {
        sequence,
        order: OrderId::for_sequence(event, sequence),
        user: Some(UserId::parse(format!("u{sequence}")).unwrap()),
        request: RequestId::parse(format!("r{sequence}")).unwrap(),
        node: NodeId::parse("n1").unwrap(),
        sold_at_ms,
        ticket: None,
    }
}

fn now() -> u64 {
    unix_millis(SystemTime::now())
}

#[tokio::test]
async fn inserts_are_idempotent_and_reused_ids_are_refused() {
    for database in TestDatabase::both() {
        let ledger = OrderLedger::connect(database.url()).await.unwrap();
        let event = EventId::parse("L1").unwrap();
        let batch: Vec<_> = (1..=5).map(|s| entry(&event, s, now())).collect();
        let window = Duration::from_secs(60);
        let first = ledger.insert(&batch, window, now()).await.unwrap();
        assert_eq!((first.written, first.replayed), (5, 0));
        let again = ledger.insert(&batch, window, now()).await.unwrap();
        assert_eq!(
            (again.written, again.replayed),
            (0, 5),
            "a replay changes nothing"
        );
        let mut impostor = entry(&event, 3, now());
        impostor.request = RequestId::parse("someone-else").unwrap();
        let clash = ledger.insert(&[impostor], window, now()).await.unwrap();
        assert_eq!(clash.conflicts, [OrderId::for_sequence(&event, 3)]);
        let counts = ledger.counts(&event).await.unwrap();
        assert_eq!(counts.reserved, 5);
        let order = ledger.order(&batch[2].order).await.unwrap().unwrap();
        assert_eq!(
            order.request.as_str(),
            "r3",
            "the first sale keeps its order"
        );
        assert_eq!(order.expires_at_ms, order.sold_at_ms + 60_000);
        let user = UserId::parse("u2").unwrap();
        let mine = ledger.orders_of_user(&user, 10).await.unwrap();
        assert_eq!(
            mine.iter().map(|o| o.id.clone()).collect::<Vec<_>>(),
            [batch[1].order.clone()]
        );
        let config = SaleConfig::new(9).unwrap();
        ledger.record_sale(&event, &config).await.unwrap();
        assert_eq!(ledger.sale(&event).await.unwrap(), Some(config));
    }
}

#[tokio::test]
async fn every_field_survives_the_bulk_insert() {
    // PostgreSQL writes through UNNEST of array literals: braces, the word
    // NULL, non-ASCII text and a missing buyer must all come back as sent.
    for database in TestDatabase::both() {
        let ledger = OrderLedger::connect(database.url()).await.unwrap();
        let event = EventId::parse("L-bulk.1").unwrap();
        let users = [Some("{a;b}"), Some("NULL"), Some("Zoë'"), None, Some("x}{")];
        let sold_at = now();
        let batch: Vec<StreamEntry> = (users.iter().enumerate())
            .map(|(i, user)| StreamEntry {
                user: user.map(|u| UserId::parse(u).unwrap()),
                request: RequestId::parse(format!("req:{i}")).unwrap(),
                // Every other order is a train ticket; the rest have none.
                ticket: (i % 2 == 0).then(|| format!("{i}/0/{}/3.{i}", i + 1).parse().unwrap()),
                ..entry(&event, i as u64 + 1, sold_at + i as u64)
            })
            .collect();
        let inserted = ledger
            .insert(&batch, Duration::from_secs(90), 7)
            .await
            .unwrap();
        assert_eq!(inserted.written, users.len() as u64);
        for sent in &batch {
            let order = ledger.order(&sent.order).await.unwrap().unwrap();
            assert_eq!(order.user, sent.user, "{:?}", database.url());
            assert_eq!(order.request, sent.request);
            assert_eq!((order.sequence, order.node.as_str()), (sent.sequence, "n1"));
            assert_eq!(order.state, OrderState::Reserved);
            assert_eq!(order.sold_at_ms, sent.sold_at_ms);
            assert_eq!(order.expires_at_ms, sent.sold_at_ms + 90_000);
            assert_eq!(order.updated_at_ms, 7);
            assert_eq!(order.ticket, sent.ticket);
        }
        let layout = spike_core::TrainLayout::new(&["A", "B", "C"], &["first:2x10"]).unwrap();
        let train = SaleConfig::for_train(layout).unwrap();
        ledger.record_sale(&event, &train).await.unwrap();
        assert_eq!(
            ledger.sale(&event).await.unwrap(),
            Some(train),
            "a train's layout"
        );
    }
}

#[tokio::test]
async fn a_recovery_fence_keeps_out_entries_of_the_closed_life_only() {
    for database in TestDatabase::both() {
        let ledger = OrderLedger::connect(database.url()).await.unwrap();
        let event = EventId::parse("L9").unwrap();
        let window = Duration::from_secs(60);
        let unknown = EventId::parse("never-recorded").unwrap();
        assert!(
            ledger.fence(&unknown, 10).await.is_err(),
            "a sale without rules cannot be fenced"
        );
        ledger
            .record_sale(&event, &SaleConfig::new(100).unwrap())
            .await
            .unwrap();
        let before: Vec<_> = (1..=2).map(|s| entry(&event, s, now())).collect();
        ledger.insert(&before, window, now()).await.unwrap();

        let fence = ledger.fence(&event, 10).await.unwrap();
        assert!(fence >= 10);
        let again = ledger.fence(&event, 5).await.unwrap();
        assert!(again >= fence, "never lowered");
        // A writer still holding entries 3 and 6 of the closed life, one
        // already written (1), and one of the new life (above the fence).
        let late = [
            entry(&event, 3, now()),
            entry(&event, 6, now()),
            entry(&event, 1, now()),
            entry(&event, again + 1, now()),
        ];
        let inserted = ledger.insert(&late, window, now()).await.unwrap();
        assert_eq!(inserted.written, 1, "the new life's entry");
        assert_eq!(inserted.replayed, 1, "an order already written stays");
        assert_eq!(
            inserted.fenced,
            [late[0].order.clone(), late[1].order.clone()],
            "the closed life's entries stay out"
        );
        assert!(inserted.conflicts.is_empty());
        // The recovery itself writes the orders it restores.
        let restored = ledger
            .insert_recovered(&late[..1], window, now())
            .await
            .unwrap();
        assert_eq!(restored.written, 1);
        let held: HashSet<u64> = (ledger.orders_of_event(&event).await.unwrap())
            .iter()
            .map(|o| o.sequence)
            .collect();
        assert_eq!(held, HashSet::from([1, 2, 3, again + 1]));
    }
}

#[tokio::test]
async fn transitions_leave_reserved_once_and_only_on_time() {
    for database in TestDatabase::both() {
        let ledger = OrderLedger::connect(database.url()).await.unwrap();
        let event = EventId::parse("L2").unwrap();
        let sold = now();
        let batch: Vec<_> = (1..=3).map(|s| entry(&event, s, sold)).collect();
        ledger
            .insert(&batch, Duration::from_secs(60), sold)
            .await
            .unwrap();
        let (a, b, c) = (&batch[0].order, &batch[1].order, &batch[2].order);
        assert!(
            matches!(ledger.apply(a, Transition::Pay, now()).await.unwrap(), Moved::Applied(o) if o.state == OrderState::Paid)
        );
        let twice = ledger.apply(a, Transition::Pay, now()).await.unwrap();
        assert!(
            matches!(
                twice,
                Moved::Refused(_, Refusal::AlreadyDone(OrderState::Paid))
            ),
            "{twice:?}"
        );
        let cancel_paid = ledger.apply(a, Transition::Cancel, now()).await.unwrap();
        assert!(matches!(
            cancel_paid,
            Moved::Refused(_, Refusal::Finished(OrderState::Paid))
        ));
        assert!(matches!(
            ledger.apply(b, Transition::Cancel, now()).await.unwrap(),
            Moved::Applied(_)
        ));
        let early = ledger.apply(c, Transition::Expire, now()).await.unwrap();
        assert!(matches!(early, Moved::Refused(_, Refusal::NotDue)));
        let late = sold + 60_000;
        let pay_late = ledger.apply(c, Transition::Pay, late).await.unwrap();
        assert!(matches!(pay_late, Moved::Refused(_, Refusal::WindowClosed)));
        let expired = ledger.expire_due(late, 100).await.unwrap();
        assert_eq!(expired.iter().map(|o| &o.id).collect::<Vec<_>>(), [c]);
        let owed: HashSet<_> = ledger
            .seats_owed(100)
            .await
            .unwrap()
            .into_iter()
            .map(|o| o.id)
            .collect();
        assert_eq!(owed, HashSet::from([b.clone(), c.clone()]));
        assert_eq!(
            ledger
                .mark_returned(&[b.clone(), c.clone()], late)
                .await
                .unwrap(),
            2
        );
        assert_eq!(
            ledger
                .mark_returned(std::slice::from_ref(b), late)
                .await
                .unwrap(),
            0
        );
        assert!(ledger.seats_owed(100).await.unwrap().is_empty());
        let missing = OrderId::parse("L2-99").unwrap();
        assert_eq!(
            ledger
                .apply(&missing, Transition::Pay, now())
                .await
                .unwrap(),
            Moved::NotFound
        );
    }
}

/// Many orders reach their deadline while buyers pay and the expirer runs:
/// every order ends in exactly one state, and each success was the only one.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn payment_racing_expiry_has_exactly_one_winner() {
    for database in TestDatabase::both() {
        let ledger = Arc::new(OrderLedger::connect(database.url()).await.unwrap());
        let event = EventId::parse("L3").unwrap();
        const ORDERS: u64 = 300;
        let window = Duration::from_millis(400);
        let sold = now();
        let batch: Vec<_> = (1..=ORDERS).map(|s| entry(&event, s, sold)).collect();
        ledger.insert(&batch, window, sold).await.unwrap();
        let deadline = sold + 400;
        let expirer = {
            let ledger = Arc::clone(&ledger);
            tokio::spawn(async move {
                let mut expired = Vec::new();
                while now() < deadline + 300 {
                    for order in ledger.expire_due(now(), 50).await.unwrap() {
                        expired.push(order.id);
                    }
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                // Then every order still due (a loaded machine may not
                // have reached them all in time): none may stay reserved.
                loop {
                    let due = ledger.expire_due(now(), 50).await.unwrap();
                    if due.is_empty() {
                        break expired;
                    }
                    expired.extend(due.into_iter().map(|order| order.id));
                }
            })
        };
        let mut payers = Vec::new();
        for (i, entry) in batch.iter().enumerate() {
            let ledger = Arc::clone(&ledger);
            let id = entry.order.clone();
            // Payments spread from 150 ms before to 150 ms after the deadline.
            let at = deadline - 150 + (i as u64 * 300 / ORDERS);
            payers.push(tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(at.saturating_sub(now()))).await;
                matches!(
                    ledger.apply(&id, Transition::Pay, now()).await.unwrap(),
                    Moved::Applied(_)
                )
                .then_some(id)
            }));
        }
        let mut paid = HashSet::new();
        for payer in payers {
            paid.extend(payer.await.unwrap());
        }
        let expired: HashSet<_> = expirer.await.unwrap().into_iter().collect();
        assert!(
            paid.is_disjoint(&expired),
            "an order was both paid and expired"
        );
        assert_eq!(
            paid.len() + expired.len(),
            ORDERS as usize,
            "every order ended somewhere"
        );
        assert!(
            !paid.is_empty() && !expired.is_empty(),
            "the race had both outcomes"
        );
        let counts = ledger.counts(&event).await.unwrap();
        assert_eq!(
            (counts.paid, counts.expired, counts.reserved),
            (paid.len() as u64, expired.len() as u64, 0)
        );
    }
}
