//! A node's side of a sale's waiting room: the counters it last read from
//! central stock (one admission step every [`QUEUE_TICK_INTERVAL`], which
//! also reads them), the shuffle it computed from the seal, and the places
//! of the buyers it has seen. `/queue/status` is answered from these alone:
//! pollers cost central stock nothing once a buyer's place is known here.
//! Operators' controls (a new rate or cap, a revoked admission) reach it
//! from the sale's operator log (`node::control`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use serde::Serialize;
use serde_json::{json, Value};
use spike_auth::{AdmissionKeys, Admitted};
use spike_core::control::{AdmissionSettings, RevokeReason};
use spike_core::queue::{AdmissionStep, QueueView};
use spike_core::{EventId, QueueConfig, QueueCounters, QueueMode, Seal, Shuffle, Standing, UserId};

/// How often a node takes an admission step (and reads the counters) for
/// each queued sale it serves.
pub const QUEUE_TICK_INTERVAL: Duration = Duration::from_millis(100);

/// Most buyers' places a node remembers per sale; past it, the memory
/// starts over (a forgotten place costs one read of central stock).
pub const REMEMBERED_PLACES: usize = 1 << 20;

/// The counters as last read, with the shuffle they imply.
#[derive(Debug, Default)]
struct Counted {
    joined: u64,
    admitted: u64,
    seal: Option<Seal>,
    shuffle: Option<Arc<Shuffle>>,
    steps: Arc<Vec<AdmissionStep>>,
    /// Admitted buyers still active, as last read.
    active: u64,
    /// Central stock's clock at the last read (Unix milliseconds).
    read_at_ms: u64,
}

/// One queued sale's waiting room, as this node sees it.
#[derive(Debug)]
pub struct WaitingRoom {
    config: ArcSwap<QueueConfig>,
    opens_at_ms: u64,
    counted: ArcSwap<Counted>,
    places: Mutex<HashMap<UserId, u64>>,
    /// Positions admitted by passes through this node's door that its
    /// last read may not show yet (a spillover room).
    passed_through: AtomicU64,
    /// Buyers whose admission an operator revoked, and why: read on every
    /// purchase and status of the room without a lock, replaced whole on
    /// the rare control that changes it.
    revoked: ArcSwap<HashMap<UserId, RevokeReason>>,
}

impl WaitingRoom {
    /// A waiting room with `config`, for a sale opening at `opens_at_ms`,
    /// before its first read.
    pub fn new(config: QueueConfig, opens_at_ms: u64) -> Self {
        Self {
            config: ArcSwap::from_pointee(config),
            opens_at_ms,
            counted: ArcSwap::from_pointee(Counted::default()),
            places: Mutex::new(HashMap::new()),
            passed_through: AtomicU64::new(0),
            revoked: ArcSwap::from_pointee(HashMap::new()),
        }
    }

    /// The waiting room's rules, as an operator last set them.
    pub fn config(&self) -> QueueConfig {
        **self.config.load()
    }

    /// Takes an operator's new admission rate and cap.
    pub fn set_admission(&self, settings: AdmissionSettings) {
        self.config
            .store(Arc::new(settings.applied_to(self.config())));
    }

    /// Forgets every operator control: the room's own settings `config`
    /// again, and no revocation (for a node that follows a replaced
    /// operator log from its start).
    pub fn forget_controls(&self, config: QueueConfig) {
        self.config.store(Arc::new(config));
        self.revoked.store(Arc::new(HashMap::new()));
    }

    /// Records that an operator revoked `user`'s admission.
    pub fn revoke(&self, user: UserId, reason: RevokeReason) {
        self.revoked.rcu(|revoked| {
            let mut revoked = HashMap::clone(revoked);
            revoked.insert(user.clone(), reason.clone());
            revoked
        });
    }

    /// Gives `user`'s revoked admission back.
    pub fn reinstate(&self, user: &UserId) {
        self.revoked.rcu(|revoked| {
            let mut revoked = HashMap::clone(revoked);
            revoked.remove(user);
            revoked
        });
    }

    /// Why `user`'s admission was revoked, if it was.
    pub fn revoked(&self, user: &UserId) -> Option<RevokeReason> {
        let revoked = self.revoked.load();
        if revoked.is_empty() {
            return None;
        }
        revoked.get(user).cloned()
    }

    /// The time to ask admission steps from: the last one this node has.
    pub fn steps_known_until_ms(&self) -> u64 {
        self.counted
            .load()
            .steps
            .last()
            .map_or(0, |step| step.at_ms)
    }

    /// The seed the waiting room was sealed with, once it is: admission
    /// tokens are bound to it.
    pub fn seal_seed(&self) -> Option<u64> {
        self.counted.load().seal.map(|seal| seal.seed)
    }

    /// Whether `counters` show a waiting room other than the one this node
    /// knows: sealed anew, or with fewer buyers or admissions than it saw
    /// (a recovery reset it after central stock lost it).
    fn was_reset(known: &Counted, counters: &QueueCounters) -> bool {
        (known.seal.is_some() && counters.seal != known.seal)
            || counters.joined < known.joined
            || counters.admitted < known.admitted
    }

    /// Takes in counters central stock returned: new steps are appended,
    /// and the shuffle is computed once, when the seal first appears. A
    /// room that was reset is taken as it now is: the old shuffle, steps
    /// and places are dropped (and the admission tokens bound to the old
    /// seal admit nobody).
    pub fn apply(&self, counters: QueueCounters) {
        let mut known = self.counted.load_full();
        if Self::was_reset(&known, &counters) {
            tracing::warn!("the waiting room was reset in central stock; following it");
            self.places
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clear();
            self.passed_through.store(0, Ordering::Relaxed);
            known = Arc::new(Counted::default());
        }
        let last = known.steps.last().map_or(0, |step| step.admitted);
        let fresh: Vec<AdmissionStep> = (counters.steps.into_iter())
            .filter(|step| step.admitted > last)
            .collect();
        let steps = if fresh.is_empty() {
            Arc::clone(&known.steps)
        } else {
            let mut all = Vec::with_capacity(known.steps.len() + fresh.len());
            all.extend_from_slice(&known.steps);
            all.extend(fresh);
            Arc::new(all)
        };
        let shuffle = match (&known.shuffle, counters.seal) {
            (Some(shuffle), Some(_)) => Some(Arc::clone(shuffle)),
            (None, Some(seal)) => Some(Arc::new(Shuffle::of(seal))),
            (_, None) => None,
        };
        self.counted.store(Arc::new(Counted {
            joined: counters.joined,
            admitted: counters.admitted.max(known.admitted),
            seal: counters.seal,
            shuffle,
            steps,
            active: counters.active,
            read_at_ms: counters.now_ms,
        }));
    }

    /// The join index of `user`, if this node knows it.
    pub fn place(&self, user: &UserId) -> Option<u64> {
        self.places
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(user)
            .copied()
    }

    /// Remembers that `user` joined `join_index`-th.
    pub fn remember(&self, user: &UserId, join_index: u64) {
        let mut places = self.places.lock().unwrap_or_else(|p| p.into_inner());
        if places.len() >= REMEMBERED_PLACES {
            places.clear();
        }
        places.insert(user.clone(), join_index);
    }

    /// Where the buyer who joined `join_index`-th stands at `now_ms`.
    pub fn standing(&self, join_index: u64, now_ms: u64, sold_out: bool) -> Standing {
        let counted = self.counted.load();
        QueueView {
            config: &self.config(),
            opens_at_ms: self.opens_at_ms,
            shuffle: counted.shuffle.as_deref(),
            admitted: (counted.admitted).max(self.passed_through.load(Ordering::Relaxed)),
            steps: &counted.steps,
            sold_out,
        }
        .standing(join_index, now_ms)
    }

    /// What `/queue/status` and `/queue/join` say about a standing; an
    /// admitted buyer's answer carries their admission token.
    pub fn describe<'a>(
        &self,
        standing: Standing,
        event: &'a EventId,
        user: &UserId,
        keys: &AdmissionKeys,
    ) -> QueueStatus<'a> {
        let counted = self.counted.load();
        let config = self.config();
        let seal = counted.seal.map_or(0, |seal| seal.seed);
        let shown = |position: u64| position + 1;
        let revoked = self.revoked(user);
        let place = match standing {
            _ if revoked.is_some() => Place::Revoked {
                reason: revoked.map(|reason| reason.to_string()).unwrap_or_default(),
            },
            Standing::WaitingForStart { opens_at_ms } => Place::WaitingForStart { opens_at_ms },
            Standing::Waiting { position, ahead } => Place::Waiting {
                position: shown(position),
                ahead,
                estimated_wait_ms: millis(config.estimated_wait(ahead)),
            },
            Standing::Admitted {
                position,
                expires_at_ms,
            } => Place::Admitted {
                position: shown(position),
                ahead: 0,
                estimated_wait_ms: 0,
                expires_at_ms,
                admission: keys.mint(
                    event,
                    seal,
                    user,
                    Admitted {
                        position,
                        expires_at_ms,
                    },
                ),
            },
            Standing::Expired { position } => Place::Expired {
                position: shown(position),
            },
            Standing::SoldOut { position } => Place::SoldOut {
                position: position.map(shown),
            },
        };
        QueueStatus {
            event: event.as_str(),
            place,
            admitted_so_far: counted.admitted,
            joined: counted.joined,
            admit_rate_per_s: config.admit_rate().get(),
            entry: None,
        }
    }

    /// Whether buyers pass straight through while demand stays under the
    /// rate ([`QueueMode::Spillover`]).
    pub fn spills_over(&self) -> bool {
        self.config().mode() == QueueMode::Spillover
    }

    /// The standing of a buyer who just passed straight through at
    /// `position`: admitted from now. Until this node reads the step at its
    /// next tick, it counts `position` admitted itself.
    pub fn passed(&self, position: u64, now_ms: u64) -> Standing {
        (self.passed_through).fetch_max(position.saturating_add(1), Ordering::Relaxed);
        Standing::Admitted {
            position,
            expires_at_ms: now_ms.saturating_add(self.config().admit_window_millis()),
        }
    }

    /// Buyers who joined, and positions admitted, as last read.
    pub fn joined_and_admitted(&self) -> (u64, u64) {
        let counted = self.counted.load();
        (counted.joined, counted.admitted)
    }

    /// What an operator reads (`spike queue show`): who joined, who was
    /// admitted, who is active, the rate and cap, and the estimated wait of
    /// the last in line (the positions not yet admitted at the rate).
    pub fn show(&self) -> Value {
        let counted = self.counted.load();
        let config = self.config();
        let waiting = counted.joined.saturating_sub(counted.admitted);
        json!({
            "joined": counted.joined,
            "admitted": counted.admitted,
            "active": counted.active,
            "waiting": waiting,
            "admit_rate_per_s": config.admit_rate().get(),
            "max_active": config.max_active().map(|m| m.get()),
            "mode": config.mode().name(),
            "last_in_line_wait_ms": millis(config.estimated_wait(waiting)),
            "revoked": self.revoked.load().len(),
            "read_at_ms": counted.read_at_ms,
        })
    }

    /// The room's counters and rules, for `/stats`.
    pub fn stats(&self) -> Value {
        let counted = self.counted.load();
        let config = self.config();
        json!({
            "joined": counted.joined,
            "admitted": counted.admitted,
            "sealed": counted.seal.is_some(),
            "early": counted.seal.map(|seal| seal.early),
            "admit_rate_per_s": config.admit_rate().get(),
            "mode": config.mode().name(),
            "max_active": config.max_active().map(|m| m.get()),
            "read_at_ms": counted.read_at_ms,
        })
    }
}

/// A duration in whole milliseconds, saturating.
fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// Where one buyer stands, as `/queue/status` and `/queue/join` answer it
/// (`data`), and as a "not admitted yet" refusal carries it. Serialized
/// straight to the wire: the status path builds no JSON tree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QueueStatus<'a> {
    /// The sale.
    pub event: &'a str,
    /// The buyer's standing, with what it implies (`standing` names it).
    #[serde(flatten)]
    pub place: Place,
    /// Positions admitted so far.
    pub admitted_so_far: u64,
    /// Buyers who joined.
    pub joined: u64,
    /// The admission rate, per second.
    pub admit_rate_per_s: u32,
    /// In a spillover room, how this buyer came in when they asked at the
    /// door (`/queue/join`, or a purchase without an admission token).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entry: Option<Entry>,
}

impl QueueStatus<'_> {
    /// The same status, saying how the buyer came in.
    pub fn entering(mut self, entry: Entry) -> Self {
        self.entry = Some(entry);
        self
    }
}

/// How a buyer came into a spillover room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Entry {
    /// Demand was under the rate: admitted at once, no wait.
    Passed,
    /// Demand was over the rate: waiting to be admitted, in arrival order.
    Queued,
}

/// A buyer's standing on the wire: positions count from 1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "standing", rename_all = "snake_case")]
pub enum Place {
    /// Joined before the opening: everyone alike until the shuffle.
    WaitingForStart {
        /// When the sale opens (Unix milliseconds).
        opens_at_ms: u64,
    },
    /// Waiting for admission.
    Waiting {
        /// Position in the queue.
        position: u64,
        /// Positions not yet admitted ahead of this one.
        ahead: u64,
        /// `ahead` ÷ the admission rate (a lower bound under `--max-active`).
        estimated_wait_ms: u64,
    },
    /// Admitted: may buy until `expires_at_ms` with `admission`.
    Admitted {
        /// Position in the queue.
        position: u64,
        /// Always 0.
        ahead: u64,
        /// Always 0.
        estimated_wait_ms: u64,
        /// When the admission lapses (Unix milliseconds).
        expires_at_ms: u64,
        /// The admission token to buy with.
        admission: String,
    },
    /// Admitted, but the admission window passed.
    Expired {
        /// Position in the queue.
        position: u64,
    },
    /// The sale sold out.
    SoldOut {
        /// Position in the queue, once shuffled.
        position: Option<u64>,
    },
    /// Never joined this sale's waiting room.
    NotJoined,
    /// An operator revoked the buyer's admission: they may not buy.
    Revoked {
        /// Why, as the operator gave it.
        reason: String,
    },
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroU32;

    use spike_auth::{KeyRing, SecretKey};

    use super::*;

    fn counters(admitted: u64, seal: Option<Seal>, steps: Vec<AdmissionStep>) -> QueueCounters {
        QueueCounters {
            joined: 10,
            seal,
            admitted,
            active: 0,
            now_ms: 5_000,
            remaining: 10,
            steps,
        }
    }

    #[test]
    fn forgotten_controls_leave_the_rooms_own_settings_and_no_revocation() {
        let config = QueueConfig::new(NonZeroU32::new(10).unwrap()).unwrap();
        let room = WaitingRoom::new(config, 1_000);
        let user = UserId::parse("amy").unwrap();
        room.revoke(user.clone(), RevokeReason::parse("bot").unwrap());
        room.set_admission(AdmissionSettings::new(99, None).unwrap());
        assert!(room.revoked(&user).is_some());
        assert_eq!(room.config().admit_rate().get(), 99);
        room.forget_controls(config);
        assert_eq!((room.revoked(&user), room.config()), (None, config));
    }

    #[test]
    fn a_room_places_buyers_from_the_counters_it_read() {
        let config = QueueConfig::new(NonZeroU32::new(10).unwrap()).unwrap();
        let room = WaitingRoom::new(config, 1_000);
        assert_eq!(
            room.standing(3, 500, false),
            Standing::WaitingForStart { opens_at_ms: 1_000 }
        );
        let seal = Seal { seed: 5, early: 10 };
        let step = |at_ms, admitted| AdmissionStep { at_ms, admitted };
        room.apply(counters(2, Some(seal), vec![step(1_100, 2)]));
        room.apply(counters(
            4,
            Some(seal),
            vec![step(1_100, 2), step(1_300, 4)],
        ));
        assert_eq!(room.steps_known_until_ms(), 1_300, "each step once");
        let shuffle = Shuffle::of(seal);
        let first = (0..10).find(|i| shuffle.position(*i) == 0).unwrap();
        assert!(matches!(
            room.standing(first, 2_000, false),
            Standing::Admitted {
                position: 0,
                expires_at_ms: 601_100
            }
        ));
        let last = (0..10).find(|i| shuffle.position(*i) == 9).unwrap();
        assert_eq!(
            room.standing(last, 2_000, false),
            Standing::Waiting {
                position: 9,
                ahead: 5
            }
        );
        let keys = AdmissionKeys::new(KeyRing::new(SecretKey::new(vec![7; 32]).unwrap(), vec![]));
        let (event, ann) = (EventId::parse("G1").unwrap(), UserId::parse("ann").unwrap());
        let told = room.describe(room.standing(last, 2_000, false), &event, &ann, &keys);
        assert_eq!(
            told.place,
            Place::Waiting {
                position: 10,
                ahead: 5,
                estimated_wait_ms: 500
            },
            "shown from 1"
        );
        let wire = serde_json::to_value(&told).unwrap();
        assert_eq!(wire["standing"], "waiting");
        assert_eq!(wire["event"], "G1");
        assert_eq!(wire["admitted_so_far"], 4);
        let told = room.describe(room.standing(first, 2_000, false), &event, &ann, &keys);
        let Place::Admitted { admission, .. } = told.place else {
            panic!("admitted: {told:?}")
        };
        assert_eq!(
            keys.verify(&event, seal.seed, &ann, Some(&admission), 2_000)
                .map(|a| a.position),
            Ok(0)
        );
        room.remember(&ann, 4);
        assert_eq!(room.place(&ann), Some(4));

        // A recovery resets the room: sealed anew, nobody admitted yet. The
        // node follows: old places and the old shuffle are gone.
        room.apply(QueueCounters {
            joined: 0,
            seal: Some(Seal {
                seed: seal.seed + 1,
                early: 0,
            }),
            admitted: 0,
            active: 0,
            now_ms: 3_000,
            remaining: 10,
            steps: Vec::new(),
        });
        assert_eq!(room.place(&ann), None, "places of the lost room forgotten");
        assert_eq!(room.seal_seed(), Some(seal.seed + 1));
        assert!(
            matches!(room.standing(first, 3_000, false), Standing::Waiting { .. }),
            "admitted in the lost room, waiting in the new one"
        );
    }
}
