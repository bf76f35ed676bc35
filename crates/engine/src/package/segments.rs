//! The segment index of a movie: where HLS/DASH media segments start and end. Boundaries are
//! put at sync samples of the reference track (the first packaged video track, else the first
//! packaged track) — the first sync sample at or after each multiple of the target duration,
//! in presentation time from the start of the output — and every other track is cut at the
//! same presentation times. For each segment and track it keeps the sample range, the decode
//! time and duration, the byte count, and where the forward walks over `stts`, `ctts` and
//! `stsc` stood at its first sample, so planning a segment in the middle of a 2-hour movie
//! starts there instead of at the top of each table.
//!
//! Built once per movie (and clip) in one forward pass over the tables, never allocating per
//! sample: the list is bounded by [`MAX_CELLS`]. It also has a compact byte form (version,
//! movie identity, checksum) so a process-per-request front end can keep it on disk as it
//! keeps seek marks.

use crate::mp4::marks::{checksum, MovieKey};
use crate::mp4::tables::stsc_span;
use crate::mp4::track::Track;
use crate::{Error, Result};

/// The default target segment duration in seconds.
pub const DEFAULT_TARGET: f64 = 6.0;
/// The shortest and longest target accepted.
pub const TARGET_RANGE: (f64, f64) = (1.0, 60.0);
/// The most (segment × track) cells an index may hold: about 2,000 hours of 6-second
/// segments of two tracks. More is refused, never allocated.
pub const MAX_CELLS: usize = 2_400_000;
/// The most tracks packaged from one movie.
pub const MAX_TRACKS: usize = 32;

/// What a packaged track carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Media {
    Video,
    Audio,
    Subtitle,
}

impl Media {
    /// The letter that names its URLs (`v1/`, `a2/`, `s3/`).
    pub fn letter(self) -> char {
        match self {
            Media::Video => 'v',
            Media::Audio => 'a',
            Media::Subtitle => 's',
        }
    }

    fn code(self) -> u8 {
        match self {
            Media::Video => 0,
            Media::Audio => 1,
            Media::Subtitle => 2,
        }
    }

    fn from_code(c: u8) -> Option<Media> {
        [Media::Video, Media::Audio, Media::Subtitle].get(usize::from(c)).copied()
    }
}

/// Packaging options.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Options {
    /// Target segment duration in seconds (see [`TARGET_RANGE`]).
    pub target: f64,
}

impl Default for Options {
    fn default() -> Options {
        Options { target: DEFAULT_TARGET }
    }
}

/// The part of the movie presented (seconds), from a manifest URL's `start`/`end`.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Clip {
    pub start: Option<f64>,
    pub end: Option<f64>,
}

/// One packaged track and how its times are shifted so the output starts at 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TrackInfo {
    /// Position among the movie's tracks (moov order).
    pub index: usize,
    pub id: u32,
    pub media: Media,
    pub timescale: u32,
    /// Subtracted from source decode times: `tfdt` = decode time − `base`.
    pub base: i64,
    /// Subtracted from source composition offsets.
    pub cts_shift: i64,
    /// Output time of the first sample shown (track ticks): a frame or two, so that no
    /// decode time or composition offset is negative (DASH `presentationTimeOffset`).
    pub lead: u64,
    /// Composition offsets are written in `trun`.
    pub with_cts: bool,
}

/// One track's part of one segment, with the table walks' positions at its first sample.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Cell {
    /// First sample and one past the last.
    pub s0: u64,
    pub s1: u64,
    /// Source decode time of `s0` (track timescale).
    pub dts: u64,
    /// Sum of the samples' durations.
    pub duration: u64,
    /// Sum of the samples' sizes.
    pub bytes: u64,
    /// Size of sample `s0` (an I-frame playlist's byte range needs it).
    pub first_size: u32,
    /// `stts` entry holding `s0`, that entry's first sample and its decode time.
    pub stts: (u64, u64, u64),
    /// `ctts` entry holding `s0` and that entry's first sample (0, 0 without `ctts`).
    pub ctts: (u64, u64),
    /// `stsc` entry holding `s0` and the first sample of that entry's first chunk.
    pub stsc: (u64, u64),
}

/// The segments of a movie (or of a clip of it).
#[derive(Clone, Debug, PartialEq)]
pub struct SegmentIndex {
    pub target: f64,
    pub clip: Clip,
    pub tracks: Vec<TrackInfo>,
    /// Number of segments.
    pub count: usize,
    /// `cells[n × tracks.len() + k]`: track `k` in segment `n`.
    pub cells: Vec<Cell>,
    /// Tracks left out, with the reason (for the log).
    pub skipped: Vec<String>,
}

/// The codecs a track may have to be packaged, by media type.
fn media_of(t: &Track<'_>) -> std::result::Result<Media, String> {
    let codec = crate::mp4::boxes::fourcc_name(&t.codec);
    let media = match &t.handler {
        b"vide" => match &t.codec {
            b"avc1" | b"avc3" | b"hvc1" | b"hev1" => Media::Video,
            _ => return Err(format!("track {}: video codec {codec} is not packaged", t.id)),
        },
        b"soun" => match &t.codec {
            b"mp4a" | b"ac-3" | b"ec-3" | b"Opus" => Media::Audio,
            _ => return Err(format!("track {}: audio codec {codec} is not packaged", t.id)),
        },
        b"text" | b"sbtl" | b"subt" => match &t.codec {
            b"tx3g" => Media::Subtitle,
            _ => return Err(format!("track {}: text format {codec} is not packaged", t.id)),
        },
        h => return Err(format!("track {}: handler {} is not packaged", t.id, crate::mp4::boxes::fourcc_name(h))),
    };
    if t.samples == 0 {
        return Err(format!("track {}: no samples", t.id));
    }
    if t.stss.is_some_and(|s| s.is_empty()) && media == Media::Video {
        return Err(format!("track {}: no sync sample", t.id));
    }
    Ok(media)
}

/// Forward walks over one track's tables, for samples visited in increasing order: each
/// table is walked once in total, whatever the number of lookups.
pub struct Walk<'t, 'a> {
    t: &'t Track<'a>,
    /// `stts`: entry, its first sample, the decode time of that sample.
    pub stts: (usize, u64, u64),
    /// `ctts`: entry and its first sample.
    pub ctts: (usize, u64),
    /// `stsc`: entry and the first sample of its first chunk.
    pub stsc: (usize, u64),
}

impl<'t, 'a> Walk<'t, 'a> {
    /// Walks from the first sample.
    pub fn new(t: &'t Track<'a>) -> Walk<'t, 'a> {
        Walk { t, stts: (0, 0, 0), ctts: (0, 0), stsc: (0, 0) }
    }

    /// Walks from the positions a cell recorded.
    pub fn at(t: &'t Track<'a>, c: &Cell) -> Walk<'t, 'a> {
        let u = |v: u64| usize::try_from(v).unwrap_or(usize::MAX);
        Walk {
            t,
            stts: (u(c.stts.0), c.stts.1, c.stts.2),
            ctts: (u(c.ctts.0), c.ctts.1),
            stsc: (u(c.stsc.0), c.stsc.1),
        }
    }

    /// Decode time and duration of sample `s`; `None` past the `stts` table or on overflow.
    pub fn dts(&mut self, s: u64) -> Option<(u64, u32)> {
        let (mut i, mut first, mut time) = self.stts;
        while i < self.t.stts.len() {
            let (n, d) = self.t.stts.entry(i);
            let n = u64::from(n);
            let next = first.checked_add(n)?;
            if s >= first && s < next {
                self.stts = (i, first, time);
                return Some((time.checked_add((s - first).checked_mul(u64::from(d))?)?, d));
            }
            if s < first {
                return None;
            }
            first = next;
            time = time.checked_add(n.checked_mul(u64::from(d))?)?;
            i += 1;
        }
        self.stts = (i, first, time);
        None
    }

    /// The last sample (below `limit`) whose decode time is at or before `t` (0 when none):
    /// the sample that covers `t`. `t` must not decrease between calls.
    pub fn covering(&mut self, t: i128, limit: u64) -> u64 {
        if t <= 0 {
            return 0;
        }
        let (mut i, mut first, mut time) = self.stts;
        while i < self.t.stts.len() && first < limit {
            let (n, d) = self.t.stts.entry(i);
            let span = u64::from(n).saturating_mul(u64::from(d));
            let next_time = time.saturating_add(span);
            if d > 0 && t < i128::from(next_time) {
                self.stts = (i, first, time);
                let within = ((t - i128::from(time)) / i128::from(d)) as u64;
                return first.saturating_add(within).min(limit.saturating_sub(1));
            }
            first = first.saturating_add(u64::from(n));
            time = next_time;
            i += 1;
        }
        limit.saturating_sub(1)
    }

    /// Composition offset of sample `s` (0 without `ctts` or past it).
    pub fn cts(&mut self, s: u64) -> i64 {
        let Some(ctts) = &self.t.ctts else { return 0 };
        let (mut i, mut first) = self.ctts;
        while i < ctts.len() {
            let (n, v) = ctts.entry(i);
            let next = first.saturating_add(u64::from(n));
            if s < next && s >= first {
                self.ctts = (i, first);
                return i64::from(v as i32);
            }
            if s < first {
                return 0;
            }
            first = next;
            i += 1;
        }
        self.ctts = (i, first);
        0
    }

    /// Chunk (0-based) of sample `s` and the chunk's first sample; `None` when `stsc` does not
    /// cover `s` or is inconsistent.
    pub fn chunk(&mut self, s: u64) -> Option<(u64, u64)> {
        let stsc = &self.t.stsc;
        let chunks = self.t.offsets.len() as u64;
        let (mut i, mut first) = self.stsc;
        while i < stsc.len() {
            let (fc, spc, _) = stsc.entry(i);
            let next_fc = (i + 1 < stsc.len()).then(|| u64::from(stsc.entry(i + 1).0));
            let (start, end) = stsc_span(u64::from(fc), next_fc, chunks)?;
            let spc = u64::from(spc);
            let next = first.checked_add((end - start).checked_mul(spc)?)?;
            if s >= first && s < next {
                self.stsc = (i, first);
                let k = (s - first) / spc;
                return Some((start + k, first + k * spc));
            }
            if s < first {
                return None;
            }
            first = next;
            i += 1;
        }
        self.stsc = (i, first);
        None
    }

    fn record(&self) -> WalkRecord {
        (
            (self.stts.0 as u64, self.stts.1, self.stts.2),
            (self.ctts.0 as u64, self.ctts.1),
            (self.stsc.0 as u64, self.stsc.1),
        )
    }
}

/// Where a [`Walk`] stands: `stts`, `ctts` and `stsc` positions as a [`Cell`] keeps them.
type WalkRecord = ((u64, u64, u64), (u64, u64), (u64, u64));

/// A corrupt-table error for track `t`.
fn bad(t: &Track<'_>, what: &str) -> Error {
    Error::corrupt(t.trak.offset, format!("track {}: {what}", t.id))
}

/// Seconds × timescale as ticks (rounded), `None` when not finite or too large.
fn ticks(secs: f64, timescale: u32) -> Option<i128> {
    let v = (secs * f64::from(timescale)).round();
    (v.is_finite() && v.abs() < 9.0e18).then_some(v as i128)
}

impl SegmentIndex {
    /// Builds the index of `tracks` (every track of a movie whose timescale is `mts`).
    pub fn build(tracks: &[Track<'_>], mts: u32, clip: Clip, options: &Options) -> Result<SegmentIndex> {
        let target = options.target;
        if !(TARGET_RANGE.0..=TARGET_RANGE.1).contains(&target) {
            return Err(Error::bad_request(format!(
                "segment duration {target} s is outside {}..{} s",
                TARGET_RANGE.0, TARGET_RANGE.1
            )));
        }
        let mut skipped = Vec::new();
        let mut chosen: Vec<(usize, Media)> = Vec::new();
        for (i, t) in tracks.iter().enumerate() {
            match media_of(t) {
                Ok(m) if chosen.len() < MAX_TRACKS => chosen.push((i, m)),
                Ok(_) => skipped.push(format!("track {}: more than {MAX_TRACKS} tracks", t.id)),
                Err(why) => skipped.push(why),
            }
        }
        let Some(&(ref_i, _)) =
            chosen.iter().find(|(_, m)| *m == Media::Video).or_else(|| chosen.iter().find(|(_, m)| *m == Media::Audio))
        else {
            return Err(Error::Unsupported(
                "no track that HLS or DASH can carry (H.264/HEVC video, AAC/AC-3/E-AC-3/Opus audio)".into(),
            ));
        };
        let mts = mts.max(1);
        let r = &tracks[ref_i];
        let rts = r.mdhd.timescale;
        let delay_ticks = |t: &Track<'_>| i128::from(t.edit.delay) * i128::from(t.mdhd.timescale) / i128::from(mts);
        // Presentation time (reference ticks) of a reference sample: dts + cts − media time + delay.
        let r_shift = delay_ticks(r) - i128::from(r.edit.media_time);
        let start_ticks = match clip.start {
            Some(s) if s > 0.0 => Some(ticks(s, rts).ok_or_else(|| Error::bad_request("start is out of range"))?),
            _ => None,
        };
        let longest = chosen.iter().map(|&(i, _)| tracks[i].seconds()).fold(0.0, f64::max);
        let end_secs = clip.end.filter(|e| e.is_finite());
        crate::request::clip_within(clip.start.unwrap_or(0.0), end_secs, longest)?;
        // The reference track's first sample, and the output's time zero (reference ticks).
        let mut walk = Walk::new(r);
        let (r_s0, origin) = match start_ticks {
            // Decoding starts at the first sync sample (frames before it cannot be decoded);
            // the timeline stays the source's.
            None => (SyncIter::new(r).next().unwrap_or(0), 0i128),
            Some(st) => {
                let mut best: Option<(u64, i128)> = None;
                for s in SyncIter::new(r) {
                    let (dts, _) = walk.dts(s).ok_or_else(|| bad(r, "'stts' does not cover the sync samples"))?;
                    let p = i128::from(dts) + i128::from(walk.cts(s)) + r_shift;
                    if p > st && best.is_some() {
                        break;
                    }
                    best = Some((s, p));
                    if p >= st {
                        break;
                    }
                }
                // Every keyframe after `start`: the clip starts at the first.
                best.ok_or_else(|| bad(r, "no sync sample"))?
            }
        };
        // Each track's end sample.
        let end_sample = |t: &Track<'_>| -> Result<u64> {
            let Some(e) = end_secs else { return Ok(t.samples) };
            let tts = t.mdhd.timescale;
            let at = ticks(e, tts).ok_or_else(|| Error::bad_request("end is out of range"))?
                + i128::from(t.edit.media_time)
                - delay_ticks(t);
            let at = u64::try_from(at.max(0)).unwrap_or(u64::MAX);
            Ok(t.stts.first_at_or_after(at, t.samples))
        };
        let mut r_end = end_sample(r)?;
        // No boundary at or after `end` (presentation, reference ticks).
        let end_p = match end_secs {
            Some(e) => Some(ticks(e, rts).ok_or_else(|| Error::bad_request("end is out of range"))?),
            None => None,
        };
        if r_end <= r_s0 {
            return Err(Error::bad_request("the clip holds no sample"));
        }
        // Segment boundaries: reference sync samples and their presentation times.
        let step = ticks(target, rts).filter(|&s| s > 0).ok_or_else(|| bad(r, "timescale too small"))?;
        let cap = MAX_CELLS / chosen.len().max(1);
        let mut bounds: Vec<(u64, i128)> = vec![(r_s0, origin)];
        let mut next = origin + step;
        let mut walk = Walk::new(r);
        let mut sync = SyncIter::new(r);
        let mut s_prev = r_s0;
        loop {
            let s = match &r.stss {
                Some(_) => match sync.next() {
                    Some(s) => s,
                    None => break,
                },
                None => {
                    // Every sample is a sync sample: jump to the first whose decode time
                    // reaches the next boundary (never sample by sample).
                    let t = next - r_shift;
                    let mut s = walk.covering(t, r.samples).max(s_prev + 1);
                    if walk.dts(s).is_some_and(|(d, _)| i128::from(d) < t) {
                        s += 1;
                    }
                    s
                }
            };
            if s <= s_prev {
                continue;
            }
            if s >= r_end {
                break;
            }
            s_prev = s;
            let Some((dts, _)) = walk.dts(s) else { break };
            let p = i128::from(dts) + i128::from(walk.cts(s)) + r_shift;
            if end_p.is_some_and(|e| p >= e) {
                // A keyframe shown at or after `end`: the clip ends before it (frames decoded
                // before it but shown later would show past `end`).
                r_end = r_end.min(s);
                break;
            }
            if p < next {
                continue;
            }
            if bounds.len() >= cap {
                return Err(Error::Unsupported(format!(
                    "more than {cap} segments of {target} s: the movie is too long for this segment duration"
                )));
            }
            bounds.push((s, p));
            // The next multiple of the target after this keyframe.
            let k = (p - origin) / step + 1;
            next = origin + k * step;
        }
        let count = bounds.len();
        // A boundary (reference presentation ticks) in track `t`'s media decode time.
        let to_media_of = |t: &Track<'_>, p: i128| -> i128 {
            p.saturating_mul(i128::from(t.mdhd.timescale)) / i128::from(rts.max(1)) - delay_ticks(t)
                + i128::from(t.edit.media_time)
        };
        // Other video tracks (renditions of the same picture) are cut at their keyframes shown
        // at the boundaries' times (within a millisecond); a track without one there is left
        // out, as its segment could not start with a keyframe.
        let mut video_cuts: Vec<(usize, Vec<u64>)> = Vec::new();
        chosen.retain(|&(ti, media)| {
            if ti == ref_i || media != Media::Video {
                return true;
            }
            let t = &tracks[ti];
            let tolerance = i128::from(t.mdhd.timescale / 1000).max(1);
            let mut walk = Walk::new(t);
            let mut sync = SyncIter::new(t).peekable();
            let mut cuts = Vec::with_capacity(bounds.len());
            let mut aligned = true;
            for (n, &(_, p)) in bounds.iter().enumerate() {
                let want = to_media_of(t, p);
                // The first keyframe shown at or after the boundary (less the tolerance).
                let mut found = None;
                while let Some(&s) = sync.peek() {
                    let Some((dts, _)) = walk.dts(s) else { break };
                    let pts = i128::from(dts) + i128::from(walk.cts(s));
                    if pts >= want - tolerance {
                        found = Some((s, pts));
                        break;
                    }
                    sync.next();
                }
                match found {
                    Some((s, _)) if n == 0 && start_ticks.is_none() => cuts.push(s),
                    Some((s, pts)) if pts <= want + tolerance => cuts.push(s),
                    _ => {
                        aligned = false;
                        break;
                    }
                }
            }
            if aligned {
                video_cuts.push((ti, cuts));
            } else {
                skipped.push(format!("track {}: its keyframes do not line up with track {}'s", t.id, r.id));
            }
            aligned
        });
        // Cut every packaged track at the boundaries.
        let mut infos = Vec::with_capacity(chosen.len());
        let mut cells = vec![Cell::default(); count * chosen.len()];
        let k_tracks = chosen.len();
        // The output's lead (ticks, timescale) and each track's (m, c), see below.
        let mut lead: (i128, u32) = (0, 1);
        let mut shifts: Vec<(i128, i128)> = Vec::with_capacity(chosen.len());
        for (k, &(ti, media)) in chosen.iter().enumerate() {
            let t = &tracks[ti];
            let tts = t.mdhd.timescale;
            let end = if ti == ref_i { r_end } else { end_sample(t)? };
            let to_media = |p: i128| to_media_of(t, p);
            let mut cut = Walk::new(t);
            let mut prev: Option<u64> = None;
            for (n, &(rs, p)) in bounds.iter().enumerate() {
                let s = if ti == ref_i {
                    rs
                } else if let Some((_, cuts)) = video_cuts.iter().find(|(i, _)| *i == ti) {
                    cuts.get(n).copied().unwrap_or(t.samples)
                } else if n == 0 && start_ticks.is_none() {
                    0
                } else {
                    cut.covering(to_media(p), t.samples)
                };
                let s = s.min(end).max(prev.unwrap_or(0));
                prev = Some(s);
                let cell = &mut cells[n * k_tracks + k];
                cell.s0 = s;
                if n > 0 {
                    cells[(n - 1) * k_tracks + k].s1 = s;
                }
            }
            cells[(count - 1) * k_tracks + k].s1 = end.max(cells[(count - 1) * k_tracks + k].s0);
            // Times, sizes and table positions, in one forward pass.
            let mut walk = Walk::new(t);
            let mut first_dts: Option<u64> = None;
            for n in 0..count {
                let c = &mut cells[n * k_tracks + k];
                let at = c.s0.min(t.samples.saturating_sub(1));
                let (dts, _) = walk.dts(at).ok_or_else(|| bad(t, "'stts' does not cover every sample"))?;
                let _ = walk.cts(at);
                walk.chunk(at).ok_or_else(|| bad(t, "'stsc' does not cover every sample"))?;
                let (stts, ctts, stsc) = walk.record();
                c.stts = stts;
                c.ctts = ctts;
                c.stsc = stsc;
                c.dts = if c.s0 >= t.samples { t.stts.time_of(t.samples) } else { dts };
                c.first_size = t.sizes.get(usize::try_from(c.s0).unwrap_or(usize::MAX));
                c.bytes = t.sizes.sum(c.s0, c.s1);
                first_dts.get_or_insert(c.dts);
            }
            for n in 0..count {
                let next_dts = if n + 1 < count {
                    cells[(n + 1) * k_tracks + k].dts
                } else {
                    let c = &cells[n * k_tracks + k];
                    if c.s1 >= t.samples {
                        t.stts.time_of(t.samples)
                    } else {
                        walk.dts(c.s1).map(|x| x.0).ok_or_else(|| bad(t, "'stts' does not cover every sample"))?
                    }
                };
                let c = &mut cells[n * k_tracks + k];
                c.duration = next_dts.saturating_sub(c.dts);
            }
            // Times: output = source presentation − origin + lead. With `tfdt` = dts − b and
            // composition offsets cts − c, b + c = m − lead (track ticks), where m is the
            // source media time of the origin. c is the track's smallest composition offset
            // (so no written offset is negative) and b may not pass the first decode time
            // (`tfdt` is unsigned): the lead is the smallest that allows both in every track.
            let m = to_media(origin);
            let first = i128::from(first_dts.unwrap_or(0));
            let c = match &t.ctts {
                Some(ctts) => (0..ctts.len())
                    .filter(|&i| ctts.entry(i).0 > 0)
                    .map(|i| i128::from(ctts.entry(i).1 as i32))
                    .min()
                    .unwrap_or(0),
                None => 0,
            };
            let need = (m - c - first).max(0);
            if need * i128::from(lead.1) > lead.0 * i128::from(tts) {
                lead = (need, tts);
            }
            shifts.push((m, c));
            infos.push(TrackInfo {
                index: ti,
                id: t.id,
                media,
                timescale: tts,
                base: 0,
                cts_shift: 0,
                lead: 0,
                with_cts: t.ctts.is_some(),
            });
        }
        for (info, (m, c)) in infos.iter_mut().zip(shifts) {
            let ts = i128::from(info.timescale);
            // The lead in this track's ticks, rounded up.
            let lead_t = (lead.0 * ts + i128::from(lead.1) - 1) / i128::from(lead.1.max(1));
            let fit = |v: i128| i64::try_from(v).map_err(|_| Error::Unsupported("times out of range".into()));
            info.base = fit(m - lead_t - c)?;
            info.cts_shift = fit(c)?;
            info.lead = u64::try_from(lead_t).map_err(|_| Error::Unsupported("times out of range".into()))?;
        }
        Ok(SegmentIndex { target, clip, tracks: infos, count, cells, skipped })
    }

    /// Segment `n` (0-based) of the reference track (the first video track, else the first
    /// audio track) as (start, end) seconds from the output's first frame.
    pub fn span(&self, n: usize) -> Option<(f64, f64)> {
        let k = self
            .tracks
            .iter()
            .position(|t| t.media == Media::Video)
            .or_else(|| self.tracks.iter().position(|t| t.media == Media::Audio))?;
        let ts = f64::from(self.tracks[k].timescale.max(1));
        let first = self.tfdt(k, self.cell(0, k)?);
        let c = self.cell(n, k)?;
        let start = self.tfdt(k, c).saturating_sub(first) as f64 / ts;
        Some((start, start + c.duration as f64 / ts))
    }

    /// Track `k`'s part of segment `n` (0-based).
    pub fn cell(&self, n: usize, k: usize) -> Option<&Cell> {
        if k >= self.tracks.len() {
            return None;
        }
        self.cells.get(n.checked_mul(self.tracks.len())?.checked_add(k)?)
    }

    /// The packaged track with id `id`.
    pub fn track(&self, id: u32) -> Option<(usize, &TrackInfo)> {
        self.tracks.iter().enumerate().find(|(_, t)| t.id == id)
    }

    /// The cells of track `k`, segment by segment.
    pub fn cells_of(&self, k: usize) -> impl Iterator<Item = &Cell> + '_ {
        let w = self.tracks.len().max(1);
        self.cells.iter().skip(k).step_by(w)
    }

    /// Output decode time of a cell's first sample (`tfdt`).
    pub fn tfdt(&self, k: usize, c: &Cell) -> u64 {
        let base = self.tracks.get(k).map_or(0, |t| t.base);
        u64::try_from(i128::from(c.dts) - i128::from(base)).unwrap_or(0)
    }

    /// Presentation duration of track `k` in seconds.
    pub fn seconds(&self, k: usize) -> f64 {
        let ts = self.tracks.get(k).map_or(1, |t| t.timescale.max(1));
        self.cells_of(k).fold(0u64, |a, c| a.saturating_add(c.duration)) as f64 / f64::from(ts)
    }

    /// Duration of the output: the reference track's (the first video track, else the first
    /// track), whose keyframes cut the segments. Audio usually runs a little longer by its
    /// sample durations, which its edit list hides in the source.
    pub fn duration(&self) -> f64 {
        let k = self.tracks.iter().position(|t| t.media == Media::Video).unwrap_or(0);
        self.seconds(k)
    }
}

const MAGIC: &[u8; 8] = b"LMSEGIX1";

impl SegmentIndex {
    /// The index as bytes for a cache file: version, the movie's identity, the options it was
    /// built with, the tracks and cells, and a checksum (little-endian throughout).
    pub fn encode(&self, key: &MovieKey) -> Vec<u8> {
        let mut v = MAGIC.to_vec();
        let put = |v: &mut Vec<u8>, x: u64| v.extend_from_slice(&x.to_le_bytes());
        for n in [key.dev, key.ino, key.len, key.mtime_ns, key.ctime_ns, key.moov_offset, key.moov_size] {
            put(&mut v, n);
        }
        put(&mut v, self.target.to_bits());
        for p in [self.clip.start, self.clip.end] {
            put(&mut v, u64::from(p.is_some()));
            put(&mut v, p.unwrap_or(0.0).to_bits());
        }
        put(&mut v, self.tracks.len() as u64);
        put(&mut v, self.count as u64);
        for t in &self.tracks {
            put(&mut v, t.index as u64);
            put(&mut v, u64::from(t.id));
            put(&mut v, u64::from(t.media.code()));
            put(&mut v, u64::from(t.timescale));
            put(&mut v, t.base as u64);
            put(&mut v, t.cts_shift as u64);
            put(&mut v, t.lead);
            put(&mut v, u64::from(t.with_cts));
        }
        for c in &self.cells {
            for x in [
                c.s0,
                c.s1,
                c.dts,
                c.duration,
                c.bytes,
                u64::from(c.first_size),
                c.stts.0,
                c.stts.1,
                c.stts.2,
                c.ctts.0,
                c.ctts.1,
                c.stsc.0,
                c.stsc.1,
            ] {
                put(&mut v, x);
            }
        }
        let sum = checksum(&v);
        put(&mut v, sum);
        v
    }

    /// Reads an index's bytes: `None` unless whole (checksum), of this version, for `key`,
    /// built with `clip` and `options`, and consistent with `tracks` (bounded counts, each
    /// track's cells contiguous and within its samples). A forged file that passes can give
    /// wrong segments, never a read outside the tables or the file: segment planning checks
    /// every sample it walks.
    pub fn decode(
        bytes: &[u8],
        key: &MovieKey,
        clip: Clip,
        options: &Options,
        tracks: &[Track<'_>],
    ) -> Option<SegmentIndex> {
        let (body, sum) = bytes.split_at(bytes.len().checked_sub(8)?);
        if checksum(body) != u64::from_le_bytes(sum.try_into().ok()?) || body.get(..8)? != MAGIC {
            return None;
        }
        let mut words = body[8..].chunks_exact(8).map(|c| u64::from_le_bytes(c.try_into().unwrap_or([0; 8])));
        if (body.len() - 8) % 8 != 0 {
            return None;
        }
        let mut next = || words.next();
        let stored = MovieKey {
            dev: next()?,
            ino: next()?,
            len: next()?,
            mtime_ns: next()?,
            ctime_ns: next()?,
            moov_offset: next()?,
            moov_size: next()?,
        };
        let target = f64::from_bits(next()?);
        let mut opt = || -> Option<Option<f64>> {
            let present = next()?;
            let v = f64::from_bits(next()?);
            Some((present == 1).then_some(v))
        };
        let stored_clip = Clip { start: opt()?, end: opt()? };
        if stored != *key || target != options.target || stored_clip != clip {
            return None;
        }
        let (nt, count) = (usize::try_from(next()?).ok()?, usize::try_from(next()?).ok()?);
        if nt == 0 || nt > MAX_TRACKS || count == 0 || count.checked_mul(nt)? > MAX_CELLS {
            return None;
        }
        let mut infos = Vec::with_capacity(nt);
        for _ in 0..nt {
            let index = usize::try_from(next()?).ok()?;
            let id = u32::try_from(next()?).ok()?;
            let media = Media::from_code(u8::try_from(next()?).ok()?)?;
            let timescale = u32::try_from(next()?).ok()?;
            let (base, cts_shift, lead) = (next()? as i64, next()? as i64, next()?);
            let with_cts = match next()? {
                0 => false,
                1 => true,
                _ => return None,
            };
            let t = tracks.get(index)?;
            if t.id != id || t.mdhd.timescale != timescale || with_cts != t.ctts.is_some() {
                return None;
            }
            infos.push(TrackInfo { index, id, media, timescale, base, cts_shift, lead, with_cts });
        }
        let mut cells = Vec::with_capacity(count * nt);
        for _ in 0..count * nt {
            let mut w = [0u64; 13];
            for x in &mut w {
                *x = next()?;
            }
            cells.push(Cell {
                s0: w[0],
                s1: w[1],
                dts: w[2],
                duration: w[3],
                bytes: w[4],
                first_size: u32::try_from(w[5]).ok()?,
                stts: (w[6], w[7], w[8]),
                ctts: (w[9], w[10]),
                stsc: (w[11], w[12]),
            });
        }
        if next().is_some() {
            return None;
        }
        for (k, info) in infos.iter().enumerate() {
            let samples = tracks[info.index].samples;
            let mut prev: Option<&Cell> = None;
            for c in cells.iter().skip(k).step_by(nt) {
                if c.s0 > c.s1 || c.s1 > samples || prev.is_some_and(|p| p.s1 != c.s0) {
                    return None;
                }
                prev = Some(c);
            }
        }
        Some(SegmentIndex { target, clip, tracks: infos, count, cells, skipped: Vec::new() })
    }
}

/// The sync samples of a track in increasing order (every sample without `stss`); a table
/// entry that does not increase ends the walk.
pub struct SyncIter<'t, 'a> {
    t: &'t Track<'a>,
    i: u64,
    last: Option<u64>,
}

impl<'t, 'a> SyncIter<'t, 'a> {
    pub fn new(t: &'t Track<'a>) -> Self {
        SyncIter { t, i: 0, last: None }
    }
}

impl Iterator for SyncIter<'_, '_> {
    type Item = u64;
    fn next(&mut self) -> Option<u64> {
        let s = match &self.t.stss {
            Some(stss) => {
                if self.i >= stss.len() as u64 {
                    return None;
                }
                stss.get(self.i as usize)
            }
            None => self.i,
        };
        if s >= self.t.samples || self.last.is_some_and(|l| s <= l) {
            return None;
        }
        self.i += 1;
        self.last = Some(s);
        Some(s)
    }
}
