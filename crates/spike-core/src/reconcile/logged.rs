//! What the nodes' stat logs told buyers about a sale, read back for the
//! audit and the recovery: the sales, the "sold out" and "unknown"
//! answers, and the operator controls the nodes followed.

use crate::code::Code;
use crate::control::OperatorEntry;
use crate::ids::{EventId, NodeId, OrderId, RequestId, UserId};
use crate::order_stream::StreamEntry;
use crate::stat::{parse_control_line, parse_line};
use crate::time::unix_millis;
use crate::train::Ticket;

/// What the nodes' stat logs told buyers about one event: the sales
/// ("success", with an order), and the purchases told "sold out" or
/// "unknown".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoggedAnswers {
    /// Buyers told "success".
    pub sales: Vec<LoggedSale>,
    /// Purchases told "sold out" after asking central stock.
    pub sold_out: Vec<LoggedSoldOut>,
    /// Purchases told "unknown" (503 with the request id, to resolve with
    /// `/buy/result`): central stock may or may not have sold them.
    pub unknown: Vec<RequestId>,
    /// The operator log's entries the nodes followed (each node writes
    /// every entry it follows; see [`crate::control::recovered_log`]).
    pub controls: Vec<OperatorEntry>,
}

impl LoggedAnswers {
    /// Adds the answers about `event` among a stat log's `lines`; lines
    /// that do not parse, or are about other events, are skipped.
    pub fn read_lines<'a>(&mut self, event: &EventId, lines: impl IntoIterator<Item = &'a str>) {
        for line in lines {
            if let Some((logged_event, entry)) = parse_control_line(line) {
                if logged_event == event.as_str() {
                    self.controls.push(entry);
                }
                continue;
            }
            let Some(parsed) = parse_line(line) else {
                continue;
            };
            if parsed.event != Some(event.as_str()) {
                continue;
            }
            let (Ok(node), Ok(at)) = (
                NodeId::parse(parsed.node),
                humantime::parse_rfc3339_weak(parsed.at),
            ) else {
                continue;
            };
            let at_ms = unix_millis(at);
            let user = parsed.user.and_then(|user| UserId::parse(user).ok());
            let request = parsed.request.and_then(|r| RequestId::parse(r).ok());
            match (parsed.code, parsed.order) {
                (Code::Success, Some(order)) => {
                    let Ok(order) = OrderId::parse(order) else {
                        continue;
                    };
                    let ticket = parsed.ticket.and_then(|t| t.parse().ok());
                    self.sales.push(LoggedSale {
                        order,
                        user,
                        request,
                        node,
                        at_ms,
                        ticket,
                    });
                }
                (Code::SoldOut, _) => {
                    if let Some(request) = request {
                        self.sold_out.push(LoggedSoldOut {
                            request,
                            user,
                            at_ms,
                        });
                    }
                }
                (Code::TryAgain, _) => self.unknown.extend(request),
                _ => {}
            }
        }
    }
}

/// One sale a stat log reports: a buyer was told "success" with this order.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LoggedSale {
    /// The order the answer carried.
    pub order: OrderId,
    /// The buyer it was told to (`None` on an anonymous sale).
    pub user: Option<UserId>,
    /// The purchase's request id (`None` in lines written before stat logs
    /// carried it).
    pub request: Option<RequestId>,
    /// The node that answered.
    pub node: NodeId,
    /// When it answered, Unix milliseconds.
    pub at_ms: u64,
    /// The seats it gave, on a train run.
    pub ticket: Option<Ticket>,
}

impl LoggedSale {
    /// The stream entry this sale had, for a sale no other record holds
    /// (lost with Redis before a writer read it). A line without a request
    /// id (written before stat logs carried it) gets `stat-log:SEQUENCE`.
    pub fn to_entry(&self) -> Option<StreamEntry> {
        let (_, sequence) = self.order.split()?;
        let request = match &self.request {
            Some(request) => request.clone(),
            None => RequestId::parse(format!("stat-log:{sequence}")).ok()?,
        };
        Some(StreamEntry {
            sequence,
            order: self.order.clone(),
            user: self.user.clone(),
            request,
            node: self.node.clone(),
            sold_at_ms: self.at_ms,
            ticket: self.ticket.clone(),
        })
    }
}

/// One purchase a stat log reports told "sold out" by central stock.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LoggedSoldOut {
    /// The purchase's request id.
    pub request: RequestId,
    /// The buyer (`None` on an anonymous sale).
    pub user: Option<UserId>,
    /// When it answered, Unix milliseconds.
    pub at_ms: u64,
}
