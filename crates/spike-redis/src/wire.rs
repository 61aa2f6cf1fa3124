//! How Spike's values are written in Redis: the sale hash's rule fields,
//! the buyer index (`user → "o1 o2"`) and the request index
//! (`request → "order user"`). The Lua scripts read and write these same
//! shapes; everything on the Rust side goes through here.

use std::collections::HashMap;

use spike_core::queue::{AdmissionStep, Seal};
use std::sync::Arc;

use spike_core::record::{RULE_FIELDS, TRAIN_FIELD};
use spike_core::{
    ClassOccupancy, EventId, Occupancy, OrderId, SaleRecord, Ticket, TrainLayout, UserId,
};

/// The sale hash's fields for `record`, as `create.lua` and a restore write
/// them (the rules named by the record's schema), plus the counters a
/// restore sets (`sold`, `order_seq`).
pub(crate) fn sale_fields(
    event: &EventId,
    record: &SaleRecord,
    sold: u64,
    order_seq: u64,
) -> Vec<(&'static str, String)> {
    let rules =
        (RULE_FIELDS.iter().zip(record.rules())).map(|(name, value)| (*name, value.to_string()));
    rules
        .chain([
            ("sold", sold.to_string()),
            ("order_seq", order_seq.to_string()),
            ("event", event.to_string()),
        ])
        .collect()
}

/// A train run's fields of the sale hash, as `create.lua` writes them:
/// `train` (the layout), `train_classes`, `train_segments`, and per class
/// `class:<index>` = `"<carriages> <seats per carriage>"`. Other sales
/// have `train` empty and no classes.
pub(crate) fn train_fields(record: &SaleRecord) -> Vec<(String, String)> {
    let layout = record.train.as_deref();
    let classes = layout.map_or(&[][..], |l| l.classes());
    let mut fields = vec![
        (TRAIN_FIELD.to_owned(), record.train_wire()),
        ("train_classes".to_owned(), classes.len().to_string()),
        (
            "train_segments".to_owned(),
            layout.map_or(0, |l| l.segments()).to_string(),
        ),
    ];
    fields.extend(
        classes
            .iter()
            .enumerate()
            .map(|(index, class)| (format!("class:{index}"), class_shape(class))),
    );
    fields
}

/// A class's shape as `create.lua` takes and `ticket.lua` reads it.
fn class_shape(class: &spike_core::SeatClass) -> String {
    format!("{} {}", class.carriages(), class.seats_per_carriage())
}

/// The train arguments of `create.lua` after the old maps' count: the
/// segments, then each class's shape; just `0` for other sales.
pub(crate) fn create_train_args(record: &SaleRecord) -> Vec<String> {
    match record.train.as_deref() {
        Some(layout) => std::iter::once(layout.segments().to_string())
            .chain(layout.classes().iter().map(class_shape))
            .collect(),
        None => vec!["0".to_owned()],
    }
}

/// Decodes `occupancy.lua`'s reply: `None` for "no such train run".
pub(crate) fn occupancy(reply: &[Vec<u8>]) -> Result<Option<Occupancy>, String> {
    let [as_of, layout, maps @ ..] = reply else {
        return Ok(None);
    };
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    let as_of: u64 = text(as_of)
        .parse()
        .map_err(|_| "order_seq is not a number")?;
    let layout = TrainLayout::parse(&text(layout)).map_err(|e| e.to_string())?;
    let segments = layout.segments() as usize;
    if maps.len() != layout.classes().len() * segments {
        return Err(format!("{} maps for this layout", maps.len()));
    }
    let classes = (layout.classes().iter().zip(maps.chunks(segments.max(1))))
        .map(|(class, maps)| ClassOccupancy::from_segment_maps(class.seats(), maps))
        .collect();
    Ok(Some(Occupancy {
        layout: Arc::new(layout),
        classes,
        as_of,
    }))
}

/// A class's seat maps holding `tickets`' seats: one bitmap per segment,
/// as `ticket.lua` keeps them.
pub(crate) fn seat_maps<'a>(
    class: &spike_core::SeatClass,
    segments: u32,
    tickets: impl Iterator<Item = &'a Ticket>,
) -> Vec<Vec<u8>> {
    let bytes = (class.seats() as usize).div_ceil(8);
    let mut maps = vec![vec![0u8; bytes]; segments as usize];
    for ticket in tickets {
        for segment in ticket.leg.from()..ticket.leg.to() {
            for &seat in &ticket.seats {
                if let Some(byte) =
                    (maps.get_mut(segment as usize)).and_then(|map| map.get_mut(seat as usize / 8))
                {
                    *byte |= 0x80 >> (seat % 8);
                }
            }
        }
    }
    maps
}

/// What `snapshot.lua` returns, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
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

/// Decodes `snapshot.lua`'s reply (the rules in the schema's order, three
/// counters and the train layout, all read as text): `None` for "no such
/// sale" (an empty reply), an error saying what is wrong otherwise (a
/// layout that does not parse among them).
pub(crate) fn snapshot_fields(reply: &[String]) -> Result<Option<SnapshotFields>, String> {
    let Some((train, numbers)) = reply.split_last() else {
        return Ok(None);
    };
    let numbers: Vec<u64> = (numbers.iter())
        .map(|n| {
            n.parse()
                .map_err(|_| format!("field {n:?} is not a number"))
        })
        .collect::<Result<_, _>>()?;
    let (rules, counters) = numbers.split_at(numbers.len().min(RULE_FIELDS.len()));
    let (Ok(rules), &[sold, buyers, stream]) =
        (<[u64; RULE_FIELDS.len()]>::try_from(rules), counters)
    else {
        return Err(format!("{} fields", reply.len()));
    };
    let train = SaleRecord::parse_train(train).map_err(|e| format!("train layout: {e}"))?;
    Ok(Some(SnapshotFields {
        record: SaleRecord::from_rules(rules, train),
        sold,
        buyers,
        stream,
    }))
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

/// The order and the buyer ('' when none) of a request index entry.
pub(crate) fn request_entry_parts(entry: &str) -> (&str, &str) {
    entry.split_once(' ').unwrap_or((entry, ""))
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
        assert_eq!(request_entry_parts("G1-4 alice"), ("G1-4", "alice"));
        assert_eq!(request_entry_parts("G1-5 "), ("G1-5", ""));
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
    fn seat_maps_and_occupancy_agree() {
        let layout = TrainLayout::new(&["A", "B", "C"], &["x:1x10", "y:1x3"]).expect("layout");
        let ticket: Ticket = "0/1/2/0.9".parse().expect("ticket");
        let maps = seat_maps(&layout.classes()[0], 2, [&ticket].into_iter());
        assert_eq!(maps, [vec![0, 0], vec![0x80, 0x40]]);
        let mut reply = vec![b"7".to_vec(), layout.to_wire().into_bytes()];
        reply.extend(maps);
        reply.extend([vec![], vec![0x20]]);
        let decoded = occupancy(&reply).expect("decodes").expect("a train");
        assert_eq!(decoded.as_of, 7);
        assert_eq!(decoded.classes[0].masks()[0], 0b10);
        assert_eq!(decoded.classes[0].masks()[9], 0b10);
        assert_eq!(decoded.classes[1].masks(), [0, 0, 0b10]);
        assert_eq!(occupancy(&[]), Ok(None));
        assert!(occupancy(&reply[..3]).is_err());
        let fields = train_fields(&SaleRecord::from(
            &spike_core::SaleConfig::for_train(layout).expect("config"),
        ));
        assert_eq!(fields[3], ("class:0".to_owned(), "1 10".to_owned()));
    }

    #[test]
    fn snapshot_replies_decode_or_say_what_is_wrong() {
        let text =
            |fields: &[&str]| -> Vec<String> { fields.iter().map(|f| f.to_string()).collect() };
        assert_eq!(snapshot_fields(&[]), Ok(None));
        assert_eq!(
            snapshot_fields(&text(&["1", "2", ""])),
            Err("3 fields".into())
        );
        assert!(snapshot_fields(&text(&["x", ""])).is_err());
        // The rules in RULE_FIELDS' order, then sold, buyers, stream, train.
        let fields = [
            "10", "1", "0", "900000", "1", "200", "0", "600000", "0", "77", "1", "3", "3", "3",
        ];
        let mut reply = text(&fields);
        reply.push("A,B|first:1x2".into());
        let decoded = snapshot_fields(&reply)
            .expect("fourteen fields")
            .expect("a sale");
        assert_eq!(decoded.record.train_wire(), "A,B|first:1x2");
        reply.pop();
        reply.push("A|not a layout".into());
        assert!(
            snapshot_fields(&reply).is_err(),
            "a layout that fails to parse is an error"
        );
        assert_eq!((decoded.record.total, decoded.sold), (10, 3));
        assert_eq!(decoded.record.per_user_limit, 1);
        assert_eq!(decoded.record.queue_admit_rate, 200);
        assert_eq!(decoded.record.token_auth, 1);
        assert_eq!(decoded.record.life, 77);
        assert_eq!(decoded.record.queue_spillover, 1);
    }
}
