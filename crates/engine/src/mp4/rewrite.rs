//! The new `moov`, emitted table by table. The rewrite never builds the new moov in memory:
//! it lays out a list of segments — literal bytes (box headers, patched `mvhd`/`tkhd`/`mdhd`,
//! the first and last entries of cut run tables), verbatim spans of the source moov (the
//! middle of `stts`/`ctts`, `stsz`, `stsd`, `udta`…), and per-entry transforms of source
//! tables (`stco`/`co64` shifted, `stss` and `stsc` renumbered, `stz2` widened) — whose sizes
//! are known up front. [`MoovSynth`] then produces any byte of the prefix on demand, so a
//! stream holds a cursor and the segment list, not a copy of the moov.
//!
//! `moov/udta/chpl` (Nero chapters) is re-timed for the clip; a track that keeps no sample is
//! left out.
//!
//! Boxes in `stbl` that describe samples and cannot be cut (`stps`, `stsh`, `padb`, `subs`,
//! `saiz`, `saio`, `cslg`) are dropped on purpose; unknown boxes elsewhere are copied.

use super::boxes::{children, BoxHeader, FourCc, ReadBe};
use super::seek::{Cut, Time};
use super::tables::{body, ChunkPos, Runs};
use super::track::{time_fields, tkhd_fields, Track};
use super::MoovBytes;
use crate::plan::Synth;
use crate::{Error, Result};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// One run of output bytes.
#[derive(Clone, Debug)]
enum Seg {
    /// Literal bytes.
    Lit(Vec<u8>),
    /// `len` bytes of the source moov at `at`.
    Copy { at: usize, len: usize },
    /// Chunk offsets at `at` (`in_w` bytes each), written as `out_w` bytes: `v − sub + base`.
    Offsets { at: usize, count: usize, in_w: u8, out_w: u8, sub: u64 },
    /// One chunk offset `rel + base`, `out_w` bytes.
    Offset { rel: u64, out_w: u8 },
    /// `u32` entries of `width` bytes at `at` whose first field is reduced by `minus`
    /// (`stss`: width 4; `stsc`: width 12, the rest of the entry copied).
    Renumber { at: usize, count: usize, width: u8, minus: u32 },
    /// `stz2` sizes (field bits 4/8/16) from sample `first`, written as `u32`.
    Widen { at: usize, field: u8, first: usize, count: usize },
}

impl Seg {
    fn len(&self) -> u64 {
        match self {
            Seg::Lit(v) => v.len() as u64,
            Seg::Copy { len, .. } => *len as u64,
            Seg::Offsets { count, out_w, .. } => *count as u64 * u64::from(*out_w),
            Seg::Offset { out_w, .. } => u64::from(*out_w),
            Seg::Renumber { count, width, .. } => *count as u64 * u64::from(*width),
            Seg::Widen { count, .. } => *count as u64 * 4,
        }
    }
}

/// Synthesised prefix of an MP4 plan: `ftyp`, the new `moov`, the `mdat` header.
pub struct MoovSynth {
    moov: Arc<MoovBytes>,
    segs: Vec<Seg>,
    starts: Vec<u64>,
    len: u64,
    /// Output offset of the first media byte (added to every chunk offset).
    base: u64,
    /// One-shot plan: forget the moov's pages every `FORGET_EVERY` bytes emitted.
    transient: bool,
    /// Bytes emitted since the pages were last forgotten.
    since_forget: AtomicU64,
}

impl std::fmt::Debug for MoovSynth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MoovSynth({} bytes in {} segments)", self.len, self.segs.len())
    }
}

impl MoovSynth {
    /// Writes into `out` the bytes of segment `seg` from offset `from` within it.
    fn fill(&self, seg: &Seg, from: u64, out: &mut [u8]) -> usize {
        let moov: &[u8] = &self.moov;
        match seg {
            Seg::Lit(v) => copy_from(v, from, out),
            Seg::Copy { at, len } => {
                let src = moov.get(*at..at.saturating_add(*len)).unwrap_or(&[]);
                copy_from(src, from, out)
            }
            Seg::Offset { rel, out_w } => {
                let mut b = [0u8; 8];
                put(rel.wrapping_add(self.base), *out_w, &mut b);
                copy_from(&b[..usize::from(*out_w)], from, out)
            }
            Seg::Offsets { at, in_w, out_w, sub, .. } => self.entries(from, out, u64::from(*out_w), |i, buf| {
                let p = at + i * usize::from(*in_w);
                let v = if *in_w == 8 { moov.u64_at(p) } else { moov.u32_at(p).map(u64::from) }.unwrap_or(0);
                put(v.wrapping_sub(*sub).wrapping_add(self.base), *out_w, buf);
            }),
            Seg::Renumber { at, width, minus, .. } => self.entries(from, out, u64::from(*width), |i, buf| {
                let p = at + i * usize::from(*width);
                let w = usize::from(*width);
                if let Some(src) = moov.get(p..p + w) {
                    buf.copy_from_slice(src);
                }
                let v = moov.u32_at(p).unwrap_or(0).wrapping_sub(*minus);
                buf[..4].copy_from_slice(&v.to_be_bytes());
            }),
            Seg::Widen { at, field, first, .. } => self.entries(from, out, 4, |i, buf| {
                let s = first + i;
                let v = match field {
                    4 => {
                        let b = moov.u8_at(at + s / 2).unwrap_or(0);
                        u32::from(if s.is_multiple_of(2) { b >> 4 } else { b & 0x0f })
                    }
                    8 => u32::from(moov.u8_at(at + s).unwrap_or(0)),
                    _ => u32::from(moov.u16_at(at + s * 2).unwrap_or(0)),
                };
                buf[..4].copy_from_slice(&v.to_be_bytes());
            }),
        }
    }

    /// Emits fixed-width computed entries from byte `from` of a segment into `out`: whole
    /// entries are written in place; only a partial first or last entry goes through a small
    /// buffer. `entry(i, dst)` fills `dst` (exactly `width` bytes) with entry `i`.
    fn entries(&self, from: u64, out: &mut [u8], width: u64, entry: impl Fn(usize, &mut [u8])) -> usize {
        let w = width as usize;
        let mut i = (from / width) as usize;
        let within = (from % width) as usize;
        let mut done = 0usize;
        let mut tmp = [0u8; 16];
        if within != 0 {
            entry(i, &mut tmp[..w]);
            let take = (w - within).min(out.len());
            out[..take].copy_from_slice(&tmp[within..within + take]);
            done = take;
            i += 1;
        }
        let whole = (out.len() - done) / w;
        for dst in out[done..done + whole * w].chunks_exact_mut(w) {
            entry(i, dst);
            i += 1;
        }
        done += whole * w;
        if done < out.len() {
            entry(i, &mut tmp[..w]);
            let take = out.len() - done;
            out[done..].copy_from_slice(&tmp[..take]);
            done = out.len();
        }
        done
    }
}

/// Writes `v` big-endian as `w` bytes (8, else 4) into `dst`.
fn put(v: u64, w: u8, dst: &mut [u8]) {
    if w == 8 {
        dst[..8].copy_from_slice(&v.to_be_bytes());
    } else {
        dst[..4].copy_from_slice(&(v as u32).to_be_bytes());
    }
}

fn copy_from(src: &[u8], from: u64, out: &mut [u8]) -> usize {
    let Ok(from) = usize::try_from(from) else { return 0 };
    let src = src.get(from..).unwrap_or(&[]);
    let n = src.len().min(out.len());
    out[..n].copy_from_slice(&src[..n]);
    n
}

impl Synth for MoovSynth {
    fn len(&self) -> u64 {
        self.len
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> usize {
        if offset >= self.len {
            return 0;
        }
        let want = ((self.len - offset) as usize).min(buf.len());
        let mut i = self.starts[1..].partition_point(|&e| e <= offset);
        let mut pos = offset;
        let mut done = 0;
        while done < want && i < self.segs.len() {
            let seg = &self.segs[i];
            let seg_len = seg.len();
            let from = pos - self.starts[i];
            let take = ((seg_len - from) as usize).min(want - done);
            let n = self.fill(seg, from, &mut buf[done..done + take]);
            if n < take {
                // The source moov is shorter than its own boxes said: zeros, never a panic.
                buf[done + n..done + take].fill(0);
            }
            done += take;
            pos += take as u64;
            i += 1;
        }
        if self.transient {
            let since = self.since_forget.fetch_add(done as u64, Ordering::Relaxed) + done as u64;
            if since >= super::FORGET_EVERY {
                self.since_forget.store(0, Ordering::Relaxed);
                self.moov.forget_pages();
            }
        }
        done
    }
}

/// What the rewrite needs for one track.
pub struct TrackPlan<'a> {
    pub track: Track<'a>,
    pub cut: Cut,
    /// Output offsets are 64-bit.
    pub co64: bool,
    /// File offset of the first kept sample (the first chunk's new start).
    pub first_offset: u64,
    /// The chunks of the first and last kept samples (`None` when no sample is kept).
    pub chunks: Option<(ChunkPos, ChunkPos)>,
}

/// The segments of a prefix, as they are laid out.
#[derive(Default)]
struct Layout {
    segs: Vec<Seg>,
    len: u64,
}

impl Layout {
    fn push(&mut self, seg: Seg) {
        let n = seg.len();
        if n == 0 {
            return;
        }
        if let (Seg::Lit(new), Some(Seg::Lit(last))) = (&seg, self.segs.last_mut()) {
            if last.len() + new.len() <= 64 {
                last.extend_from_slice(new);
                self.len += n;
                return;
            }
        }
        self.segs.push(seg);
        self.len += n;
    }

    fn lit(&mut self, v: Vec<u8>) {
        self.push(Seg::Lit(v));
    }

    fn copy(&mut self, at: u64, len: u64) {
        self.push(Seg::Copy { at: at as usize, len: len as usize });
    }

    /// Starts a box; returns a mark for `close`.
    fn open(&mut self, kind: &FourCc) -> (usize, u64) {
        let mut h = vec![0u8; 4];
        h.extend_from_slice(kind);
        // A header of its own, never merged, so close() can patch it.
        self.segs.push(Seg::Lit(h));
        self.len += 8;
        (self.segs.len() - 1, self.len - 8)
    }

    fn close(&mut self, mark: (usize, u64)) -> Result<()> {
        let size = u32::try_from(self.len - mark.1)
            .map_err(|_| Error::Unsupported("a rewritten box would exceed 4 GiB".into()))?;
        if let Some(Seg::Lit(h)) = self.segs.get_mut(mark.0) {
            h[..4].copy_from_slice(&size.to_be_bytes());
        }
        Ok(())
    }

    fn copy_box(&mut self, h: &BoxHeader) {
        self.copy(h.offset, h.size);
    }

    /// A full box copied with one field overwritten (durations in mvhd/tkhd/mdhd).
    fn patched(&mut self, moov: &[u8], h: &BoxHeader, field_at: usize, width: usize, value: u64) -> Result<()> {
        let mut v = moov
            .get(h.offset as usize..h.end() as usize)
            .ok_or_else(|| Error::corrupt(h.offset, "box lies outside moov"))?
            .to_vec();
        let at = h.header_len as usize + field_at;
        let field = v.get_mut(at..at + width).ok_or_else(|| Error::corrupt(h.offset, "box is too short"))?;
        if width == 8 {
            field.copy_from_slice(&value.to_be_bytes());
        } else {
            field.copy_from_slice(&u32::try_from(value).unwrap_or(u32::MAX).to_be_bytes());
        }
        self.lit(v);
        Ok(())
    }
}

/// Lays out the new moov. `tracks[i]` belongs to the i-th `trak` child of moov.
pub fn layout_moov(
    moov: &[u8],
    root: &BoxHeader,
    tracks: &[TrackPlan<'_>],
    movie_duration: u64,
    clip: &Clip,
) -> Result<LaidOut> {
    // About 40 segments for a two-track movie: room for that many without regrowing.
    let mut out = Layout { segs: Vec::with_capacity(64), len: 0 };
    let mark = out.open(b"moov");
    let mut trak_index = 0;
    for h in children(moov, root.body_start(), root.end()) {
        let h = h?;
        match &h.kind {
            b"mvhd" => {
                let f = time_fields(moov, &h)?;
                out.patched(moov, &h, f.duration_at, f.duration_width, movie_duration)?;
            }
            b"trak" => {
                let tp = tracks.get(trak_index).ok_or_else(|| Error::corrupt(h.offset, "unexpected 'trak'"))?;
                trak_index += 1;
                // A track the clip starts after (a short track of a longer movie) keeps no
                // sample: it is left out, as nginx does, rather than written empty.
                if tp.track.samples == 0 || tp.cut.s1 > tp.cut.s0 {
                    layout_trak(&mut out, moov, &h, tp)?;
                }
            }
            b"udta" if !clip.is_whole() => layout_udta(&mut out, moov, &h, clip)?,
            _ => out.copy_box(&h),
        }
    }
    out.close(mark)?;
    Ok(LaidOut { segs: out.segs, len: out.len })
}

/// The clip's span in movie presentation time, for timed metadata kept outside the tracks.
#[derive(Clone, Copy, Debug)]
pub struct Clip {
    /// Where the clip starts: presentation zero of the output.
    pub start: Time,
    /// Where it ends (seconds), if before the movie's end.
    pub end: Option<f64>,
}

impl Clip {
    fn is_whole(&self) -> bool {
        self.start.num <= 0 && self.end.is_none()
    }

    /// The start in units of 100 ns (Nero chapter times), rounded down.
    fn start_100ns(&self) -> u64 {
        let n = self.start.num.max(0).saturating_mul(10_000_000) / self.start.den.max(1);
        u64::try_from(n).unwrap_or(u64::MAX)
    }

    /// The end in units of 100 ns.
    fn end_100ns(&self) -> Option<u64> {
        self.end.map(|e| (e * 1e7).round() as u64)
    }
}

/// `udta` with its Nero chapter list (`chpl`) re-timed for the clip; every other child, and
/// bytes after the last whole box (QuickTime's 32-bit zero terminator), copied.
fn layout_udta(out: &mut Layout, moov: &[u8], udta: &BoxHeader, clip: &Clip) -> Result<()> {
    let mark = out.open(b"udta");
    let mut at = udta.body_start();
    for h in children(moov, udta.body_start(), udta.end()) {
        let Ok(h) = h else { break };
        if &h.kind == b"chpl" {
            if let Some(chpl) = retimed_chpl(moov, &h, clip) {
                out.lit(chpl);
            }
        } else {
            out.copy_box(&h);
        }
        at = h.end();
    }
    out.copy(at, udta.end().saturating_sub(at));
    out.close(mark)
}

/// A Nero chapter list (`chpl`: version/flags, 4 reserved bytes in version 1, an 8-bit count,
/// then per chapter a 64-bit start in 100 ns and an 8-bit-length title) shifted by the clip's
/// start and cut to its end: chapters that end before the start are dropped, the one that
/// spans it begins at 0, those that begin at or after the end are dropped. Every field is
/// checked against the box's end; a malformed list is dropped (`None`) rather than kept stale.
fn retimed_chpl(moov: &[u8], h: &BoxHeader, clip: &Clip) -> Option<Vec<u8>> {
    let b = body(moov, h).ok()?;
    let head = if b.u8_at(0)? == 1 { 8 } else { 4 };
    let count = usize::from(b.u8_at(head)?);
    let mut chapters = Vec::with_capacity(count);
    let mut pos = head + 1;
    for _ in 0..count {
        let t = b.u64_at(pos)?;
        let len = usize::from(b.u8_at(pos + 8)?);
        let title = b.get(pos + 8..pos + 9 + len)?;
        chapters.push((t, title));
        pos += 9 + len;
    }
    let (start, end) = (clip.start_100ns(), clip.end_100ns());
    let mut v = vec![0u8; 8];
    v[4..8].copy_from_slice(b"chpl");
    v.extend_from_slice(b.get(..head)?);
    v.push(0);
    let mut kept = 0u8;
    for (i, &(t, title)) in chapters.iter().enumerate() {
        let until = chapters.get(i + 1).map_or(u64::MAX, |c| c.0);
        if until <= start || end.is_some_and(|e| t >= e) {
            continue;
        }
        v.extend_from_slice(&t.saturating_sub(start).to_be_bytes());
        v.extend_from_slice(title);
        kept += 1;
    }
    v[8 + head] = kept;
    let size = u32::try_from(v.len()).ok()?;
    v[..4].copy_from_slice(&size.to_be_bytes());
    Some(v)
}

/// A laid-out moov, before the media base offset is known.
pub struct LaidOut {
    segs: Vec<Seg>,
    pub len: u64,
}

impl LaidOut {
    /// Wraps the moov with `ftyp` before and the `mdat` header after, fixing chunk offsets
    /// so that sample data begins at the prefix's end.
    pub fn finish(self, moov: Arc<MoovBytes>, ftyp: Vec<u8>, mdat_header: Vec<u8>, transient: bool) -> MoovSynth {
        let mut segs = Vec::with_capacity(self.segs.len() + 2);
        segs.push(Seg::Lit(ftyp));
        segs.extend(self.segs);
        segs.push(Seg::Lit(mdat_header));
        let segs: Vec<Seg> = segs.into_iter().filter(|s| s.len() > 0).collect();
        let mut starts = Vec::with_capacity(segs.len() + 1);
        let mut at = 0u64;
        for s in &segs {
            starts.push(at);
            at += s.len();
        }
        starts.push(at);
        MoovSynth { moov, segs, starts, len: at, base: at, transient, since_forget: AtomicU64::new(0) }
    }
}

fn layout_trak(out: &mut Layout, moov: &[u8], trak: &BoxHeader, tp: &TrackPlan<'_>) -> Result<()> {
    let mark = out.open(b"trak");
    for h in children(moov, trak.body_start(), trak.end()) {
        let h = h?;
        match &h.kind {
            b"tkhd" => {
                let (_, at, w) = tkhd_fields(moov, &h)?;
                out.patched(moov, &h, at, w, tp.cut.track_duration())?;
                if tp.cut.write_edit {
                    layout_edts(out, &tp.cut);
                }
            }
            b"edts" => {}
            b"mdia" => {
                let m = out.open(b"mdia");
                for c in children(moov, h.body_start(), h.end()) {
                    let c = c?;
                    match &c.kind {
                        b"mdhd" => {
                            let f = time_fields(moov, &c)?;
                            out.patched(moov, &c, f.duration_at, f.duration_width, tp.cut.media_duration)?;
                        }
                        b"minf" => {
                            let mi = out.open(b"minf");
                            for d in children(moov, c.body_start(), c.end()) {
                                let d = d?;
                                if &d.kind == b"stbl" {
                                    layout_stbl(out, moov, &d, tp)?;
                                } else {
                                    out.copy_box(&d);
                                }
                            }
                            out.close(mi)?;
                        }
                        _ => out.copy_box(&c),
                    }
                }
                out.close(m)?;
            }
            _ => out.copy_box(&h),
        }
    }
    out.close(mark)
}

fn layout_edts(out: &mut Layout, cut: &Cut) {
    let wide =
        cut.shown > u64::from(u32::MAX) || cut.delay > u64::from(u32::MAX) || cut.media_time > i64::from(i32::MAX);
    let mut entries: Vec<(u64, i64)> = Vec::new();
    if cut.delay > 0 {
        entries.push((cut.delay, -1));
    }
    entries.push((cut.shown, cut.media_time));
    let mut elst = Vec::new();
    elst.extend_from_slice(&[u8::from(wide), 0, 0, 0]);
    elst.extend_from_slice(&(entries.len() as u32).to_be_bytes());
    for (dur, mt) in entries {
        if wide {
            elst.extend_from_slice(&dur.to_be_bytes());
            elst.extend_from_slice(&mt.to_be_bytes());
        } else {
            elst.extend_from_slice(&(dur as u32).to_be_bytes());
            elst.extend_from_slice(&(mt as i32).to_be_bytes());
        }
        elst.extend_from_slice(&[0, 1, 0, 0]); // rate 1.0
    }
    let edts = out.open(b"edts");
    let e = out.open(b"elst");
    out.lit(elst);
    let _ = out.close(e);
    let _ = out.close(edts);
}

/// A full box header (size, type, version+flags) as literal bytes, size patched on close.
fn full_box(out: &mut Layout, moov: &[u8], h: &BoxHeader) -> Result<(usize, u64)> {
    let vf = body(moov, h)?.get(0..4).ok_or_else(|| Error::corrupt(h.offset, "box is too short"))?.to_vec();
    let mark = out.open(&h.kind);
    out.lit(vf);
    Ok(mark)
}

/// Emits the entries of a run table (`stts`, `ctts`, `sbgp`) for samples `s0..s1`, with the
/// entry count in front. The middle entries are copied verbatim. With `first`, the first
/// sample gets an entry of its own with that value (a trimmed duration).
fn cut_runs(out: &mut Layout, runs: &Runs<'_>, s0: u64, s1: u64, first: Option<u32>) {
    let lead = first.filter(|_| s1 > s0);
    let from = if lead.is_some() { s0 + 1 } else { s0 };
    let found = if s1 > from { runs.locate_clamped(from, s1 - 1) } else { None };
    let entry = |n: u64, v: u32| {
        let mut e = (n as u32).to_be_bytes().to_vec();
        e.extend_from_slice(&v.to_be_bytes());
        e
    };
    let count = u32::from(lead.is_some()) + found.map_or(0, |(p0, p1, _)| (p1.entry - p0.entry + 1) as u32);
    out.lit(count.to_be_bytes().to_vec());
    if let Some(v) = lead {
        out.lit(entry(1, v));
    }
    let Some((p0, p1, s1)) = found else { return };
    let (c0, v0) = runs.entry(p0.entry);
    if p0.entry == p1.entry {
        out.lit(entry(s1 - from, v0));
        return;
    }
    out.lit(entry(u64::from(c0) - p0.within, v0));
    let mid = p1.entry - p0.entry - 1;
    let at = runs.entries.moov_off + (p0.entry + 1) * 8;
    out.copy(at as u64, mid as u64 * 8);
    let (_, v1) = runs.entry(p1.entry);
    out.lit(entry(p1.within + 1, v1));
}

fn layout_stbl(out: &mut Layout, moov: &[u8], stbl: &BoxHeader, tp: &TrackPlan<'_>) -> Result<()> {
    let t = &tp.track;
    let Cut { s0, s1, .. } = tp.cut;
    let mark = out.open(b"stbl");
    for h in children(moov, stbl.body_start(), stbl.end()) {
        let h = h?;
        match &h.kind {
            b"stts" => {
                let m = full_box(out, moov, &h)?;
                let trimmed = (tp.cut.head_trim > 0)
                    .then(|| t.stts.value_of(s0).saturating_sub(u32::try_from(tp.cut.head_trim).unwrap_or(u32::MAX)));
                cut_runs(out, &t.stts, s0, s1, trimmed);
                out.close(m)?;
            }
            b"ctts" => {
                if let Some(c) = &t.ctts {
                    let m = full_box(out, moov, &h)?;
                    cut_runs(out, c, s0, s1, None);
                    out.close(m)?;
                }
            }
            b"sbgp" => {
                let b = body(moov, &h)?;
                let head = if b.u8_at(0) == Some(1) { 12 } else { 8 };
                let runs = Runs::new(super::tables::Entries::parse(moov, &h, head, 8)?);
                let m = out.open(b"sbgp");
                out.copy(h.body_start(), head as u64);
                cut_runs(out, &runs, s0, s1, None);
                out.close(m)?;
            }
            b"stss" => {
                if let Some(sync) = &t.stss {
                    let a = sync.first_index_at_or_after(s0);
                    let b = sync.first_index_at_or_after(s1);
                    let m = full_box(out, moov, &h)?;
                    out.lit(((b - a) as u32).to_be_bytes().to_vec());
                    out.push(Seg::Renumber {
                        at: sync.entries.moov_off + a * 4,
                        count: b - a,
                        width: 4,
                        minus: s0 as u32,
                    });
                    out.close(m)?;
                }
            }
            b"stsc" => layout_stsc(out, moov, &h, tp)?,
            b"stsz" | b"stz2" => {
                let m = out.open(b"stsz");
                out.lit(vec![0, 0, 0, 0]);
                match t.sizes {
                    super::tables::SampleSizes::Constant { size, .. } => {
                        out.lit(size.to_be_bytes().to_vec());
                        out.lit(((s1 - s0) as u32).to_be_bytes().to_vec());
                    }
                    super::tables::SampleSizes::Table(e) if e.width == 4 => {
                        out.lit(vec![0, 0, 0, 0]);
                        out.lit(((s1 - s0) as u32).to_be_bytes().to_vec());
                        out.copy((e.moov_off as u64) + s0 * 4, (s1 - s0) * 4);
                    }
                    super::tables::SampleSizes::Table(e) => {
                        out.lit(vec![0, 0, 0, 0]);
                        out.lit(((s1 - s0) as u32).to_be_bytes().to_vec());
                        out.push(Seg::Widen {
                            at: e.moov_off,
                            field: (e.width * 8) as u8,
                            first: s0 as usize,
                            count: (s1 - s0) as usize,
                        });
                    }
                    super::tables::SampleSizes::Nibbles { .. } => {
                        out.lit(vec![0, 0, 0, 0]);
                        out.lit(((s1 - s0) as u32).to_be_bytes().to_vec());
                        out.push(Seg::Widen {
                            at: h.body_start() as usize + 12,
                            field: 4,
                            first: s0 as usize,
                            count: (s1 - s0) as usize,
                        });
                    }
                }
                out.close(m)?;
            }
            b"stco" | b"co64" => layout_offsets(out, tp)?,
            b"sdtp" => {
                let m = full_box(out, moov, &h)?;
                let avail = h.body_len().saturating_sub(4);
                let from = s0.min(avail);
                let to = s1.min(avail);
                out.copy(h.body_start() + 4 + from, to - from);
                out.close(m)?;
            }
            b"stps" | b"stsh" | b"padb" | b"subs" | b"saiz" | b"saio" | b"cslg" => {}
            _ => out.copy_box(&h),
        }
    }
    out.close(mark)
}

/// `stsc` for the kept chunks: the first chunk may lose samples at its head, the last at its
/// tail; the chunks between keep their entries, renumbered.
fn layout_stsc(out: &mut Layout, moov: &[u8], h: &BoxHeader, tp: &TrackPlan<'_>) -> Result<()> {
    let t = &tp.track;
    let Cut { s0, s1, .. } = tp.cut;
    let m = full_box(out, moov, h)?;
    let Some((first, last)) = tp.chunks else {
        out.lit(0u32.to_be_bytes().to_vec());
        return out.close(m);
    };
    let entry = |fc: u64, spc: u64, desc: u32| {
        let mut e = (fc as u32).to_be_bytes().to_vec();
        e.extend_from_slice(&(spc as u32).to_be_bytes());
        e.extend_from_slice(&desc.to_be_bytes());
        e
    };
    let (c0, c1) = (first.chunk + 1, last.chunk + 1); // 1-based
    if c0 == c1 {
        out.lit(1u32.to_be_bytes().to_vec());
        out.lit(entry(1, s1 - s0, first.desc));
        return out.close(m);
    }
    let head = u64::from(first.samples_per_chunk) - (s0 - first.first_sample);
    let tail = s1 - last.first_sample;
    // Entries whose first chunk lies strictly between c0 + 1 and c1.
    let (a, b) =
        if c1 > c0 + 1 { (t.stsc.first_entry_after(c0 + 1), t.stsc.first_entry_after(c1 - 1)) } else { (0, 0) };
    let middle = b.saturating_sub(a);
    let count = 1 + if c1 > c0 + 1 { 1 + middle } else { 0 } + 1;
    out.lit((count as u32).to_be_bytes().to_vec());
    out.lit(entry(1, head, first.desc));
    if c1 > c0 + 1 {
        let second = t.stsc.locate_chunk(c0 + 1 - 1).unwrap_or((first.samples_per_chunk, first.desc));
        out.lit(entry(2, u64::from(second.0), second.1));
        out.push(Seg::Renumber {
            at: t.stsc.entries.moov_off + a * 12,
            count: middle,
            width: 12,
            minus: (c0 - 1) as u32,
        });
    }
    out.lit(entry(c1 - c0 + 1, tail, last.desc));
    out.close(m)
}

fn layout_offsets(out: &mut Layout, tp: &TrackPlan<'_>) -> Result<()> {
    let t = &tp.track;

    let out_w: u8 = if tp.co64 { 8 } else { 4 };
    let m = out.open(if tp.co64 { b"co64" } else { b"stco" });
    out.lit(vec![0, 0, 0, 0]);
    let Some((first, last)) = tp.chunks else {
        out.lit(0u32.to_be_bytes().to_vec());
        return out.close(m);
    };
    let count = last.chunk - first.chunk + 1;
    out.lit((count as u32).to_be_bytes().to_vec());
    // The data range starts at the earliest first sample of all tracks: `sub` is applied by
    // the caller through `rel`, computed against the same origin.
    out.push(Seg::Offset { rel: tp.first_offset, out_w });
    out.push(Seg::Offsets {
        at: t.offsets.entries.moov_off + (first.chunk as usize + 1) * t.offsets.entries.width,
        count: (count - 1) as usize,
        in_w: t.offsets.entries.width as u8,
        out_w,
        sub: 0,
    });
    out.close(m)
}

/// Sets the origin of the media data: every chunk offset becomes `offset − data_start + base`.
pub fn rebase(synth: &mut LaidOut, data_start: u64) {
    for seg in &mut synth.segs {
        match seg {
            Seg::Offset { rel, .. } => *rel = rel.wrapping_sub(data_start),
            Seg::Offsets { sub, .. } => *sub = data_start,
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `chpl` box of `version` with chapters (start in 100 ns, title) and a `count` field.
    fn chpl(version: u8, chapters: &[(u64, &str)], count: u8) -> Vec<u8> {
        let mut b = vec![version, 0, 0, 0];
        if version == 1 {
            b.extend_from_slice(&[0, 0, 0, 0]);
        }
        b.push(count);
        for (t, title) in chapters {
            b.extend_from_slice(&t.to_be_bytes());
            b.push(title.len() as u8);
            b.extend_from_slice(title.as_bytes());
        }
        let mut v = ((b.len() + 8) as u32).to_be_bytes().to_vec();
        v.extend_from_slice(b"chpl");
        v.extend_from_slice(&b);
        v
    }

    fn retime(bytes: &[u8], start_s: i128, end: Option<f64>) -> Option<Vec<u8>> {
        let h = super::super::boxes::children(bytes, 0, bytes.len() as u64).next().unwrap().unwrap();
        retimed_chpl(bytes, &h, &Clip { start: Time { num: start_s, den: 1 }, end })
    }

    const S: u64 = 10_000_000;

    #[test]
    fn chapters_are_shifted_cut_and_checked() {
        let three = [(0, "One"), (20 * S, "Two"), (40 * S, "Three")];
        for version in [0, 1] {
            let src = chpl(version, &three, 3);
            assert_eq!(retime(&src, 25, None).unwrap(), chpl(version, &[(0, "Two"), (15 * S, "Three")], 2));
            assert_eq!(retime(&src, 25, Some(39.0)).unwrap(), chpl(version, &[(0, "Two")], 1));
            assert_eq!(retime(&src, 20, Some(45.0)).unwrap(), chpl(version, &[(0, "Two"), (20 * S, "Three")], 2));
            assert_eq!(retime(&src, 0, Some(20.0)).unwrap(), chpl(version, &[(0, "One")], 1));
            // A count larger than the entries, a title running past the box: dropped.
            assert_eq!(retime(&chpl(version, &three, 4), 25, None), None);
            let mut cut_short = src.clone();
            cut_short.truncate(src.len() - 2);
            cut_short[..4].copy_from_slice(&((src.len() - 2) as u32).to_be_bytes());
            assert_eq!(retime(&cut_short, 25, None), None);
            assert_eq!(retime(&chpl(version, &[], 0), 25, None).unwrap(), chpl(version, &[], 0));
        }
    }
}
