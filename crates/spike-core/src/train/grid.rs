//! A train run's seat × segment grid as watchers receive it: by changes.
//! A [`GridLog`] holds every seat's mask, a version that moves whenever a
//! mask changes, and the changes of the last [`KEPT_VERSIONS`] versions; a
//! watcher that has version `v` asks for what changed since (only the
//! seats whose masks changed), and one too far behind, or new, gets every
//! mask. Nodes keep one for `/stats/grid`, and the dashboard one for its
//! page, so neither ships every mask at every poll.

use std::collections::VecDeque;

/// How many versions' changes a log keeps.
pub const KEPT_VERSIONS: usize = 64;

/// One seat's new mask: class index, seat index, mask.
pub type SeatChange = (usize, u32, u64);

/// What a watcher at some version needs to reach the log's version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GridDelta {
    /// Every mask, per class.
    Full(Vec<Vec<u64>>),
    /// The masks that changed (the last change of a seat wins).
    Changes(Vec<SeatChange>),
}

/// The grid, its version and its recent changes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GridLog {
    version: u64,
    masks: Vec<Vec<u64>>,
    changes: VecDeque<(u64, Vec<SeatChange>)>,
}

impl GridLog {
    /// Its version: 0 until it holds a grid.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Every mask, per class.
    pub fn masks(&self) -> &[Vec<u64>] {
        &self.masks
    }

    /// Takes up `masks` (per class), a new version if anything differs:
    /// the changed seats are logged (a different shape is logged as a
    /// whole new grid, which watchers then receive in full).
    pub fn update(&mut self, masks: Vec<Vec<u64>>) -> bool {
        if masks == self.masks {
            return false;
        }
        let same_shape = self.masks.len() == masks.len()
            && (self.masks.iter().zip(&masks)).all(|(old, new)| old.len() == new.len());
        let changes = match same_shape && self.version > 0 {
            true => (self.masks.iter().zip(&masks).enumerate())
                .flat_map(|(class, (old, new))| {
                    (old.iter().zip(new).enumerate())
                        .filter(|(_, (old, new))| old != new)
                        .map(move |(seat, (_, new))| (class, seat as u32, *new))
                })
                .collect(),
            false => {
                self.changes.clear();
                Vec::new()
            }
        };
        self.version += 1;
        self.masks = masks;
        if same_shape {
            self.changes.push_back((self.version, changes));
            while self.changes.len() > KEPT_VERSIONS {
                self.changes.pop_front();
            }
        }
        true
    }

    /// Applies `delta` (a node's) to this log: what [`GridLog::update`]
    /// would make of the grid it describes.
    pub fn apply(&mut self, delta: GridDelta) -> bool {
        let masks = match delta {
            GridDelta::Full(masks) => masks,
            GridDelta::Changes(changes) => {
                let mut masks = self.masks.clone();
                for (class, seat, mask) in changes {
                    if let Some(slot) = masks.get_mut(class).and_then(|c| c.get_mut(seat as usize))
                    {
                        *slot = mask;
                    }
                }
                masks
            }
        };
        self.update(masks)
    }

    /// What a watcher at `since` needs: the changes after it while the log
    /// keeps them all, else every mask.
    pub fn since(&self, since: u64) -> GridDelta {
        let oldest_kept = self.changes.front().map(|(version, _)| *version);
        let complete = since > 0
            && since <= self.version
            && oldest_kept.is_some_and(|oldest| since + 1 >= oldest);
        if since == self.version && since > 0 {
            return GridDelta::Changes(Vec::new());
        }
        if !complete {
            return GridDelta::Full(self.masks.clone());
        }
        let mut latest: std::collections::BTreeMap<(usize, u32), u64> = Default::default();
        for (_, changes) in self.changes.iter().filter(|(version, _)| *version > since) {
            for &(class, seat, mask) in changes {
                latest.insert((class, seat), mask);
            }
        }
        GridDelta::Changes(
            (latest.into_iter())
                .map(|((class, seat), mask)| (class, seat, mask))
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_watcher_receives_only_what_changed_since_its_version() {
        let mut log = GridLog::default();
        assert!(log.update(vec![vec![0, 0, 0], vec![0]]));
        assert_eq!(log.version(), 1);
        assert!(
            !log.update(vec![vec![0, 0, 0], vec![0]]),
            "no change, no version"
        );
        assert!(log.update(vec![vec![0b11, 0, 0], vec![0]]));
        assert!(log.update(vec![vec![0b11, 0, 0b1], vec![0b10]]));
        assert_eq!(
            log.since(0),
            GridDelta::Full(vec![vec![0b11, 0, 0b1], vec![0b10]])
        );
        assert_eq!(log.since(3), GridDelta::Changes(vec![]));
        assert_eq!(
            log.since(1),
            GridDelta::Changes(vec![(0, 0, 0b11), (0, 2, 0b1), (1, 0, 0b10)])
        );
        assert_eq!(
            log.since(9),
            GridDelta::Full(log.masks().to_vec()),
            "ahead: full"
        );

        // A watcher's copy kept by applying the deltas matches the log.
        let mut copy = GridLog::default();
        copy.apply(log.since(0));
        log.update(vec![vec![0b111, 0, 0b1], vec![0b10]]);
        copy.apply(log.since(3));
        assert_eq!(copy.masks(), log.masks());

        // Too far behind: every mask again.
        for i in 0..KEPT_VERSIONS as u64 + 2 {
            log.update(vec![vec![i, 0, 0], vec![0]]);
        }
        assert!(matches!(log.since(2), GridDelta::Full(_)));
        // Another shape: a whole new grid.
        log.update(vec![vec![0; 5]]);
        let version = log.version();
        assert!(matches!(log.since(version - 1), GridDelta::Full(_)));
    }
}
