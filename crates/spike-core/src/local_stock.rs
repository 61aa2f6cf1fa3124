//! A node's local stock: a lock-free gate in front of central stock.
//!
//! **Sizing rule.** Every node's local stock starts at central stock's
//! *remaining* seats, i.e. each node holds the whole remainder as its buffer.
//! A request must first take one seat from local stock (pre-deduction, one
//! compare-and-swap) before it may ask central stock; when local stock is
//! zero the request is answered "sold out" from memory, with no round trip.
//! Every central reply lowers local stock to central's remaining count, and a
//! request that central refused gives its seat back.
//!
//! Invariant: `local + in_flight >= central_remaining`. Central remaining
//! only falls (between returns of unpaid seats), every reply carries a value
//! no smaller than the current truth, and every refused pre-deduction is given
//! back. So once no request is in flight, local stock is never below central's:
//! no seat is left unsold while a node is alive and buyers keep coming, and
//! losing a node strands nothing, because no node owns a share. Oversell is
//! impossible by construction: central stock is the only one that sells.
//! Seats that come back to central (expired orders) are picked up by
//! [`LocalStock::raise_to`], which a node calls from a once-a-second refresh.

use std::sync::atomic::{AtomicU64, Ordering};

/// A node's lock-free view of the seats it may still try to sell.
#[derive(Debug, Default)]
pub struct LocalStock {
    remaining: AtomicU64,
    sales: AtomicU64,
}

impl LocalStock {
    /// Local stock starting at `remaining` seats.
    pub fn new(remaining: u64) -> Self {
        Self {
            remaining: AtomicU64::new(remaining),
            sales: AtomicU64::new(0),
        }
    }

    /// Takes one seat for a request about to ask central stock, or `None`
    /// if this node believes the sale is sold out.
    pub fn try_reserve(&self) -> Option<Reservation<'_>> {
        self.remaining
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |left| {
                left.checked_sub(1)
            })
            .ok()
            .map(|_| Reservation {
                stock: self,
                settled: false,
            })
    }

    /// Seats this node may still try to sell.
    pub fn remaining(&self) -> u64 {
        self.remaining.load(Ordering::Acquire)
    }

    /// Whether requests are being answered "sold out" from memory.
    pub fn is_sold_out(&self) -> bool {
        self.remaining() == 0
    }

    /// Sales this node has made (the articles' `localSales`).
    pub fn local_sales(&self) -> u64 {
        self.sales.load(Ordering::Relaxed)
    }

    /// Lowers local stock to what central stock just reported.
    pub fn lower_to(&self, central_remaining: u64) {
        self.remaining.fetch_min(central_remaining, Ordering::AcqRel);
    }

    /// Raises local stock to central's count, for seats that came back
    /// (expired orders) or a sale that was re-created larger.
    pub fn raise_to(&self, central_remaining: u64) {
        self.remaining.fetch_max(central_remaining, Ordering::AcqRel);
    }

    /// Sets local stock outright (a sale re-created with `--force`).
    pub fn reset(&self, central_remaining: u64) {
        self.remaining.store(central_remaining, Ordering::Release);
    }

    fn give_back(&self) {
        self.remaining.fetch_add(1, Ordering::AcqRel);
    }
}

/// One seat taken from local stock for a request in flight. Dropping it
/// unsettled (an error, a cancelled request) gives the seat back.
#[derive(Debug)]
#[must_use = "a reservation gives its seat back when dropped"]
pub struct Reservation<'a> {
    stock: &'a LocalStock,
    settled: bool,
}

impl Reservation<'_> {
    /// Central stock sold the seat; returns this node's sales so far.
    pub fn sold(mut self, central_remaining: u64) -> u64 {
        self.settled = true;
        self.stock.lower_to(central_remaining);
        self.stock.sales.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Central stock refused for a reason that leaves the seat unsold
    /// (limit reached, not open, replay): the seat goes back.
    pub fn refused(mut self, central_remaining: u64) {
        self.settled = true;
        self.stock.give_back();
        self.stock.lower_to(central_remaining);
    }

    /// Central stock is sold out.
    pub fn sold_out(mut self) {
        self.settled = true;
        self.stock.lower_to(0);
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        if !self.settled {
            self.stock.give_back();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn reserves_until_empty_then_refuses() {
        let stock = LocalStock::new(2);
        let a = stock.try_reserve().expect("first");
        let b = stock.try_reserve().expect("second");
        assert!(stock.try_reserve().is_none());
        assert!(stock.is_sold_out());
        drop(a); // an error: the seat goes back
        assert_eq!(stock.remaining(), 1);
        assert_eq!(b.sold(1), 1);
        assert_eq!(stock.local_sales(), 1);
    }

    #[test]
    fn refusal_gives_back_but_respects_central() {
        let stock = LocalStock::new(10);
        let r = stock.try_reserve().expect("seat");
        r.refused(4); // other nodes sold meanwhile
        assert_eq!(stock.remaining(), 4);
        let r = stock.try_reserve().expect("seat");
        r.refused(9); // a stale reply never raises local stock
        assert_eq!(stock.remaining(), 4);
    }

    #[test]
    fn sold_out_empties_and_raise_refills() {
        let stock = LocalStock::new(10);
        stock.try_reserve().expect("seat").sold_out();
        assert!(stock.is_sold_out());
        stock.raise_to(3);
        assert_eq!(stock.remaining(), 3);
        stock.raise_to(1);
        assert_eq!(stock.remaining(), 3);
    }

    #[test]
    fn concurrent_reservations_never_exceed_stock() {
        let stock = Arc::new(LocalStock::new(1000));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let stock = Arc::clone(&stock);
                std::thread::spawn(move || {
                    let mut won = 0u64;
                    while let Some(r) = stock.try_reserve() {
                        r.sold(u64::MAX);
                        won += 1;
                    }
                    won
                })
            })
            .collect();
        let total: u64 = threads.into_iter().map(|t| t.join().expect("thread")).sum();
        assert_eq!(total, 1000);
        assert_eq!(stock.local_sales(), 1000);
        assert_eq!(stock.remaining(), 0);
    }
}
