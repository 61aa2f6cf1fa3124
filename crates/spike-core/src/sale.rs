//! What a sale is: its stock, who may buy and how much, when it opens, and how
//! long a buyer has to pay. A [`SaleConfig`] can only be built valid.

use std::num::NonZeroU32;
use std::time::{Duration, SystemTime};

use crate::queue::{QueueConfig, QueueConfigError};
use crate::time::{unix_millis, MAX_SALE_DURATION};
use crate::train::{TrainError, TrainLayout};
use std::sync::Arc;

/// Largest stock a sale may have: Lua numbers are doubles, exact up to 2^53.
pub const MAX_STOCK: u64 = 1_000_000_000_000;

/// Payment window used when none is given (12306 gives buyers 30 minutes; we
/// default to the articles' 15).
pub const DEFAULT_PAYMENT_WINDOW: Duration = Duration::from_secs(15 * 60);

/// How an identified sale knows who is buying.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BuyerAuth {
    /// The `user_id` of the request is trusted as it is (the articles' mode:
    /// for tests, demos and closed networks).
    Open,
    /// Only buyers carrying a token signed by the operator's login system;
    /// the token's `sub` is the buyer.
    Token,
}

impl BuyerAuth {
    /// `open` or `token`, as the command line and `sale show` spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Token => "token",
        }
    }
}

/// Who may buy, and how often.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BuyerPolicy {
    /// Every request names a user; each user may hold at most `per_user_limit` orders.
    Identified {
        /// Orders one user may hold.
        per_user_limit: NonZeroU32,
        /// How the buyer is known.
        auth: BuyerAuth,
    },
    /// The articles' mode: no user id needed, no per-user limit.
    Anonymous,
}

impl BuyerPolicy {
    /// One order per user, user ids trusted: the default.
    pub const ONE_PER_USER: Self = Self::Identified {
        per_user_limit: NonZeroU32::MIN,
        auth: BuyerAuth::Open,
    };

    /// The per-user limit, or `None` for anonymous sales.
    pub fn per_user_limit(self) -> Option<NonZeroU32> {
        match self {
            Self::Identified { per_user_limit, .. } => Some(per_user_limit),
            Self::Anonymous => None,
        }
    }

    /// Whether buyers must carry a signed token.
    pub fn needs_token(self) -> bool {
        matches!(
            self,
            Self::Identified {
                auth: BuyerAuth::Token,
                ..
            }
        )
    }

    /// `anonymous`, `open` or `token`: how buyers are known.
    pub fn auth_name(self) -> &'static str {
        match self {
            Self::Identified { auth, .. } => auth.as_str(),
            Self::Anonymous => "anonymous",
        }
    }
}

/// Why a sale configuration was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SaleConfigError {
    /// Stock must be at least one seat.
    #[error("the stock must be at least 1")]
    NoStock,
    /// Stock beyond [`MAX_STOCK`].
    #[error("the stock must be at most {MAX_STOCK}")]
    TooMuchStock,
    /// The payment window must be positive.
    #[error("the payment window must be longer than zero")]
    NoPaymentWindow,
    /// The payment window is longer than [`MAX_SALE_DURATION`].
    #[error("the payment window must be at most 30 days")]
    PaymentWindowTooLong,
    /// A recorded life is beyond [`SaleLife::MAX`].
    #[error("the sale's life is beyond 2^53 - 1")]
    BadLife,
    /// Token authentication names buyers; an anonymous sale has none.
    #[error("token authentication needs identified buyers; an anonymous sale has none")]
    TokenNeedsBuyers,
    /// A waiting room places buyers; an anonymous sale has none.
    #[error("a waiting room needs identified buyers; an anonymous sale has none")]
    QueueNeedsBuyers,
    /// A waiting room orders buyers by who they are: on an open sale anyone
    /// may join under any number of names (diluting the shuffle) and read
    /// anyone's admission, so a queued sale needs proved buyers.
    #[error("a waiting room needs buyers who prove who they are (token authentication)")]
    QueueNeedsTokens,
    /// Joining must start before the sale opens.
    #[error("joining the waiting room must start before the sale opens")]
    JoinsAfterOpening,
    /// The waiting room's own rules.
    #[error(transparent)]
    Queue(#[from] QueueConfigError),
    /// The train layout's own rules.
    #[error(transparent)]
    Train(#[from] TrainError),
}

/// A valid sale configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaleConfig {
    total: u64,
    policy: BuyerPolicy,
    opens_at: Option<SystemTime>,
    payment_window: Duration,
    queue: Option<QueueConfig>,
    train: Option<Arc<TrainLayout>>,
    life: SaleLife,
}

/// Which life of an event's sale this is: a number drawn when the sale is
/// created (`spike sale create`, `spike train create`), kept by recovery,
/// and new when a sale is created again with `--force`. Order keys are
/// bound to it, so a key of an old life opens nothing in the new one,
/// whose order ids start over. At most 53 bits, so that it is exact in
/// Lua, JSON and SQL alike.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct SaleLife(u64);

impl SaleLife {
    /// The largest life: 2^53 - 1.
    pub const MAX: u64 = (1 << 53) - 1;

    /// The life numbered `n`, if it fits in 53 bits.
    pub fn new(n: u64) -> Option<Self> {
        (n <= Self::MAX).then_some(Self(n))
    }

    /// A life drawn from `random` bits (the top 11 are dropped).
    pub fn from_random(random: u64) -> Self {
        Self(random >> 11)
    }

    /// Its number.
    pub fn get(self) -> u64 {
        self.0
    }
}

impl SaleConfig {
    /// A train run's sale: its seats on its route's segments. Its `total`
    /// is the run's capacity in seat-segments (seats × segments), a bound
    /// no run of orders can pass (each holds at least one seat-segment);
    /// seats themselves are found by [`crate::ClassOccupancy::find_seats`].
    pub fn for_train(layout: impl Into<Arc<TrainLayout>>) -> Result<Self, SaleConfigError> {
        let layout = layout.into();
        let mut config = Self::new(layout.capacity())?;
        config.train = Some(layout);
        Ok(config)
    }

    /// The train layout, when the sale is a train run's.
    pub fn train(&self) -> Option<&Arc<TrainLayout>> {
        self.train.as_ref()
    }

    /// A sale of `total` seats, one per user, open now, default payment window.
    pub fn new(total: u64) -> Result<Self, SaleConfigError> {
        match total {
            0 => Err(SaleConfigError::NoStock),
            t if t > MAX_STOCK => Err(SaleConfigError::TooMuchStock),
            _ => Ok(Self {
                total,
                policy: BuyerPolicy::ONE_PER_USER,
                opens_at: None,
                payment_window: DEFAULT_PAYMENT_WINDOW,
                queue: None,
                train: None,
                life: SaleLife::default(),
            }),
        }
    }

    /// The same sale in life `life` (see [`SaleLife`]).
    pub fn in_life(mut self, life: SaleLife) -> Self {
        self.life = life;
        self
    }

    /// Which life of the event's sale this is.
    pub fn life(&self) -> SaleLife {
        self.life
    }

    /// Sets who may buy.
    pub fn with_policy(mut self, policy: BuyerPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Sets when the sale opens; before that every purchase is answered "not open".
    pub fn opening_at(mut self, opens_at: Option<SystemTime>) -> Self {
        self.opens_at = opens_at;
        self
    }

    /// Sets how long a buyer has to pay before the order expires.
    pub fn with_payment_window(mut self, window: Duration) -> Result<Self, SaleConfigError> {
        if window.is_zero() {
            return Err(SaleConfigError::NoPaymentWindow);
        }
        if window > MAX_SALE_DURATION {
            return Err(SaleConfigError::PaymentWindowTooLong);
        }
        self.payment_window = window;
        Ok(self)
    }

    /// Puts the sale behind a waiting room (after its policy and opening
    /// are set: a queue needs buyers proved by tokens, and joining must
    /// start before the opening).
    pub fn with_queue(mut self, queue: Option<QueueConfig>) -> Result<Self, SaleConfigError> {
        if let Some(queue) = &queue {
            if self.policy == BuyerPolicy::Anonymous {
                return Err(SaleConfigError::QueueNeedsBuyers);
            }
            if !self.policy.needs_token() {
                return Err(SaleConfigError::QueueNeedsTokens);
            }
            if let (Some(joins), Some(opens)) = (queue.joins_open_at(), self.opens_at) {
                if joins >= opens {
                    return Err(SaleConfigError::JoinsAfterOpening);
                }
            }
        }
        self.queue = queue;
        Ok(self)
    }

    /// The sale's waiting room, if it has one.
    pub fn queue(&self) -> Option<&QueueConfig> {
        self.queue.as_ref()
    }

    /// Seats for sale.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Who may buy.
    pub fn policy(&self) -> BuyerPolicy {
        self.policy
    }

    /// When the sale opens (`None`: open from creation).
    pub fn opens_at(&self) -> Option<SystemTime> {
        self.opens_at
    }

    /// How long a buyer has to pay.
    pub fn payment_window(&self) -> Duration {
        self.payment_window
    }

    /// Opening time in Unix milliseconds, 0 when open from creation.
    pub fn opens_at_millis(&self) -> u64 {
        self.opens_at.map_or(0, unix_millis)
    }

    /// Whether the sale is open at `now`.
    pub fn is_open_at(&self, now: SystemTime) -> bool {
        self.opens_at.is_none_or(|at| now >= at)
    }
}

/// A sale as central stock sees it right now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaleSnapshot {
    /// The sale's configuration.
    pub config: SaleConfig,
    /// Seats sold (reserved or paid).
    pub sold: u64,
    /// Distinct users holding at least one order.
    pub buyers: u64,
    /// Orders appended to the order stream.
    pub orders_in_stream: u64,
}

impl SaleSnapshot {
    /// Seats still for sale (a train run's are in [`SaleSnapshot::figures`]).
    pub fn remaining(&self) -> u64 {
        self.config.total().saturating_sub(self.sold)
    }

    /// How much of the sale is sold, in its unit: seats, or for a train
    /// run (with its `occupancy`) seat-segments, a seat over one segment.
    pub fn figures(&self, occupancy: Option<&crate::train::Occupancy>) -> SaleFigures {
        let total = self.config.total();
        let (unit, sold) = match (self.config.train(), occupancy) {
            (Some(_), Some(occupancy)) => (SaleUnit::SeatSegments, occupancy.sold_segments()),
            _ => (SaleUnit::Seats, self.sold),
        };
        SaleFigures {
            unit,
            total,
            sold,
            remaining: total.saturating_sub(sold),
            orders: self.sold,
        }
    }
}

/// What a sale counts: seats, or a train run's seat-segments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaleUnit {
    /// One seat is one unit.
    Seats,
    /// A seat over one segment between consecutive stations.
    SeatSegments,
}

impl SaleUnit {
    /// Its name in answers and tables.
    pub fn name(self) -> &'static str {
        match self {
            Self::Seats => "seats",
            Self::SeatSegments => "seat-segments",
        }
    }
}

/// A sale's progress in its unit ([`SaleSnapshot::figures`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SaleFigures {
    /// What is counted.
    pub unit: SaleUnit,
    /// Units for sale.
    pub total: u64,
    /// Units sold.
    pub sold: u64,
    /// Units left.
    pub remaining: u64,
    /// Orders holding them.
    pub orders: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::from_unix_millis;

    #[test]
    fn stock_bounds_are_enforced() {
        assert_eq!(SaleConfig::new(0), Err(SaleConfigError::NoStock));
        assert_eq!(
            SaleConfig::new(MAX_STOCK + 1),
            Err(SaleConfigError::TooMuchStock)
        );
        assert_eq!(SaleConfig::new(MAX_STOCK).map(|c| c.total()), Ok(MAX_STOCK));
    }

    #[test]
    fn opening_time_gates_the_sale() {
        let at = from_unix_millis(1_000_000);
        let sale = SaleConfig::new(1).unwrap().opening_at(Some(at));
        assert!(!sale.is_open_at(from_unix_millis(999_999)));
        assert!(sale.is_open_at(at));
        assert_eq!(sale.opens_at_millis(), 1_000_000);
        assert!(SaleConfig::new(1)
            .unwrap()
            .is_open_at(std::time::UNIX_EPOCH));
    }

    const TOKEN_BUYERS: BuyerPolicy = BuyerPolicy::Identified {
        per_user_limit: NonZeroU32::MIN,
        auth: BuyerAuth::Token,
    };

    #[test]
    fn a_queue_needs_buyers_and_joining_before_the_opening() {
        let queue = QueueConfig::new(NonZeroU32::MIN).unwrap();
        let anonymous = SaleConfig::new(1)
            .unwrap()
            .with_policy(BuyerPolicy::Anonymous);
        assert_eq!(
            anonymous.with_queue(Some(queue)),
            Err(SaleConfigError::QueueNeedsBuyers)
        );
        let open = SaleConfig::new(1).unwrap();
        assert_eq!(
            open.with_queue(Some(queue)),
            Err(SaleConfigError::QueueNeedsTokens)
        );
        let opening = SaleConfig::new(1)
            .unwrap()
            .with_policy(TOKEN_BUYERS)
            .opening_at(Some(from_unix_millis(5_000)));
        let late = queue.joining_from(Some(from_unix_millis(5_000)));
        assert_eq!(
            opening.clone().with_queue(Some(late)),
            Err(SaleConfigError::JoinsAfterOpening)
        );
        let early = queue.joining_from(Some(from_unix_millis(4_999)));
        assert!(opening.with_queue(Some(early)).is_ok());
    }

    #[test]
    fn zero_payment_window_is_refused() {
        let sale = SaleConfig::new(1).unwrap();
        assert_eq!(
            sale.with_payment_window(Duration::ZERO),
            Err(SaleConfigError::NoPaymentWindow)
        );
    }

    #[test]
    fn windows_in_years_are_refused() {
        let years = Duration::from_secs(3 * 365 * 24 * 3600);
        let sale = SaleConfig::new(1).unwrap();
        assert_eq!(
            sale.clone().with_payment_window(years),
            Err(SaleConfigError::PaymentWindowTooLong)
        );
        assert!(sale.with_payment_window(MAX_SALE_DURATION).is_ok());
        let queue = QueueConfig::new(NonZeroU32::MIN).unwrap();
        assert_eq!(
            queue.with_admit_window(years),
            Err(QueueConfigError::WindowTooLong)
        );
    }
}
