//! What an order is once it leaves the order stream: its states, the only
//! transitions between them, and when a reserved order's seat is due back.

use std::fmt;

use crate::ids::{EventId, NodeId, OrderId, RequestId, UserId};

/// Where an order is in its life.
///
/// `Reserved` has three ways out: to `Paid` (the buyer paid in time),
/// `Expired` (they did not) or `Cancelled` (they gave it up). `Paid` has
/// two: `Refunded` (they gave the paid ticket back, 退票) and `Changing`
/// (they exchange it, 改签), which ends `Changed` (the new ticket is
/// theirs) or back at `Paid` (no new ticket could be had).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum OrderState {
    /// Sold, waiting for payment; holds a seat.
    Reserved,
    /// Paid; holds a seat for good.
    Paid,
    /// Not paid in time; its seat goes back on sale.
    Expired,
    /// Given up by the buyer; its seat goes back on sale.
    Cancelled,
    /// Paid, then given back by the buyer (or refunded by the payment
    /// service); its seat goes back, to the waitlist first.
    Refunded,
    /// Paid, and being exchanged for another ticket: it holds its seat
    /// until the new one is had (then `Changed`) or cannot be (`Paid`).
    Changing,
    /// Exchanged for another ticket (its `changed_to`); its seat goes back,
    /// to the waitlist first.
    Changed,
}

/// Every state, in the order reports list them.
pub const ORDER_STATES: [OrderState; 7] = [
    OrderState::Reserved,
    OrderState::Paid,
    OrderState::Expired,
    OrderState::Cancelled,
    OrderState::Refunded,
    OrderState::Changing,
    OrderState::Changed,
];

/// A state name that is not one of [`ORDER_STATES`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown order state {0:?}")]
pub struct UnknownOrderState(pub String);

impl OrderState {
    /// The name stored in the database and shown in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Reserved => "reserved",
            Self::Paid => "paid",
            Self::Expired => "expired",
            Self::Cancelled => "cancelled",
            Self::Refunded => "refunded",
            Self::Changing => "changing",
            Self::Changed => "changed",
        }
    }

    /// Reads a name written by [`Self::as_str`].
    pub fn parse(name: &str) -> Result<Self, UnknownOrderState> {
        ORDER_STATES
            .into_iter()
            .find(|state| state.as_str() == name)
            .ok_or_else(|| UnknownOrderState(name.to_owned()))
    }

    /// Whether an order in this state keeps its seat.
    pub fn holds_seat(self) -> bool {
        matches!(self, Self::Reserved | Self::Paid | Self::Changing)
    }
}

impl fmt::Display for OrderState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A move an order may be asked to make.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// The buyer pays.
    Pay,
    /// The buyer gives the order up.
    Cancel,
    /// The payment window closed.
    Expire,
    /// The buyer gives a paid order back (a refund).
    Refund,
    /// The buyer starts exchanging a paid order for another ticket.
    BeginChange,
    /// The new ticket is theirs: the exchanged order gives its seat back.
    FinishChange,
    /// No new ticket could be had: the order is paid again, as before.
    UndoChange,
}

impl Transition {
    /// The state this transition leads to.
    pub fn target(self) -> OrderState {
        match self {
            Self::Pay => OrderState::Paid,
            Self::Cancel => OrderState::Cancelled,
            Self::Expire => OrderState::Expired,
            Self::Refund => OrderState::Refunded,
            Self::BeginChange => OrderState::Changing,
            Self::FinishChange => OrderState::Changed,
            Self::UndoChange => OrderState::Paid,
        }
    }

    /// The state it starts from: `Paid` for a refund and the start of a
    /// change, `Changing` for its end, `Reserved` for the rest.
    pub fn source(self) -> OrderState {
        match self {
            Self::Refund | Self::BeginChange => OrderState::Paid,
            Self::FinishChange | Self::UndoChange => OrderState::Changing,
            Self::Pay | Self::Cancel | Self::Expire => OrderState::Reserved,
        }
    }

    /// Why this transition cannot be applied to an order in `state` at
    /// `now_ms`, or `None` when it can.
    pub fn refusal(self, state: OrderState, expires_at_ms: u64, now_ms: u64) -> Option<Refusal> {
        if state == self.target() {
            return Some(Refusal::AlreadyDone(state));
        }
        let from_paid = matches!(self, Self::Refund | Self::BeginChange);
        if from_paid && state == OrderState::Reserved {
            return Some(Refusal::NotPaid);
        }
        if state != self.source() {
            return Some(Refusal::Finished(state));
        }
        let due = now_ms >= expires_at_ms;
        match self {
            Self::Pay | Self::Cancel if due => Some(Refusal::WindowClosed),
            Self::Expire if !due => Some(Refusal::NotDue),
            Self::Pay | Self::Cancel | Self::Expire => None,
            Self::Refund | Self::BeginChange | Self::FinishChange | Self::UndoChange => None,
        }
    }
}

/// Why a transition was not applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The order is already in the state asked for (a repeated request).
    AlreadyDone(OrderState),
    /// The order already left the state the transition starts from
    /// another way.
    Finished(OrderState),
    /// A refund or change of an order not paid yet (cancel it instead, or
    /// pay it first).
    NotPaid,
    /// The payment window has closed; the order is expiring.
    WindowClosed,
    /// The payment window is still open.
    NotDue,
}

/// One durable order, as the ledger holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Order {
    /// Its id, `<event>-<sequence>`.
    pub id: OrderId,
    /// The sale it belongs to.
    pub event: EventId,
    /// Its sequence number within the sale.
    pub sequence: u64,
    /// The buyer (none in anonymous sales).
    pub user: Option<UserId>,
    /// The request that bought it.
    pub request: RequestId,
    /// The node that sold it.
    pub node: NodeId,
    /// Where it is in its life.
    pub state: OrderState,
    /// When it was sold, Unix milliseconds.
    pub sold_at_ms: u64,
    /// When an unpaid order expires, Unix milliseconds.
    pub expires_at_ms: u64,
    /// When it last changed state, Unix milliseconds.
    pub updated_at_ms: u64,
    /// When its seat went back to central stock (expired and cancelled orders only).
    pub seat_returned_at_ms: Option<u64>,
    /// On a train run, the seats it holds (or held).
    pub ticket: Option<crate::train::Ticket>,
    /// While it is `Changing` (and after): the run the change takes it to.
    pub change_event: Option<EventId>,
    /// Once `Changed`: the order it was exchanged for.
    pub changed_to: Option<OrderId>,
}

impl Order {
    /// Whether this order's seat is still counted as sold by central stock:
    /// it holds one, or it gave one up that has not been returned yet.
    pub fn counts_as_sold(&self) -> bool {
        self.state.holds_seat() || self.seat_returned_at_ms.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_round_trip_through_their_names() {
        for state in ORDER_STATES {
            assert_eq!(OrderState::parse(state.as_str()), Ok(state));
        }
        assert!(OrderState::parse("returned").is_err());
    }

    #[test]
    fn only_reserved_orders_move_and_only_on_time() {
        use OrderState::*;
        let (deadline, before, after) = (1_000, 999, 1_000);
        assert_eq!(Transition::Pay.refusal(Reserved, deadline, before), None);
        assert_eq!(
            Transition::Pay.refusal(Reserved, deadline, after),
            Some(Refusal::WindowClosed)
        );
        assert_eq!(Transition::Expire.refusal(Reserved, deadline, after), None);
        assert_eq!(
            Transition::Expire.refusal(Reserved, deadline, before),
            Some(Refusal::NotDue)
        );
        assert_eq!(
            Transition::Pay.refusal(Paid, deadline, before),
            Some(Refusal::AlreadyDone(Paid))
        );
        assert_eq!(
            Transition::Pay.refusal(Expired, deadline, before),
            Some(Refusal::Finished(Expired))
        );
        assert_eq!(
            Transition::Cancel.refusal(Paid, deadline, before),
            Some(Refusal::Finished(Paid))
        );
    }

    #[test]
    fn only_paid_orders_are_refunded_at_any_time() {
        use OrderState::*;
        let (deadline, after) = (1_000, 5_000);
        assert_eq!(Transition::Refund.refusal(Paid, deadline, after), None);
        assert_eq!(
            Transition::Refund.refusal(Reserved, deadline, 0),
            Some(Refusal::NotPaid)
        );
        assert_eq!(
            Transition::Refund.refusal(Refunded, deadline, 0),
            Some(Refusal::AlreadyDone(Refunded))
        );
        assert_eq!(
            Transition::Refund.refusal(Cancelled, deadline, 0),
            Some(Refusal::Finished(Cancelled))
        );
        assert_eq!(
            Transition::Cancel.refusal(Refunded, deadline, 0),
            Some(Refusal::Finished(Refunded))
        );
        assert!(!Refunded.holds_seat());
    }

    #[test]
    fn a_change_starts_from_paid_holds_its_seat_and_ends_one_way() {
        use OrderState::*;
        assert_eq!(Transition::BeginChange.refusal(Paid, 0, 9), None);
        assert_eq!(
            Transition::BeginChange.refusal(Reserved, 0, 9),
            Some(Refusal::NotPaid)
        );
        assert_eq!(
            Transition::BeginChange.refusal(Changing, 0, 9),
            Some(Refusal::AlreadyDone(Changing))
        );
        assert!(Changing.holds_seat() && !Changed.holds_seat());
        assert_eq!(Transition::FinishChange.refusal(Changing, 0, 9), None);
        assert_eq!(Transition::UndoChange.refusal(Changing, 0, 9), None);
        assert_eq!(
            Transition::UndoChange.refusal(Changed, 0, 9),
            Some(Refusal::Finished(Changed))
        );
        assert_eq!(
            Transition::Refund.refusal(Changing, 0, 9),
            Some(Refusal::Finished(Changing)),
            "no refund while a change is under way"
        );
    }

    #[test]
    fn a_given_up_seat_counts_as_sold_until_returned() {
        assert!(OrderState::Paid.holds_seat());
        assert!(!OrderState::Expired.holds_seat());
    }
}
