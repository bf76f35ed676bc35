//! The throttle policy: which pace an answer gets. A player cannot start before it has the
//! header part (the new `moov`, or a whole file's `moov` wherever it lies), so every byte of
//! the answer that is not media plus `burst_seconds` of media go at full speed; after that
//! the output is paced at the media's byte rate (media bytes / duration, the index not
//! counted) × `throttle`. A byte range paces from where it starts, with its own burst. Off
//! when the factor is 0 or the output has no known duration (images).
//!
//! The arithmetic ([`Pacer`]) and the blocking paced sender ([`send_paced`]) are the engine
//! sink's (`sink::pace`); the async server drives the same [`Pacer`] with its own timers.

use crate::config::Config;
use crate::plan::Plan;
use std::ops::Range;

pub use crate::sink::pace::{send_paced, Pace, Pacer};

/// The pacer for output bytes `range` of `plan` under a configuration; `None` when unthrottled.
pub fn pacer_for(cfg: &Config, plan: &Plan, range: &Range<u64>) -> Option<Pacer> {
    Pacer::for_output(cfg.throttle, cfg.burst_seconds, &plan.info, plan.len(), range)
}
