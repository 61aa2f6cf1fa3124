//! Where one buyer stands: the shuffle of the early joiners (the same on
//! every node and in the audit) and a buyer's standing from the counters.

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;

use super::{admitted_at, AdmissionStep, QueueConfig, Seal, MAX_EARLY_JOINERS};

/// The positions of the early joiners: a uniform shuffle of `0..early`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shuffle {
    position_of: Vec<u32>,
}

impl Shuffle {
    /// The shuffle `seal` stands for: the same on every node and in the
    /// audit (ChaCha20 seeded with the seal's seed drives Fisher–Yates).
    pub fn of(seal: Seal) -> Self {
        let early = u32::try_from(seal.early.min(MAX_EARLY_JOINERS)).unwrap_or(u32::MAX);
        let mut position_of: Vec<u32> = (0..early).collect();
        position_of.shuffle(&mut ChaCha20Rng::seed_from_u64(seal.seed));
        Self { position_of }
    }

    /// The position of the buyer who joined `join_index`-th.
    pub fn position(&self, join_index: u64) -> u64 {
        usize::try_from(join_index)
            .ok()
            .and_then(|index| self.position_of.get(index))
            .map_or(join_index, |position| u64::from(*position))
    }

    /// Buyers shuffled.
    pub fn early(&self) -> u64 {
        self.position_of.len() as u64
    }
}

/// Where one buyer stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// Joined before the opening: everyone has the same standing until the
    /// shuffle.
    WaitingForStart {
        /// When the sale opens (Unix milliseconds).
        opens_at_ms: u64,
    },
    /// Has a position, not yet admitted.
    Waiting {
        /// The buyer's position (0 is first).
        position: u64,
        /// Positions ahead of it, not yet admitted.
        ahead: u64,
    },
    /// Admitted: may buy until `expires_at_ms`.
    Admitted {
        /// The buyer's position.
        position: u64,
        /// When the admission ends (Unix milliseconds).
        expires_at_ms: u64,
    },
    /// Admitted, and the window passed.
    Expired {
        /// The buyer's position.
        position: u64,
    },
    /// The sale sold out before this buyer could buy.
    SoldOut {
        /// The buyer's position, if the queue was sealed.
        position: Option<u64>,
    },
}

/// What a node knows about one queued sale, to place a buyer.
#[derive(Debug, Clone, Copy)]
pub struct QueueView<'a> {
    /// The waiting room's rules.
    pub config: &'a QueueConfig,
    /// When the sale opens (Unix milliseconds).
    pub opens_at_ms: u64,
    /// The shuffle, once sealed.
    pub shuffle: Option<&'a Shuffle>,
    /// Positions admitted so far.
    pub admitted: u64,
    /// Admission steps, oldest first.
    pub steps: &'a [AdmissionStep],
    /// Whether the sale sold out.
    pub sold_out: bool,
}

impl QueueView<'_> {
    /// Where the buyer who joined `join_index`-th stands at `now_ms`.
    pub fn standing(&self, join_index: u64, now_ms: u64) -> Standing {
        let Some(shuffle) = self.shuffle else {
            return if self.sold_out {
                Standing::SoldOut { position: None }
            } else {
                Standing::WaitingForStart {
                    opens_at_ms: self.opens_at_ms,
                }
            };
        };
        let position = shuffle.position(join_index);
        if self.sold_out {
            return Standing::SoldOut {
                position: Some(position),
            };
        }
        if position >= self.admitted {
            return Standing::Waiting {
                position,
                ahead: position - self.admitted,
            };
        }
        let expires_at_ms = admitted_at(self.steps, position)
            .unwrap_or(now_ms)
            .saturating_add(self.config.admit_window_millis());
        if now_ms < expires_at_ms {
            Standing::Admitted {
                position,
                expires_at_ms,
            }
        } else {
            Standing::Expired { position }
        }
    }
}
