//! Conformance cases of operators' live controls: pause and resume, a
//! waiting room's admission changed mid-sale, a revoked admission, and the
//! operator log that records each, which a restore brings back with what
//! it leaves in force.

use std::num::NonZeroU64;
use std::time::Duration;

use super::queue::{admitted, join, queued_sale, tick, user};
use super::{create, event, purchase, sold};
use crate::central::{CentralStock, Restoration};
use crate::control::{
    AdmissionSettings, Applied, Control, ControlOutcome, OperatorEntry, OperatorOrder,
    RevokeReason, StandingControls,
};
use crate::ids::OperatorName;
use crate::purchase::{PurchaseBatch, Verdict};
use crate::sale::SaleConfig;

fn order(control: Control) -> OperatorOrder {
    OperatorOrder {
        by: OperatorName::parse("ops@conformance").expect("valid operator"),
        control,
    }
}

async fn give<C: CentralStock>(
    central: &C,
    event: &crate::EventId,
    control: Control,
) -> OperatorEntry {
    match central
        .control(event, &order(control))
        .await
        .expect("control")
    {
        ControlOutcome::Applied(entry) => entry,
        other => panic!("the control was not applied: {other:?}"),
    }
}

/// Conformance case: see its name.
pub async fn a_paused_sale_sells_nothing_until_resumed<C: CentralStock>(central: &C, prefix: &str) {
    let event = event(prefix, "paused");
    create(central, &event, SaleConfig::new(10).expect("config")).await;
    let first = central
        .buy(&purchase(&event, Some("u0"), "p0"))
        .await
        .expect("buy");
    assert!(matches!(first.verdict, Verdict::Sold { .. }), "{first:?}");

    let paused = give(central, &event, Control::Pause).await;
    assert_eq!((paused.index, &paused.applied), (0, &Applied::Paused));
    let refused = central
        .buy(&purchase(&event, Some("u1"), "p1"))
        .await
        .expect("buy");
    assert_eq!(refused.verdict, Verdict::Paused);
    let mut batch = PurchaseBatch::new(purchase(&event, Some("u2"), "p2"));
    batch
        .push(purchase(&event, Some("u3"), "p3"))
        .expect("one sale's batch");
    let replies = central.buy_many(&batch).await.expect("buy_many");
    assert!(
        replies.iter().all(|r| r.verdict == Verdict::Paused),
        "{replies:?}"
    );
    let replay = central
        .buy(&purchase(&event, Some("u0"), "p0"))
        .await
        .expect("buy");
    assert!(
        matches!(replay.verdict, Verdict::Sold { replayed: true, .. }),
        "an earlier sale still replays: {replay:?}"
    );
    assert_eq!(sold(central, &event).await, 1, "nothing sold while paused");

    let resumed = give(central, &event, Control::Resume).await;
    assert_eq!(resumed.index, 1);
    assert!(resumed.at_ms >= paused.at_ms);
    let again = central
        .buy(&purchase(&event, Some("u1"), "p1"))
        .await
        .expect("buy");
    assert!(matches!(again.verdict, Verdict::Sold { .. }), "{again:?}");

    let log = central.operator_log(&event, 0).await.expect("log");
    assert_eq!(log, [paused, resumed.clone()]);
    assert_eq!(
        central.operator_log(&event, 1).await.expect("log"),
        [resumed]
    );
    assert!(central
        .operator_log(&event, 2)
        .await
        .expect("log")
        .is_empty());
    let missing = event_of(prefix, "paused-missing");
    let outcome = central.control(&missing, &order(Control::Pause)).await;
    assert_eq!(outcome, Ok(ControlOutcome::NoSuchSale));
}

fn event_of(prefix: &str, case: &str) -> crate::EventId {
    event(prefix, case)
}

/// Conformance case: see its name.
pub async fn an_admission_change_starts_an_empty_bucket_at_the_new_rate<C: CentralStock>(
    central: &C,
    prefix: &str,
) {
    let event = event(prefix, "rate-change");
    create(central, &event, queued_sale(10, 1000, None)).await;
    for i in 0..4 {
        join(central, &event, &format!("c{i}")).await;
    }
    // At 1,000/s the bucket would admit all four at once; at 1/s, whose
    // bucket starts empty at the change, nobody for a second.
    let slow = AdmissionSettings::new(1, NonZeroU64::new(3)).expect("settings");
    let changed = give(central, &event, Control::Admission(slow)).await;
    let was = AdmissionSettings::new(1000, None).expect("settings");
    assert_eq!(changed.applied, Applied::Admission { now: slow, was });
    assert_eq!(tick(central, &event, 5).await.admitted, 0);
    let snapshot = central
        .snapshot(&event)
        .await
        .expect("snapshot")
        .expect("sale");
    let queue = snapshot.config.queue().expect("a waiting room");
    assert_eq!(
        (queue.admit_rate().get(), queue.max_active()),
        (1, NonZeroU64::new(3))
    );

    // Paused, the room admits nobody, whatever the rate.
    give(central, &event, Control::Pause).await;
    let fast = AdmissionSettings::new(1000, None).expect("settings");
    give(central, &event, Control::Admission(fast)).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(tick(central, &event, 5).await.admitted, 0);
    give(central, &event, Control::Resume).await;
    let counters = tick(central, &event, 5).await;
    assert_eq!((counters.admitted, counters.active), (4, 4));

    let plain = event_of(prefix, "rate-plain");
    create(central, &plain, SaleConfig::new(3).expect("config")).await;
    let outcome = central
        .control(&plain, &order(Control::Admission(fast)))
        .await;
    assert_eq!(outcome, Ok(ControlOutcome::NoQueue));
    assert!(central
        .operator_log(&plain, 0)
        .await
        .expect("log")
        .is_empty());
}

/// Conformance case: see its name.
pub async fn a_revoked_admission_buys_nothing<C: CentralStock>(central: &C, prefix: &str) {
    let event = event(prefix, "revoke");
    create(central, &event, queued_sale(10, 1000, None)).await;
    for i in 0..2 {
        join(central, &event, &format!("v{i}")).await;
    }
    assert_eq!(tick(central, &event, 5).await.admitted, 2);
    let reason = RevokeReason::parse("resale bot").expect("reason");
    let revoke = Control::Revoke {
        user: user("v0"),
        reason: reason.clone(),
    };
    let entry = give(central, &event, revoke).await;
    assert_eq!(
        entry.applied,
        Applied::Revoked {
            user: user("v0"),
            reason
        }
    );
    let refused = central
        .buy(&admitted(&event, "v0", "rv0", Some(0)))
        .await
        .expect("buy");
    assert_eq!(refused.verdict, Verdict::NotAdmitted);
    let sale = central
        .buy(&admitted(&event, "v1", "rv1", Some(1)))
        .await
        .expect("buy");
    assert!(matches!(sale.verdict, Verdict::Sold { .. }), "{sale:?}");
    assert_eq!(sold(central, &event).await, 1);
    let counters = tick(central, &event, 5).await;
    assert_eq!(
        (counters.admitted, counters.active),
        (2, 1),
        "one bought; the revoked buyer's admission runs out its window"
    );
    let reinstated = give(central, &event, Control::Reinstate { user: user("v0") }).await;
    assert_eq!(reinstated.applied, Applied::Reinstated { user: user("v0") });
    let sale = central
        .buy(&admitted(&event, "v0", "rv0b", Some(0)))
        .await
        .expect("buy");
    assert!(
        matches!(sale.verdict, Verdict::Sold { .. }),
        "reinstated: {sale:?}"
    );
}

/// Conformance case: see its name. The sale is restored under a name
/// central stock has never held, as after it lost everything.
pub async fn a_restored_sale_keeps_its_operators_controls<C: CentralStock>(
    central: &C,
    prefix: &str,
) {
    let (kept, restored) = (
        event(prefix, "controls-kept"),
        event(prefix, "controls-restored"),
    );
    let config = queued_sale(10, 1000, None);
    create(central, &kept, config.clone()).await;
    let reason = RevokeReason::parse("resale bot").expect("reason");
    for control in [
        Control::Revoke {
            user: user("w0"),
            reason: reason.clone(),
        },
        Control::Revoke {
            user: user("w2"),
            reason: reason.clone(),
        },
        Control::Admission(AdmissionSettings::new(250, NonZeroU64::new(40)).expect("settings")),
        Control::Reinstate { user: user("w2") },
        Control::Pause,
    ] {
        give(central, &kept, control).await;
    }
    let log = central.operator_log(&kept, 0).await.expect("log");
    assert_eq!(log.len(), 5);
    let restoration = Restoration {
        config: StandingControls::of(&log).applied_to(config),
        last_sequence: 0,
        holding: Vec::new(),
        released: Vec::new(),
        waitlist: Vec::new(),
        operator_log: log.clone(),
    };
    central
        .restore(&restored, &restoration)
        .await
        .expect("restore");

    let refused = central
        .buy(&admitted(&restored, "w1", "rw1", Some(0)))
        .await
        .expect("buy");
    assert_eq!(refused.verdict, Verdict::Paused, "still paused");
    assert_eq!(
        central.operator_log(&restored, 0).await.expect("log"),
        log,
        "the log is back as it was"
    );
    let snapshot = central
        .snapshot(&restored)
        .await
        .expect("snapshot")
        .expect("sale");
    let room = snapshot.config.queue().expect("a waiting room");
    assert_eq!(
        (room.admit_rate().get(), room.max_active()),
        (250, NonZeroU64::new(40)),
        "at the rate the operator set last"
    );

    // The room starts over, as a recovery resets it; the revocation
    // stands, the reinstated buyer buys.
    assert!(central.reset_queue(&restored, &[]).await.expect("reset"));
    let resumed = give(central, &restored, Control::Resume).await;
    assert_eq!(
        resumed.index, 5,
        "the log goes on after its restored entries"
    );
    for name in ["w0", "w1", "w2"] {
        join(central, &restored, name).await;
    }
    assert_eq!(tick(central, &restored, 5).await.admitted, 3);
    let revoked = central
        .buy(&admitted(&restored, "w0", "rw0", Some(0)))
        .await
        .expect("buy");
    assert_eq!(
        revoked.verdict,
        Verdict::NotAdmitted,
        "the revocation stands"
    );
    for (name, position) in [("w1", 1), ("w2", 2)] {
        let sale = central
            .buy(&admitted(
                &restored,
                name,
                &format!("r{name}"),
                Some(position),
            ))
            .await
            .expect("buy");
        assert!(
            matches!(sale.verdict, Verdict::Sold { .. }),
            "{name}: {sale:?}"
        );
    }
}
