//! Rate limits: one token bucket per buyer and one per client address
//! (governor's GCRA), checked in memory before anything else is done for
//! the request; and the periodic forgetting that keeps their memory bounded
//! by the number of callers seen within about a second.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};
use serde_json::{json, Value};
use spike_core::UserId;
use spike_http::TrustedProxies;

/// How often buckets that have filled up again are forgotten.
pub const FORGET_IDLE_EVERY: Duration = Duration::from_secs(1);

/// The default limit of `spike node` on the costly public requests of one
/// client address: those that cost central stock or the ledger a call
/// whatever the stock (`/buy/result`, `/queue/join`, the orders API, a
/// purchase with a request id after the sale sold out) and the
/// availability table. A buyer needs a handful; a stranger replaying at
/// full speed is held to this.
pub const DEFAULT_COSTLY_PER_IP: NonZeroU32 = NonZeroU32::new(1_000).unwrap();

/// The limits a node enforces; none by default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RateLimits {
    /// Requests a second one buyer may send (`--rate-limit-per-buyer`); a
    /// burst of as many is allowed from a full bucket.
    pub per_buyer: Option<NonZeroU32>,
    /// Requests a second one client address may send
    /// (`--rate-limit-per-ip`), with the same burst.
    pub per_ip: Option<NonZeroU32>,
    /// Costly requests a second one client address may send
    /// (`--rate-limit-costly-per-ip`; see [`DEFAULT_COSTLY_PER_IP`]).
    pub costly_per_ip: Option<NonZeroU32>,
    /// The proxies whose `X-Forwarded-For` names the client
    /// (`--trusted-proxy`); from anyone else the peer is the client.
    pub trusted_proxies: TrustedProxies,
}

type Buckets<K> = RateLimiter<K, DefaultKeyedStateStore<K>, DefaultClock>;

/// One bucket per key, each holding `rate` requests and refilling at `rate`
/// a second.
fn buckets<K: Clone + Eq + std::hash::Hash>(rate: NonZeroU32) -> Buckets<K> {
    RateLimiter::keyed(Quota::per_second(rate))
}

/// A node's buckets.
#[derive(Debug)]
pub struct RateLimiters {
    per_buyer: Option<Buckets<UserId>>,
    per_ip: Option<Buckets<IpAddr>>,
    costly_per_ip: Option<Buckets<IpAddr>>,
    clock: DefaultClock,
}

impl RateLimiters {
    /// Empty buckets for `limits`.
    pub fn new(limits: &RateLimits) -> Self {
        Self {
            per_buyer: limits.per_buyer.map(buckets),
            per_ip: limits.per_ip.map(buckets),
            costly_per_ip: limits.costly_per_ip.map(buckets),
            clock: DefaultClock::default(),
        }
    }

    /// Whether any limit is set.
    pub fn any(&self) -> bool {
        self.per_buyer.is_some() || self.per_ip.is_some() || self.costly_per_ip.is_some()
    }

    /// Takes one costly request from `address`'s bucket of costly requests.
    pub fn check_costly(&self, address: IpAddr) -> Result<(), Duration> {
        self.check(self.costly_per_ip.as_ref(), &address)
    }

    /// Takes one request from `buyer`'s bucket; when it is empty, how long
    /// until it holds one again.
    pub fn check_buyer(&self, buyer: &UserId) -> Result<(), Duration> {
        self.check(self.per_buyer.as_ref(), buyer)
    }

    /// Takes one request from `address`'s bucket; when it is empty, how
    /// long until it holds one again.
    pub fn check_address(&self, address: IpAddr) -> Result<(), Duration> {
        self.check(self.per_ip.as_ref(), &address)
    }

    fn check<K>(&self, buckets: Option<&Buckets<K>>, key: &K) -> Result<(), Duration>
    where
        K: Clone + Eq + std::hash::Hash,
    {
        match buckets.map(|buckets| buckets.check_key(key)) {
            Some(Err(not_until)) => Err(not_until.wait_time_from(self.clock.now())),
            Some(Ok(())) | None => Ok(()),
        }
    }

    /// Forgets the buckets that are full again (a caller idle for a second
    /// or so): they are the same as new ones.
    pub fn forget_idle(&self) {
        if let Some(buckets) = &self.per_buyer {
            buckets.retain_recent();
            buckets.shrink_to_fit();
        }
        for buckets in [&self.per_ip, &self.costly_per_ip].into_iter().flatten() {
            buckets.retain_recent();
            buckets.shrink_to_fit();
        }
    }

    /// What `/stats` shows: the limits and how many callers they track.
    pub fn stats(&self) -> Value {
        json!({
            "buyers_tracked": self.per_buyer.as_ref().map(|buckets| buckets.len()),
            "addresses_tracked": self.per_ip.as_ref().map(|buckets| buckets.len()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(per_buyer: u32, per_ip: u32) -> RateLimits {
        RateLimits {
            per_buyer: NonZeroU32::new(per_buyer),
            per_ip: NonZeroU32::new(per_ip),
            costly_per_ip: None,
            trusted_proxies: TrustedProxies::default(),
        }
    }

    #[test]
    fn a_buyer_gets_a_bursts_worth_then_waits_and_others_are_untouched() {
        let limiters = RateLimiters::new(&limits(5, 0));
        let (ann, bob) = (UserId::parse("ann").unwrap(), UserId::parse("bob").unwrap());
        for _ in 0..5 {
            assert_eq!(limiters.check_buyer(&ann), Ok(()));
        }
        let wait = limiters.check_buyer(&ann).unwrap_err();
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_millis(200),
            "{wait:?}"
        );
        assert_eq!(limiters.check_buyer(&bob), Ok(()));
        let address: IpAddr = "192.0.2.1".parse().unwrap();
        for _ in 0..100 {
            assert_eq!(
                limiters.check_address(address),
                Ok(()),
                "no address limit set"
            );
        }
    }

    #[test]
    fn full_buckets_are_forgotten() {
        let limiters = RateLimiters::new(&limits(0, 1000));
        for last in 0..50u8 {
            let address = IpAddr::from([192, 0, 2, last]);
            assert_eq!(limiters.check_address(address), Ok(()));
        }
        assert_eq!(limiters.stats()["addresses_tracked"], 50);
        std::thread::sleep(Duration::from_millis(20)); // a bucket refills in 1 ms
        limiters.forget_idle();
        assert_eq!(limiters.stats()["addresses_tracked"], 0);
        assert_eq!(limiters.stats()["buyers_tracked"], Value::Null);
    }
}
