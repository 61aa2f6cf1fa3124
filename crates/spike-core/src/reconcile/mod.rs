//! Reconciling the three records of a sale — central stock, the order stream
//! and the order ledger (plus, when given, the nodes' stat logs) — into an
//! audit, and rebuilding central stock from the ledger after it lost state.
//! Pure functions over what the adapters read: the audit here, what the
//! stat logs told in `logged`, the audit's waiting-room, waitlist and
//! controls checks beside it, and the recovery's rebuild in `recovery`.

use std::collections::{HashMap, HashSet};
use std::time::SystemTime;

use crate::central::QueueRecord;
use crate::control::OperatorEntry;
use crate::ids::{OrderId, RequestId, UserId};
use crate::order::{Order, OrderState};
use crate::order_stream::StreamEntry;
use crate::sale::{BuyerPolicy, SaleSnapshot};
use crate::time::unix_millis;
use crate::train::{ClassOccupancy, Occupancy, Ticket, WaitEntry};

mod controls;
mod logged;
mod queue;
mod recovery;
mod waitlist;

pub use logged::{LoggedAnswers, LoggedSale, LoggedSoldOut};
use queue::queue_lines;
pub use recovery::{restoration, sequence_floor, EarlierFence, SEQUENCES_PER_MS};
pub use waitlist::restored_waitlist;

/// Everything an audit looks at, for one event.
#[derive(Debug, Clone, Copy)]
pub struct Evidence<'a> {
    /// Central stock's view (`None`: central stock has no such sale).
    pub central: Option<&'a SaleSnapshot>,
    /// The stream's entries, not yet acknowledged.
    pub stream: &'a [StreamEntry],
    /// Of those, entries delivered to a writer and not acknowledged.
    pub pending: u64,
    /// Every order of the event in the ledger.
    pub orders: &'a [Order],
    /// What the nodes' stat logs told buyers, when stat logs were given.
    pub logged: Option<&'a LoggedAnswers>,
    /// The sale's waiting room, if it has one.
    pub queue: Option<&'a QueueRecord>,
    /// A train run's seats as central stock holds them.
    pub occupancy: Option<&'a Occupancy>,
    /// A train run's waitlist, every entry.
    pub waitlist: &'a [WaitEntry],
    /// The sale's operator log, every entry.
    pub operator_log: &'a [OperatorEntry],
}

/// One line of an audit: a figure and, for checks, what it should equal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditLine {
    /// What is measured.
    pub name: String,
    /// The figure found.
    pub actual: u64,
    /// The figure it must equal (`None`: reported, not checked).
    pub expected: Option<u64>,
}

impl AuditLine {
    fn figure(name: &str, actual: u64) -> Self {
        Self {
            name: name.to_owned(),
            actual,
            expected: None,
        }
    }

    fn check(name: &str, actual: u64, expected: u64) -> Self {
        Self {
            name: name.to_owned(),
            actual,
            expected: Some(expected),
        }
    }

    /// Whether this line is a check that failed.
    pub fn failed(&self) -> bool {
        self.expected
            .is_some_and(|expected| expected != self.actual)
    }
}

/// The result of an audit: figures and checks, in reading order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AuditReport {
    /// Every line.
    pub lines: Vec<AuditLine>,
}

impl AuditReport {
    /// Whether every check holds.
    pub fn passed(&self) -> bool {
        !self.lines.iter().any(AuditLine::failed)
    }
}

/// Reconciles one event's records.
pub fn audit(evidence: &Evidence<'_>) -> AuditReport {
    let ledger: HashMap<&OrderId, &Order> = evidence.orders.iter().map(|o| (&o.id, o)).collect();
    let mut unwritten = Vec::new();
    let mut written_not_acked = 0;
    let mut reused_ids = 0;
    for entry in evidence.stream {
        match ledger.get(&entry.order) {
            None => unwritten.push(entry),
            Some(order) if order.request == entry.request && order.user == entry.user => {
                written_not_acked += 1;
            }
            Some(_) => reused_ids += 1,
        }
    }
    let count =
        |state: OrderState| evidence.orders.iter().filter(|o| o.state == state).count() as u64;
    let owed = (evidence.orders.iter())
        .filter(|o| !o.state.holds_seat() && o.seat_returned_at_ms.is_none())
        .count() as u64;
    let counted = evidence
        .orders
        .iter()
        .filter(|o| o.counts_as_sold())
        .count() as u64;
    let expected_sold = counted + unwritten.len() as u64;

    let mut lines = Vec::new();
    match evidence.central {
        Some(central) => {
            lines.push(AuditLine::figure("central total", central.config.total()));
            lines.push(AuditLine::figure("central sold", central.sold));
            let oversold = central.sold.saturating_sub(central.config.total());
            lines.push(AuditLine::check("central sold beyond total", oversold, 0));
        }
        None => lines.push(AuditLine::check("central sale present", 0, 1)),
    }
    lines.push(AuditLine::figure(
        "stream entries (not yet written)",
        unwritten.len() as u64,
    ));
    lines.push(AuditLine::figure(
        "stream entries pending in a writer",
        evidence.pending,
    ));
    lines.push(AuditLine::figure(
        "stream entries written, not acknowledged",
        written_not_acked,
    ));
    for state in crate::order::ORDER_STATES {
        lines.push(AuditLine::figure(&format!("orders {state}"), count(state)));
    }
    lines.push(AuditLine::figure("seats owed back to central stock", owed));
    if let Some(central) = evidence.central {
        lines.push(AuditLine::check(
            "central sold = reserved + paid + owed + unwritten",
            central.sold,
            expected_sold,
        ));
    }
    lines.push(AuditLine::check("order ids sold twice", reused_ids, 0));

    let holders = (evidence.orders.iter())
        .filter(|o| o.counts_as_sold())
        .map(|o| (&o.request, o.user.as_ref()))
        .chain(unwritten.iter().map(|e| (&e.request, e.user.as_ref())));
    let mut per_user: HashMap<&UserId, u64> = HashMap::new();
    let mut requests = HashSet::new();
    let mut request_twice = 0;
    for (request, user) in holders {
        request_twice += u64::from(!requests.insert(request));
        if let Some(user) = user {
            *per_user.entry(user).or_default() += 1;
        }
    }
    lines.push(AuditLine::check(
        "requests holding two seats",
        request_twice,
        0,
    ));
    if let Some(central) = evidence.central {
        if let BuyerPolicy::Identified { per_user_limit, .. } = central.config.policy() {
            let limit = u64::from(per_user_limit.get());
            let over = per_user.values().filter(|&&held| held > limit).count() as u64;
            lines.push(AuditLine::check("buyers over their limit", over, 0));
            lines.push(AuditLine::check(
                "central buyer index = buyers holding seats",
                central.buyers,
                per_user.len() as u64,
            ));
        }
    }

    if let Some(record) = evidence.queue {
        let room = (evidence.central).and_then(|central| central.config.queue());
        let log = evidence.operator_log;
        lines.extend(queue_lines(record, room, log, per_user.keys().copied()));
    }

    if let Some(occupancy) = evidence.occupancy {
        let seated = (evidence.orders.iter())
            .filter(|o| o.counts_as_sold())
            .map(|o| o.ticket.as_ref())
            .chain(unwritten.iter().map(|e| e.ticket.as_ref()));
        lines.extend(seat_lines(occupancy, seated));
        if !evidence.waitlist.is_empty() {
            lines.extend(waitlist::waitlist_lines(
                evidence.waitlist,
                evidence.orders,
                evidence.stream,
                occupancy,
                unix_millis(SystemTime::now()),
            ));
        }
    }

    if !evidence.operator_log.is_empty() {
        lines.extend(controls::control_lines(
            evidence.operator_log,
            evidence.orders,
            evidence.stream,
            evidence.waitlist,
        ));
    }

    if let Some(answers) = evidence.logged {
        let logged = answers.sales.as_slice();
        // Who holds each order id, by every record: the ledger, the stream
        // and the answers the stat logs report.
        let recorded: HashMap<&OrderId, Option<&UserId>> = (evidence.orders.iter())
            .map(|o| (&o.id, o.user.as_ref()))
            .chain(evidence.stream.iter().map(|e| (&e.order, e.user.as_ref())))
            .collect();
        let logged_ids: HashSet<&OrderId> = logged.iter().map(|sale| &sale.order).collect();
        let lost = logged_ids
            .iter()
            .filter(|id| !recorded.contains_key(*id))
            .count() as u64;
        // An order whose buyer was told "unknown" (503 with its request id:
        // central stock did not confirm in time) is answered by
        // /buy/result, not by a line; it is counted, not a mismatch.
        let told_unknown: HashSet<&RequestId> = answers.unknown.iter().collect();
        let request_of: HashMap<&OrderId, &RequestId> = (evidence.orders.iter())
            .map(|o| (&o.id, &o.request))
            .chain(evidence.stream.iter().map(|e| (&e.order, &e.request)))
            .collect();
        let (unknown, unlogged): (Vec<&&OrderId>, Vec<&&OrderId>) = recorded
            .keys()
            .filter(|id| !logged_ids.contains(*id))
            .partition(|id| {
                request_of
                    .get(*id)
                    .is_some_and(|request| told_unknown.contains(request))
            });
        let mut holders: HashMap<&OrderId, HashSet<Option<&UserId>>> = HashMap::new();
        for (order, user) in recorded
            .iter()
            .map(|(order, user)| (*order, *user))
            .chain(logged.iter().map(|sale| (&sale.order, sale.user.as_ref())))
        {
            holders.entry(order).or_default().insert(user);
        }
        let shared = holders.values().filter(|users| users.len() > 1).count() as u64;
        let resold = (logged.iter())
            .filter(|sale| {
                recorded
                    .get(&sale.order)
                    .is_some_and(|holder| *holder != sale.user.as_ref())
            })
            .count() as u64;
        lines.push(AuditLine::figure(
            "sales in stat logs",
            logged_ids.len() as u64,
        ));
        lines.push(AuditLine::check("logged sales without an order", lost, 0));
        lines.push(AuditLine::figure(
            "orders whose buyer was told \"unknown\" only",
            unknown.len() as u64,
        ));
        lines.push(AuditLine::check(
            "orders without a logged answer",
            unlogged.len() as u64,
            0,
        ));
        lines.push(AuditLine::check("order ids held by two buyers", shared, 0));
        lines.push(AuditLine::check(
            "buyers told success whose seat another holds",
            resold,
            0,
        ));
        lines.push(AuditLine::check(
            "buyers told sold out who hold an order",
            phantom_orders(evidence, &answers.sold_out),
            0,
        ));
    }
    AuditReport { lines }
}

/// Orders whose request was told "sold out" once it held them: the
/// buyer holds a seat they were told they did not get.
fn phantom_orders(evidence: &Evidence<'_>, sold_out: &[LoggedSoldOut]) -> u64 {
    let sold_at: HashMap<&RequestId, u64> = (evidence.orders.iter())
        .map(|o| (&o.request, o.sold_at_ms))
        .chain(evidence.stream.iter().map(|e| (&e.request, e.sold_at_ms)))
        .collect();
    let phantoms: HashSet<&RequestId> = (sold_out.iter())
        .filter(|told| {
            sold_at
                .get(&told.request)
                .is_some_and(|&at| at <= told.at_ms)
        })
        .map(|told| &told.request)
        .collect();
    phantoms.len() as u64
}

/// A train run's checks: the seats of every order that counts as sold
/// (holding them, or given up and not yet returned), laid over each other,
/// never share a seat-segment, and are exactly the bits central stock holds.
fn seat_lines<'a>(
    occupancy: &Occupancy,
    seated: impl Iterator<Item = Option<&'a Ticket>>,
) -> Vec<AuditLine> {
    let mut rebuilt: Vec<ClassOccupancy> = (occupancy.layout.classes().iter())
        .map(|c| ClassOccupancy::empty(c.seats()))
        .collect();
    let (mut without_seats, mut sold_twice) = (0, 0);
    for ticket in seated {
        let Some(ticket) = ticket else {
            without_seats += 1;
            continue;
        };
        let Some(class) = rebuilt.get_mut(ticket.class) else {
            without_seats += 1;
            continue;
        };
        for &seat in &ticket.seats {
            let held = class.masks().get(seat as usize).copied().unwrap_or(0);
            sold_twice += u64::from((held & ticket.leg.mask()).count_ones());
        }
        class.take(&ticket.seats, ticket.leg);
    }
    let differing: u64 = (rebuilt.iter().zip(&occupancy.classes))
        .flat_map(|(ours, central)| ours.masks().iter().zip(central.masks()))
        .map(|(ours, central)| u64::from((ours ^ central).count_ones()))
        .sum();
    vec![
        AuditLine::figure("seat-segments sold (central)", occupancy.sold_segments()),
        AuditLine::figure("seat-segments the run has", occupancy.layout.capacity()),
        AuditLine::check("train orders without seats", without_seats, 0),
        AuditLine::check("seat-segments sold twice", sold_twice, 0),
        AuditLine::check(
            "seat-segments where central differs from the orders",
            differing,
            0,
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{EventId, NodeId, RequestId};
    use crate::queue::{steps_beyond_rate, QueueConfig, Shuffle};
    use crate::sale::SaleConfig;

    fn entry(sequence: u64, user: &str) -> StreamEntry {
        let event = EventId::parse("A").unwrap();
        StreamEntry {
            sequence,
            order: OrderId::for_sequence(&event, sequence),
            user: Some(UserId::parse(user).unwrap()),
            request: RequestId::parse(format!("r-{user}")).unwrap(),
            node: NodeId::parse("n").unwrap(),
            sold_at_ms: 1,
            ticket: None,
        }
    }

    fn order(sequence: u64, user: &str, state: OrderState, returned: bool) -> Order {
        let e = entry(sequence, user);
        Order {
            id: e.order,
            event: EventId::parse("A").unwrap(),
            sequence,
            user: e.user,
            request: e.request,
            node: e.node,
            state,
            sold_at_ms: 1,
            expires_at_ms: 2,
            updated_at_ms: 2,
            seat_returned_at_ms: returned.then_some(3),
            ticket: None,
            change_event: None,
            changed_to: None,
        }
    }

    fn snapshot(sold: u64, buyers: u64) -> SaleSnapshot {
        SaleSnapshot {
            config: SaleConfig::new(4).unwrap(),
            sold,
            buyers,
            orders_in_stream: 0,
        }
    }

    #[test]
    fn a_settled_sale_passes_and_a_lost_order_fails() {
        let orders = [
            order(1, "a", OrderState::Paid, false),
            order(2, "b", OrderState::Reserved, false),
            order(3, "c", OrderState::Expired, true),
            order(4, "d", OrderState::Cancelled, false),
        ];
        let stream = [entry(5, "e")];
        let central = snapshot(4, 4);
        let evidence = Evidence {
            central: Some(&central),
            stream: &stream,
            pending: 0,
            orders: &orders,
            logged: None,
            queue: None,
            occupancy: None,
            waitlist: &[],
            operator_log: &[],
        };
        let report = audit(&evidence);
        assert!(report.passed(), "{report:#?}");
        // Central stock claims one seat more than the records explain.
        let central = snapshot(5, 4);
        let report = audit(&Evidence {
            central: Some(&central),
            ..evidence
        });
        assert!(!report.passed());
    }

    fn told(order: &OrderId, user: &str) -> LoggedSale {
        LoggedSale {
            order: order.clone(),
            user: Some(UserId::parse(user).unwrap()),
            request: None,
            node: NodeId::parse("n1").unwrap(),
            at_ms: 1,
            ticket: None,
        }
    }

    fn sales(sales: &[LoggedSale]) -> LoggedAnswers {
        LoggedAnswers {
            sales: sales.to_vec(),
            ..LoggedAnswers::default()
        }
    }

    fn failed_checks(report: &AuditReport) -> Vec<&str> {
        (report.lines.iter())
            .filter(|line| line.failed())
            .map(|line| line.name.as_str())
            .collect()
    }

    #[test]
    fn seats_sold_twice_or_off_central_fail_the_audit() {
        let layout = crate::train::TrainLayout::new(&["A", "B", "C"], &["second:1x5"]).unwrap();
        let mut central = Occupancy::empty(std::sync::Arc::new(layout));
        let ticket = |from, to, seats: &[u32]| Ticket {
            class: 0,
            leg: crate::train::Leg::new(from, to).unwrap(),
            seats: seats.to_vec(),
        };
        let (ab, bc) = (ticket(0, 1, &[0, 1]), ticket(1, 2, &[0]));
        central.classes[0].take(&ab.seats, ab.leg);
        central.classes[0].take(&bc.seats, bc.leg);
        let names = |lines: Vec<AuditLine>| {
            (lines.into_iter())
                .filter(|l| l.failed())
                .map(|l| l.name)
                .collect::<Vec<_>>()
        };
        assert!(names(seat_lines(&central, [Some(&ab), Some(&bc)].into_iter())).is_empty());

        let overlapping = ticket(0, 2, &[1]);
        assert_eq!(
            names(seat_lines(
                &central,
                [Some(&ab), Some(&bc), Some(&overlapping)].into_iter()
            )),
            [
                "seat-segments sold twice",
                "seat-segments where central differs from the orders"
            ]
        );
        assert_eq!(
            names(seat_lines(&central, [Some(&ab), None].into_iter())),
            [
                "train orders without seats",
                "seat-segments where central differs from the orders"
            ]
        );
    }

    #[test]
    fn stat_logs_must_match_orders_both_ways() {
        let orders = [order(1, "a", OrderState::Reserved, false)];
        let central = snapshot(1, 1);
        let logged = sales(&[told(&orders[0].id, "a")]);
        let evidence = Evidence {
            central: Some(&central),
            stream: &[],
            pending: 0,
            orders: &orders,
            logged: Some(&logged),
            queue: None,
            occupancy: None,
            waitlist: &[],
            operator_log: &[],
        };
        assert!(audit(&evidence).passed());
        let extra = sales(&[told(&orders[0].id, "a"), told(&entry(9, "z").order, "z")]);
        let report = audit(&Evidence {
            logged: Some(&extra),
            ..evidence
        });
        assert_eq!(failed_checks(&report), ["logged sales without an order"]);
        let report = audit(&Evidence {
            logged: Some(&LoggedAnswers::default()),
            ..evidence
        });
        assert_eq!(failed_checks(&report), ["orders without a logged answer"]);
        // Its buyer was told "unknown" (and resolves it with /buy/result).
        let unknown = LoggedAnswers {
            unknown: vec![orders[0].request.clone()],
            ..LoggedAnswers::default()
        };
        let report = audit(&Evidence {
            logged: Some(&unknown),
            ..evidence
        });
        assert!(report.passed(), "{report:#?}");
    }

    #[test]
    fn an_order_id_told_to_two_buyers_is_found() {
        // Recovery handed order 1 to b after a had been told it was hers.
        let orders = [order(1, "b", OrderState::Reserved, false)];
        let central = snapshot(1, 1);
        let logged = sales(&[told(&orders[0].id, "a"), told(&orders[0].id, "b")]);
        let report = audit(&Evidence {
            central: Some(&central),
            stream: &[],
            pending: 0,
            orders: &orders,
            logged: Some(&logged),
            queue: None,
            occupancy: None,
            waitlist: &[],
            operator_log: &[],
        });
        assert_eq!(
            failed_checks(&report),
            [
                "order ids held by two buyers",
                "buyers told success whose seat another holds"
            ]
        );
    }

    #[test]
    fn a_buyer_told_sold_out_while_holding_the_order_is_found() {
        // order(1, "a") was sold at 1 ms to request r-a.
        let orders = [order(1, "a", OrderState::Reserved, false)];
        let central = snapshot(1, 1);
        let told_sold_out = |at_ms| LoggedSoldOut {
            request: RequestId::parse("r-a").unwrap(),
            user: Some(UserId::parse("a").unwrap()),
            at_ms,
        };
        let logged = |sold_out| LoggedAnswers {
            sales: vec![told(&orders[0].id, "a")],
            sold_out,
            ..LoggedAnswers::default()
        };
        let evidence = |logged| {
            audit(&Evidence {
                central: Some(&central),
                stream: &[],
                pending: 0,
                orders: &orders,
                logged: Some(logged),
                queue: None,
                occupancy: None,
                waitlist: &[],
                operator_log: &[],
            })
        };
        // Told "sold out" before it bought (an earlier try, then a retry
        // that found a returned seat): true when said.
        let earlier = logged(vec![told_sold_out(0)]);
        assert!(evidence(&earlier).passed());
        let after = logged(vec![told_sold_out(5), told_sold_out(6)]);
        let report = evidence(&after);
        assert_eq!(
            failed_checks(&report),
            ["buyers told sold out who hold an order"]
        );
        let line = report
            .lines
            .iter()
            .find(|line| line.failed())
            .map(|line| line.actual);
        assert_eq!(line, Some(1), "one order, however many answers");
    }

    #[test]
    fn stat_log_lines_become_logged_answers_of_their_event() {
        let event = EventId::parse("A").unwrap();
        let lines = [
            "2026-11-22T10:00:00.001Z result:1,localSales:1,code:1,node:n1,event:A,user:a,order:A-1,request:r-a",
            "2026-11-22T10:00:00.002Z result:0,localSales:1,code:-1,node:n1,event:A,user:b,order:-,request:r-b",
            "2026-11-22T10:00:00.003Z result:0,localSales:1,code:-1,node:n1,event:A,user:c,order:-,request:-",
            "2026-11-22T10:00:00.004Z result:1,localSales:1,code:1,node:n1,event:B,user:d,order:B-1,request:r-d",
            "2026-11-22T10:00:00.005Z result:1,localSales:2,code:1,node:n1,event:A,user:e,order:A-2",
            "2026-11-22T10:00:00.006Z result:0,localSales:2,code:-5,node:n1,event:A,user:f,order:-,request:r-f",
            "not a stat line",
        ];
        let mut answers = LoggedAnswers::default();
        answers.read_lines(&event, lines);
        let sales: Vec<_> = (answers.sales.iter())
            .map(|s| (s.order.as_str(), s.request.as_ref().map(RequestId::as_str)))
            .collect();
        assert_eq!(sales, [("A-1", Some("r-a")), ("A-2", None)]);
        assert_eq!(answers.sales[0].at_ms % 1000, 1);
        let sold_out: Vec<_> = answers
            .sold_out
            .iter()
            .map(|s| s.request.as_str())
            .collect();
        assert_eq!(sold_out, ["r-b"], "only answers that asked central stock");
        let unknown: Vec<_> = answers.unknown.iter().map(RequestId::as_str).collect();
        assert_eq!(unknown, ["r-f"]);
        assert_eq!(
            answers.sales[0].to_entry().unwrap().request.as_str(),
            "r-a",
            "recovery restores the buyer's own request id"
        );
        assert_eq!(
            answers.sales[1].to_entry().unwrap().request.as_str(),
            "stat-log:2"
        );
    }

    #[test]
    fn restoration_keeps_holders_and_continues_the_sequence() {
        let orders = [
            order(1, "a", OrderState::Paid, false),
            order(2, "b", OrderState::Expired, false),
        ];
        let stream = [entry(2, "b"), entry(7, "g")];
        let restored = restoration(SaleConfig::new(4).unwrap(), &orders, &stream, 0);
        let held: Vec<_> = restored
            .holding
            .iter()
            .map(|h| h.order.to_string())
            .collect();
        assert_eq!(held, ["A-1", "A-7"]);
        assert_eq!(restored.released, [orders[1].id.clone()]);
        assert_eq!(restored.last_sequence, 7);
    }

    #[test]
    fn restoration_resumes_past_ids_no_record_holds() {
        let orders = [order(1, "a", OrderState::Paid, false)];
        let never = EarlierFence {
            through: 0,
            at_ms: 0,
        };
        let fence = never.next(1_800_000_000_000, 1);
        let first = restoration(SaleConfig::new(4).unwrap(), &orders, &[], fence);
        assert_eq!(first.last_sequence, 1_800_000_000_000 * SEQUENCES_PER_MS);
        // A second recovery a minute later, after 1,000 sales that were all
        // lost (no record holds them): it still resumes past them.
        let lost_up_to = first.last_sequence + 1_000;
        let earlier = EarlierFence {
            through: fence,
            at_ms: 1_800_000_000_000,
        };
        let fence = earlier.next(1_800_000_060_000, 1);
        let second = restoration(SaleConfig::new(4).unwrap(), &orders, &[], fence);
        assert!(second.last_sequence > lost_up_to);
    }

    #[test]
    fn a_fence_never_goes_below_an_earlier_one_or_into_its_life() {
        // The first recovery ran where the clock was an hour ahead.
        let now_ms = 1_800_000_000_000;
        let hour_ahead = EarlierFence {
            through: (now_ms + 3_600_000) * SEQUENCES_PER_MS,
            at_ms: now_ms,
        };
        // Its life sold as fast as the bound allows for ten seconds.
        let sold_up_to = hour_ahead.through + 10_000 * SEQUENCES_PER_MS;
        let next = hour_ahead.next(now_ms + 10_000, 0);
        assert!(next > sold_up_to, "{next} ≤ {sold_up_to}");
        // Records above everything win, and a clock gone back changes nothing.
        assert_eq!(hour_ahead.next(now_ms, u64::MAX / 2), u64::MAX / 2);
        assert!(hour_ahead.next(now_ms - 60_000, 0) > hour_ahead.through);
    }

    #[test]
    fn the_waiting_room_must_admit_every_buyer_once_at_their_own_position() {
        use crate::queue::{AdmissionStep, QueueCounters, Seal};
        let seal = Seal { seed: 3, early: 4 };
        let shuffle = Shuffle::of(seal);
        let user = |name: &str| UserId::parse(name).unwrap();
        let joiners: Vec<(UserId, u64)> = ["a", "b", "x", "y"]
            .iter()
            .enumerate()
            .map(|(index, name)| (user(name), index as u64))
            .collect();
        // Admit the two whose positions are 0 and 1; they are "a" and "b".
        let position = |index: u64| shuffle.position(index);
        let record = QueueRecord {
            counters: QueueCounters {
                joined: 4,
                seal: Some(seal),
                admitted: 4,
                active: 0,
                now_ms: 0,
                remaining: 0,
                steps: Vec::new(),
            },
            joiners,
            bought: vec![(position(0), user("a")), (position(1), user("b"))],
            carried: Vec::new(),
            passed: Vec::new(),
            origin_ms: 0,
        };
        let orders = [
            order(1, "a", OrderState::Paid, false),
            order(2, "b", OrderState::Reserved, false),
        ];
        let central = snapshot(2, 2);
        let evidence = Evidence {
            central: Some(&central),
            stream: &[],
            pending: 0,
            orders: &orders,
            logged: None,
            queue: Some(&record),
            occupancy: None,
            waitlist: &[],
            operator_log: &[],
        };
        assert!(audit(&evidence).passed(), "{:#?}", audit(&evidence));

        let check = |record: &QueueRecord| {
            let report = audit(&Evidence {
                queue: Some(record),
                ..evidence
            });
            failed_checks(&report)
                .into_iter()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        };
        let mut no_admission = record.clone();
        no_admission.bought.pop();
        assert_eq!(
            check(&no_admission),
            ["waiting room: buyers holding seats without an admission"]
        );
        let mut carried = no_admission.clone();
        carried.carried.push(user("b"));
        assert!(
            check(&carried).is_empty(),
            "a holder carried over a reset was admitted in the lost room"
        );
        let mut beyond = record.clone();
        beyond.counters.admitted = 1;
        assert!(check(&beyond)
            .contains(&"waiting room: purchases at a position not admitted".to_owned()));
        let mut swapped = record.clone();
        swapped.bought = vec![(position(1), user("a")), (position(0), user("b"))];
        assert_eq!(
            check(&swapped),
            ["waiting room: purchases at another buyer's position"]
        );
        let mut twice = record.clone();
        twice.bought.push((position(2), user("a")));
        assert!(
            check(&twice).contains(&"waiting room: buyers admitted at two positions".to_owned())
        );
        let mut reused = record.clone();
        reused.joiners[3].1 = 0;
        assert_eq!(
            check(&reused),
            ["waiting room: places given twice or skipped"]
        );
        // Late joiners (positions 4, 5, 6): 4 passed straight through alone,
        // 5 waited and 6 came after it; 6 passing with 5 still waiting is
        // a pass ahead of a waiting buyer.
        let step = |at_ms, admitted| AdmissionStep { at_ms, admitted };
        let mut spilled = record.clone();
        spilled.counters.steps = vec![step(0, 4), step(10, 5), step(20, 7)];
        spilled.passed = vec![4];
        assert!(check(&spilled).is_empty(), "{:?}", check(&spilled));
        spilled.passed = vec![4, 6];
        assert_eq!(
            check(&spilled),
            ["waiting room: buyers who passed ahead of a waiting buyer"]
        );
    }

    #[test]
    fn no_admission_may_overdraw_the_rate() {
        use crate::queue::AdmissionStep;
        use crate::queue::RatePeriod;
        use std::num::NonZeroU32;
        let config = QueueConfig::new(NonZeroU32::new(10).unwrap()).unwrap();
        let step = |at_ms, admitted| AdmissionStep { at_ms, admitted };
        // 10/s with a bucket of one second: 10 at once after the opening,
        // then one every 100 ms.
        let one = [RatePeriod { from_ms: 0, config }];
        let paced = [step(1_000, 10), step(1_100, 11), step(1_300, 13)];
        assert_eq!(steps_beyond_rate(&one, &paced), 0);
        let hurried = [step(1_000, 10), step(1_050, 12)];
        assert_eq!(steps_beyond_rate(&one, &hurried), 1);
        let burst = [step(60_000, 11)];
        assert_eq!(steps_beyond_rate(&one, &burst), 1, "the bucket holds 10");
    }

    #[test]
    fn a_rate_change_starts_a_period_with_an_empty_bucket() {
        use crate::queue::AdmissionStep;
        use crate::queue::RatePeriod;
        use std::num::NonZeroU32;
        let rate = |r| QueueConfig::new(NonZeroU32::new(r).unwrap()).unwrap();
        let step = |at_ms, admitted| AdmissionStep { at_ms, admitted };
        // 10/s until 2 s, then 100/s: the new bucket is empty at 2 s.
        let periods = [
            RatePeriod {
                from_ms: 0,
                config: rate(10),
            },
            RatePeriod {
                from_ms: 2_000,
                config: rate(100),
            },
        ];
        let paced = [step(1_000, 10), step(1_900, 19), step(2_500, 69)];
        assert_eq!(steps_beyond_rate(&periods, &paced), 0);
        // At 10/s, 50 more in half a second overdraws; at 100/s it is the
        // rate, but a bucket carried over from the old period would not be
        // empty: 10 at the change itself overdraws.
        assert_eq!(steps_beyond_rate(&periods[..1], &paced), 1);
        let carried = [step(1_000, 10), step(2_000, 30)];
        assert_eq!(steps_beyond_rate(&periods, &carried), 1);
    }
}
