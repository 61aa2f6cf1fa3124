//! An operator's live controls of a running sale, and the operator log that
//! records them: pause and resume, a waiting room's admission rate and cap,
//! and the revocation of a buyer's admission.
//!
//! Central stock applies a control and appends it to the sale's log in one
//! atomic step ([`crate::CentralStock::control`]), so the log is the
//! history of every control that took effect, in order, stamped with
//! central stock's clock. Nodes follow the log to answer from memory; the
//! audit reads it to judge the admission pace period by period.
//!
//! An entry's wire form (Redis list items, and nothing else) is written and
//! read only here: `"<at_ms> <by> <action> <arguments>"`.

use std::fmt;
use std::num::{NonZeroU32, NonZeroU64};

use crate::ids::{OperatorName, UserId};
use crate::queue::{QueueConfig, RatePeriod, MAX_ADMIT_RATE};

mod standing;

pub use standing::{recovered_log, StandingControls};

/// Longest reason a revocation may carry, in bytes.
pub const MAX_REASON_LEN: usize = 200;

/// Why a control, or an entry's wire form, was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ControlError {
    /// The reason is empty, too long, or holds control characters.
    #[error("the reason must be 1-{MAX_REASON_LEN} bytes of printable text")]
    BadReason,
    /// The admission rate is zero or beyond [`MAX_ADMIT_RATE`].
    #[error("the admission rate must be 1-{MAX_ADMIT_RATE} a second")]
    BadRate,
    /// An operator log entry that is not in the wire form.
    #[error("malformed operator log entry: {0:?}")]
    Malformed(String),
}

/// Why a buyer's admission was revoked, as their refusals tell them:
/// printable text, 1–[`MAX_REASON_LEN`] bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevokeReason(String);

impl RevokeReason {
    /// Validates `text` (trimmed).
    pub fn parse(text: &str) -> Result<Self, ControlError> {
        let text = text.trim();
        let printable = text.chars().all(|c| !c.is_control());
        if text.is_empty() || text.len() > MAX_REASON_LEN || !printable {
            return Err(ControlError::BadReason);
        }
        Ok(Self(text.to_owned()))
    }

    /// The reason as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RevokeReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A waiting room's admission settings as a control sets them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdmissionSettings {
    /// Positions admitted a second.
    pub admit_rate: NonZeroU32,
    /// The cap on active admitted buyers (`None`: no cap).
    pub max_active: Option<NonZeroU64>,
}

impl AdmissionSettings {
    /// Checked settings: a rate of 1 to [`MAX_ADMIT_RATE`] a second.
    pub fn new(admit_rate: u32, max_active: Option<NonZeroU64>) -> Result<Self, ControlError> {
        let admit_rate = NonZeroU32::new(admit_rate)
            .filter(|rate| rate.get() <= MAX_ADMIT_RATE)
            .ok_or(ControlError::BadRate)?;
        Ok(Self {
            admit_rate,
            max_active,
        })
    }

    /// A room's current settings.
    pub fn of(queue: &QueueConfig) -> Self {
        Self {
            admit_rate: queue.admit_rate(),
            max_active: queue.max_active(),
        }
    }

    /// `queue` with these settings.
    pub fn applied_to(self, queue: QueueConfig) -> QueueConfig {
        queue
            .with_admit_rate(self.admit_rate)
            .with_max_active(self.max_active)
    }

    fn max_active_number(self) -> u64 {
        self.max_active.map_or(0, NonZeroU64::get)
    }
}

/// The kind of a control, named once for requests, the log's wire form and
/// answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// [`Control::Pause`].
    Pause,
    /// [`Control::Resume`].
    Resume,
    /// [`Control::Admission`].
    Admission,
    /// [`Control::Revoke`].
    Revoke,
    /// [`Control::Reinstate`].
    Reinstate,
}

impl Action {
    /// Every action.
    pub const ALL: [Self; 5] = [
        Self::Pause,
        Self::Resume,
        Self::Admission,
        Self::Revoke,
        Self::Reinstate,
    ];

    /// Its name, as `lua/control.lua` and the log spell it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Pause => "pause",
            Self::Resume => "resume",
            Self::Admission => "admission",
            Self::Revoke => "revoke",
            Self::Reinstate => "reinstate",
        }
    }

    /// The action named `name`, if any.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|action| action.name() == name)
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One control an operator gives a running sale.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Control {
    /// Stop selling: central stock refuses every purchase (replays of
    /// earlier ones aside) and the waiting room admits nobody.
    Pause,
    /// Sell again.
    Resume,
    /// A waiting room's new admission rate and cap. The rate's bucket
    /// starts empty at the change and fills at the new rate.
    Admission(AdmissionSettings),
    /// A buyer's admission is revoked: their purchases are refused with
    /// `reason`, whatever token they hold.
    Revoke {
        /// The buyer.
        user: UserId,
        /// What they are told.
        reason: RevokeReason,
    },
    /// A revoked admission given back (a revocation made by mistake): the
    /// buyer buys with their admission again, if its window still runs.
    Reinstate {
        /// The buyer.
        user: UserId,
    },
}

impl Control {
    /// Its kind.
    pub fn action(&self) -> Action {
        match self {
            Self::Pause => Action::Pause,
            Self::Resume => Action::Resume,
            Self::Admission(_) => Action::Admission,
            Self::Revoke { .. } => Action::Revoke,
            Self::Reinstate { .. } => Action::Reinstate,
        }
    }

    /// Whether the control needs a waiting room.
    pub fn needs_queue(&self) -> bool {
        matches!(
            self,
            Self::Admission(_) | Self::Revoke { .. } | Self::Reinstate { .. }
        )
    }
}

/// A control as an operator gives it: what, and who.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorOrder {
    /// Who gives it.
    pub by: OperatorName,
    /// What it does.
    pub control: Control,
}

/// What a control changed, as the log keeps it: the control, plus what an
/// admission change replaced (so the log alone tells each period's rate).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// [`Control::Pause`].
    Paused,
    /// [`Control::Resume`].
    Resumed,
    /// [`Control::Admission`], with the settings before it.
    Admission {
        /// The new settings.
        now: AdmissionSettings,
        /// The settings they replaced.
        was: AdmissionSettings,
    },
    /// [`Control::Revoke`].
    Revoked {
        /// The buyer.
        user: UserId,
        /// What they are told.
        reason: RevokeReason,
    },
    /// [`Control::Reinstate`].
    Reinstated {
        /// The buyer.
        user: UserId,
    },
}

impl Applied {
    /// The kind of the control it records.
    pub fn action(&self) -> Action {
        match self {
            Self::Paused => Action::Pause,
            Self::Resumed => Action::Resume,
            Self::Admission { .. } => Action::Admission,
            Self::Revoked { .. } => Action::Revoke,
            Self::Reinstated { .. } => Action::Reinstate,
        }
    }

    /// The arguments, as the wire form and answers give them.
    pub fn arguments(&self) -> String {
        match self {
            Self::Paused | Self::Resumed => String::new(),
            Self::Admission { now, was } => format!(
                "{} {} {} {}",
                now.admit_rate,
                now.max_active_number(),
                was.admit_rate,
                was.max_active_number()
            ),
            Self::Revoked { user, reason } => format!("{user} {reason}"),
            Self::Reinstated { user } => user.to_string(),
        }
    }
}

/// One entry of a sale's operator log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorEntry {
    /// Its place in the log (0 is first).
    pub index: u64,
    /// When it took effect, by central stock's clock (Unix milliseconds).
    pub at_ms: u64,
    /// Who gave it.
    pub by: OperatorName,
    /// What it did.
    pub applied: Applied,
}

impl OperatorEntry {
    /// Its wire form, the index aside (it is the place in the list).
    pub fn to_wire(&self) -> String {
        let line = format!("{} {} {}", self.at_ms, self.by, self.applied.action());
        match self.applied.arguments() {
            arguments if arguments.is_empty() => line,
            arguments => format!("{line} {arguments}"),
        }
    }

    /// Reads [`OperatorEntry::to_wire`]'s form, for the entry at `index`.
    pub fn parse(index: u64, wire: &str) -> Result<Self, ControlError> {
        let bad = || ControlError::Malformed(wire.to_owned());
        let mut fields = wire.splitn(4, ' ');
        let at_ms = fields.next().and_then(|f| f.parse().ok()).ok_or_else(bad)?;
        let by = fields.next().and_then(|f| OperatorName::parse(f).ok());
        let by = by.ok_or_else(bad)?;
        let action = fields.next().and_then(Action::parse).ok_or_else(bad)?;
        let arguments = fields.next().unwrap_or("");
        let applied = match action {
            Action::Pause => Applied::Paused,
            Action::Resume => Applied::Resumed,
            Action::Admission => {
                let numbers: Vec<u64> = (arguments.split(' '))
                    .map(|n| n.parse().map_err(|_| bad()))
                    .collect::<Result<_, _>>()?;
                let settings = |rate: u64, cap: u64| {
                    let rate = u32::try_from(rate).map_err(|_| bad())?;
                    AdmissionSettings::new(rate, NonZeroU64::new(cap)).map_err(|_| bad())
                };
                let [rate, cap, was_rate, was_cap] = numbers[..] else {
                    return Err(bad());
                };
                Applied::Admission {
                    now: settings(rate, cap)?,
                    was: settings(was_rate, was_cap)?,
                }
            }
            Action::Revoke => {
                let (user, reason) = arguments.split_once(' ').ok_or_else(bad)?;
                Applied::Revoked {
                    user: UserId::parse(user).map_err(|_| bad())?,
                    reason: RevokeReason::parse(reason).map_err(|_| bad())?,
                }
            }
            Action::Reinstate => Applied::Reinstated {
                user: UserId::parse(arguments).map_err(|_| bad())?,
            },
        };
        Ok(Self {
            index,
            at_ms,
            by,
            applied,
        })
    }
}

/// What central stock did with a control.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ControlOutcome {
    /// It took effect, and this is its log entry.
    Applied(OperatorEntry),
    /// The control needs a waiting room and the sale has none: nothing
    /// changed.
    NoQueue,
    /// Central stock has no such sale: nothing changed.
    NoSuchSale,
}

/// The periods of a waiting room's admission: `current` (the sale's rules
/// now) before any change, then one period per admission change of `log`,
/// each counted from the later of the change and `origin_ms`. The first
/// period's settings are what the first change replaced.
pub fn rate_periods(
    current: QueueConfig,
    origin_ms: u64,
    log: &[OperatorEntry],
) -> Vec<RatePeriod> {
    let changes: Vec<(u64, AdmissionSettings, AdmissionSettings)> = (log.iter())
        .filter_map(|entry| match entry.applied {
            Applied::Admission { now, was } => Some((entry.at_ms, now, was)),
            _ => None,
        })
        .collect();
    let first = changes
        .first()
        .map_or(AdmissionSettings::of(&current), |c| c.2);
    let mut periods = vec![RatePeriod {
        from_ms: origin_ms,
        config: first.applied_to(current),
    }];
    for (at_ms, now, _) in changes {
        periods.push(RatePeriod {
            from_ms: at_ms.max(origin_ms),
            config: now.applied_to(current),
        });
    }
    periods
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(index: u64, applied: Applied) -> OperatorEntry {
        OperatorEntry {
            index,
            at_ms: 1_700_000_000_123,
            by: OperatorName::parse("ops@night").unwrap(),
            applied,
        }
    }

    fn settings(rate: u32, cap: u64) -> AdmissionSettings {
        AdmissionSettings::new(rate, NonZeroU64::new(cap)).unwrap()
    }

    #[test]
    fn entries_round_trip_their_wire_form() {
        let all = [
            Applied::Paused,
            Applied::Resumed,
            Applied::Admission {
                now: settings(500, 0),
                was: settings(100, 20),
            },
            Applied::Revoked {
                user: UserId::parse("张三").unwrap(),
                reason: RevokeReason::parse("bot traffic from one address").unwrap(),
            },
            Applied::Reinstated {
                user: UserId::parse("张三").unwrap(),
            },
        ];
        for (index, applied) in all.into_iter().enumerate() {
            let entry = entry(index as u64, applied);
            assert_eq!(
                OperatorEntry::parse(index as u64, &entry.to_wire()),
                Ok(entry)
            );
        }
        assert_eq!(
            entry(0, Applied::Paused).to_wire(),
            "1700000000123 ops@night pause"
        );
    }

    #[test]
    fn every_action_has_one_name_that_reads_back() {
        for action in Action::ALL {
            assert_eq!(Action::parse(action.name()), Some(action));
        }
        assert_eq!(Action::parse("explode"), None);
        assert_eq!(Control::Pause.action(), Applied::Paused.action());
    }

    #[test]
    fn malformed_entries_are_refused() {
        for wire in [
            "",
            "x ops pause",
            "1 ops explode",
            "1 ops admission 5 0 0 0",
            "1 ops admission 5",
            "1 ops revoke alice",
            "1 ops reinstate",
            "1 ops reinstate a b",
            "1 op s pause",
        ] {
            assert!(OperatorEntry::parse(0, wire).is_err(), "{wire:?}");
        }
    }

    #[test]
    fn reasons_are_printable_and_bounded() {
        assert!(RevokeReason::parse("  ").is_err());
        assert!(RevokeReason::parse("a\nb").is_err());
        assert!(RevokeReason::parse(&"x".repeat(MAX_REASON_LEN + 1)).is_err());
        assert_eq!(RevokeReason::parse(" resold ").unwrap().as_str(), "resold");
    }

    #[test]
    fn rates_are_bounded() {
        assert_eq!(AdmissionSettings::new(0, None), Err(ControlError::BadRate));
        assert!(AdmissionSettings::new(MAX_ADMIT_RATE + 1, None).is_err());
    }

    #[test]
    fn rate_periods_start_with_what_the_first_change_replaced() {
        let current = QueueConfig::new(NonZeroU32::new(300).unwrap()).unwrap();
        let change = |index, at_ms, now, was| OperatorEntry {
            at_ms,
            ..entry(index, Applied::Admission { now, was })
        };
        let log = [
            change(0, 500, settings(200, 0), settings(50, 0)),
            entry(1, Applied::Paused),
            change(2, 5_000, settings(300, 0), settings(200, 0)),
        ];
        let periods = rate_periods(current, 1_000, &log);
        let rates: Vec<(u64, u32)> = (periods.iter())
            .map(|p| (p.from_ms, p.config.admit_rate().get()))
            .collect();
        assert_eq!(rates, [(1_000, 50), (1_000, 200), (5_000, 300)]);
        assert_eq!(rate_periods(current, 7, &[]).len(), 1);
    }
}
