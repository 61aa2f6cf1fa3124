//! The order pipeline's defaults, in one place: [`crate::WriterConfig::new`],
//! [`crate::PipelineConfig::new`] and the command line's flags all take
//! their values from here.

use std::num::NonZeroUsize;
use std::time::Duration;

/// Stream entries per read and per database transaction.
pub const BATCH: NonZeroUsize = match NonZeroUsize::new(1_000) {
    Some(batch) => batch,
    None => NonZeroUsize::MIN,
};

/// Concurrent writers in one process, so that one batch's commit overlaps
/// the next one's read.
pub const LANES: NonZeroUsize = match NonZeroUsize::new(2) {
    Some(lanes) => lanes,
    None => NonZeroUsize::MIN,
};

/// How long an entry may stay pending in another writer (it crashed or
/// stalled) before this one takes it over.
pub const CLAIM_IDLE: Duration = Duration::from_secs(5);

/// How often unpaid orders are expired and owed seats returned.
pub const EXPIRE_EVERY: Duration = Duration::from_millis(200);

/// A writer's pause when there was nothing to write.
pub const IDLE_PAUSE: Duration = Duration::from_millis(5);
