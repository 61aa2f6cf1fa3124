//! The schema of a sale's record: the names and the order of its rule
//! fields ([`RULE_FIELDS`]), defined once. The Redis hash and `create.lua`'s
//! arguments (through the scripts' prelude), `snapshot.lua`'s reply, and the
//! ledger's `sales` columns are all written from this list, so a new rule
//! is one field here and one line in each conversion.

use std::num::{NonZeroU32, NonZeroU64};
use std::sync::Arc;
use std::time::Duration;

use crate::queue::{QueueConfig, QueueConfigError, QueueMode};
use crate::sale::{BuyerAuth, BuyerPolicy, SaleConfig, SaleConfigError, SaleLife};
use crate::time::from_unix_millis;
use crate::train::{TrainError, TrainLayout};

/// The rule fields of a sale record, in their one order: their names are
/// the Redis hash's fields and the ledger's columns.
pub const RULE_FIELDS: [&str; 11] = [
    "total",
    "per_user_limit",
    "opens_at_ms",
    "payment_window_ms",
    "token_auth",
    "queue_admit_rate",
    "queue_max_active",
    "queue_admit_window_ms",
    "queue_joins_open_at_ms",
    "life",
    "queue_spillover",
];

/// Where a train run's layout is kept (its wire form; '' for other sales),
/// beside the rule fields.
pub const TRAIN_FIELD: &str = "train";

/// A sale's rules as plain numbers and a layout: the one form in which
/// every store (Redis hash fields, Lua arguments, ledger columns) writes
/// them down and reads them back. Only [`SaleConfig`] converts to and from
/// it; the stores go through [`SaleRecord::rules`] and
/// [`SaleRecord::from_rules`], in [`RULE_FIELDS`]' order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaleRecord {
    /// Seats for sale.
    pub total: u64,
    /// Orders one user may hold; 0 for an anonymous sale.
    pub per_user_limit: u32,
    /// Opening time in Unix milliseconds; 0 when open from creation.
    pub opens_at_ms: u64,
    /// How long a buyer has to pay, in milliseconds.
    pub payment_window_ms: u64,
    /// 1 when buyers must carry a signed token, 0 otherwise.
    pub token_auth: u64,
    /// Waiting room: positions admitted per second; 0 for a sale without one.
    pub queue_admit_rate: u64,
    /// Waiting room: most active admitted buyers at once; 0 for no cap.
    pub queue_max_active: u64,
    /// Waiting room: how long an admission lasts, in milliseconds.
    pub queue_admit_window_ms: u64,
    /// Waiting room: when joining starts, Unix milliseconds; 0 from creation.
    pub queue_joins_open_at_ms: u64,
    /// A train run's layout; `None` for other sales. Stores write it as
    /// [`TrainLayout::to_wire`] and read it back with
    /// [`SaleRecord::parse_train`]: a layout that does not parse is an error.
    pub train: Option<Arc<TrainLayout>>,
    /// The sale's life ([`SaleLife`]); 0 for sales made before lives.
    pub life: u64,
    /// Waiting room: 1 when buyers pass straight through under the rate
    /// ([`crate::QueueMode::Spillover`]), 0 when everyone waits.
    pub queue_spillover: u64,
}

impl From<&SaleConfig> for SaleRecord {
    fn from(config: &SaleConfig) -> Self {
        Self {
            total: config.total(),
            per_user_limit: config.policy().per_user_limit().map_or(0, NonZeroU32::get),
            opens_at_ms: config.opens_at_millis(),
            payment_window_ms: u64::try_from(config.payment_window().as_millis())
                .unwrap_or(u64::MAX),
            token_auth: u64::from(config.policy().needs_token()),
            queue_admit_rate: config
                .queue()
                .map_or(0, |q| u64::from(q.admit_rate().get())),
            queue_max_active: config
                .queue()
                .and_then(QueueConfig::max_active)
                .map_or(0, NonZeroU64::get),
            queue_admit_window_ms: config.queue().map_or(0, QueueConfig::admit_window_millis),
            queue_joins_open_at_ms: config.queue().map_or(0, QueueConfig::joins_open_at_millis),
            train: config.train().cloned(),
            life: config.life().get(),
            queue_spillover: config
                .queue()
                .map_or(0, |q| u64::from(q.mode() == QueueMode::Spillover)),
        }
    }
}

impl TryFrom<SaleRecord> for SaleConfig {
    type Error = SaleConfigError;

    fn try_from(record: SaleRecord) -> Result<Self, SaleConfigError> {
        let auth = match record.token_auth {
            0 => BuyerAuth::Open,
            _ => BuyerAuth::Token,
        };
        let policy = match NonZeroU32::new(record.per_user_limit) {
            Some(per_user_limit) => BuyerPolicy::Identified {
                per_user_limit,
                auth,
            },
            None if auth == BuyerAuth::Token => return Err(SaleConfigError::TokenNeedsBuyers),
            None => BuyerPolicy::Anonymous,
        };
        let queue = match u32::try_from(record.queue_admit_rate).ok() {
            Some(0) => None,
            Some(rate) => Some(
                QueueConfig::new(NonZeroU32::new(rate).unwrap_or(NonZeroU32::MIN))?
                    .with_max_active(NonZeroU64::new(record.queue_max_active))
                    .with_admit_window(Duration::from_millis(record.queue_admit_window_ms))?
                    .joining_from(
                        (record.queue_joins_open_at_ms > 0)
                            .then(|| from_unix_millis(record.queue_joins_open_at_ms)),
                    )
                    .with_mode(match record.queue_spillover {
                        0 => QueueMode::Always,
                        _ => QueueMode::Spillover,
                    }),
            ),
            None => return Err(QueueConfigError::RateTooHigh.into()),
        };
        let base = match record.train {
            None => SaleConfig::new(record.total)?,
            Some(layout) => SaleConfig::for_train(layout)?,
        };
        let life = SaleLife::new(record.life).ok_or(SaleConfigError::BadLife)?;
        base.with_policy(policy)
            .in_life(life)
            .opening_at((record.opens_at_ms > 0).then(|| from_unix_millis(record.opens_at_ms)))
            .with_payment_window(Duration::from_millis(record.payment_window_ms))?
            .with_queue(queue)
    }
}

impl SaleRecord {
    /// The rule fields' values, in [`RULE_FIELDS`]' order.
    pub fn rules(&self) -> [u64; 11] {
        [
            self.total,
            u64::from(self.per_user_limit),
            self.opens_at_ms,
            self.payment_window_ms,
            self.token_auth,
            self.queue_admit_rate,
            self.queue_max_active,
            self.queue_admit_window_ms,
            self.queue_joins_open_at_ms,
            self.life,
            self.queue_spillover,
        ]
    }

    /// The record of `rules` (in [`RULE_FIELDS`]' order) and `train`.
    pub fn from_rules(rules: [u64; 11], train: Option<Arc<TrainLayout>>) -> Self {
        let [total, per_user_limit, opens_at_ms, payment_window_ms, token_auth, queue_admit_rate, queue_max_active, queue_admit_window_ms, queue_joins_open_at_ms, life, queue_spillover] =
            rules;
        Self {
            total,
            per_user_limit: u32::try_from(per_user_limit).unwrap_or(u32::MAX),
            opens_at_ms,
            payment_window_ms,
            token_auth,
            queue_admit_rate,
            queue_max_active,
            queue_admit_window_ms,
            queue_joins_open_at_ms,
            train,
            life,
            queue_spillover,
        }
    }

    /// The layout's wire form, as stores keep it ('' for other sales).
    pub fn train_wire(&self) -> String {
        self.train
            .as_deref()
            .map_or_else(String::new, TrainLayout::to_wire)
    }

    /// A stored layout ('' for none): an error when it does not parse.
    pub fn parse_train(wire: &str) -> Result<Option<Arc<TrainLayout>>, TrainError> {
        match wire {
            "" => Ok(None),
            wire => TrainLayout::parse(wire).map(|layout| Some(Arc::new(layout))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sale::BuyerAuth;

    #[test]
    fn a_record_round_trips_every_rule() {
        let config = SaleConfig::new(500)
            .unwrap()
            .with_policy(BuyerPolicy::Identified {
                per_user_limit: NonZeroU32::new(3).unwrap(),
                auth: BuyerAuth::Token,
            })
            .opening_at(Some(from_unix_millis(1_700_000_000_000)))
            .with_payment_window(Duration::from_secs(90))
            .unwrap()
            .in_life(SaleLife::new(42).unwrap());
        let record = SaleRecord::from(&config);
        assert_eq!(
            record,
            SaleRecord {
                total: 500,
                per_user_limit: 3,
                opens_at_ms: 1_700_000_000_000,
                payment_window_ms: 90_000,
                token_auth: 1,
                queue_admit_rate: 0,
                queue_max_active: 0,
                queue_admit_window_ms: 0,
                queue_joins_open_at_ms: 0,
                train: None,
                life: 42,
                queue_spillover: 0,
            }
        );
        assert_eq!(SaleConfig::try_from(record), Ok(config.clone()));
        let layout = crate::TrainLayout::new(&["A", "B", "C"], &["first:2x10"]).unwrap();
        let train = SaleConfig::for_train(layout).unwrap();
        let record = SaleRecord::from(&train);
        assert_eq!(
            (record.total, record.train_wire().as_str()),
            (40, "A,B,C|first:2x10")
        );
        assert_eq!(
            SaleRecord::from_rules(record.rules(), record.train.clone()),
            record
        );
        assert_eq!(
            SaleRecord::parse_train(&record.train_wire()).unwrap(),
            record.train
        );
        assert!(
            SaleRecord::parse_train("A|nonsense").is_err(),
            "a bad layout is an error"
        );
        assert_eq!(SaleRecord::parse_train(""), Ok(None));
        assert_eq!(SaleConfig::try_from(record), Ok(train));
        let queue = QueueConfig::new(NonZeroU32::new(200).unwrap())
            .unwrap()
            .with_max_active(NonZeroU64::new(50))
            .joining_from(Some(from_unix_millis(1_600_000_000_000)))
            .with_mode(QueueMode::Spillover);
        let queued = config.with_queue(Some(queue)).unwrap();
        let record = SaleRecord::from(&queued);
        assert_eq!(
            (
                record.queue_admit_rate,
                record.queue_max_active,
                record.queue_admit_window_ms,
                record.queue_joins_open_at_ms,
                record.queue_spillover
            ),
            (200, 50, 600_000, 1_600_000_000_000, 1)
        );
        assert_eq!(SaleConfig::try_from(record), Ok(queued));
        let anonymous = SaleConfig::new(1)
            .unwrap()
            .with_policy(BuyerPolicy::Anonymous);
        let record = SaleRecord::from(&anonymous);
        assert_eq!((record.per_user_limit, record.opens_at_ms), (0, 0));
        assert_eq!(SaleConfig::try_from(record.clone()), Ok(anonymous));
        let broken = SaleRecord {
            total: 0,
            ..record.clone()
        };
        assert_eq!(SaleConfig::try_from(broken), Err(SaleConfigError::NoStock));
        let nobody = SaleRecord {
            token_auth: 1,
            ..record
        };
        assert_eq!(
            SaleConfig::try_from(nobody),
            Err(SaleConfigError::TokenNeedsBuyers)
        );
    }
}
