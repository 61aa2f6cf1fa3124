//! How Spike's values are written in Redis: the sale hash's rule fields,
//! the buyer index (`user → "o1 o2"`) and the request index
//! (`request → "order user"`). The Lua scripts read and write these same
//! shapes; everything on the Rust side goes through here.

use std::collections::HashMap;

use spike_core::queue::{AdmissionStep, Seal};
use spike_core::{EventId, OrderId, SaleRecord, UserId};

/// The sale hash's fields for `record`, as `create.lua` and a restore write
/// them, plus the counters a restore sets (`sold`, `order_seq`).
pub(crate) fn sale_fields(
    event: &EventId,
    record: &SaleRecord,
    sold: u64,
    order_seq: u64,
) -> [(&'static str, String); 12] {
    [
        ("total", record.total.to_string()),
        ("sold", sold.to_string()),
        ("order_seq", order_seq.to_string()),
        ("per_user_limit", record.per_user_limit.to_string()),
        ("opens_at_ms", record.opens_at_ms.to_string()),
        ("payment_window_ms", record.payment_window_ms.to_string()),
        ("token_auth", record.token_auth.to_string()),
        ("event", event.to_string()),
        ("queue_admit_rate", record.queue_admit_rate.to_string()),
        ("queue_max_active", record.queue_max_active.to_string()),
        (
            "queue_admit_window_ms",
            record.queue_admit_window_ms.to_string(),
        ),
        (
            "queue_joins_open_at_ms",
            record.queue_joins_open_at_ms.to_string(),
        ),
    ]
}

/// The rule arguments of `create.lua` (ARGV[2..6] and ARGV[8..11]), in
/// its order.
pub(crate) fn create_args(record: &SaleRecord) -> ([u64; 5], [u64; 4]) {
    (
        [
            record.total,
            u64::from(record.per_user_limit),
            record.opens_at_ms,
            record.payment_window_ms,
            record.token_auth,
        ],
        [
            record.queue_admit_rate,
            record.queue_max_active,
            record.queue_admit_window_ms,
            record.queue_joins_open_at_ms,
        ],
    )
}

/// What `snapshot.lua` returns, decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SnapshotFields {
    /// The sale's rules.
    pub(crate) record: SaleRecord,
    /// Seats sold.
    pub(crate) sold: u64,
    /// Users in the buyer index.
    pub(crate) buyers: u64,
    /// Entries in the order stream.
    pub(crate) stream: u64,
}

/// Decodes `snapshot.lua`'s reply: `None` for "no such sale" (an empty
/// reply), an error naming the field count otherwise.
pub(crate) fn snapshot_fields(fields: &[u64]) -> Result<Option<SnapshotFields>, usize> {
    match *fields {
        [] => Ok(None),
        [total, sold, limit, opens_at_ms, payment_window_ms, token_auth, buyers, stream, queue_admit_rate, queue_max_active, queue_admit_window_ms, queue_joins_open_at_ms] => {
            Ok(Some(SnapshotFields {
                record: SaleRecord {
                    total,
                    per_user_limit: u32::try_from(limit).unwrap_or(u32::MAX),
                    opens_at_ms,
                    payment_window_ms,
                    token_auth,
                    queue_admit_rate,
                    queue_max_active,
                    queue_admit_window_ms,
                    queue_joins_open_at_ms,
                },
                sold,
                buyers,
                stream,
            }))
        }
        _ => Err(fields.len()),
    }
}

/// Groups holdings by buyer for the buyer index (`user → "o1 o2"`).
pub(crate) fn buyer_index<'a>(
    holdings: impl Iterator<Item = (&'a UserId, &'a OrderId)>,
) -> HashMap<&'a str, String> {
    let mut index: HashMap<&str, String> = HashMap::new();
    for (user, order) in holdings {
        let held = index.entry(user.as_str()).or_default();
        if !held.is_empty() {
            held.push(' ');
        }
        held.push_str(order.as_str());
    }
    index
}

/// A request index entry: `"order user"` (user empty when none).
pub(crate) fn request_entry(order: &OrderId, user: Option<&UserId>) -> String {
    format!("{order} {}", user.map_or("", UserId::as_str))
}

/// The order of a request index entry.
pub(crate) fn request_entry_order(entry: &str) -> &str {
    entry.split(' ').next().unwrap_or_default()
}

/// The waiting room's seal from its hash fields: none while `seed` is
/// empty; `Err` with the text when the seed is not a number.
pub(crate) fn seal(seed: &str, early: u64) -> Result<Option<Seal>, String> {
    if seed.is_empty() {
        return Ok(None);
    }
    let seed = seed.parse().map_err(|_| seed.to_owned())?;
    Ok(Some(Seal { seed, early }))
}

/// Admission steps from `queue_tick.lua`'s flat `{at_ms, admitted, …}`,
/// in the order of `admitted` (steps of one millisecond sort by member).
pub(crate) fn steps(flat: &[u64]) -> Vec<AdmissionStep> {
    let mut steps: Vec<AdmissionStep> = (flat.chunks_exact(2))
        .map(|pair| AdmissionStep {
            at_ms: pair[0],
            admitted: pair[1],
        })
        .collect();
    steps.sort_by_key(|step| step.admitted);
    steps
}

/// A member of the bought set, `"position user"`.
pub(crate) fn bought_member(member: &str) -> Option<(u64, &str)> {
    let (position, user) = member.split_once(' ')?;
    Some((position.parse().ok()?, user))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_entries_round_trip_their_order() {
        let order = OrderId::parse("G1-4").expect("order");
        let user = UserId::parse("alice").expect("user");
        assert_eq!(request_entry(&order, Some(&user)), "G1-4 alice");
        assert_eq!(request_entry(&order, None), "G1-4 ");
        assert_eq!(request_entry_order("G1-4 alice"), "G1-4");
    }

    #[test]
    fn queue_fields_decode() {
        assert_eq!(seal("", 5), Ok(None));
        assert_eq!(seal("17", 5), Ok(Some(Seal { seed: 17, early: 5 })));
        assert_eq!(seal("x", 5), Err("x".to_owned()));
        let decoded = steps(&[1000, 12, 1000, 9, 900, 4]);
        let admitted: Vec<u64> = decoded.iter().map(|s| s.admitted).collect();
        assert_eq!(admitted, [4, 9, 12]);
        assert_eq!(bought_member("12 ann"), Some((12, "ann")));
        assert_eq!(bought_member("12"), None);
    }

    #[test]
    fn snapshot_replies_decode_or_say_what_is_wrong() {
        assert_eq!(snapshot_fields(&[]), Ok(None));
        assert_eq!(snapshot_fields(&[1, 2]), Err(2));
        let decoded = snapshot_fields(&[10, 3, 1, 0, 900_000, 1, 3, 3, 200, 0, 600_000, 0])
            .expect("twelve fields")
            .expect("a sale");
        assert_eq!((decoded.record.total, decoded.sold), (10, 3));
        assert_eq!(decoded.record.per_user_limit, 1);
        assert_eq!(decoded.record.queue_admit_rate, 200);
        assert_eq!(decoded.record.token_auth, 1);
    }
}
