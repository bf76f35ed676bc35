//! Defragmentation: a progressive, faststart MP4 built from a fragmented one — `ftyp`, a new
//! `moov` whose sample tables (`stts`, `ctts`, `stss`, `stsz`, `stsc`, `stco`/`co64`) are
//! made from the `trun`s, an `mdat` header, then the sample data as source byte ranges (one
//! chunk per `trun`, adjacent ranges merged). `loomiere index` writes it for a whole file;
//! an `exact` seek uses it for a range of fragments, trimmed at `end` and with an edit list
//! that hides the lead-in, because players honour edit lists fully in progressive files.
//! The tables are built in memory (a one-shot process; bounded by the index's sample cap).

use super::boxes::is_sync;
use super::index::{for_each_run, FragmentIndex};
use super::moov::{close, copy, edts, open, patched, NewEdit};
use crate::mp4::boxes::{children, find, BoxHeader};
use crate::mp4::track::{time_fields, tkhd_fields};
use crate::mp4::Movie;
use crate::plan::{Bytes, Piece, Plan};
use crate::{Error, Result};
use std::sync::Arc;

/// What part of the fragments to defragment, and how to time it.
#[derive(Clone, Debug, Default)]
pub struct Span {
    /// Fragments `first..last` are kept.
    pub first: usize,
    pub last: usize,
    /// Per track: samples decoding at or after this time (track timescale) are dropped.
    pub end_dts: Vec<Option<u64>>,
    /// Per track: the new edit (decode times start at the track's first kept sample); `None`
    /// keeps the source's edit list (whole-file defragmentation).
    pub edits: Option<Vec<NewEdit>>,
    /// Always write 64-bit chunk offsets (`co64`).
    pub co64: bool,
}

/// One track's new sample tables.
#[derive(Default)]
struct Tables {
    stts: Vec<(u32, u32)>,
    ctts: Vec<(u32, i64)>,
    sync: Vec<u32>,
    sizes: Vec<u32>,
    /// (output data offset relative to the mdat payload, samples, description index)
    chunks: Vec<(u64, u32, u32)>,
    first_dts: Option<u64>,
    next_dts: u64,
    done: bool,
}

impl Tables {
    fn samples(&self) -> u32 {
        self.sizes.len() as u32
    }

    fn push_duration(&mut self, d: u32) {
        match self.stts.last_mut() {
            Some((n, v)) if *v == d => *n += 1,
            _ => self.stts.push((1, d)),
        }
    }

    fn push_cto(&mut self, c: i64) {
        match self.ctts.last_mut() {
            Some((n, v)) if *v == c => *n += 1,
            _ => self.ctts.push((1, c)),
        }
    }

    /// Changes the last sample's duration by `by` ticks (a `tfdt` that jumps).
    fn stretch_last(&mut self, by: i64) -> bool {
        let Some((n, d)) = self.stts.last_mut() else { return by == 0 };
        let Some(new) = i64::from(*d).checked_add(by).and_then(|v| u32::try_from(v).ok()) else { return false };
        if *n == 1 {
            *d = new;
        } else {
            *n -= 1;
            self.stts.push((1, new));
        }
        true
    }

    fn media_duration(&self) -> u64 {
        self.stts.iter().map(|&(n, d)| u64::from(n) * u64::from(d)).sum()
    }
}

/// The whole file, defragmented (`loomiere index`).
pub fn whole(index: &FragmentIndex) -> Span {
    Span { first: 0, last: index.fragments.len(), end_dts: vec![None; index.tracks.len()], edits: None, co64: false }
}

/// The plan of a progressive MP4 holding `span` of the fragments of `movie`.
pub fn plan(movie: &Movie, index: &FragmentIndex, span: &Span, content_type: &'static str) -> Result<Plan> {
    if index.tracks.iter().any(|t| t.moov_samples > 0) {
        return Err(Error::Unsupported(
            "this fragmented MP4 also has samples in its moov; remux it with `ffmpeg -i IN -c copy OUT.mp4`".into(),
        ));
    }
    let n = index.tracks.len();
    let mut tables: Vec<Tables> = (0..n).map(|_| Tables::default()).collect();
    let mut ranges: Vec<(u64, u64)> = Vec::new();
    let mut data_len = 0u64;
    let fragments = index.fragments.get(span.first..span.last).unwrap_or(&[]);
    for f in fragments {
        let buf = index.moof_bytes(f);
        for t in index.trafs_of(f) {
            let tb = &mut tables[t.track];
            if tb.done {
                continue;
            }
            match tb.first_dts {
                None => {
                    tb.first_dts = Some(t.dts);
                    tb.next_dts = t.dts;
                }
                Some(_) if t.dts != tb.next_dts => {
                    let by = i128::from(t.dts) - i128::from(tb.next_dts);
                    if !i64::try_from(by).is_ok_and(|by| tb.stretch_last(by)) {
                        return Err(Error::corrupt(
                            f.moof.offset + t.traf.offset,
                            format!("track {}: 'tfdt' jumps by {by} ticks", index.tracks[t.track].id),
                        ));
                    }
                    tb.next_dts = t.dts;
                }
                Some(_) => {}
            }
            let limit = span.end_dts.get(t.track).copied().flatten();
            for_each_run(buf, f.moof.offset, &t.traf, &t.tfhd, t.base, |run, start, _| {
                let mut at = start;
                let mut kept = 0u32;
                for i in 0..run.count {
                    if limit.is_some_and(|l| tb.next_dts >= l) {
                        tb.done = true;
                        break;
                    }
                    let s = run.sample(buf, i, &t.tfhd);
                    tb.push_duration(s.duration);
                    tb.push_cto(s.cto);
                    tb.sizes.push(s.size);
                    if is_sync(s.flags) {
                        tb.sync.push(tb.sizes.len() as u32);
                    }
                    tb.next_dts = tb.next_dts.saturating_add(u64::from(s.duration));
                    at += u64::from(s.size);
                    kept += 1;
                }
                if kept > 0 {
                    tb.chunks.push((data_len, kept, t.tfhd.description.max(1)));
                    let len = at - start;
                    match ranges.last_mut() {
                        Some((o, l)) if *o + *l == start => *l += len,
                        _ => ranges.push((start, len)),
                    }
                    data_len = data_len
                        .checked_add(len)
                        .ok_or_else(|| Error::corrupt(f.moof.offset, "sample data overflows"))?;
                }
                Ok(())
            })?;
        }
    }
    if let Some(&(o, l)) = ranges.iter().max_by_key(|(o, l)| o + l) {
        if o + l > movie.src.len {
            return Err(Error::corrupt(o, "sample data runs past the end of the file (is it truncated?)"));
        }
    }
    let mts = movie.header()?.timescale.max(1);
    let mut edits: Vec<(NewEdit, bool)> = Vec::with_capacity(n);
    for (k, tb) in tables.iter().enumerate() {
        let media = tb.media_duration();
        let t = &index.tracks[k];
        let ts = u64::from(t.timescale.max(1));
        let e = match &span.edits {
            Some(v) => (NewEdit { media_duration: media, ..v.get(k).copied().unwrap_or_default() }, true),
            None => {
                // Keep the source's timing: a first decode time above zero becomes a delay.
                let first = tb.first_dts.unwrap_or(0);
                let delay = t.edit.delay.saturating_add(first.saturating_mul(u64::from(mts)) / ts);
                let shown = if t.edit.shown > 0 {
                    t.edit.shown
                } else {
                    let mt = u64::try_from(t.edit.media_time).unwrap_or(0);
                    media.saturating_sub(mt).saturating_mul(u64::from(mts)) / ts
                };
                let write = t.edit.present || first > 0;
                (NewEdit { delay, media_time: t.edit.media_time, shown, media_duration: media }, write)
            }
        };
        edits.push(e);
    }
    let movie_duration = edits.iter().map(|(e, _)| e.delay.saturating_add(e.shown)).max().unwrap_or(0);
    let ftyp = movie.ftyp_bytes().to_vec();
    let mdat_header_len: u64 = if data_len + 8 > u64::from(u32::MAX) { 16 } else { 8 };
    let mut wide = span.co64;
    let mut moov = build_moov(movie, &tables, &edits, movie_duration, 0, wide)?;
    let prefix = |m: &Vec<u8>| ftyp.len() as u64 + m.len() as u64 + mdat_header_len;
    if prefix(&moov).saturating_add(data_len) > u64::from(u32::MAX) {
        wide = true;
        moov = build_moov(movie, &tables, &edits, movie_duration, 0, wide)?;
    }
    let base = prefix(&moov);
    moov = build_moov(movie, &tables, &edits, movie_duration, base, wide)?;
    let mut head = ftyp;
    head.extend_from_slice(&moov);
    if mdat_header_len == 16 {
        head.extend_from_slice(&1u32.to_be_bytes());
        head.extend_from_slice(b"mdat");
        head.extend_from_slice(&(data_len + 16).to_be_bytes());
    } else {
        head.extend_from_slice(&((data_len + 8) as u32).to_be_bytes());
        head.extend_from_slice(b"mdat");
    }
    let mut info = movie.src.info(content_type);
    info.header_len = head.len() as u64;
    info.duration = Some(movie_duration as f64 / f64::from(mts));
    let mut pieces = Vec::with_capacity(1 + ranges.len());
    pieces.push(Piece::Synth(Arc::new(Bytes(head))));
    pieces.extend(ranges.into_iter().map(|(offset, len)| Piece::Source { offset, len }));
    Plan::new(movie.src.clone(), pieces, info)
}

/// The new moov: the source's with durations patched, new edit lists, rebuilt sample tables
/// (chunk offsets `base + relative`) and no `mvex`.
fn build_moov(
    movie: &Movie,
    tables: &[Tables],
    edits: &[(NewEdit, bool)],
    movie_duration: u64,
    base: u64,
    wide: bool,
) -> Result<Vec<u8>> {
    let moov = &movie.moov[..];
    let root = movie.root;
    let mut out = Vec::new();
    let m = open(&mut out, b"moov");
    let mut k = 0;
    for h in children(moov, root.body_start(), root.end()) {
        let h = h?;
        match &h.kind {
            b"mvhd" => {
                let f = time_fields(moov, &h)?;
                patched(&mut out, moov, &h, f.duration_at, f.duration_width, movie_duration)?;
            }
            b"mvex" => {}
            b"trak" => {
                let (tb, (e, write)) =
                    tables.get(k).zip(edits.get(k)).ok_or_else(|| Error::corrupt(h.offset, "unexpected 'trak'"))?;
                k += 1;
                trak(&mut out, moov, &h, tb, e, *write, base, wide)?;
            }
            _ => copy(&mut out, moov, &h)?,
        }
    }
    close(&mut out, m)?;
    Ok(out)
}

#[allow(clippy::too_many_arguments)]
fn trak(
    out: &mut Vec<u8>,
    moov: &[u8],
    trak: &BoxHeader,
    tb: &Tables,
    e: &NewEdit,
    write_edit: bool,
    base: u64,
    wide: bool,
) -> Result<()> {
    let t = open(out, b"trak");
    for h in children(moov, trak.body_start(), trak.end()) {
        let h = h?;
        match &h.kind {
            b"tkhd" => {
                let (_, at, w) = tkhd_fields(moov, &h)?;
                patched(out, moov, &h, at, w, e.delay.saturating_add(e.shown))?;
                if write_edit {
                    edts(out, e.delay, e.media_time, e.shown)?;
                }
            }
            b"edts" => {}
            b"mdia" => {
                let m = open(out, b"mdia");
                for c in children(moov, h.body_start(), h.end()) {
                    let c = c?;
                    match &c.kind {
                        b"mdhd" => {
                            let f = time_fields(moov, &c)?;
                            patched(out, moov, &c, f.duration_at, f.duration_width, e.media_duration)?;
                        }
                        b"minf" => {
                            let mi = open(out, b"minf");
                            for d in children(moov, c.body_start(), c.end()) {
                                let d = d?;
                                if &d.kind == b"stbl" {
                                    stbl(out, moov, &d, tb, base, wide)?;
                                } else {
                                    copy(out, moov, &d)?;
                                }
                            }
                            close(out, mi)?;
                        }
                        _ => copy(out, moov, &c)?,
                    }
                }
                close(out, m)?;
            }
            _ => copy(out, moov, &h)?,
        }
    }
    close(out, t)
}

fn full(out: &mut Vec<u8>, kind: &[u8; 4], version: u8) -> usize {
    let at = open(out, kind);
    out.extend_from_slice(&[version, 0, 0, 0]);
    at
}

fn u32s(out: &mut Vec<u8>, values: &[u32]) {
    for v in values {
        out.extend_from_slice(&v.to_be_bytes());
    }
}

fn stbl(out: &mut Vec<u8>, moov: &[u8], stbl: &BoxHeader, tb: &Tables, base: u64, wide: bool) -> Result<()> {
    let s = open(out, b"stbl");
    let stsd = find(moov, stbl.body_start(), stbl.end(), b"stsd")?
        .ok_or_else(|| Error::corrupt(stbl.offset, "'stbl' has no 'stsd'"))?;
    copy(out, moov, &stsd)?;
    let b = full(out, b"stts", 0);
    u32s(out, &[tb.stts.len() as u32]);
    for &(n, d) in &tb.stts {
        u32s(out, &[n, d]);
    }
    close(out, b)?;
    if tb.ctts.iter().any(|&(_, c)| c != 0) {
        let signed = tb.ctts.iter().any(|&(_, c)| c < 0);
        let b = full(out, b"ctts", u8::from(signed));
        u32s(out, &[tb.ctts.len() as u32]);
        for &(n, c) in &tb.ctts {
            u32s(out, &[n, c as u32]);
        }
        close(out, b)?;
    }
    if tb.sync.len() < tb.sizes.len() {
        let b = full(out, b"stss", 0);
        u32s(out, &[tb.sync.len() as u32]);
        u32s(out, &tb.sync);
        close(out, b)?;
    }
    let b = full(out, b"stsz", 0);
    u32s(out, &[0, tb.samples()]);
    u32s(out, &tb.sizes);
    close(out, b)?;
    // stsc: one entry wherever samples-per-chunk or the description changes.
    let b = full(out, b"stsc", 0);
    let mut entries: Vec<[u32; 3]> = Vec::new();
    for (i, &(_, n, d)) in tb.chunks.iter().enumerate() {
        if entries.last().is_none_or(|e| e[1] != n || e[2] != d) {
            entries.push([i as u32 + 1, n, d]);
        }
    }
    u32s(out, &[entries.len() as u32]);
    for e in &entries {
        u32s(out, e);
    }
    close(out, b)?;
    let b = full(out, if wide { b"co64" } else { b"stco" }, 0);
    u32s(out, &[tb.chunks.len() as u32]);
    for &(rel, _, _) in &tb.chunks {
        let o = base.saturating_add(rel);
        if wide {
            out.extend_from_slice(&o.to_be_bytes());
        } else {
            out.extend_from_slice(&(o as u32).to_be_bytes());
        }
    }
    close(out, b)?;
    close(out, s)
}
