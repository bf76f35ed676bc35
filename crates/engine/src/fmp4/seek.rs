//! Progressive seek of a fragmented MP4: `ftyp` + a rewritten `moov` (see [`super::moov`])
//! and the fragments from the one whose reference-track data starts with the keyframe at or
//! before `start`, through the one covering `end`.
//!
//! Each kept `moof` is synthesised from the indexed bytes with its `tfdt` values moved so
//! that every track's first kept sample decodes at zero, and an explicit `base_data_offset`
//! moved to the fragment's new place; the bytes from the moof's end to its `mdat`'s end are
//! a source range (zero-copy). In the fragment covering `end`, `trun` sample counts are cut
//! there (the moof keeps its size) and the new edit lists clip at `end` too. An `exact`
//! request is answered defragmented (see [`super::defrag`]), trimmed at `end`.
//!
//! Time arithmetic is integer (i128): a presentation time in seconds of a track's composition
//! time `x` is `delay / mts + (x − media_time) / ts` (its source edit list applied).

use super::index::{FragmentIndex, Traf};
use super::moov::{seek_moov, NewEdit};
use crate::mp4::seek::Time;
use crate::mp4::Movie;
use crate::plan::{Piece, Plan, Synth};
use crate::request::{Position, Request};
use crate::{Error, Result};
use std::sync::Arc;

/// Presentation time (seconds, as a rational) of composition time `x` of track `k`.
fn presentation(index: &FragmentIndex, k: usize, mts: u32, x: i64) -> Time {
    let t = &index.tracks[k];
    let ts = i128::from(t.timescale.max(1));
    let mts = i128::from(mts.max(1));
    // delay/mts + (x − mt)/ts = (delay·ts + (x − mt)·mts) / (ts·mts)
    let num = i128::from(t.edit.delay) * ts + (i128::from(x) - i128::from(t.edit.media_time)) * mts;
    Time { num, den: ts * mts }
}

/// `a ≤ b` for rationals with positive denominators (in floating point if the exact
/// products overflow, which only absurd timescales and times can cause).
fn le(a: Time, b: Time) -> bool {
    match (a.num.checked_mul(b.den), b.num.checked_mul(a.den)) {
        (Some(x), Some(y)) => x <= y,
        _ => a.secs() <= b.secs(),
    }
}

/// The duration of the fragments in seconds: the latest presentation end of any track.
pub fn duration(index: &FragmentIndex, mts: u32) -> f64 {
    let mut end = 0.0f64;
    for t in &index.trafs {
        end = end.max(presentation(index, t.track, mts, t.cts_end).secs());
    }
    end
}

/// The reference track: the first video track with samples in fragments, else the first
/// track with samples.
pub fn reference(index: &FragmentIndex) -> Option<usize> {
    let has = |k: usize| index.trafs.iter().any(|t| t.track == k && t.samples > 0);
    let n = index.tracks.len();
    (0..n).find(|&k| &index.tracks[k].handler == b"vide" && has(k)).or_else(|| (0..n).find(|&k| has(k)))
}

/// The plan for `req` on a fragmented movie.
pub fn plan(movie: &Movie, index: &Arc<FragmentIndex>, req: &Request, content_type: &'static str) -> Result<Plan> {
    let secs = Position::mp4_seconds;
    if index.tracks.iter().any(|t| t.moov_samples > 0) {
        return Err(Error::Unsupported(
            "this fragmented MP4 also has samples in its moov; remux it with `ffmpeg -i IN -c copy OUT.mp4`".into(),
        ));
    }
    let start = secs(req.start, "start")?.unwrap_or(0.0);
    let end = secs(req.end, "end")?;
    let mts = movie.header()?.timescale.max(1);
    let total = duration(index, mts);
    let Some(r) = reference(index) else {
        return Err(Error::bad_request("the file has no samples in its fragments: nothing to seek in"));
    };
    let end = crate::request::clip_within(start, end, total)?;
    let den = i128::from(index.tracks[r].timescale.max(1)) * i128::from(mts);
    let want = Time::from_secs(start, den);
    // The last fragment whose reference data starts with a keyframe shown at or before start.
    let ref_traf = |f: usize| index.trafs_of(&index.fragments[f]).iter().find(|t| t.track == r && t.samples > 0);
    let mut first: Option<(usize, i64)> = None;
    for f in 0..index.fragments.len() {
        if let Some(t) = ref_traf(f) {
            if first.is_none() {
                first = Some((f, t.keyframe_cts.unwrap_or(t.cts_min)));
            }
            if let (true, Some(k)) = (t.first_sync, t.keyframe_cts) {
                if le(presentation(index, r, mts, k), want) {
                    first = Some((f, k));
                }
            }
        }
    }
    let (f0, key_cts) = first.ok_or_else(|| Error::bad_request("no fragment holds the reference track"))?;
    let shown_start =
        if req.exact { want.max(presentation(index, r, mts, key_cts)) } else { presentation(index, r, mts, key_cts) };
    let end_t = end.map(|e| Time::from_secs(e, den));
    // Fragments kept: from f0 up to (not including) the first whose every track fragment is
    // shown at or after end.
    let mut f1 = index.fragments.len();
    if let Some(e) = end_t {
        for f in f0 + 1..index.fragments.len() {
            let trafs = index.trafs_of(&index.fragments[f]);
            if !trafs.is_empty() && trafs.iter().all(|t| le(e, presentation(index, t.track, mts, t.cts_min))) {
                f1 = f;
                break;
            }
        }
    }
    let kept = &index.fragments[f0..f1];
    let n = index.tracks.len();
    // Per track: samples decoding at or after this media time are dropped (end).
    let limits: Vec<Option<u64>> = (0..n).map(|k| end_t.and_then(|e| media_time_at(index, k, mts, e))).collect();
    // Per track: the first kept decode time (the shift), the presentation end, the durations;
    // per kept fragment: the `trun` sample counts cut at end.
    let mut shift: Vec<Option<u64>> = vec![None; n];
    let mut cts_end: Vec<i64> = vec![i64::MIN; n];
    let mut media: Vec<u64> = vec![0; n];
    let mut counts: Vec<Vec<(usize, u32)>> = vec![Vec::new(); kept.len()];
    for (i, f) in kept.iter().enumerate() {
        let trafs = index.trafs_of(f);
        for (j, t) in trafs.iter().enumerate() {
            shift[t.track].get_or_insert(t.dts);
            let crosses = limits[t.track].is_some_and(|l| t.dts.saturating_add(t.duration) > l);
            // Cutting a run moves the implied base of later track fragments: only when they
            // all have their own base (as every writer seen does).
            let own_bases = trafs[j + 1..].iter().all(|u| {
                u.tfhd.base_data_offset.is_some() || u.tfhd.flags & super::boxes::TFHD_DEFAULT_BASE_IS_MOOF != 0
            });
            if req.exact || !crosses || !own_bases {
                cts_end[t.track] = cts_end[t.track].max(t.cts_end);
                media[t.track] = media[t.track].saturating_add(t.duration);
                continue;
            }
            let kept = trim(index, f, t, limits[t.track].unwrap_or(u64::MAX))?;
            cts_end[t.track] = cts_end[t.track].max(kept.cts_end);
            media[t.track] = media[t.track].saturating_add(kept.duration);
            counts[i].extend(kept.counts);
        }
    }
    let mut edits = Vec::with_capacity(n);
    for k in 0..n {
        edits.push(match shift[k] {
            None => NewEdit::default(),
            Some(s) => track_edit(index, k, mts, s, shown_start, cts_end[k], end_t, media[k])?,
        });
    }
    if req.exact {
        // Players honour edit lists fully in progressive files only: an exact clip is the
        // kept fragments defragmented, trimmed at end, with the lead-in hidden.
        let span =
            super::defrag::Span { first: f0, last: f1, end_dts: limits, edits: Some(edits), co64: req.force_co64 };
        return super::defrag::plan(movie, index, &span, content_type);
    }
    let movie_duration = edits.iter().map(|e| e.delay.saturating_add(e.shown)).max().unwrap_or(0);
    let new_moov = seek_moov(&movie.moov, &movie.root, &edits, movie_duration).map_err(|e| match e {
        Error::Corrupt { offset, what } => {
            Error::corrupt(offset.saturating_add(movie.top.moov.map_or(0, |m| m.offset)), what)
        }
        e => e,
    })?;
    let mut head = movie.ftyp_bytes().to_vec();
    head.extend_from_slice(&new_moov);
    let shared = Arc::new(Shared { index: index.clone(), shift: shift.iter().map(|s| s.unwrap_or(0)).collect() });
    let mut pieces = Vec::with_capacity(1 + 2 * kept.len());
    let mut at = head.len() as u64;
    let header_len = at + kept.first().map_or(0, |f| f.moof.size);
    pieces.push(Piece::Synth(Arc::new(crate::plan::Bytes(head))));
    for (i, f) in kept.iter().enumerate() {
        let delta = i128::from(at) - i128::from(f.moof.offset);
        let counts = std::mem::take(&mut counts[i]);
        pieces.push(Piece::Synth(Arc::new(MoofPiece { shared: shared.clone(), frag: f0 + i, delta, counts })));
        let tail = f
            .mdat
            .end()
            .checked_sub(f.moof.end())
            .ok_or_else(|| Error::corrupt(f.moof.offset, "'mdat' before its 'moof'"))?;
        if f.mdat.end() > movie.src.len {
            return Err(Error::corrupt(f.mdat.offset, "'mdat' runs past the end of the file"));
        }
        pieces.push(Piece::Source { offset: f.moof.end(), len: tail });
        at = at
            .checked_add(f.moof.size)
            .and_then(|a| a.checked_add(tail))
            .ok_or_else(|| Error::corrupt(f.moof.offset, "output length overflows"))?;
    }
    let mut info = movie.src.info(content_type);
    info.header_len = header_len;
    info.duration = Some(movie_duration as f64 / f64::from(mts));
    Plan::new(movie.src.clone(), pieces, info)
}

/// What [`trim`] keeps of a track fragment.
struct Trimmed {
    /// Latest composition time + duration of the samples kept.
    cts_end: i64,
    /// Sum of their durations.
    duration: u64,
    /// New `trun` sample counts: (field position in the moof, count).
    counts: Vec<(usize, u32)>,
}

/// Cuts track fragment `t` of `f` before its first sample decoding at or after `limit`:
/// what is kept, and the new sample counts of the runs that lose samples.
fn trim(index: &FragmentIndex, f: &super::index::Fragment, t: &Traf, limit: u64) -> Result<Trimmed> {
    let buf = index.moof_bytes(f);
    let mut dts = t.dts;
    let mut end = i64::MIN;
    let mut counts = Vec::new();
    super::index::for_each_run(buf, f.moof.offset, &t.traf, &t.tfhd, t.base, |run, _, _| {
        let mut keep = 0;
        while keep < run.count && dts < limit {
            let s = run.sample(buf, keep, &t.tfhd);
            let cts = i64::try_from(i128::from(dts) + i128::from(s.cto)).unwrap_or(i64::MAX);
            end = end.max(cts.saturating_add(i64::from(s.duration)));
            dts = dts.saturating_add(u64::from(s.duration));
            keep += 1;
        }
        if keep < run.count {
            counts.push((run.count_at, keep));
        }
        Ok(())
    })?;
    if end == i64::MIN {
        end = i64::try_from(t.dts).unwrap_or(i64::MAX);
    }
    Ok(Trimmed { cts_end: end, duration: dts - t.dts, counts })
}

/// The source media time of track `k` shown at `at` (rounded up), when it is not negative.
fn media_time_at(index: &FragmentIndex, k: usize, mts: u32, at: Time) -> Option<u64> {
    let t = &index.tracks[k];
    let ts = i128::from(t.timescale.max(1));
    let m = i128::from(mts);
    // mt + (at − delay/mts)·ts = mt + (at.num·mts − delay·at.den)·ts / (at.den·mts)
    let num = at.num.checked_mul(m)?.checked_sub(i128::from(t.edit.delay).checked_mul(at.den)?)?.checked_mul(ts)?;
    let den = at.den.checked_mul(m)?;
    let x = num.checked_add(den - 1)?.div_euclid(den).checked_add(i128::from(t.edit.media_time))?;
    u64::try_from(x).ok()
}

/// The new edit of track `k`, whose first kept sample decodes at `shift` (becoming zero).
#[allow(clippy::too_many_arguments)]
fn track_edit(
    index: &FragmentIndex,
    k: usize,
    mts: u32,
    shift: u64,
    shown_start: Time,
    cts_end: i64,
    end: Option<Time>,
    media_duration: u64,
) -> Result<NewEdit> {
    let t = &index.tracks[k];
    let ts = i128::from(t.timescale.max(1));
    let m = i128::from(mts);
    let overflow = || Error::Unsupported("timescales too large for exact time arithmetic".into());
    // Source media time shown at shown_start: mt + (S − delay/mts)·ts, floored.
    let num = shown_start
        .num
        .checked_mul(ts * m)
        .and_then(|a| a.checked_sub(i128::from(t.edit.delay).checked_mul(ts)?.checked_mul(shown_start.den)?))
        .ok_or_else(overflow)?;
    let x = num
        .div_euclid(shown_start.den.checked_mul(m).ok_or_else(overflow)?)
        .checked_add(i128::from(t.edit.media_time))
        .ok_or_else(overflow)?;
    let rel = x.checked_sub(i128::from(shift)).ok_or_else(overflow)?;
    let (media_time, delay) = if rel >= 0 {
        (i64::try_from(rel).map_err(|_| overflow())?, 0u64)
    } else {
        // The track starts after the clip: wait for it (ceil, movie ticks).
        let d = rel
            .checked_neg()
            .and_then(|r| r.checked_mul(m))
            .and_then(|r| r.checked_add(ts - 1))
            .ok_or_else(overflow)?
            / ts;
        (0, u64::try_from(d).map_err(|_| overflow())?)
    };
    let mut pres_end = presentation(index, k, mts, cts_end);
    if let Some(e) = end {
        if le(e, pres_end) {
            pres_end = e;
        }
    }
    // shown = (end − S)·mts − delay, floored, never negative.
    let span = pres_end
        .num
        .checked_mul(shown_start.den)
        .and_then(|a| a.checked_sub(shown_start.num.checked_mul(pres_end.den)?))
        .and_then(|a| a.checked_mul(m))
        .ok_or_else(overflow)?;
    let shown = span
        .div_euclid(pres_end.den.checked_mul(shown_start.den).ok_or_else(overflow)?)
        .saturating_sub(i128::from(delay));
    let shown = u64::try_from(shown.max(0)).map_err(|_| overflow())?;
    Ok(NewEdit { delay, media_time, shown, media_duration })
}

/// What the moof pieces of one plan share: the index and each track's decode-time shift.
struct Shared {
    index: Arc<FragmentIndex>,
    shift: Vec<u64>,
}

/// One kept moof, produced on demand from the indexed bytes with its `tfdt` values shifted,
/// any explicit `base_data_offset` moved by `delta` (new place − old place), and the runs
/// that cross `end` given fewer samples (`counts`; their data stays in the mdat, unused).
struct MoofPiece {
    shared: Arc<Shared>,
    frag: usize,
    delta: i128,
    counts: Vec<(usize, u32)>,
}

impl MoofPiece {
    fn fragment(&self) -> Option<&super::index::Fragment> {
        self.shared.index.fragments.get(self.frag)
    }

    /// The patched fields: (offset in the moof, bytes).
    fn patches(&self) -> Vec<(usize, Vec<u8>)> {
        let Some(f) = self.fragment() else { return Vec::new() };
        let mut out = Vec::new();
        for t in self.shared.index.trafs_of(f) {
            let Traf { tfdt, tfhd, track, .. } = t;
            if let Some(d) = tfdt {
                let v = d.value.saturating_sub(self.shared.shift.get(*track).copied().unwrap_or(0));
                let bytes = if d.width == 8 { v.to_be_bytes().to_vec() } else { (v as u32).to_be_bytes().to_vec() };
                out.push((d.at, bytes));
            }
            if let Some((b, at)) = tfhd.base_data_offset {
                let v = u64::try_from(i128::from(b) + self.delta).unwrap_or(0);
                out.push((at, v.to_be_bytes().to_vec()));
            }
        }
        out.extend(self.counts.iter().map(|&(at, c)| (at, c.to_be_bytes().to_vec())));
        out
    }
}

impl Synth for MoofPiece {
    fn len(&self) -> u64 {
        self.fragment().map_or(0, |f| f.moof.size)
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> usize {
        let Some(f) = self.fragment() else { return 0 };
        let bytes = self.shared.index.moof_bytes(f);
        let Ok(from) = usize::try_from(offset) else { return 0 };
        let src = bytes.get(from..).unwrap_or(&[]);
        let n = src.len().min(buf.len());
        buf[..n].copy_from_slice(&src[..n]);
        for (at, p) in self.patches() {
            for (i, b) in p.iter().enumerate() {
                let pos = at + i;
                if pos >= from && pos < from + n {
                    buf[pos - from] = *b;
                }
            }
        }
        n
    }
}
