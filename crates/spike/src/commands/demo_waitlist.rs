//! The second act of `spike demo --train`: the waitlist (候补). Once the
//! crowd has sold the run out, travellers it turned away place waitlist
//! orders through the front door (`POST /waitlist`); then a tenth of the
//! orders come back through the order desk (the orders API's own code):
//! half cancelled, half paid then refunded. Central stock fills the line
//! from every seat that comes back, oldest first; the report says how many
//! waitlisted travellers got seats and how long they waited.

use serde::Serialize;
use spike_bench::client::Connection;
use spike_core::{CentralStock, OrderStream, TrainLayout, TrainRun, WaitState};
use spike_orders::{Moved, OrderDesk, OrderLedger};

/// What the waitlist act did.
#[derive(Debug, Clone, Serialize)]
pub struct WaitlistReport {
    /// Waitlist orders placed (their legs were sold out).
    pub placed: u64,
    /// Placements refused because seats were free for them (bought instead
    /// by nobody: they were told to buy).
    pub bookable: u64,
    /// Orders given back: cancelled.
    pub cancelled: u64,
    /// Orders given back: paid, then refunded.
    pub refunded: u64,
    /// Waitlisted travellers who got seats (a reserved order each).
    pub filled: u64,
    /// Still waiting at the end.
    pub waiting: u64,
    /// How long the filled waited, placement to fill: median, ms.
    pub wait_p50_ms: u64,
    /// The longest wait of a filled traveller, ms.
    pub wait_max_ms: u64,
}

/// Runs the act on `run` (sold through the front door at `front`):
/// `travellers` placements, then a tenth of the ledger's orders given back.
pub async fn waitlist_act<C: CentralStock + OrderStream + Clone>(
    central: &C,
    ledger: &OrderLedger,
    front: &str,
    run: &TrainRun,
    layout: &TrainLayout,
    travellers: u64,
) -> anyhow::Result<WaitlistReport> {
    let event = run.event();
    let stations = layout.stations();
    let classes: Vec<&str> = layout.classes().iter().map(|c| c.name()).collect();
    let mut dice: u64 = 0x0012_3060_0000_4b00;
    let mut roll = |n: u64| {
        dice ^= dice << 13;
        dice ^= dice >> 7;
        dice ^= dice << 17;
        dice % n.max(1)
    };
    let mut connection = Connection::open(front).await?;
    let (mut placed, mut bookable) = (0, 0);
    let last = stations.len() as u64 - 1;
    for i in 0..travellers {
        let from = roll(last);
        let to = from + 1 + roll(last - from);
        let class = classes[roll(classes.len() as u64) as usize];
        let path = format!(
            "/waitlist?train={}&date={}&user_id=waiting-{i}&from={}&to={}&class={class}",
            run.train(),
            run.date(),
            stations[from as usize],
            stations[to as usize],
        );
        let (answer, ()) = connection.exchange("POST", front, &path, |_| ()).await?;
        match answer.status {
            200 => placed += 1,
            _ => bookable += 1,
        }
    }

    // A tenth of the orders come back: cancelled, or paid and refunded.
    let desk = OrderDesk::new(ledger.clone(), central.clone());
    let orders = ledger.orders_of_event(&event).await?;
    let (mut cancelled, mut refunded) = (0, 0);
    for (i, order) in orders.iter().enumerate().filter(|(i, _)| i % 10 == 3) {
        let gave_back = match i % 20 {
            3 => desk.cancel(&order.id).await?,
            _ => {
                desk.pay(&order.id).await?;
                desk.refund(&order.id).await?
            }
        };
        if let Moved::Applied(back) = gave_back {
            match back.state {
                spike_core::order::OrderState::Refunded => refunded += 1,
                _ => cancelled += 1,
            }
        }
    }

    let entries = central.waitlist(&event).await?;
    let mut waits = Vec::new();
    let mut waiting = 0;
    for entry in &entries {
        match &entry.state {
            WaitState::Filled { order } => {
                let sold_at = match order.split() {
                    Some((_, sequence)) => central.entry(&event, sequence).await?,
                    None => None,
                }
                .map(|sale| sale.sold_at_ms);
                let sold_at = match sold_at {
                    Some(at) => Some(at),
                    None => ledger.order(order).await?.map(|o| o.sold_at_ms),
                };
                if let Some(at) = sold_at {
                    waits.push(at.saturating_sub(entry.placed_at_ms));
                }
            }
            WaitState::Waiting => waiting += 1,
            _ => {}
        }
    }
    waits.sort_unstable();
    Ok(WaitlistReport {
        placed,
        bookable,
        cancelled,
        refunded,
        filled: waits.len() as u64,
        waiting,
        wait_p50_ms: waits.get(waits.len() / 2).copied().unwrap_or(0),
        wait_max_ms: waits.last().copied().unwrap_or(0),
    })
}

/// The act's lines of the demo's report.
pub fn print_waitlist(report: &WaitlistReport) {
    println!("\nwaitlist (候补), after the sellout");
    println!(
        "  placed           {} waitlist orders on sold-out legs ({} told to buy: seats were free)",
        report.placed, report.bookable
    );
    println!(
        "  given back       {} orders cancelled, {} paid then refunded",
        report.cancelled, report.refunded
    );
    println!(
        "  filled           {} waitlisted travellers got seats, oldest first; {} still wait",
        report.filled, report.waiting
    );
    println!(
        "  waited           p50 {} ms, max {} ms (placement to fill)",
        report.wait_p50_ms, report.wait_max_ms
    );
}
