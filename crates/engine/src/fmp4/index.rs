//! The fragment index: what a seek into a fragmented MP4 needs to know, found by walking the
//! file's top-level boxes and reading each `moof` with one `pread` (never an `mdat` payload).
//! Per fragment it keeps the `moof`'s place and bytes (small; the seek rewrites them), the
//! `mdat` that follows, and per track fragment the decode-time range, sample count, whether
//! the first sample is a sync sample, the first keyframe's composition time and the byte
//! range of its data. Decode times come from `tfdt`, or from the running sum of durations
//! when a fragment has none.
//!
//! Everything read from the file is checked: every `trun`'s data must lie inside the `mdat`
//! that follows its `moof` (and so inside the file), a track's fragments must not go back in
//! decode time, and the totals are bounded ([`MAX_MOOF_BYTES`], [`MAX_SAMPLES`],
//! [`MAX_TRAFS`]) before memory grows with them.

use super::boxes::{self, is_sync, Tfdt, Tfhd, Trex, Trun};
use crate::media::Source;
use crate::mp4::boxes::{children, walk_top, BoxHeader, FourCc};
use crate::mp4::track::Edit;
use crate::mp4::Movie;
use crate::{Error, Result};
use std::ops::Range;

/// The most `moof` bytes kept per file (a 2-hour film in 2 s fragments has about 10 MB).
pub const MAX_MOOF_BYTES: usize = 256 << 20;
/// The largest single `moof`.
pub const MAX_MOOF: u64 = 16 << 20;
/// The most samples in all fragments of a file (a 10-hour film at 60 fps with audio has
/// about 4 million).
pub const MAX_SAMPLES: u64 = 1 << 25;
/// The most track fragments in a file.
pub const MAX_TRAFS: usize = 1 << 20;

/// What the index knows of one track (from the moov).
#[derive(Clone, Debug)]
pub struct TrackInfo {
    pub id: u32,
    pub timescale: u32,
    pub handler: FourCc,
    pub edit: Edit,
    pub trex: Trex,
    /// Samples described in the moov itself (non-zero only in a file that mixes both).
    pub moov_samples: u64,
    /// Decode time after the moov's samples: where the fragments start without a `tfdt`.
    pub moov_duration: u64,
}

/// One track fragment (`traf`).
#[derive(Clone, Debug)]
pub struct Traf {
    /// Index into [`FragmentIndex::tracks`].
    pub track: usize,
    /// The `traf` box, offsets relative to the fragment's moof bytes.
    pub traf: BoxHeader,
    pub tfhd: Tfhd,
    /// The `tfdt` (offsets relative to the moof bytes), when there is one.
    pub tfdt: Option<Tfdt>,
    /// Decode time of the first sample (track timescale).
    pub dts: u64,
    /// Sum of the sample durations.
    pub duration: u64,
    pub samples: u64,
    /// The first sample is a sync sample.
    pub first_sync: bool,
    /// Composition time (decode time + offset) of the first sync sample, if any.
    pub keyframe_cts: Option<i64>,
    /// Earliest composition time, and the latest composition time + duration.
    pub cts_min: i64,
    pub cts_end: i64,
    /// Bytes of sample data.
    pub bytes: u64,
    /// Where the track fragment's base data offset is (file offset): explicit, the moof, or
    /// the end of the previous track fragment's data.
    pub base: u64,
}

/// One movie fragment: a `moof` and the `mdat` after it.
#[derive(Clone, Debug)]
pub struct Fragment {
    /// The `moof` box (file offsets).
    pub moof: BoxHeader,
    /// The first `mdat` after it (file offsets): every sample of the fragment lies in it.
    pub mdat: BoxHeader,
    /// The moof's bytes in [`FragmentIndex::moofs`].
    pub bytes: Range<usize>,
    /// Its track fragments in [`FragmentIndex::trafs`].
    pub trafs: Range<usize>,
    /// `mfhd` sequence number.
    pub sequence: u32,
}

/// A `sidx` and whether it agrees with the fragments found by the walk.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct SidxSummary {
    pub offset: u64,
    pub references: u32,
    pub timescale: u32,
    /// Every media reference starts at a fragment (or a box before one) and the sizes add up.
    pub agrees: bool,
}

/// An `mfra`'s random-access entries and whether they point at fragments.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct MfraSummary {
    pub offset: u64,
    pub entries: u64,
    pub agrees: bool,
}

/// The fragment index of one file.
#[derive(Clone, Debug, Default)]
pub struct FragmentIndex {
    pub tracks: Vec<TrackInfo>,
    pub fragments: Vec<Fragment>,
    pub trafs: Vec<Traf>,
    /// Every moof's bytes, back to back.
    pub moofs: Vec<u8>,
    pub samples: u64,
    pub sidx: Vec<SidxSummary>,
    pub mfra: Option<MfraSummary>,
    /// Where an incomplete last fragment (left out) starts, when the file was cut short.
    pub cut_short_at: Option<u64>,
}

impl FragmentIndex {
    /// The bytes of fragment `f`'s moof.
    pub fn moof_bytes(&self, f: &Fragment) -> &[u8] {
        self.moofs.get(f.bytes.clone()).unwrap_or(&[])
    }

    /// The track fragments of `f`.
    pub fn trafs_of(&self, f: &Fragment) -> &[Traf] {
        self.trafs.get(f.trafs.clone()).unwrap_or(&[])
    }
}

/// Calls `f` with each `trun` of a track fragment and the file offset of its data, in order,
/// and returns the end of the last run's data (the next track fragment's implied base).
/// `buf` is the moof's bytes, `moof_at` its file offset.
pub fn for_each_run(
    buf: &[u8],
    moof_at: u64,
    traf: &BoxHeader,
    tfhd: &Tfhd,
    base: u64,
    mut f: impl FnMut(&Trun, u64, u64) -> Result<()>,
) -> Result<u64> {
    let mut next = base;
    for h in children(buf, traf.body_start(), traf.end()) {
        let h = h.map_err(|e| at_file(e, moof_at))?;
        if &h.kind != b"trun" {
            continue;
        }
        let run = boxes::trun(buf, &h).map_err(|e| at_file(e, moof_at))?;
        let start = match run.data_offset {
            Some((off, _)) => {
                let s = i128::from(base) + i128::from(off);
                u64::try_from(s).map_err(|_| {
                    Error::corrupt(moof_at + h.offset, "'trun' data offset points before the start of the file")
                })?
            }
            None => next,
        };
        let len = run.data_len(buf, tfhd);
        let end = start
            .checked_add(len)
            .ok_or_else(|| Error::corrupt(moof_at + h.offset, "'trun' data runs past 2^64 bytes"))?;
        f(&run, start, end)?;
        next = end;
    }
    Ok(next)
}

/// Moof-relative error offsets → file offsets.
fn at_file(e: Error, moof_at: u64) -> Error {
    match e {
        Error::Corrupt { offset, what } => Error::corrupt(offset.saturating_add(moof_at), what),
        e => e,
    }
}

/// The raw material of an index: each fragment's `moof` and `mdat` headers and the moofs'
/// bytes, as read from the file (or from an index cache file), before they are parsed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Gathered {
    /// (moof, mdat) headers, file offsets, in file order.
    pub pairs: Vec<(BoxHeader, BoxHeader)>,
    /// The moofs' bytes, back to back.
    pub bytes: Vec<u8>,
    pub sidx: Vec<SidxSummary>,
    pub mfra: Option<MfraSummary>,
    /// Where an incomplete last fragment starts, when the file was cut short there.
    pub cut_short_at: Option<u64>,
}

/// Walks the top-level boxes of `src` and reads every moof.
///
/// A file cut short after its last complete fragment (a recording still being written, a
/// partial copy) is indexed up to that fragment: the box the walk could not read, or a last
/// `moof` without its `mdat`, is left out and its offset kept in `cut_short_at`. A fault
/// anywhere before is an error.
pub fn gather(src: &Source) -> Result<Gathered> {
    let (mut top, fault) = walk_top(src, src.len, true);
    let mut g = Gathered::default();
    let last = |kind: &[u8; 4], boxes: &[BoxHeader]| boxes.iter().rposition(|b| &b.kind == kind);
    if let Some(e) = fault {
        // Only a box that runs past the end of the file, right after a complete fragment (or
        // after a moof whose mdat it is), is a cut-short tail.
        let at = top.boxes.last().map_or(0, |b| b.end());
        let tail = top.boxes.len() < crate::mp4::boxes::MAX_TOP_BOXES && runs_past_end(src, at);
        match (tail, last(b"moof", &top.boxes), last(b"mdat", &top.boxes)) {
            (true, Some(f), Some(d)) if f < d => {}
            (true, Some(f), _) if f + 1 == top.boxes.len() => top.boxes.truncate(f),
            _ => return Err(e),
        }
        g.cut_short_at = Some(top.boxes.last().map_or(0, |b| b.end()));
    } else if let Some(f) = last(b"moof", &top.boxes).filter(|&f| f + 1 == top.boxes.len()) {
        // The file ends with a moof: a fragment whose data was never written.
        g.cut_short_at = Some(top.boxes[f].offset);
        top.boxes.truncate(f);
    }
    for (i, h) in top.boxes.iter().enumerate() {
        match &h.kind {
            b"moof" => {}
            b"sidx" => {
                if let Some(s) = read_sidx(src, h, &top.boxes) {
                    g.sidx.push(s);
                }
                continue;
            }
            b"mfra" => {
                g.mfra = read_mfra(src, h, &top.boxes);
                continue;
            }
            _ => continue,
        }
        let mdat = top.boxes[i + 1..]
            .iter()
            .take_while(|b| &b.kind != b"moof")
            .find(|b| &b.kind == b"mdat")
            .copied()
            .ok_or_else(|| Error::corrupt(h.offset, "'moof' without an 'mdat' after it"))?;
        check_moof_size(h, g.bytes.len())?;
        let from = g.bytes.len();
        g.bytes.resize(from + h.size as usize, 0);
        src.read_exact_at(&mut g.bytes[from..], h.offset)
            .map_err(|e| Error::io(format!("cannot read 'moof' at offset {}", h.offset), e))?;
        g.pairs.push((*h, mdat));
    }
    Ok(g)
}

/// Whether the box header at `at` is cut by the end of the file, or claims more bytes than
/// the file has left (as a box still being written does), rather than being malformed.
fn runs_past_end(src: &Source, at: u64) -> bool {
    use crate::mp4::boxes::ReadBe;
    let left = src.len.saturating_sub(at);
    let mut b = [0u8; 16];
    let n = left.min(16) as usize;
    if src.read_exact_at(&mut b[..n], at).is_err() {
        return false;
    }
    let b = &b[..n];
    match b.u32_at(0) {
        None => true,
        Some(1) => b.u64_at(8).is_none_or(|size| size > left),
        Some(size) => size >= 8 && u64::from(size) > left,
    }
}

/// Refuses a moof over [`MAX_MOOF`], or one that would take the total over [`MAX_MOOF_BYTES`].
fn check_moof_size(h: &BoxHeader, held: usize) -> Result<()> {
    if h.size > MAX_MOOF {
        return Err(Error::Unsupported(format!("a 'moof' of {} bytes is over the limit of {MAX_MOOF}", h.size)));
    }
    if held.saturating_add(h.size as usize) > MAX_MOOF_BYTES {
        return Err(Error::Unsupported(format!("the file's 'moof' boxes hold more than {MAX_MOOF_BYTES} bytes")));
    }
    Ok(())
}

/// Builds the index of `movie` (opened from `src`).
pub fn build(src: &Source, movie: &Movie) -> Result<FragmentIndex> {
    parse(movie, gather(src)?)
}

/// Parses gathered moofs into the index of `movie`, with every check of the format (the
/// same whether the moofs came from the file or from a cache file).
pub fn parse(movie: &Movie, g: Gathered) -> Result<FragmentIndex> {
    let trex = boxes::trex_all(&movie.moov, &movie.root)?;
    let mut index =
        FragmentIndex { sidx: g.sidx, mfra: g.mfra, cut_short_at: g.cut_short_at, ..FragmentIndex::default() };
    for t in movie.tracks()? {
        let tr =
            trex.iter().find(|x| x.track_id == t.id).copied().unwrap_or(Trex { track_id: t.id, ..Trex::default() });
        index.tracks.push(TrackInfo {
            id: t.id,
            timescale: t.mdhd.timescale,
            handler: t.handler,
            edit: t.edit,
            trex: tr,
            moov_samples: t.samples,
            moov_duration: t.stts.sum(0, t.samples),
        });
    }
    let mut next_dts: Vec<u64> = index.tracks.iter().map(|t| t.moov_duration).collect();
    let mut last_dts: Vec<Option<u64>> = vec![None; index.tracks.len()];
    let mut from = 0usize;
    for (h, mdat) in &g.pairs {
        check_moof_size(h, from)?;
        let to = from + h.size as usize;
        let buf = g.bytes.get(from..to).ok_or_else(|| Error::corrupt(h.offset, "'moof' bytes missing"))?;
        let local = BoxHeader { offset: 0, ..*h };
        let first_traf = index.trafs.len();
        let mut sequence = 0;
        let mut prev_end = h.offset;
        for c in children(buf, local.body_start(), local.end()) {
            let c = c.map_err(|e| at_file(e, h.offset))?;
            match &c.kind {
                b"mfhd" => {
                    use crate::mp4::boxes::ReadBe;
                    sequence = crate::mp4::tables::body(buf, &c).ok().and_then(|b| b.u32_at(4)).unwrap_or(0);
                }
                b"traf" => {
                    if index.trafs.len() >= MAX_TRAFS {
                        return Err(Error::Unsupported(format!("more than {MAX_TRAFS} track fragments")));
                    }
                    let t = read_traf(buf, h, &c, mdat, &index.tracks, prev_end, &mut next_dts, &mut last_dts)?;
                    prev_end = t.1;
                    index.samples = index.samples.saturating_add(t.0.samples);
                    if index.samples > MAX_SAMPLES {
                        return Err(Error::Unsupported(format!("more than {MAX_SAMPLES} samples in fragments")));
                    }
                    index.trafs.push(t.0);
                }
                _ => {}
            }
        }
        index.fragments.push(Fragment {
            moof: *h,
            mdat: *mdat,
            bytes: from..to,
            trafs: first_traf..index.trafs.len(),
            sequence,
        });
        from = to;
    }
    index.moofs = g.bytes;
    index.moofs.truncate(from);
    Ok(index)
}

/// Reads one `traf`: returns it and the end of its data.
#[allow(clippy::too_many_arguments)]
fn read_traf(
    buf: &[u8],
    moof: &BoxHeader,
    traf: &BoxHeader,
    mdat: &BoxHeader,
    tracks: &[TrackInfo],
    prev_end: u64,
    next_dts: &mut [u64],
    last_dts: &mut [Option<u64>],
) -> Result<(Traf, u64)> {
    let here = moof.offset + traf.offset;
    let tfhd_h = crate::mp4::boxes::find(buf, traf.body_start(), traf.end(), b"tfhd")
        .map_err(|e| at_file(e, moof.offset))?
        .ok_or_else(|| Error::corrupt(here, "'traf' has no 'tfhd'"))?;
    let id = boxes::tfhd_track_id(buf, &tfhd_h).map_err(|e| at_file(e, moof.offset))?;
    let k = tracks
        .iter()
        .position(|t| t.id == id)
        .ok_or_else(|| Error::corrupt(here, format!("'traf' of track {id}, which the moov does not have")))?;
    let tfhd = boxes::tfhd(buf, &tfhd_h, &tracks[k].trex).map_err(|e| at_file(e, moof.offset))?;
    let tfdt = match crate::mp4::boxes::find(buf, traf.body_start(), traf.end(), b"tfdt")
        .map_err(|e| at_file(e, moof.offset))?
    {
        Some(h) => Some(boxes::tfdt(buf, &h).map_err(|e| at_file(e, moof.offset))?),
        None => None,
    };
    let dts = tfdt.map_or(next_dts[k], |t| t.value);
    if let Some(prev) = last_dts[k] {
        if dts < prev {
            return Err(Error::corrupt(
                here,
                format!("fragments out of order: track {id} goes back in decode time ({dts} after {prev})"),
            ));
        }
    }
    let base = match tfhd.base_data_offset {
        Some((b, _)) => b,
        None if tfhd.flags & boxes::TFHD_DEFAULT_BASE_IS_MOOF != 0 => moof.offset,
        None => prev_end,
    };
    let mut t = Traf {
        track: k,
        traf: *traf,
        tfhd,
        tfdt,
        dts,
        duration: 0,
        samples: 0,
        first_sync: false,
        keyframe_cts: None,
        cts_min: i64::MAX,
        cts_end: i64::MIN,
        bytes: 0,
        base,
    };
    let (body_start, body_end) = (mdat.body_start(), mdat.end());
    let mut time = i128::from(dts);
    let end = for_each_run(buf, moof.offset, traf, &tfhd, base, |run, start, end| {
        if run.count > 0 && (start < body_start || end > body_end) {
            return Err(Error::corrupt(
                moof.offset + traf.offset,
                format!("track {id}: 'trun' data {start}..{end} lies outside its 'mdat' ({body_start}..{body_end})"),
            ));
        }
        if u64::from(run.count) > MAX_SAMPLES {
            return Err(Error::Unsupported(format!("a 'trun' of {} samples", run.count)));
        }
        for i in 0..run.count {
            let s = run.sample(buf, i, &tfhd);
            let cts = time + i128::from(s.cto);
            let cts = i64::try_from(cts).map_err(|_| Error::corrupt(here, "decode time overflows"))?;
            if t.samples == 0 {
                t.first_sync = is_sync(s.flags);
            }
            if t.keyframe_cts.is_none() && is_sync(s.flags) {
                t.keyframe_cts = Some(cts);
            }
            t.cts_min = t.cts_min.min(cts);
            t.cts_end = t.cts_end.max(cts.saturating_add(i64::from(s.duration)));
            time += i128::from(s.duration);
            t.samples += 1;
            if t.samples > MAX_SAMPLES {
                return Err(Error::Unsupported(format!("more than {MAX_SAMPLES} samples in fragments")));
            }
        }
        t.bytes = t.bytes.saturating_add(end - start);
        Ok(())
    })?;
    t.duration = u64::try_from(time - i128::from(dts)).unwrap_or(u64::MAX);
    if t.samples == 0 {
        t.cts_min = i64::try_from(dts).unwrap_or(i64::MAX);
        t.cts_end = t.cts_min;
    }
    next_dts[k] = dts.checked_add(t.duration).ok_or_else(|| Error::corrupt(here, "decode time overflows"))?;
    last_dts[k] = Some(dts);
    Ok((t, end))
}

/// Reads a top-level `sidx` (at most 64 KiB of it) and checks it against the boxes walked.
fn read_sidx(src: &Source, h: &BoxHeader, top: &[BoxHeader]) -> Option<SidxSummary> {
    use crate::mp4::boxes::ReadBe;
    let len = usize::try_from(h.body_len()).ok().filter(|&l| l <= 64 << 10)?;
    let mut b = vec![0u8; len];
    src.read_exact_at(&mut b, h.body_start()).ok()?;
    let v = b.u8_at(0)?;
    let timescale = b.u32_at(8)?;
    let (first_offset, at) = if v == 0 { (u64::from(b.u32_at(16)?), 20) } else { (b.u64_at(20)?, 28) };
    let count = b.u16_at(at + 2)?;
    let mut s = SidxSummary { offset: h.offset, references: u32::from(count), timescale, agrees: true };
    let mut pos = h.end().checked_add(first_offset)?;
    for i in 0..usize::from(count) {
        let r = b.u32_at(at + 4 + i * 12)?;
        let size = u64::from(r & 0x7FFF_FFFF);
        if r >> 31 == 0 && !box_at(top, pos) {
            s.agrees = false;
        }
        pos = pos.checked_add(size)?;
    }
    if pos > src.len || !(pos == src.len || box_at(top, pos)) {
        s.agrees = false;
    }
    Some(s)
}

/// Reads a top-level `mfra` (at most 16 MiB) and checks that its `tfra` entries point at moofs.
fn read_mfra(src: &Source, h: &BoxHeader, top: &[BoxHeader]) -> Option<MfraSummary> {
    use crate::mp4::boxes::ReadBe;
    let len = usize::try_from(h.size).ok().filter(|&l| l <= 16 << 20)?;
    let mut b = vec![0u8; len];
    src.read_exact_at(&mut b, h.offset).ok()?;
    let root = BoxHeader { offset: 0, ..*h };
    let mut s = MfraSummary { offset: h.offset, entries: 0, agrees: true };
    for c in children(&b, root.body_start(), root.end()) {
        let c = c.ok()?;
        if &c.kind != b"tfra" {
            continue;
        }
        let body = crate::mp4::tables::body(&b, &c).ok()?;
        let v = body.u8_at(0)?;
        let sizes = body.u32_at(8)?;
        let count = body.u32_at(12)?;
        let w = if v == 1 { 16 } else { 8 };
        let entry = w + 3 + ((sizes >> 4) & 3) as usize + ((sizes >> 2) & 3) as usize + (sizes & 3) as usize;
        if (count as usize).checked_mul(entry)?.checked_add(16)? > body.len() {
            s.agrees = false;
            continue;
        }
        for i in 0..count as usize {
            let at = 16 + i * entry;
            let moof = if v == 1 { body.u64_at(at + 8)? } else { u64::from(body.u32_at(at + 4)?) };
            if !top.binary_search_by_key(&moof, |x| x.offset).is_ok_and(|i| &top[i].kind == b"moof") {
                s.agrees = false;
            }
        }
        s.entries += u64::from(count);
    }
    Some(s)
}

/// Whether a top-level box starts at `offset` (the walk lists them in file order).
fn box_at(top: &[BoxHeader], offset: u64) -> bool {
    top.binary_search_by_key(&offset, |x| x.offset).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::sync::Arc;

    fn bx(kind: &[u8; 4], parts: &[&[u8]]) -> Vec<u8> {
        let body: Vec<u8> = parts.concat();
        let mut v = ((body.len() + 8) as u32).to_be_bytes().to_vec();
        v.extend_from_slice(kind);
        v.extend_from_slice(&body);
        v
    }

    fn be(v: u32) -> [u8; 4] {
        v.to_be_bytes()
    }

    /// A one-track fragmented movie whose moof has two track fragments with no base offset
    /// flags (the second one's data starts where the first one's ends), no `tfdt`, defaults
    /// from `trex` only, and a first-sample-flags override.
    fn movie_bytes() -> Vec<u8> {
        let mut mvhd = vec![0u8; 100];
        mvhd[12..16].copy_from_slice(&be(1000));
        let mut tkhd = vec![0u8; 84];
        tkhd[12..16].copy_from_slice(&be(1));
        let mut mdhd = vec![0u8; 24];
        mdhd[12..16].copy_from_slice(&be(1000));
        let mut hdlr = vec![0u8; 24];
        hdlr[8..12].copy_from_slice(b"vide");
        let empty = |k: &[u8; 4], n: usize| bx(k, &[&vec![0u8; n]]);
        let stbl = bx(
            b"stbl",
            &[&empty(b"stsd", 8), &empty(b"stts", 8), &empty(b"stsc", 8), &empty(b"stsz", 12), &empty(b"stco", 8)],
        );
        let minf = bx(b"minf", &[&stbl]);
        let mdia = bx(b"mdia", &[&bx(b"mdhd", &[&mdhd]), &bx(b"hdlr", &[&hdlr]), &minf]);
        let trak = bx(b"trak", &[&bx(b"tkhd", &[&tkhd]), &mdia]);
        // trex: track 1, description 1, duration 100, size 10, flags non-sync.
        let trex = bx(b"trex", &[&[0; 4], &be(1), &be(1), &be(100), &be(10), &be(0x0001_0000)]);
        let moov = bx(b"moov", &[&bx(b"mvhd", &[&mvhd]), &trak, &bx(b"mvex", &[&trex])]);
        let ftyp = bx(b"ftyp", &[b"isom", &[0; 4]]);
        let tfhd = bx(b"tfhd", &[&[0; 4], &be(1)]);
        let mfhd = bx(b"mfhd", &[&[0; 4], &be(7)]);
        // The moof's size is known before the data offset is: 8 + 16 + 2 × traf.
        // traf 1: trun with data offset and first-sample flags (sync), 3 samples.
        // traf 2: trun without data offset, 2 samples.
        let traf_len = |trun_body: usize| 8 + tfhd.len() + 8 + trun_body;
        let moof_len = 8 + mfhd.len() + traf_len(16) + traf_len(8);
        let data_offset = (moof_len + 8) as u32; // the mdat's body
        let trun1 = bx(b"trun", &[&be(0x005), &be(3), &be(data_offset), &be(0)]);
        let trun2 = bx(b"trun", &[&be(0), &be(2)]);
        let moof = bx(b"moof", &[&mfhd, &bx(b"traf", &[&tfhd, &trun1]), &bx(b"traf", &[&tfhd, &trun2])]);
        assert_eq!(moof.len(), moof_len);
        let mdat = bx(b"mdat", &[&[0xAB; 50]]);
        [ftyp, moov, moof, mdat].concat()
    }

    fn open(data: &[u8], name: &str) -> Movie {
        let path = std::env::temp_dir().join(format!("loomiere-fmp4-{name}-{}", std::process::id()));
        std::fs::File::create(&path).unwrap().write_all(data).unwrap();
        let file = std::fs::File::open(&path).unwrap();
        let _ = std::fs::remove_file(&path);
        Movie::open(Source::nameless(Arc::new(file), data.len() as u64)).unwrap()
    }

    #[test]
    fn implied_bases_running_times_and_defaults() {
        let data = movie_bytes();
        let movie = open(&data, "implied");
        assert!(movie.fragmented);
        let index = build(&movie.src, &movie).unwrap();
        assert_eq!(index.fragments.len(), 1);
        assert_eq!(index.fragments[0].sequence, 7);
        let (a, b) = (&index.trafs[0], &index.trafs[1]);
        let mdat_body = data.len() as u64 - 50;
        assert_eq!((a.dts, a.duration, a.samples, a.bytes, a.first_sync), (0, 300, 3, 30, true));
        assert_eq!(a.keyframe_cts, Some(0));
        // The second track fragment: no tfdt (running sum), data right after the first's.
        assert_eq!((b.dts, b.duration, b.samples, b.bytes, b.first_sync), (300, 200, 2, 20, false));
        assert_eq!(b.base, mdat_body + 30);
        assert!(b.keyframe_cts.is_none());
        // Defragmented: one data range of 50 bytes after a built moov.
        let plan =
            super::super::defrag::plan(&movie, &index, &super::super::defrag::whole(&index), "video/mp4").unwrap();
        let ranges: Vec<_> = plan
            .pieces()
            .iter()
            .filter_map(|p| match p {
                crate::plan::Piece::Source { offset, len } => Some((*offset, *len)),
                _ => None,
            })
            .collect();
        assert_eq!(ranges, vec![(mdat_body, 50)]);
    }

    #[test]
    fn data_outside_the_mdat_is_refused() {
        let mut data = movie_bytes();
        // The second trun now claims 3 samples: its data runs past the mdat.
        let at = data.windows(4).rposition(|w| w == b"trun").unwrap();
        data[at + 8..at + 12].copy_from_slice(&be(3));
        let movie = open(&data, "outside");
        let err = build(&movie.src, &movie).unwrap_err().to_string();
        assert!(err.contains("outside its 'mdat'"), "{err}");
    }
}
