//! Time → sample ranges, per track. The reference track (the first video track presenting at
//! `start`) decides where the clip starts: the sync sample at or before `start` in presentation
//! time (decode time + composition offset − edit media time), or the next one when it is shown
//! less than a frame after `start`. Every other track with sync samples starts at its own
//! keyframe for that time; the rest start at the sample covering it. Edit lists are rewritten
//! so the tracks stay in sync and, in exact mode, so the frames before `start` are decoded but
//! not shown. Each track ends before its first sample whose decode time is at or after `end`.
//!
//! All time arithmetic is integer (i128, checked): a time is a rational number of seconds.

use super::track::Track;
use crate::{Error, Result};

/// A time in seconds as `num / den`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Time {
    pub num: i128,
    pub den: i128,
}

impl Time {
    /// Zero.
    pub const ZERO: Time = Time { num: 0, den: 1 };

    /// From seconds given as a float, at the resolution of `den` units per second.
    pub fn from_secs(s: f64, den: i128) -> Time {
        Time { num: (s * den as f64).round() as i128, den: den.max(1) }
    }

    /// As floating seconds (for messages and plan info).
    pub fn secs(self) -> f64 {
        self.num as f64 / self.den as f64
    }

    fn cmp_key(self, other: Time) -> Option<(i128, i128)> {
        Some((self.num.checked_mul(other.den)?, other.num.checked_mul(self.den)?))
    }

    /// This time plus `ticks` of a timescale of `mts` per second.
    pub fn plus_movie_ticks(self, ticks: u64, mts: u32) -> Option<Time> {
        let mts = i128::from(mts.max(1));
        let num = self.num.checked_mul(mts)?.checked_add(i128::from(ticks).checked_mul(self.den)?)?;
        Some(Time { num, den: self.den.checked_mul(mts)? })
    }

    /// The larger of two times.
    pub fn max(self, other: Time) -> Time {
        match self.cmp_key(other) {
            Some((a, b)) if b > a => other,
            _ => self,
        }
    }
}

/// What the rewrite needs to know about one track's part of the clip.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Cut {
    /// First sample kept (0-based).
    pub s0: u64,
    /// One past the last sample kept.
    pub s1: u64,
    /// New edit: media time shown first (track timescale).
    pub media_time: i64,
    /// New edit: presentation delay before the media (movie timescale).
    pub delay: u64,
    /// New edit: presentation duration of the media (movie timescale).
    pub shown: u64,
    /// Sum of the kept samples' durations (track timescale): the new `mdhd` duration.
    pub media_duration: u64,
    /// Write an edit list for this track.
    pub write_edit: bool,
    /// Ticks taken off the head of the first kept sample's duration (timed text whose first
    /// cue starts before the clip); 0 for every other track.
    pub head_trim: u64,
}

impl Cut {
    /// The new `tkhd` duration (movie timescale).
    pub fn track_duration(&self) -> u64 {
        self.delay.saturating_add(self.shown)
    }
}

fn overflow() -> Error {
    Error::Unsupported("timescales too large for exact time arithmetic".into())
}

/// floor(t × ts) − floor(delay × ts / mts): `t` relative to a track's delay, in its ticks.
fn ticks_after_delay(t: Time, delay: u64, mts: u32, ts: u32) -> Result<i128> {
    // (t.num × mts − delay × t.den) × ts / (t.den × mts), floored.
    let a = t.num.checked_mul(i128::from(mts)).ok_or_else(overflow)?;
    let b = i128::from(delay).checked_mul(t.den).ok_or_else(overflow)?;
    let n = a.checked_sub(b).ok_or_else(overflow)?.checked_mul(i128::from(ts)).ok_or_else(overflow)?;
    let d = t.den.checked_mul(i128::from(mts)).ok_or_else(overflow)?;
    Ok(n.div_euclid(d.max(1)))
}

/// Where a track with sync samples starts decoding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Key {
    /// The sync sample.
    pub sample: u64,
    /// Its composition time (media timeline, track timescale).
    pub pts: i128,
    /// Snapped forward: it is shown just after the target (within a frame).
    pub forward: bool,
}

/// The sync sample a track with sync samples starts at for a clip that begins at composition
/// time `target` (track ticks; the edit's media time is presentation zero): the last sync
/// sample shown at or before `target`, unless that one is no longer on screen at `target` and
/// the next one is shown less than one frame duration after it — measured on the track's own
/// clock, so an empty edit of up to one frame before the track (a delay the source itself
/// shows) is not counted — then that one, a few milliseconds late rather than a whole GOP
/// early. `delay` is the track's empty edit in its own ticks.
pub fn key_for(t: &Track<'_>, target: i128, delay: i128) -> Key {
    let guess = t.stts.sample_at(u64::try_from(target.max(0)).unwrap_or(u64::MAX), t.samples);
    let mut k = t.sync_at_or_before(guess);
    let mut k_pts = t.pts(k);
    // A keyframe whose decode time is before the target may still be shown after it.
    while k_pts > target {
        match t.previous_sync(k) {
            Some(p) if p < k => {
                k = p;
                k_pts = t.pts(k);
            }
            _ => break,
        }
    }
    if k_pts > target {
        // Nothing is shown at or before the target: the first sync sample.
        return Key { sample: k, pts: k_pts, forward: false };
    }
    // Only when the keyframe at or before is not the frame on screen at the target (an
    // all-sync track never snaps forward).
    if t.stss.is_some() && target - k_pts >= i128::from(t.stts.value_of(k)) {
        if let Some(next) = t.next_sync(k) {
            let next_pts = t.pts(next);
            let frame = i128::from(t.stts.value_of(next));
            if next_pts > target && next_pts - target < frame + delay.clamp(0, frame) {
                return Key { sample: next, pts: next_pts, forward: true };
            }
        }
    }
    Key { sample: k, pts: k_pts, forward: false }
}

/// A track's empty edit (movie timescale) in its own ticks.
fn delay_ticks(t: &Track<'_>, mts: u32) -> i128 {
    i128::from(t.edit.delay) * i128::from(t.mdhd.timescale) / i128::from(mts.max(1))
}

/// Whether the track is still presenting at `start` seconds (its delay plus its media).
fn covers(t: &Track<'_>, mts: u32, start: f64) -> bool {
    t.samples > 0 && t.edit.delay as f64 / f64::from(mts.max(1)) + t.seconds() > start
}

/// The reference track's start: (sample, presentation time).
pub struct Start {
    pub reference: usize,
    pub sample: u64,
    /// The clip's start in movie presentation time: every track is cut to begin showing here.
    pub time: Time,
}

/// Picks the reference track and the clip's start time for `start` seconds. The reference is
/// the first video track still presenting at `start`, else the first track that is; a `start`
/// past every track's end (a movie header that says more) is a bad request. Its keyframe (see [`key_for`]) fixes the start: the clip begins
/// where that keyframe is shown, or, in exact mode or when the keyframe is shown just after
/// `start`, at `start` itself.
pub fn find_start(tracks: &[Track<'_>], mts: u32, start: f64, exact: bool) -> Result<Start> {
    if !tracks.iter().any(|t| t.samples > 0) {
        return Err(Error::corrupt(0, "the movie has no samples"));
    }
    let reference = tracks
        .iter()
        .position(|t| t.is_video() && covers(t, mts, start))
        .or_else(|| tracks.iter().position(|t| covers(t, mts, start)))
        .or_else(|| if start <= 0.0 { tracks.iter().position(|t| t.samples > 0) } else { None })
        .ok_or_else(|| Error::bad_request(format!("start {start} s is beyond the end of every track")))?;
    let r = &tracks[reference];
    let ts = r.mdhd.timescale;
    let den = i128::from(ts).checked_mul(i128::from(mts.max(1))).ok_or_else(overflow)?;
    let requested = Time::from_secs(start, den);
    if start <= 0.0 {
        return Ok(Start { reference, sample: 0, time: Time::ZERO });
    }
    // Target in the track's composition timeline (decode time + offset), where the edit's
    // media time is presentation zero.
    let rel = ticks_after_delay(requested, r.edit.delay, mts.max(1), ts)?;
    let target = rel.checked_add(i128::from(r.edit.media_time)).ok_or_else(overflow)?;
    let key = key_for(r, target, delay_ticks(r, mts));
    let shown_ticks = (key.pts - i128::from(r.edit.media_time)).max(0);
    // time = delay/mts + shown_ticks/ts, over den = ts × mts.
    let num = i128::from(r.edit.delay)
        .checked_mul(i128::from(ts))
        .and_then(|a| a.checked_add(shown_ticks.checked_mul(i128::from(mts.max(1)))?))
        .ok_or_else(overflow)?;
    let key_time = Time { num, den };
    // Snapped forward: the clip starts where it was asked to, and the keyframe's track waits
    // (an empty edit of less than a frame or two), so the tracks keep the source's sync.
    let time = if key.forward {
        requested
    } else if exact {
        key_time.max(requested)
    } else {
        key_time
    };
    Ok(Start { reference, sample: key.sample, time })
}
/// The cut of one track for a clip from `start.time` to `end` (seconds, already clamped).
pub fn cut_track(t: &Track<'_>, index: usize, start: &Start, end: Option<f64>, mts: u32, exact: bool) -> Result<Cut> {
    let ts = t.mdhd.timescale;
    let mts = mts.max(1);
    let mt = i128::from(t.edit.media_time);
    let n = t.samples;
    if n == 0 || ts == 0 {
        return Ok(Cut { write_edit: t.edit.present, ..Cut::default() });
    }
    let rel = ticks_after_delay(start.time, t.edit.delay, mts, ts)?;
    let (s0, media_time, delay) = if rel <= 0 {
        // The clip starts before this track's media: keep its start and shorten its delay.
        let delay_left = ticks_after_delay(Time { num: -start.time.num, den: start.time.den }, 0, mts, mts)?
            .checked_add(i128::from(t.edit.delay))
            .ok_or_else(overflow)?;
        (0, mt, u64::try_from(delay_left.max(0)).unwrap_or(0))
    } else {
        let m = rel.checked_add(mt).ok_or_else(overflow)?;
        if index == start.reference || t.stss.is_some() {
            // Tracks with sync samples start at their own keyframe; the edit list hides what
            // is shown before the clip's start, or delays a keyframe shown just after it.
            let key = if index == start.reference {
                Key { sample: start.sample, pts: t.pts(start.sample), forward: false }
            } else {
                key_for(t, m, delay_ticks(t, mts))
            };
            if m >= t.presentation_end(n, mts) {
                (n, 0, 0)
            } else if key.pts > m {
                let wait = (key.pts - m).checked_mul(i128::from(mts)).ok_or_else(overflow)? / i128::from(ts);
                (key.sample, key.pts - i128::from(t.dts(key.sample)), u64::try_from(wait).unwrap_or(0))
            } else {
                (key.sample, m - i128::from(t.dts(key.sample)), 0)
            }
        } else if m >= i128::from(t.dts(n)) {
            (n, 0, 0)
        } else {
            let s0 = t.stts.sample_at(u64::try_from(m).unwrap_or(u64::MAX), n);
            (s0, m - i128::from(t.dts(s0)), 0)
        }
    };
    if s0 >= n {
        // The clip starts after this track ends: it keeps no sample and no edit list.
        return Ok(Cut { s0: n, s1: n, ..Cut::default() });
    }
    let mut media_time = i64::try_from(media_time.max(0)).map_err(|_| overflow())?;
    let s1 = match end {
        None => n,
        Some(e) => {
            let e_rel = ticks_after_delay(Time::from_secs(e, i128::from(ts)), t.edit.delay, mts, ts)?;
            if e_rel <= 0 {
                s0
            } else {
                let m_end = e_rel.checked_add(mt).ok_or_else(overflow)?;
                let s1 = t.stts.first_at_or_after(u64::try_from(m_end).unwrap_or(u64::MAX), n);
                if index == start.reference {
                    s1.max(s0.saturating_add(1)).min(n)
                } else {
                    s1
                }
            }
        }
    }
    .max(s0);
    // Timed text (chapter titles, subtitles): the cue that spans the start is shown from the
    // clip's start for the rest of its duration (its `stts` delta is shortened) instead of being
    // hidden by the edit list, which ffmpeg and players mishandle on text tracks.
    let head_trim = match u64::try_from(media_time) {
        Ok(m) if t.is_timed_text() && t.stss.is_none() && s1 > s0 && m > 0 && m < u64::from(t.stts.value_of(s0)) => {
            media_time = 0;
            m
        }
        _ => 0,
    };
    let media_duration = t.stts.sum(s0, s1).saturating_sub(head_trim);
    // Presentation duration in the track's ticks: the media after the hidden head, and, with
    // an end, no further than end − max(start, delay).
    let end_media = t.presentation_end(s1, mts) - i128::from(t.dts(s0)) - i128::from(head_trim);
    let mut shown = end_media - i128::from(media_time);
    if let Some(e) = end {
        // end − max(start, delay), at nanosecond resolution, in the track's ticks.
        let visible_from = start.time.plus_movie_ticks(delay, mts).ok_or_else(overflow)?;
        let e_t = Time::from_secs(e, 1_000_000_000);
        let num = e_t
            .num
            .checked_mul(visible_from.den)
            .and_then(|a| a.checked_sub(visible_from.num.checked_mul(e_t.den)?))
            .ok_or_else(overflow)?;
        let den = e_t.den.checked_mul(visible_from.den).ok_or_else(overflow)?;
        let span = ticks_after_delay(Time { num, den }, 0, mts, ts)?;
        shown = shown.min(span);
    }
    let shown_movie = shown.max(0).checked_mul(i128::from(mts)).ok_or_else(overflow)? / i128::from(ts);
    let shown = u64::try_from(shown_movie).unwrap_or(u64::MAX);
    let write_edit = t.edit.present || media_time != 0 || delay != 0 || exact;
    Ok(Cut { s0, s1, media_time, delay, shown, media_duration, write_edit, head_trim })
}
