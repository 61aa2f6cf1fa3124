//! The stat log's line format: the articles' `result:1,localSales:N`, plus
//! when, which node, code, event, user, order and request id, and on a
//! train run's sale the seats (`ticket`). One answered request, one line.
//!
//! A node also writes a line for each operator control it follows
//! ([`ControlLine`]): the stat logs then hold the operator log too, and a
//! recovery after central stock lost everything restores it from them.

use std::fmt;
use std::time::SystemTime;

use crate::code::Code;
use crate::control::OperatorEntry;
use crate::ids::{EventId, NodeId, OrderId, RequestId, UserId};
use crate::train::Ticket;

/// One answered request, as written to `stat.log`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatRecord {
    /// When the answer was given.
    pub at: SystemTime,
    /// The answer's code.
    pub code: Code,
    /// The node's sales so far (the articles' `localSales`).
    pub local_sales: u64,
    /// The event, when the request named a valid one.
    pub event: Option<EventId>,
    /// The user, when the request named a valid one.
    pub user: Option<UserId>,
    /// The order, on success or "already purchased".
    pub order: Option<OrderId>,
    /// The purchase's request id, once it asked central stock (the
    /// client's, or the one the node gave it): what recovery restores and
    /// what ties a "sold out" answer to the request it answered.
    pub request: Option<RequestId>,
    /// The seats a train run's sale gave (written only then, last), so
    /// that recovery from stat logs restores them.
    pub ticket: Option<Ticket>,
}

/// A [`StatRecord`] as written by one node: the record plus the node's name.
#[derive(Debug, Clone, Copy)]
pub struct StatLine<'a> {
    /// The node that answered.
    pub node: &'a NodeId,
    /// What it answered.
    pub record: &'a StatRecord,
}

impl StatLine<'_> {
    /// Writes the line, reusing `clock`'s text for the timestamp when the
    /// millisecond is the one it last formatted (the writer's fast path).
    pub fn write_to(&self, out: &mut Vec<u8>, clock: &mut MillisClock) {
        out.extend_from_slice(clock.format(self.record.at).as_bytes());
        self.write_fields(out);
    }

    fn write_fields(&self, out: &mut Vec<u8>) {
        use std::io::Write;
        let record = self.record;
        // Writing into a Vec cannot fail.
        let _ = writeln!(
            out,
            " result:{},localSales:{},code:{},node:{},event:{},user:{},order:{},request:{}",
            u8::from(record.code == Code::Success),
            record.local_sales,
            record.code,
            self.node,
            or_dash(&record.event),
            or_dash(&record.user),
            or_dash(&record.order),
            or_dash(&record.request),
        );
        if let Some(ticket) = &record.ticket {
            // The newline goes after the ticket.
            out.pop();
            let _ = writeln!(out, ",ticket:{ticket}");
        }
    }
}

fn or_dash<T: fmt::Display>(value: &Option<T>) -> &dyn fmt::Display {
    match value {
        Some(value) => value,
        None => &"-",
    }
}

impl fmt::Display for StatLine<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut line = Vec::with_capacity(128);
        self.write_to(&mut line, &mut MillisClock::default());
        line.pop(); // the newline
        f.write_str(&String::from_utf8_lossy(&line))
    }
}

/// The first field of a [`ControlLine`], which no answer's line starts with.
const CONTROL_FIELD: &str = "control:";

/// An operator control a node followed, as written to `stat.log`:
/// `<at> control:<index>,node:<node>,event:<event>,entry:<wire>`, the
/// entry's wire form ([`OperatorEntry::to_wire`]) last, since it may hold
/// commas and spaces.
#[derive(Debug, Clone, Copy)]
pub struct ControlLine<'a> {
    /// The node that followed it.
    pub node: &'a NodeId,
    /// The sale it controls.
    pub event: &'a EventId,
    /// The entry.
    pub entry: &'a OperatorEntry,
}

impl ControlLine<'_> {
    /// Writes the line, stamped `at`.
    pub fn write_to(&self, out: &mut Vec<u8>, clock: &mut MillisClock, at: SystemTime) {
        use std::io::Write;
        out.extend_from_slice(clock.format(at).as_bytes());
        // Writing into a Vec cannot fail.
        let _ = writeln!(
            out,
            " {CONTROL_FIELD}{},node:{},event:{},entry:{}",
            self.entry.index,
            self.node,
            self.event,
            self.entry.to_wire()
        );
    }
}

/// Reads back a line written by [`ControlLine`]: the event and the entry,
/// or `None` for any other line (an answer's, or a malformed one).
pub fn parse_control_line(line: &str) -> Option<(&str, OperatorEntry)> {
    let (_, fields) = line.split_once(' ')?;
    let fields = fields.strip_prefix(CONTROL_FIELD)?;
    let (index, rest) = fields.split_once(",node:")?;
    let (_node, rest) = rest.split_once(",event:")?;
    let (event, wire) = rest.split_once(",entry:")?;
    let entry = OperatorEntry::parse(index.parse().ok()?, wire).ok()?;
    Some((event, entry))
}

/// Formats RFC 3339 timestamps at millisecond precision, formatting each
/// distinct millisecond once.
#[derive(Debug, Default)]
pub struct MillisClock {
    millis: Option<u64>,
    text: String,
}

impl MillisClock {
    /// The RFC 3339 text of `at`, e.g. `2026-11-21T22:55:57.123Z`.
    pub fn format(&mut self, at: SystemTime) -> &str {
        let millis = crate::time::unix_millis(at);
        if self.millis != Some(millis) {
            self.text = humantime::format_rfc3339_millis(at).to_string();
            self.millis = Some(millis);
        }
        &self.text
    }
}

/// The fields of a stat-log line that audits need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedStatLine<'a> {
    /// When it was answered (RFC 3339, as written).
    pub at: &'a str,
    /// The answer's code.
    pub code: Code,
    /// The node that answered.
    pub node: &'a str,
    /// The event, if any (`None` for `-`).
    pub event: Option<&'a str>,
    /// The order id, if any (`None` for `-`).
    pub order: Option<&'a str>,
    /// The buyer, if any (`None` for `-`).
    pub user: Option<&'a str>,
    /// The request id, if any (`None` for `-`, and for lines written before
    /// stat logs carried it).
    pub request: Option<&'a str>,
    /// A train run's seats, on a sale of them (`None` otherwise).
    pub ticket: Option<&'a str>,
}

/// Reads back a line written by [`StatLine`]'s `Display`.
pub fn parse_line(line: &str) -> Option<ParsedStatLine<'_>> {
    let (at, fields) = line.split_once(' ')?;
    if fields.starts_with(CONTROL_FIELD) {
        return None; // a followed control: its reason is free text
    }
    let mut code = None;
    let mut node = None;
    let mut event = None;
    let mut order = None;
    let mut user = None;
    let mut request = None;
    let mut ticket = None;
    for field in fields.split(',') {
        let (key, value) = field.split_once(':')?;
        match key {
            "code" => code = value.parse().ok().and_then(Code::from_number),
            "node" => node = Some(value),
            "event" => event = Some((value != "-").then_some(value)),
            "order" => order = Some((value != "-").then_some(value)),
            "user" => user = Some((value != "-").then_some(value)),
            "request" => request = (value != "-").then_some(value),
            "ticket" => ticket = Some(value),
            _ => {}
        }
    }
    Some(ParsedStatLine {
        at,
        code: code?,
        node: node?,
        event: event?,
        order: order?,
        user: user?,
        request,
        ticket,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::from_unix_millis;

    #[test]
    fn line_keeps_the_articles_fields_and_round_trips() {
        let record = StatRecord {
            at: from_unix_millis(1_763_765_757_123),
            code: Code::Success,
            local_sales: 42,
            event: Some(EventId::parse("G1").unwrap()),
            user: Some(UserId::parse("u7").unwrap()),
            order: Some(OrderId::parse("G1-7").unwrap()),
            request: Some(RequestId::parse("u7:1").unwrap()),
            ticket: None,
        };
        let node = NodeId::parse("n1").unwrap();
        let line = StatLine {
            node: &node,
            record: &record,
        }
        .to_string();
        assert_eq!(
            line,
            "2025-11-21T22:55:57.123Z result:1,localSales:42,code:1,node:n1,event:G1,user:u7,order:G1-7,request:u7:1"
        );
        let parsed = parse_line(&line).unwrap();
        assert_eq!(
            (parsed.code, parsed.node, parsed.order, parsed.request),
            (Code::Success, "n1", Some("G1-7"), Some("u7:1"))
        );
        let older = line.rsplit_once(",request:").unwrap().0;
        assert_eq!(
            parse_line(older).unwrap().request,
            None,
            "older lines read too"
        );
    }

    #[test]
    fn a_train_sale_writes_its_seats_last() {
        let ticket: Ticket = "1/0/3/11.12".parse().unwrap();
        let record = StatRecord {
            at: from_unix_millis(0),
            code: Code::Success,
            local_sales: 1,
            event: Some(EventId::parse("G1_2026-12-01").unwrap()),
            user: Some(UserId::parse("u").unwrap()),
            order: Some(OrderId::parse("G1_2026-12-01-9").unwrap()),
            request: Some(RequestId::parse("r").unwrap()),
            ticket: Some(ticket.clone()),
        };
        let node = NodeId::parse("n1").unwrap();
        let line = StatLine {
            node: &node,
            record: &record,
        }
        .to_string();
        assert!(line.ends_with(",request:r,ticket:1/0/3/11.12"), "{line}");
        let parsed = parse_line(&line).unwrap();
        assert_eq!(parsed.ticket.map(str::parse), Some(Ok(ticket)));
    }

    #[test]
    fn a_followed_control_round_trips_and_is_no_answer() {
        let entry =
            OperatorEntry::parse(3, "1700000000000 ops revoke u9 bot, by its pace").unwrap();
        let (node, event) = (NodeId::parse("n1").unwrap(), EventId::parse("G1").unwrap());
        let mut line = Vec::new();
        ControlLine {
            node: &node,
            event: &event,
            entry: &entry,
        }
        .write_to(&mut line, &mut MillisClock::default(), from_unix_millis(0));
        let line = String::from_utf8(line).unwrap();
        assert_eq!(
            line,
            "1970-01-01T00:00:00.000Z control:3,node:n1,event:G1,entry:1700000000000 ops revoke u9 bot, by its pace\n"
        );
        let line = line.trim_end();
        assert_eq!(parse_control_line(line), Some(("G1", entry)));
        assert_eq!(parse_line(line), None, "no answer's line");
        let forged = "1970-01-01T00:00:00.000Z control:0,node:n1,event:G1,entry:1 ops revoke u9 \
                      x,code:1,node:n1,event:G1,user:u9,order:G1-1";
        assert_eq!(parse_line(forged), None, "a reason never reads as a sale");
        assert!(parse_control_line(forged).is_some());
        assert_eq!(
            parse_control_line("1970-01-01T00:00:00.000Z result:1,localSales:1,code:1"),
            None
        );
        assert_eq!(
            parse_control_line(
                "1970-01-01T00:00:00.000Z control:x,node:n1,event:G1,entry:1 a pause"
            ),
            None,
            "a malformed index"
        );
    }

    #[test]
    fn failures_are_result_zero_with_dashes() {
        let record = StatRecord {
            at: from_unix_millis(0),
            code: Code::Refused,
            local_sales: 0,
            event: None,
            user: None,
            order: None,
            request: None,
            ticket: None,
        };
        let node = NodeId::parse("n1").unwrap();
        let line = StatLine {
            node: &node,
            record: &record,
        }
        .to_string();
        assert!(line.contains("result:0,localSales:0,code:-4"), "{line}");
        let parsed = parse_line(&line).unwrap();
        assert_eq!((parsed.order, parsed.request), (None, None));
    }
}
