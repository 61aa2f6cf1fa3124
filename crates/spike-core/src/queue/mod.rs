//! The waiting room's rules: how a queued sale is configured, how buyers who
//! joined before the opening are shuffled, how fast positions are admitted,
//! and where a buyer stands. Central stock (Redis or embedded) keeps the
//! counters; nodes and the audit compute everything else from them here.
//!
//! A buyer's *join index* is the order they joined in (0, 1, 2, …). At the
//! opening central stock seals the queue: the `early` buyers who joined
//! before it are shuffled by a uniform Fisher–Yates shuffle driven by a
//! seed drawn at that moment, so arriving early, or with a bot, gains
//! nothing; later arrivals keep their arrival order behind them. Positions
//! start at 0; position `p` is admitted once `admitted > p`.
//!
//! Here: the configuration, the admission rule and the counters. What the
//! admission steps say afterwards (for the audit and the counters) is in
//! `history`; the shuffle and where a buyer stands in `standing`.

use std::num::{NonZeroU32, NonZeroU64};
use std::time::{Duration, SystemTime};

use crate::time::unix_millis;

mod history;
mod standing;

pub use history::{
    active_at, admitted_at, admitted_by, passes_ahead_of_waiters, steps_beyond_rate, RatePeriod,
};
pub use standing::{QueueView, Shuffle, Standing};

/// How long an admitted buyer may buy, by default.
pub const DEFAULT_ADMIT_WINDOW: Duration = Duration::from_secs(10 * 60);

/// The most a waiting room admits at once after a quiet spell, in
/// milliseconds of its rate: its token bucket holds one second's worth, so
/// buyers who join late after a quiet spell are admitted at the rate, not
/// all at once.
pub const ADMISSION_BURST_MS: u64 = 1_000;

/// Fastest admission rate accepted, per second.
pub const MAX_ADMIT_RATE: u32 = 1_000_000;

/// Most buyers who may join before the opening (their shuffle is held in
/// memory, four bytes each).
pub const MAX_EARLY_JOINERS: u64 = u32::MAX as u64;

/// Why a waiting room's configuration was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueueConfigError {
    /// The admission rate is beyond [`MAX_ADMIT_RATE`].
    #[error("the admission rate must be at most {MAX_ADMIT_RATE}/s")]
    RateTooHigh,
    /// The admission window must be positive.
    #[error("the admission window must be longer than zero")]
    NoWindow,
    /// The admission window is longer than [`crate::time::MAX_SALE_DURATION`].
    #[error("the admission window must be at most 30 days")]
    WindowTooLong,
}

/// Who goes through a sale's waiting room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum QueueMode {
    /// Every buyer joins and buys only once admitted (`--queue`).
    #[default]
    Always,
    /// Spillover (`--queue auto`): while demand stays under the admission
    /// rate, a buyer passes straight through (joins and is admitted in one
    /// step, and needs no admission token); once it exceeds the rate, new
    /// buyers wait in the room and are admitted at the rate, in arrival
    /// order. A buyer passes only when nobody is waiting, so a late comer
    /// never overtakes a waiting one.
    Spillover,
}

impl QueueMode {
    /// The mode's name in `/stats`, `spike sale show` and the audit.
    pub fn name(self) -> &'static str {
        match self {
            Self::Always => "always",
            Self::Spillover => "spillover",
        }
    }
}

/// A sale's waiting room: admission rate, cap on active buyers, how long an
/// admission lasts, when joining starts, and who must wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueConfig {
    mode: QueueMode,
    admit_rate: NonZeroU32,
    max_active: Option<NonZeroU64>,
    admit_window: Duration,
    joins_open_at: Option<SystemTime>,
}

impl QueueConfig {
    /// A waiting room admitting `per_second` positions a second, no cap on
    /// active buyers, the default window, joining open from the start.
    pub fn new(per_second: NonZeroU32) -> Result<Self, QueueConfigError> {
        if per_second.get() > MAX_ADMIT_RATE {
            return Err(QueueConfigError::RateTooHigh);
        }
        Ok(Self {
            mode: QueueMode::Always,
            admit_rate: per_second,
            max_active: None,
            admit_window: DEFAULT_ADMIT_WINDOW,
            joins_open_at: None,
        })
    }

    /// Admitting `per_second` positions a second (checked by
    /// [`crate::control::AdmissionSettings::new`] and [`QueueConfig::new`]).
    pub fn with_admit_rate(mut self, per_second: NonZeroU32) -> Self {
        self.admit_rate =
            NonZeroU32::new(per_second.get().min(MAX_ADMIT_RATE)).unwrap_or(per_second);
        self
    }

    /// At most `max_active` admitted buyers who have neither bought nor let
    /// their admission expire, at once.
    pub fn with_max_active(mut self, max_active: Option<NonZeroU64>) -> Self {
        self.max_active = max_active;
        self
    }

    /// How long an admission lasts.
    pub fn with_admit_window(mut self, window: Duration) -> Result<Self, QueueConfigError> {
        if window.is_zero() {
            return Err(QueueConfigError::NoWindow);
        }
        if window > crate::time::MAX_SALE_DURATION {
            return Err(QueueConfigError::WindowTooLong);
        }
        self.admit_window = window;
        Ok(self)
    }

    /// Joining starts at `at` (`None`: from the sale's creation).
    pub fn joining_from(mut self, at: Option<SystemTime>) -> Self {
        self.joins_open_at = at;
        self
    }

    /// Who must wait: everyone, or only the demand beyond the rate.
    pub fn with_mode(mut self, mode: QueueMode) -> Self {
        self.mode = mode;
        self
    }

    /// Who must wait.
    pub fn mode(&self) -> QueueMode {
        self.mode
    }

    /// Positions admitted per second.
    pub fn admit_rate(&self) -> NonZeroU32 {
        self.admit_rate
    }

    /// The cap on active admitted buyers, if any.
    pub fn max_active(&self) -> Option<NonZeroU64> {
        self.max_active
    }

    /// How long an admission lasts.
    pub fn admit_window(&self) -> Duration {
        self.admit_window
    }

    /// When joining starts, if not from the sale's creation.
    pub fn joins_open_at(&self) -> Option<SystemTime> {
        self.joins_open_at
    }

    /// When joining starts, in Unix milliseconds (0: from the creation).
    pub fn joins_open_at_millis(&self) -> u64 {
        self.joins_open_at.map_or(0, unix_millis)
    }

    /// The admission window in milliseconds.
    pub fn admit_window_millis(&self) -> u64 {
        u64::try_from(self.admit_window.as_millis()).unwrap_or(u64::MAX)
    }

    /// Where the token bucket's credit starts now, in the units of
    /// [`AdmissionProgress::paced`]: where the admissions so far left it,
    /// or [`ADMISSION_BURST_MS`] before now if that is later (the credit of
    /// a quiet spell does not pile up).
    fn bucket_start(&self, progress: &AdmissionProgress) -> u64 {
        let rate = u64::from(self.admit_rate.get());
        let elapsed = progress.since_opening_ms.saturating_mul(rate);
        progress
            .paced
            .max(elapsed.saturating_sub(ADMISSION_BURST_MS * rate))
    }

    /// How many more positions the rate allows now: a token bucket filled
    /// at the admission rate, holding at most [`ADMISSION_BURST_MS`] of it.
    pub fn rate_budget(&self, progress: &AdmissionProgress) -> u64 {
        let rate = u64::from(self.admit_rate.get());
        let elapsed = progress.since_opening_ms.saturating_mul(rate);
        elapsed.saturating_sub(self.bucket_start(progress)) / 1000
    }

    /// [`AdmissionProgress::paced`] once `admitted` has moved to `target`.
    pub fn paced_after(&self, progress: &AdmissionProgress, target: u64) -> u64 {
        let moved = target.saturating_sub(progress.admitted);
        self.bucket_start(progress)
            .saturating_add(moved.saturating_mul(1000))
    }

    /// How far `admitted` may move now: never back, never past the buyers
    /// who joined, the rate's token bucket, or (with `--max-active`)
    /// `max_active` buyers still active.
    pub fn admission_target(&self, progress: &AdmissionProgress) -> u64 {
        let mut target = progress
            .joined
            .min(progress.admitted.saturating_add(self.rate_budget(progress)));
        if let Some(max_active) = self.max_active {
            let finished = progress.admitted.saturating_sub(progress.active());
            target = target.min(finished.saturating_add(max_active.get()));
        }
        target.max(progress.admitted)
    }

    /// Whether a buyer joining now, once the sale opened, passes straight
    /// through: a spillover room, nobody waiting, and a token left in the
    /// rate's bucket (and room under `--max-active`) for one more.
    pub fn lets_through(&self, progress: &AdmissionProgress) -> bool {
        let with_joiner = AdmissionProgress {
            joined: progress.joined.saturating_add(1),
            ..*progress
        };
        self.mode == QueueMode::Spillover
            && progress.admitted >= progress.joined
            && self.admission_target(&with_joiner) > progress.admitted
    }

    /// The wait for `ahead` positions at the admission rate (a lower bound
    /// when `--max-active` holds admissions back).
    pub fn estimated_wait(&self, ahead: u64) -> Duration {
        let rate = u64::from(self.admit_rate.get());
        Duration::from_millis(ahead.saturating_mul(1000).div_ceil(rate))
    }
}

/// The moment a waiting room's rate is counted from (Unix milliseconds):
/// the opening, or, when the room was sealed more than a bucket's worth
/// ([`ADMISSION_BURST_MS`]) after it, that much before the seal. The bucket
/// holds no more than that anyway, so admission is the same; what it keeps
/// bounded is [`AdmissionProgress::since_opening_ms`] times the rate, which
/// Lua must hold exactly (below 2^53) even for a sale open from its
/// creation (an opening at 0).
pub fn rate_origin_ms(opens_at_ms: u64, sealed_at_ms: u64) -> u64 {
    opens_at_ms.max(sealed_at_ms.saturating_sub(ADMISSION_BURST_MS))
}

/// What an admission step needs to know about the queue right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdmissionProgress {
    /// Milliseconds since the rate's origin ([`rate_origin_ms`]: the
    /// opening, or a bucket's worth before a late seal).
    pub since_opening_ms: u64,
    /// How much of the rate the admissions so far used: milliseconds since
    /// the opening times the rate (each admission costs 1,000). Kept in
    /// central stock as an integer, exact in Lua's numbers for any sale.
    pub paced: u64,
    /// Buyers who joined.
    pub joined: u64,
    /// Positions admitted so far.
    pub admitted: u64,
    /// Admitted positions that bought.
    pub bought: u64,
    /// Admitted positions whose window passed without a purchase.
    pub expired_unbought: u64,
}

impl AdmissionProgress {
    /// Admitted buyers who have neither bought nor let their admission expire.
    pub fn active(&self) -> u64 {
        self.admitted
            .saturating_sub(self.bought)
            .saturating_sub(self.expired_unbought)
    }
}

/// The queue sealed at the opening: how many joined before it and the seed
/// of their shuffle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seal {
    /// The shuffle's seed, drawn at the opening.
    pub seed: u64,
    /// Buyers who joined before the opening (join indexes `0..early`).
    pub early: u64,
}

/// The moment `admitted` reached a value: a step of admission.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdmissionStep {
    /// When, by central stock's clock (Unix milliseconds).
    pub at_ms: u64,
    /// Positions admitted from then on.
    pub admitted: u64,
}

/// A waiting room as central stock counted it at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueCounters {
    /// Buyers who joined.
    pub joined: u64,
    /// The seal, once the sale opened.
    pub seal: Option<Seal>,
    /// Positions admitted so far.
    pub admitted: u64,
    /// Admitted buyers who have neither bought nor let their admission
    /// expire (what `--max-active` caps; see [`active_at`]).
    pub active: u64,
    /// Central stock's clock (Unix milliseconds).
    pub now_ms: u64,
    /// Seats still for sale (0: sold out, and nobody more is admitted).
    pub remaining: u64,
    /// Admission steps after the time the caller asked from, oldest first.
    pub steps: Vec<AdmissionStep>,
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    fn rate(per_second: u32) -> QueueConfig {
        QueueConfig::new(NonZeroU32::new(per_second).unwrap()).unwrap()
    }

    #[test]
    fn a_shuffle_gives_every_position_once_and_is_the_same_everywhere() {
        let seal = Seal {
            seed: 42,
            early: 2000,
        };
        let shuffle = Shuffle::of(seal);
        let positions: HashSet<u64> = (0..2000).map(|i| shuffle.position(i)).collect();
        assert_eq!(positions.len(), 2000);
        assert!(positions.iter().all(|p| *p < 2000));
        assert_eq!(shuffle, Shuffle::of(seal), "deterministic from the seal");
        let moved = (0..2000).filter(|i| shuffle.position(*i) != *i).count();
        assert!(moved > 1900, "a shuffle, not the join order: {moved}");
        assert_ne!(shuffle, Shuffle::of(Seal { seed: 43, ..seal }));
        assert_eq!(
            shuffle.position(2000),
            2000,
            "late joiners keep their order"
        );
        assert_eq!(shuffle.position(2500), 2500);
    }

    #[test]
    fn each_early_joiner_is_equally_likely_to_be_first() {
        // 6,000 shuffles of 3 joiners: each takes position 0 about 2,000 times.
        let mut first = [0u32; 3];
        for seed in 0..6000 {
            let shuffle = Shuffle::of(Seal { seed, early: 3 });
            let winner = (0..3).find(|i| shuffle.position(*i) == 0).unwrap();
            first[winner as usize] += 1;
        }
        assert!(first.iter().all(|n| (1800..2200).contains(n)), "{first:?}");
    }

    #[test]
    fn admission_follows_the_rate_the_joiners_and_the_active_cap() {
        let queue = rate(200);
        let progress =
            |since_opening_ms, joined, admitted, bought, expired_unbought| AdmissionProgress {
                since_opening_ms,
                paced: admitted * 1000,
                joined,
                admitted,
                bought,
                expired_unbought,
            };
        assert_eq!(queue.admission_target(&progress(0, 2000, 0, 0, 0)), 0);
        assert_eq!(queue.admission_target(&progress(1000, 2000, 0, 0, 0)), 200);
        assert_eq!(
            queue.admission_target(&progress(10_500, 2000, 0, 0, 0)),
            200,
            "the bucket holds one second of the rate"
        );
        assert_eq!(queue.admission_target(&progress(2000, 50, 0, 0, 0)), 50);
        assert_eq!(
            queue.admission_target(&progress(0, 2000, 300, 0, 0)),
            300,
            "never back"
        );
        let busy = |since_opening_ms, admitted| AdmissionProgress {
            since_opening_ms,
            paced: admitted * 1000,
            joined: 1_000_000,
            admitted,
            bought: 0,
            expired_unbought: 0,
        };
        assert_eq!(
            queue.admission_target(&busy(10_000, 1900)),
            2000,
            "paced: the rate's own share"
        );
        let capped = queue.with_max_active(NonZeroU64::new(10));
        assert_eq!(capped.admission_target(&progress(5000, 2000, 0, 0, 0)), 10);
        assert_eq!(capped.admission_target(&progress(5000, 2000, 10, 4, 0)), 14);
        assert_eq!(capped.admission_target(&progress(5000, 2000, 14, 4, 3)), 17);
        assert_eq!(queue.estimated_wait(300), Duration::from_millis(1500));
    }

    #[test]
    fn after_a_quiet_minute_late_joiners_are_admitted_at_the_rate_not_at_once() {
        let queue = rate(200);
        // Nobody joined for the first minute; then 50,000 join at once.
        let mut progress = AdmissionProgress {
            since_opening_ms: 60_000,
            paced: 0,
            joined: 50_000,
            admitted: 0,
            bought: 0,
            expired_unbought: 0,
        };
        let mut each_tick = Vec::new();
        for _ in 0..30 {
            let target = queue.admission_target(&progress);
            each_tick.push(target - progress.admitted);
            progress.paced = queue.paced_after(&progress, target);
            progress.admitted = target;
            progress.since_opening_ms += 100;
        }
        assert_eq!(each_tick[0], 200, "one second of burst, no more");
        assert!(
            each_tick[1..].iter().all(|&step| step == 20),
            "then the rate, 20 per 100 ms: {each_tick:?}"
        );
        assert_eq!(progress.admitted, 200 + 29 * 20);
    }

    #[test]
    fn a_spillover_room_lets_a_buyer_through_only_with_a_token_and_nobody_waiting() {
        let always = rate(10);
        let spillover = always.with_mode(QueueMode::Spillover);
        let progress = |joined, admitted, paced| AdmissionProgress {
            since_opening_ms: 5_000,
            paced,
            joined,
            admitted,
            bought: 0,
            expired_unbought: 0,
        };
        assert!(
            spillover.lets_through(&progress(3, 3, 3_000)),
            "a full bucket"
        );
        assert!(
            !always.lets_through(&progress(3, 3, 3_000)),
            "everyone waits"
        );
        assert!(
            !spillover.lets_through(&progress(4, 3, 3_000)),
            "someone is waiting"
        );
        assert!(
            !spillover.lets_through(&progress(50, 50, 50_000)),
            "the bucket is empty"
        );
        assert!(
            spillover.lets_through(&progress(50, 50, 49_000)),
            "one token"
        );
        let capped = spillover.with_max_active(NonZeroU64::new(2));
        assert!(
            !capped.lets_through(&progress(3, 3, 3_000)),
            "three active, two allowed"
        );
    }

    #[test]
    fn a_buyer_stands_where_the_counters_say() {
        let queue = rate(100)
            .with_admit_window(Duration::from_secs(60))
            .unwrap();
        let shuffle = Shuffle::of(Seal { seed: 7, early: 10 });
        let steps = [
            AdmissionStep {
                at_ms: 1_000,
                admitted: 4,
            },
            AdmissionStep {
                at_ms: 2_000,
                admitted: 12,
            },
        ];
        let mut view = QueueView {
            config: &queue,
            opens_at_ms: 500,
            shuffle: None,
            admitted: 12,
            steps: &steps,
            sold_out: false,
        };
        assert_eq!(
            view.standing(3, 400),
            Standing::WaitingForStart { opens_at_ms: 500 }
        );
        view.shuffle = Some(&shuffle);
        assert_eq!(
            view.standing(15, 2_500),
            Standing::Waiting {
                position: 15,
                ahead: 3
            }
        );
        let early = (0..10).find(|i| shuffle.position(*i) < 4).unwrap();
        assert_eq!(
            view.standing(early, 2_500),
            Standing::Admitted {
                position: shuffle.position(early),
                expires_at_ms: 61_000
            }
        );
        assert_eq!(
            view.standing(11, 62_001),
            Standing::Expired { position: 11 }
        );
        view.sold_out = true;
        assert_eq!(
            view.standing(15, 2_500),
            Standing::SoldOut { position: Some(15) }
        );
        assert_eq!(admitted_at(&steps, 3), Some(1_000));
        assert_eq!(admitted_at(&steps, 4), Some(2_000));
        assert_eq!(admitted_at(&steps, 12), None);
    }

    #[test]
    fn bad_configurations_are_refused() {
        assert_eq!(
            QueueConfig::new(NonZeroU32::new(MAX_ADMIT_RATE + 1).unwrap()),
            Err(QueueConfigError::RateTooHigh)
        );
        assert_eq!(
            rate(1).with_admit_window(Duration::ZERO),
            Err(QueueConfigError::NoWindow)
        );
    }
}
