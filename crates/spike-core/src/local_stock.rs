//! A node's local stock: a lock-free gate in front of central stock.
//!
//! **Sizing rule.** Every node's local stock starts at central stock's
//! *remaining* seats: each node holds the whole remainder as its buffer, and
//! no node owns a share. A request first takes one seat from local stock
//! (pre-deduction, one compare-and-swap) and then asks central stock, which
//! alone sells. Every central reply lowers local stock to central's remaining
//! count; a request that central refused gives its seat back.
//!
//! When local stock is at zero there are two cases. If central stock has
//! *said* the sale is sold out (a reply carried `remaining = 0`), the request
//! is answered "sold out" from memory with no round trip. Otherwise the seats
//! are only held by requests in flight, which may still be refused and give
//! them back, so the request asks central stock unreserved: a buyer is never
//! told "sold out" on a guess.
//!
//! Invariant: `local + in_flight >= central_remaining`, since central
//! remaining only falls (between returns of unpaid seats), every reply
//! carries a value no smaller than the current truth, and every refused
//! pre-deduction is given back. So no seat is left unsold while any node is
//! alive and buyers keep coming, and losing a node strands nothing. Oversell
//! is impossible by construction: only central stock sells. Seats that come
//! back to central (expired orders) are picked up by [`LocalStock::raise_to`],
//! which a node calls from a once-a-second refresh.
//!
//! **Settlement.** What each central verdict does to local stock is decided
//! here, in [`Reservation::settle`], beside the invariant it keeps.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use crate::purchase::{CentralReply, Verdict};

/// A node's lock-free view of the seats it may still try to sell.
#[derive(Debug, Default)]
pub struct LocalStock {
    remaining: AtomicU64,
    sold_out: AtomicBool,
    sales: AtomicU64,
}

/// What local stock says about one request.
#[derive(Debug)]
pub enum Admission {
    /// Ask central stock, holding this reservation until it answers.
    Ask(Reservation),
    /// Central stock has said there is nothing left: answer from memory.
    SoldOut,
}

impl LocalStock {
    /// Local stock starting at `remaining` seats.
    pub fn new(remaining: u64) -> Self {
        Self {
            remaining: AtomicU64::new(remaining),
            sold_out: AtomicBool::new(remaining == 0),
            sales: AtomicU64::new(0),
        }
    }

    /// Admits one request: takes a seat if one is free locally; with none
    /// free, answers sold out only if central stock has said so. The
    /// reservation owns a handle on the stock, so that a purchase can finish
    /// on its own task after its caller is gone.
    pub fn admit(self: &Arc<Self>) -> Admission {
        let backed = self
            .remaining
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |left| {
                left.checked_sub(1)
            })
            .is_ok();
        if !backed && self.sold_out.load(Ordering::Acquire) {
            return Admission::SoldOut;
        }
        Admission::Ask(Reservation {
            stock: Arc::clone(self),
            backed,
            settled: false,
        })
    }

    /// A reservation holding no seat, to ask central stock even though local
    /// stock says "sold out" (a request that may retry an earlier sale).
    pub fn ask_unreserved(self: &Arc<Self>) -> Reservation {
        Reservation {
            stock: Arc::clone(self),
            backed: false,
            settled: false,
        }
    }

    /// Seats this node may still try to sell.
    pub fn remaining(&self) -> u64 {
        self.remaining.load(Ordering::Acquire)
    }

    /// Whether central stock has said the sale is sold out, so that
    /// requests are answered from memory.
    pub fn is_sold_out(&self) -> bool {
        self.sold_out.load(Ordering::Acquire)
    }

    /// Sales this node has made (the articles' `localSales`).
    pub fn local_sales(&self) -> u64 {
        self.sales.load(Ordering::Relaxed)
    }

    /// Lowers local stock to what central stock just reported.
    pub fn lower_to(&self, central_remaining: u64) {
        self.remaining
            .fetch_min(central_remaining, Ordering::AcqRel);
        if central_remaining == 0 {
            self.sold_out.store(true, Ordering::Release);
        }
    }

    /// Raises local stock to central's count, for seats that came back
    /// (expired orders) or a sale that was re-created larger.
    pub fn raise_to(&self, central_remaining: u64) {
        self.remaining
            .fetch_max(central_remaining, Ordering::AcqRel);
        if central_remaining > 0 {
            self.sold_out.store(false, Ordering::Release);
        }
    }

    /// Sets local stock outright (a sale re-created with `--force`).
    pub fn reset(&self, central_remaining: u64) {
        self.remaining.store(central_remaining, Ordering::Release);
        self.sold_out
            .store(central_remaining == 0, Ordering::Release);
    }

    fn give_back(&self) {
        self.remaining.fetch_add(1, Ordering::AcqRel);
    }
}

/// A request in flight to central stock, usually holding one local seat
/// (`backed`). Dropping it unsettled (an error, a cancelled request) gives
/// the seat back.
#[derive(Debug)]
#[must_use = "a reservation gives its seat back when dropped"]
pub struct Reservation {
    stock: Arc<LocalStock>,
    backed: bool,
    settled: bool,
}

impl Reservation {
    /// Whether this request holds a local seat (false: every local seat was
    /// held by requests in flight, and this one asks central unreserved).
    pub fn is_backed(&self) -> bool {
        self.backed
    }
}

/// What settling a reservation against central stock's reply did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settlement {
    /// This node sold the seat; `local_sales` is its sales so far.
    Sold {
        /// This node's sales, this one included.
        local_sales: u64,
    },
    /// Nothing was sold now (a refusal, or a replay of an earlier sale):
    /// the seat went back to local stock.
    Returned,
    /// Central stock is sold out: local stock is empty and says so from memory.
    SoldOut,
    /// Central stock has no such sale: the seat went back, and the node must
    /// refuse the sale until central stock has it again.
    SaleMissing,
}

impl Reservation {
    /// Settles this reservation with central stock's reply, keeping the
    /// invariant `local + in_flight >= central_remaining`:
    /// - a new sale keeps the seat and lowers local stock to central's count;
    /// - a replayed sale sold nothing now, so the seat goes back;
    /// - "sold out" empties local stock and makes it answer from memory;
    /// - every other refusal gives the seat back, then lowers to central's count;
    /// - "no such sale" gives the seat back and lowers nothing (the count is
    ///   meaningless until the sale is restored).
    pub fn settle(self, reply: &CentralReply) -> Settlement {
        match &reply.verdict {
            Verdict::Sold {
                replayed: false, ..
            } => Settlement::Sold {
                local_sales: self.sold(reply.remaining),
            },
            Verdict::SoldOut => {
                self.sold_out();
                Settlement::SoldOut
            }
            Verdict::NoSuchSale => {
                drop(self);
                Settlement::SaleMissing
            }
            Verdict::Sold { replayed: true, .. }
            | Verdict::AlreadyPurchased { .. }
            | Verdict::NotOpen
            | Verdict::Paused
            | Verdict::UserRequired
            | Verdict::RequestIdTaken
            | Verdict::NotAdmitted => {
                self.refused(reply.remaining);
                Settlement::Returned
            }
        }
    }

    /// Central stock sold the seat; returns this node's sales so far.
    fn sold(mut self, central_remaining: u64) -> u64 {
        self.settled = true;
        self.stock.lower_to(central_remaining);
        self.stock.sales.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Central stock refused for a reason that leaves the seat unsold
    /// (limit reached, not open, replay): the seat goes back.
    fn refused(mut self, central_remaining: u64) {
        self.settled = true;
        if self.backed {
            self.stock.give_back();
        }
        self.stock.lower_to(central_remaining);
    }

    /// Central stock is sold out.
    fn sold_out(mut self) {
        self.settled = true;
        self.stock.lower_to(0);
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if self.backed && !self.settled {
            self.stock.give_back();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::OrderId;
    use std::sync::Arc;

    fn reply(verdict: Verdict, remaining: u64) -> CentralReply {
        CentralReply { verdict, remaining }
    }

    fn order() -> OrderId {
        OrderId::parse("G1-1").expect("order id")
    }

    #[test]
    fn a_new_sale_keeps_the_seat_and_follows_central() {
        let stock = Arc::new(LocalStock::new(10));
        let sold = Verdict::Sold {
            order: order(),
            replayed: false,
        };
        let settled = ask(&stock).settle(&reply(sold, 6));
        assert_eq!(settled, Settlement::Sold { local_sales: 1 });
        assert_eq!(stock.remaining(), 6, "lowered to central's count");
        assert_eq!(stock.local_sales(), 1);
    }

    #[test]
    fn a_replayed_sale_gives_its_seat_back() {
        let stock = Arc::new(LocalStock::new(10));
        let replay = Verdict::Sold {
            order: order(),
            replayed: true,
        };
        assert_eq!(ask(&stock).settle(&reply(replay, 10)), Settlement::Returned);
        assert_eq!(stock.remaining(), 10, "nothing was sold now");
        assert_eq!(stock.local_sales(), 0);
    }

    #[test]
    fn sold_out_empties_local_stock_and_answers_from_memory() {
        let stock = Arc::new(LocalStock::new(10));
        assert_eq!(
            ask(&stock).settle(&reply(Verdict::SoldOut, 0)),
            Settlement::SoldOut
        );
        assert_eq!(stock.remaining(), 0);
        assert!(matches!(stock.admit(), Admission::SoldOut));
    }

    #[test]
    fn every_refusal_gives_the_seat_back_then_follows_central() {
        let refusals = [
            Verdict::AlreadyPurchased { order: order() },
            Verdict::NotOpen,
            Verdict::UserRequired,
            Verdict::RequestIdTaken,
        ];
        for verdict in refusals {
            let stock = Arc::new(LocalStock::new(10));
            let settled = ask(&stock).settle(&reply(verdict.clone(), 7));
            assert_eq!(settled, Settlement::Returned, "{verdict:?}");
            assert_eq!(stock.remaining(), 7, "{verdict:?}: back, then lowered");
            assert_eq!(stock.local_sales(), 0, "{verdict:?}");
        }
    }

    #[test]
    fn a_missing_sale_gives_the_seat_back_and_lowers_nothing() {
        let stock = Arc::new(LocalStock::new(10));
        assert_eq!(
            ask(&stock).settle(&reply(Verdict::NoSuchSale, 0)),
            Settlement::SaleMissing
        );
        assert_eq!(
            stock.remaining(),
            10,
            "a missing sale's count means nothing"
        );
        assert!(!stock.is_sold_out());
    }

    fn ask(stock: &Arc<LocalStock>) -> Reservation {
        match stock.admit() {
            Admission::Ask(reservation) => reservation,
            Admission::SoldOut => panic!("unexpectedly sold out"),
        }
    }

    #[test]
    fn reserves_until_empty_then_asks_unbacked_until_central_says_sold_out() {
        let stock = Arc::new(LocalStock::new(2));
        let a = ask(&stock);
        let b = ask(&stock);
        assert!(a.is_backed() && b.is_backed());
        let c = ask(&stock);
        assert!(
            !c.is_backed(),
            "seats held in flight: ask central, don't guess"
        );
        assert!(!stock.is_sold_out());
        drop(a); // an error: the seat goes back
        assert_eq!(stock.remaining(), 1);
        assert_eq!(b.sold(1), 1);
        assert_eq!(c.sold(0), 2);
        assert!(stock.is_sold_out());
        assert!(matches!(stock.admit(), Admission::SoldOut));
        assert_eq!(stock.local_sales(), 2);
    }

    #[test]
    fn refusal_gives_back_but_respects_central() {
        let stock = Arc::new(LocalStock::new(10));
        ask(&stock).refused(4); // other nodes sold meanwhile
        assert_eq!(stock.remaining(), 4);
        ask(&stock).refused(9); // a stale reply never raises local stock
        assert_eq!(stock.remaining(), 4);
    }

    #[test]
    fn sold_out_empties_and_raise_refills() {
        let stock = Arc::new(LocalStock::new(10));
        ask(&stock).sold_out();
        assert!(stock.is_sold_out());
        stock.raise_to(3);
        assert_eq!(stock.remaining(), 3);
        assert!(!stock.is_sold_out());
        stock.raise_to(1);
        assert_eq!(stock.remaining(), 3);
        assert!(matches!(
            Arc::new(LocalStock::new(0)).admit(),
            Admission::SoldOut
        ));
    }

    #[test]
    fn concurrent_reservations_never_exceed_stock() {
        let stock = Arc::new(LocalStock::new(1000));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let stock = Arc::clone(&stock);
                std::thread::spawn(move || {
                    let mut backed = 0u64;
                    loop {
                        match stock.admit() {
                            Admission::Ask(r) if r.is_backed() => {
                                r.sold(u64::MAX);
                                backed += 1;
                            }
                            Admission::Ask(r) => {
                                r.sold_out();
                            }
                            Admission::SoldOut => return backed,
                        }
                    }
                })
            })
            .collect();
        let total: u64 = threads.into_iter().map(|t| t.join().expect("thread")).sum();
        assert_eq!(total, 1000);
        assert_eq!(stock.remaining(), 0);
    }
}
