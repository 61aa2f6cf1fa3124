//! Rebuilding central stock from the order ledger and the stream's
//! unwritten entries after central stock lost a sale: who holds a seat,
//! what was given back, and where order sequences continue.

use std::collections::HashSet;
use std::time::SystemTime;

use crate::central::{Holding, Restoration};
use crate::ids::OrderId;
use crate::order::Order;
use crate::order_stream::StreamEntry;
use crate::sale::SaleConfig;
use crate::time::unix_millis;

/// Order sequences handed out per millisecond, at most, between two
/// recoveries: the bound that makes [`restoration`]'s time floor safe
/// (a flash sale sells about 50 a millisecond at most; see BENCHMARKS.md).
pub const SEQUENCES_PER_MS: u64 = 1_000;

/// The lowest sequence a recovery at `recovered_at` may hand out: above
/// every sequence of a first life (see [`restoration`]).
pub fn sequence_floor(recovered_at: SystemTime) -> u64 {
    unix_millis(recovered_at).saturating_mul(SEQUENCES_PER_MS)
}

/// The fence an earlier recovery left on a sale's ledger: sequences up to
/// `through` belong to lives it closed, and the life it opened started
/// right above, at `at_ms` (Unix milliseconds on the ledger's own clock; 0
/// when unknown). `through` 0: never recovered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EarlierFence {
    /// The highest sequence of the lives closed so far.
    pub through: u64,
    /// When it was raised, on the ledger's clock.
    pub at_ms: u64,
}

impl EarlierFence {
    /// The fence a recovery at `now_ms` (the ledger's clock) raises, given
    /// the highest sequence its records show: above those records, above
    /// the time floor ([`SEQUENCES_PER_MS`] a millisecond since the epoch),
    /// and above every sequence the life the earlier fence opened could
    /// have handed out since (at most [`SEQUENCES_PER_MS`] a millisecond).
    /// Both clocks are the ledger's, so a recovery run on a host whose
    /// clock is behind never lands inside the life it closes.
    pub fn next(&self, now_ms: u64, records: u64) -> u64 {
        let time_floor = now_ms.saturating_mul(SEQUENCES_PER_MS);
        let life = match self.through {
            0 => 0,
            through => {
                let elapsed = now_ms.saturating_sub(self.at_ms);
                through
                    .saturating_add(elapsed.saturating_mul(SEQUENCES_PER_MS))
                    .saturating_add(1)
            }
        };
        records.max(time_floor).max(life)
    }
}

/// Rebuilds central stock for a sale from the ledger plus the stream's
/// unwritten entries: every order holding a seat holds it again, every seat
/// given up stays given up.
///
/// New orders continue past every sequence any record could hold, not only
/// the ones these records show: a sale confirmed by Redis and lost with it
/// before any writer read it is in neither record, and its id must never be
/// handed to another buyer. So the sequence resumes at
/// `recovered_at` in Unix milliseconds × [`SEQUENCES_PER_MS`] (or past the
/// highest sequence seen, if higher). Every sequence of the sale's first
/// life is far below that floor (they count from 1), and every sequence
/// handed out after an earlier recovery at time T is below it too, unless
/// more than [`SEQUENCES_PER_MS`] orders a millisecond were sold on average
/// since T.
pub fn restoration(
    config: SaleConfig,
    orders: &[Order],
    stream: &[StreamEntry],
    fence: u64,
) -> Restoration {
    let in_ledger: HashSet<&OrderId> = orders.iter().map(|o| &o.id).collect();
    let holding = (orders.iter())
        .filter(|o| o.state.holds_seat())
        .map(|o| Holding {
            order: o.id.clone(),
            user: o.user.clone(),
            request: o.request.clone(),
            ticket: o.ticket.clone(),
        })
        .chain(
            stream
                .iter()
                .filter(|e| !in_ledger.contains(&e.order))
                .map(Holding::from),
        )
        .collect();
    let released = (orders.iter())
        .filter(|o| !o.state.holds_seat())
        .map(|o| o.id.clone())
        .collect();
    let last_sequence = (orders.iter().map(|o| o.sequence))
        .chain(stream.iter().map(|e| e.sequence))
        .chain([fence])
        .max()
        .unwrap_or(fence);
    Restoration {
        config,
        last_sequence,
        holding,
        released,
        waitlist: Vec::new(),
        operator_log: Vec::new(),
    }
}
