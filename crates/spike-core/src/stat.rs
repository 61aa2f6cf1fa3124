//! The stat log's line format: the articles' `result:1,localSales:N`, plus
//! when, which node, code, event, user and order. One answered request, one line.

use std::fmt;
use std::time::SystemTime;

use crate::ids::{EventId, NodeId, OrderId, UserId};

/// One answered request, as written to `stat.log`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatRecord {
    /// When the answer was given.
    pub at: SystemTime,
    /// The answer's code (1 success, -1 sold out, … -5 try again).
    pub code: i8,
    /// The node's sales so far (the articles' `localSales`).
    pub local_sales: u64,
    /// The node that answered.
    pub node: NodeId,
    /// The event, when the request named a valid one.
    pub event: Option<EventId>,
    /// The user, when the request named a valid one.
    pub user: Option<UserId>,
    /// The order, on success or "already purchased".
    pub order: Option<OrderId>,
}

impl fmt::Display for StatRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn or_dash<T: fmt::Display>(v: &Option<T>) -> &dyn fmt::Display {
            match v {
                Some(v) => v,
                None => &"-",
            }
        }
        write!(
            f,
            "{} result:{},localSales:{},code:{},node:{},event:{},user:{},order:{}",
            humantime::format_rfc3339_millis(self.at),
            u8::from(self.code == 1),
            self.local_sales,
            self.code,
            self.node,
            or_dash(&self.event),
            or_dash(&self.user),
            or_dash(&self.order),
        )
    }
}

/// The fields of a stat-log line that audits need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedStatLine<'a> {
    /// The answer's code.
    pub code: i8,
    /// The node that answered.
    pub node: &'a str,
    /// The order id, if any (`None` for `-`).
    pub order: Option<&'a str>,
}

/// Reads back a line written by [`StatRecord`]'s `Display`.
pub fn parse_line(line: &str) -> Option<ParsedStatLine<'_>> {
    let (_time, fields) = line.split_once(' ')?;
    let mut code = None;
    let mut node = None;
    let mut order = None;
    for field in fields.split(',') {
        let (key, value) = field.split_once(':')?;
        match key {
            "code" => code = value.parse().ok(),
            "node" => node = Some(value),
            "order" => order = Some((value != "-").then_some(value)),
            _ => {}
        }
    }
    Some(ParsedStatLine {
        code: code?,
        node: node?,
        order: order?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sale::from_unix_millis;

    #[test]
    fn line_keeps_the_articles_fields_and_round_trips() {
        let record = StatRecord {
            at: from_unix_millis(1_763_765_757_123),
            code: 1,
            local_sales: 42,
            node: NodeId::parse("n1").unwrap(),
            event: Some(EventId::parse("G1").unwrap()),
            user: Some(UserId::parse("u7").unwrap()),
            order: Some(OrderId::parse("G1-7").unwrap()),
        };
        let line = record.to_string();
        assert_eq!(
            line,
            "2025-11-21T22:55:57.123Z result:1,localSales:42,code:1,node:n1,event:G1,user:u7,order:G1-7"
        );
        let parsed = parse_line(&line).unwrap();
        assert_eq!(
            (parsed.code, parsed.node, parsed.order),
            (1, "n1", Some("G1-7"))
        );
    }

    #[test]
    fn failures_are_result_zero_with_dashes() {
        let record = StatRecord {
            at: from_unix_millis(0),
            code: -4,
            local_sales: 0,
            node: NodeId::parse("n1").unwrap(),
            event: None,
            user: None,
            order: None,
        };
        let line = record.to_string();
        assert!(line.contains("result:0,localSales:0,code:-4"), "{line}");
        assert_eq!(parse_line(&line).unwrap().order, None);
    }
}
