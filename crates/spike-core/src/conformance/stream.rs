//! The conformance cases of the order stream and of restores: a batch of
//! 10,000 entries acknowledged whole, each entry delivered once until it is
//! acknowledged, and a sale rebuilt from its holdings.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test suite: a panic is a failed case

use super::*;

/// Conformance case: see its name. (A script that hands every id to one
/// command at once fails past Lua's unpack limit, about 8,000 values.)
pub async fn a_batch_of_ten_thousand_entries_is_acknowledged_whole<
    C: CentralStock + OrderStream,
>(
    central: &C,
    prefix: &str,
) {
    const ENTRIES: u64 = 10_000;
    let event = event(prefix, "big-ack");
    let config = SaleConfig::new(ENTRIES)
        .expect("config")
        .with_policy(BuyerPolicy::Anonymous);
    create(central, &event, config).await;
    let mut next = 0;
    while next < ENTRIES {
        let mut batch = PurchaseBatch::new(purchase(&event, None, &format!("big-{next}")));
        next += 1;
        while next < ENTRIES && batch.len() < MAX_BATCH {
            let more = purchase(&event, None, &format!("big-{next}"));
            batch.push(more).expect("room in the batch");
            next += 1;
        }
        central.buy_many(&batch).await.expect("batch");
    }
    let writer = NodeId::parse("big-writer").expect("id");
    // Read in a few calls (one call of 10,000 can outlast the response
    // deadline on a loaded machine); acknowledged in one.
    let mut read = Vec::new();
    while (read.len() as u64) < ENTRIES {
        let more = (central.read_new(&event, &writer, 2_000).await).expect("read");
        assert!(!more.is_empty(), "{} of {ENTRIES} entries read", read.len());
        read.extend(more);
    }
    assert_eq!(read.len() as u64, ENTRIES);
    let sequences: Vec<u64> = read.iter().map(|e| e.sequence).collect();
    assert_eq!(
        central.acknowledge(&event, &sequences).await.expect("ack"),
        ENTRIES
    );
    assert_eq!(
        central.backlog(&event).await.expect("backlog"),
        Backlog::default()
    );
}

/// Conformance case: see its name.
pub async fn stream_delivers_each_entry_once_until_acknowledged<C: CentralStock + OrderStream>(
    central: &C,
    prefix: &str,
) {
    let event = event(prefix, "stream");
    create(central, &event, SaleConfig::new(10).expect("config")).await;
    for user in ["s1", "s2", "s3"] {
        let reply = central
            .buy(&purchase(&event, Some(user), &format!("r-{user}")))
            .await
            .expect("buy");
        order_of(&reply.verdict);
    }
    let (a, b, c) = (
        NodeId::parse("writer-a").expect("id"),
        NodeId::parse("writer-b").expect("id"),
        NodeId::parse("writer-c").expect("id"),
    );
    let first = central.read_new(&event, &a, 2).await.expect("read");
    let sequences: Vec<u64> = first.iter().map(|e| e.sequence).collect();
    assert_eq!(sequences, [1, 2]);
    assert_eq!(first[0].order, OrderId::for_sequence(&event, 1));
    assert_eq!(first[0].user, Some(UserId::parse("s1").expect("id")));
    assert_eq!(first[0].request.as_str(), "r-s1");
    assert!(first[0].sold_at_ms > 0);
    let second = central.read_new(&event, &b, 10).await.expect("read");
    assert_eq!(second.iter().map(|e| e.sequence).collect::<Vec<_>>(), [3]);
    assert!(central
        .read_new(&event, &b, 10)
        .await
        .expect("read")
        .is_empty());
    let found = central.entry(&event, 2).await.expect("entry");
    assert_eq!(
        found.map(|e| e.order),
        Some(OrderId::for_sequence(&event, 2))
    );
    assert_eq!(central.acknowledge(&event, &[1, 2]).await.expect("ack"), 2);
    assert_eq!(central.acknowledge(&event, &[1]).await.expect("ack"), 0);
    assert_eq!(central.entry(&event, 1).await.expect("entry"), None);
    assert_eq!(
        central.backlog(&event).await.expect("backlog"),
        Backlog {
            entries: 1,
            pending: 1
        }
    );
    let long = Duration::from_secs(3600);
    let not_stale = central.reclaim(&event, &c, long, 10).await.expect("claim");
    assert!(not_stale.is_empty(), "{not_stale:?}");
    tokio::time::sleep(Duration::from_millis(20)).await;
    let short = Duration::from_millis(10);
    let stale = central.reclaim(&event, &c, short, 10).await.expect("claim");
    assert_eq!(stale.iter().map(|e| e.sequence).collect::<Vec<_>>(), [3]);
    let left = central.unacknowledged(&event).await.expect("range");
    assert_eq!(left.iter().map(|e| e.sequence).collect::<Vec<_>>(), [3]);
    assert_eq!(central.acknowledge(&event, &[3]).await.expect("ack"), 1);
    assert_eq!(
        central.backlog(&event).await.expect("backlog"),
        Backlog::default()
    );
    let snapshot = central
        .snapshot(&event)
        .await
        .expect("snapshot")
        .expect("sale");
    assert_eq!((snapshot.sold, snapshot.orders_in_stream), (3, 0));
}

/// Conformance case: see its name.
pub async fn restore_rebuilds_the_sale_and_continues_its_sequence<C: CentralStock>(
    central: &C,
    prefix: &str,
) {
    let event = event(prefix, "restore");
    let config = SaleConfig::new(3).expect("config");
    create(central, &event, config.clone()).await;
    let kept = central
        .buy(&purchase(&event, Some("k1"), "rk1"))
        .await
        .expect("buy");
    let given_up = central
        .buy(&purchase(&event, Some("k2"), "rk2"))
        .await
        .expect("buy");
    let (kept, given_up) = (order_of(&kept.verdict), order_of(&given_up.verdict));
    // Central state is lost and taken up again from the ledger, which knows
    // of five sequences: one order holding a seat, one given back.
    let restoration = Restoration {
        config,
        last_sequence: 5,
        holding: vec![Holding {
            order: kept.clone(),
            user: Some(UserId::parse("k1").expect("id")),
            request: RequestId::parse("rk1").expect("id"),
            ticket: None,
        }],
        released: vec![given_up.clone()],
        waitlist: Vec::new(),
        operator_log: Vec::new(),
    };
    central
        .restore(&event, &restoration)
        .await
        .expect("restore");
    let snapshot = central
        .snapshot(&event)
        .await
        .expect("snapshot")
        .expect("sale");
    assert_eq!((snapshot.sold, snapshot.buyers), (1, 1));
    let again = central
        .buy(&purchase(&event, Some("k1"), "rk1-b"))
        .await
        .expect("buy");
    assert_eq!(
        again.verdict,
        Verdict::AlreadyPurchased {
            order: kept.clone()
        }
    );
    let replay = central
        .buy(&purchase(&event, Some("k1"), "rk1"))
        .await
        .expect("buy");
    assert_eq!(order_of(&replay.verdict), kept);
    let k2 = UserId::parse("k2").expect("id");
    let rk2 = RequestId::parse("rk2").expect("id");
    let release = central.release(&event, &given_up, Some(&k2), &rk2).await;
    assert_eq!(release, Ok(Release::AlreadyReleased));
    let next = central
        .buy(&purchase(&event, Some("k3"), "rk3"))
        .await
        .expect("buy");
    assert_eq!(order_of(&next.verdict), OrderId::for_sequence(&event, 6));
    central
        .buy(&purchase(&event, Some("k4"), "rk4"))
        .await
        .expect("buy");
    let late = central
        .buy(&purchase(&event, Some("k5"), "rk5"))
        .await
        .expect("buy");
    assert_eq!(late.verdict, Verdict::SoldOut);
}
