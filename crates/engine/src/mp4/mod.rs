//! MP4 (ISO base media) seek and rewrite: the engine's MP4 half. It reads only the top-level
//! box headers, `ftyp` and `moov` (mapped for one-shot processes, read for `serve`; copied
//! when inside the file's first 4 KiB), and turns a request into a plan
//! whose synthesised part is a new `moov` emitted table by table from the source's, followed
//! by one byte range of the source's media data.
//!
//! Module map: `boxes` (header walk), `tables` (sample tables as views), `track` (one trak),
//! `seek` (time → samples, edit lists), `rewrite` (the new moov as segments), `inspect` (with
//! `codec`: what a sample description says).

pub mod boxes;
pub mod codec;
pub mod faststart;
pub mod inspect;
pub mod marks;
pub mod rewrite;
pub mod seek;
pub mod tables;
pub mod track;
pub mod whole;

#[cfg(test)]
mod tests;

use crate::plan::{Piece, Plan};
use crate::request::{Position, Request};
use crate::source::Source;
use crate::{Error, Result};
use boxes::{children, BoxHeader, TopLevel};
use rewrite::TrackPlan;
use std::ops::Deref;
use std::sync::Arc;
use track::Track;

pub use faststart::{faststart, Faststart};
pub use inspect::{inspect, inspect_with};

/// The largest `moov` loomiere will map (a 10-hour movie's moov is about 20 MB).
pub const MAX_MOOV: u64 = 512 << 20;
/// The smallest moov whose seek marks are kept in a file (`index_cache`).
pub const MARKS_MIN_MOOV: u64 = 256 << 10;
/// The largest `ftyp` copied into the output.
const MAX_FTYP: u64 = 64 << 10;

/// The bytes of the source `moov` box: mapped from the file, or owned (tests, fuzzing).
pub enum MoovBytes {
    Mapped(memmap2::Mmap),
    Owned(Vec<u8>),
}

impl MoovBytes {
    /// Drops this process's page-table entries for a mapped moov: the file's pages stay in
    /// the page cache and the next read faults them back in. A one-shot plan that writes its
    /// whole prefix (`cut`) calls it between planning phases and every [`FORGET_EVERY`] bytes
    /// while emitting, so its peak RSS holds about one table's pages rather than every page of
    /// the moov it has read. No-op for owned bytes.
    pub fn forget_pages(&self) {
        if let MoovBytes::Mapped(m) = self {
            // SAFETY: the mapping is read-only and file-backed: dropping its pages loses
            // nothing, and later reads see the same bytes, re-read from the page cache.
            let _ = unsafe { m.unchecked_advise(memmap2::UncheckedAdvice::DontNeed) };
        }
    }
}

/// Bytes of prefix a one-shot plan emits between two [`MoovBytes::forget_pages`].
pub const FORGET_EVERY: u64 = 1 << 20;

impl Deref for MoovBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            MoovBytes::Mapped(m) => m,
            MoovBytes::Owned(v) => v,
        }
    }
}

/// An opened MP4 file: its layout and its `moov`, ready to plan any number of requests. A
/// server may keep one per file and share it between viewers.
pub struct Movie {
    pub src: Source,
    pub top: TopLevel,
    /// The moov box, header included; offsets in its boxes are relative to its start.
    pub moov: Arc<MoovBytes>,
    /// The moov box header, relative to `moov` (offset 0).
    pub root: BoxHeader,
    ftyp: Vec<u8>,
    /// Planned once and dropped (not shared through a cache): forget the moov's pages as
    /// soon as a phase is done with them (see [`MoovBytes::forget_pages`]).
    transient: bool,
    /// Seek marks, when built or loaded (see [`marks`]).
    marks: Option<marks::Marks>,
    /// The file is a fragmented MP4 (`moof` boxes, or `mvex` in the moov).
    pub fragmented: bool,
    /// The fragment index of a fragmented movie, when built for reuse (`serve`).
    fragments: Option<Arc<crate::fmp4::FragmentIndex>>,
}

impl Movie {
    /// Reads the layout of `src` (the file's first 4 KiB with one read, then one read per
    /// top-level box beyond them) and maps its moov. A file without a moov is an error that
    /// says so; a fragmented one is marked `fragmented` and planned by `crate::fmp4`.
    /// The moov is mapped: a one-shot process (`cut`, CGI) reads only the pages a seek
    /// touches. If the file shrinks while mapped, touching a vanished page raises SIGBUS,
    /// which such a process turns into a clean error exit ([`crate::fault`]).
    pub fn open(src: Source) -> Result<Movie> {
        Movie::open_with(src, true, MAX_MOOV)
    }

    pub(crate) fn open_with(src: Source, map: bool, max_moov: u64) -> Result<Movie> {
        let head = boxes::read_head(&src, src.len);
        let (top, fault) = boxes::walk_top_in(&src, src.len, false, &head);
        let Some(moov) = top.moov else {
            return Err(fault.unwrap_or_else(|| {
                Error::corrupt(src.len, "no 'moov' box: not an MP4 file, or its index was never written")
            }));
        };
        if moov.size > MAX_MOOV {
            return Err(Error::Unsupported(format!(
                "the moov box is {} bytes, over the limit of {MAX_MOOV}",
                moov.size
            )));
        }
        let root = BoxHeader { offset: 0, ..moov };
        Movie::check_size(&root, max_moov)?;
        // Bytes already in `head`, or read with one pread.
        let in_head = |h: &BoxHeader| {
            let from = usize::try_from(h.offset).ok()?;
            head.get(from..from.checked_add(usize::try_from(h.size).ok()?)?)
        };
        let read = |h: &BoxHeader, what: &'static str| -> Result<Vec<u8>> {
            if let Some(bytes) = in_head(h) {
                return Ok(bytes.to_vec());
            }
            let mut v = vec![0u8; h.size as usize];
            src.read_exact_at(&mut v, h.offset).map_err(|e| Error::io(what, e))?;
            Ok(v)
        };
        // Mapped even when small: a copy into fresh memory costs a page fault per 4 KiB,
        // the mapping of cached file pages one per 16 pages (measured for issue 6).
        let bytes = match in_head(&moov) {
            Some(b) => MoovBytes::Owned(b.to_vec()),
            None if !map => MoovBytes::Owned(read(&moov, "cannot read moov")?),
            None => {
                // SAFETY: the mapping is read-only (shared with the page cache, never written
                // through). A truncation while mapped raises SIGBUS on the next touch of a
                // vanished page: only one-shot processes map, and they install
                // `crate::fault::exit_on_sigbus` (a clean error exit); `serve` reads instead.
                // A source without a local file (a remote object) is read.
                let mapped = src.as_local_file().map(|file| unsafe {
                    memmap2::MmapOptions::new().offset(moov.offset).len(moov.size as usize).map(file)
                });
                match mapped {
                    Some(Ok(m)) => MoovBytes::Mapped(m),
                    _ => MoovBytes::Owned(read(&moov, "cannot read moov")?),
                }
            }
        };
        let ftyp = match top.ftyp {
            Some(f) if f.size <= MAX_FTYP => read(&f, "cannot read ftyp")?,
            _ => Vec::new(),
        };
        let mut movie = Movie {
            src,
            top,
            moov: Arc::new(bytes),
            root,
            ftyp,
            transient: false,
            marks: None,
            fragmented: false,
            fragments: None,
        };
        // A moof, or an mvex announcing fragments: the fMP4 engine plans it (`crate::fmp4`).
        movie.fragmented = movie.top.fragmented
            || boxes::find(&movie.moov, movie.root.body_start(), movie.root.end(), b"mvex")?.is_some();
        Ok(movie)
    }

    /// The same file described by another `moov` made in memory (a fragmented movie seen as
    /// a progressive one, `crate::fmp4::defrag::in_place_moov`): its chunk offsets must be
    /// offsets in this file. Not fragmented, no marks.
    pub fn with_moov(&self, moov: Vec<u8>) -> Result<Movie> {
        let root = children(&moov, 0, moov.len() as u64)
            .next()
            .transpose()?
            .filter(|h| &h.kind == b"moov")
            .ok_or_else(|| Error::corrupt(0, "the made moov is not a 'moov'"))?;
        Ok(Movie {
            src: self.src.clone(),
            top: self.top.clone(),
            moov: Arc::new(MoovBytes::Owned(moov)),
            root,
            ftyp: self.ftyp.clone(),
            transient: false,
            marks: None,
            fragmented: false,
            fragments: None,
        })
    }

    /// The source `ftyp` box (empty when there is none or it is over 64 KiB).
    pub fn ftyp_bytes(&self) -> &[u8] {
        &self.ftyp
    }

    /// The fragment index, when built by [`Movie::build_indexes`].
    pub fn fragments(&self) -> Option<&Arc<crate::fmp4::FragmentIndex>> {
        self.fragments.as_ref()
    }

    /// Builds what later plans reuse: the seek marks, or for a fragmented movie its fragment
    /// index (for a movie kept by a server).
    pub fn build_indexes(&mut self) -> Result<()> {
        if self.fragmented {
            let index = crate::fmp4::index::build(&self.src, self)?;
            self.fragments = Some(Arc::new(index));
            return Ok(());
        }
        self.build_marks().map(|_| ())
    }

    /// Forgets the moov's pages when this movie is planned once (see `transient`).
    fn forget_pages(&self) {
        if self.transient {
            self.moov.forget_pages();
        }
    }

    /// The movie header's timescale and duration.
    pub fn header(&self) -> Result<track::TimeFields> {
        let mvhd = boxes::find(&self.moov, self.root.body_start(), self.root.end(), b"mvhd")?
            .ok_or_else(|| Error::corrupt(self.top.moov.map_or(0, |m| m.offset), "'moov' has no 'mvhd'"))?;
        track::time_fields(&self.moov, &mvhd)
    }

    /// Refuses a moov larger than `max` bytes (a server's `max_moov_bytes`, which bounds the
    /// work and memory one request may cost, like nginx's `mp4_max_buffer_size`).
    pub fn check_moov_size(&self, max: u64) -> Result<()> {
        Movie::check_size(&self.root, max)
    }

    fn check_size(root: &BoxHeader, max: u64) -> Result<()> {
        if root.size > max {
            return Err(Error::OverLimit(format!("the moov box is {} bytes, over max_moov_bytes {max}", root.size)));
        }
        Ok(())
    }

    /// What identifies this movie's marks: the file and its moov.
    pub fn key(&self) -> marks::MovieKey {
        let moov = self.top.moov.unwrap_or(self.root);
        let id = self.src.version.file_id();
        marks::MovieKey {
            dev: id.dev,
            ino: id.ino,
            len: self.src.len,
            mtime_ns: self
                .src
                .modified
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)),
            ctime_ns: id.ctime_ns,
            moov_offset: moov.offset,
            moov_size: moov.size,
        }
    }

    /// Whether plans of this movie start their scans at seek marks.
    pub fn has_marks(&self) -> bool {
        self.marks.is_some()
    }

    /// Builds the seek marks (one scan of the long tables) and keeps them: later plans
    /// jump near their targets. For a movie that will be planned many times.
    pub fn build_marks(&mut self) -> Result<&marks::Marks> {
        let built = marks::Marks::build(&self.tracks()?);
        Ok(self.marks.insert(built))
    }

    /// Uses seek marks stored under `dir` (see [`marks::load`]), or builds them and stores
    /// them there for the next process. Building scans whole tables, more than one seek
    /// reads, so it is done only when `dir` is writable: a directory this process cannot
    /// write costs one `access` call and plans without marks.
    /// A fragmented movie gets its fragment index the same way (see `crate::fmp4::cache`).
    pub fn use_marks_in(&mut self, dir: &std::path::Path) -> Result<()> {
        if self.fragmented {
            self.fragments = Some(Arc::new(crate::fmp4::cached_index(self, dir)?));
            return Ok(());
        }
        // A small moov is scanned faster than a marks file is opened and checked.
        if self.root.size < MARKS_MIN_MOOV {
            return Ok(());
        }
        let key = self.key();
        let tracks = self.tracks()?;
        let found = marks::load(dir, &key, &tracks);
        let m = match found {
            Some(m) => m,
            None => {
                use rustix::fs::{accessat, Access, AtFlags, CWD};
                if accessat(CWD, dir, Access::WRITE_OK, AtFlags::EACCESS).is_err() {
                    return Ok(());
                }
                let m = marks::Marks::build(&tracks);
                let _ = marks::store(dir, &key, &m);
                m
            }
        };
        drop(tracks);
        self.marks = Some(m);
        Ok(())
    }

    /// Every track, in moov order, with its seek marks attached when the movie has them.
    pub fn tracks(&self) -> Result<Vec<Track<'_>>> {
        let mut tracks = self.bare_tracks()?;
        if let Some(m) = &self.marks {
            for (t, tm) in tracks.iter_mut().zip(&m.tracks) {
                t.attach(tm);
            }
        }
        Ok(tracks)
    }

    /// Every track, in moov order, without marks.
    fn bare_tracks(&self) -> Result<Vec<Track<'_>>> {
        let mut out = Vec::new();
        for h in children(&self.moov, self.root.body_start(), self.root.end()) {
            let h = h?;
            if &h.kind == b"trak" {
                out.push(Track::parse(&self.moov, &h).map_err(|e| self.at_file_offset(e))?);
            }
        }
        Ok(out)
    }

    /// Turns moov-relative error offsets into file offsets.
    fn at_file_offset(&self, e: Error) -> Error {
        match e {
            Error::Corrupt { offset, what } => {
                Error::Corrupt { offset: offset.saturating_add(self.top.moov.map_or(0, |m| m.offset)), what }
            }
            e => e,
        }
    }

    /// Duration in seconds: the movie header's, else the longest track's.
    pub fn duration(&self, tracks: &[Track<'_>]) -> Result<f64> {
        let h = self.header()?;
        if h.timescale > 0 && h.duration > 0 {
            return Ok(h.duration as f64 / f64::from(h.timescale));
        }
        Ok(tracks.iter().map(|t| t.seconds()).fold(0.0, f64::max))
    }

    /// The plan for `req`.
    pub fn plan(&self, req: &Request, content_type: &'static str) -> Result<Plan> {
        if self.fragmented {
            return crate::fmp4::plan(self, req, content_type);
        }
        self.plan_inner(req, content_type).map_err(|e| self.at_file_offset(e))
    }

    fn plan_inner(&self, req: &Request, content_type: &'static str) -> Result<Plan> {
        let secs = Position::mp4_seconds;
        let start = secs(req.start, "start")?.unwrap_or(0.0);
        let tracks = self.tracks()?;
        let header = self.header()?;
        let mts = header.timescale.max(1);
        let end = crate::request::clip_within(start, secs(req.end, "end")?, self.duration(&tracks)?)?;
        let begin = seek::find_start(&tracks, mts, start, req.exact)?;
        self.forget_pages();
        let mut plans = Vec::with_capacity(tracks.len());
        for (i, t) in tracks.into_iter().enumerate() {
            let cut = seek::cut_track(&t, i, &begin, end, mts, req.exact)?;
            let co64 = req.force_co64 || t.offsets.entries.width == 8;
            plans.push(TrackPlan { track: t, cut, co64, first_offset: 0, chunks: None });
        }
        let (data_start, data_end) = self.data_range(&mut plans)?;
        self.forget_pages();
        let payload = data_end - data_start;
        let movie_duration = plans.iter().map(|p| p.cut.track_duration()).max().unwrap_or(0);
        let mdat_header_len: u64 = if payload + 8 > u64::from(u32::MAX) { 16 } else { 8 };
        let clip = rewrite::Clip { start: begin.time, end };
        let mut laid = rewrite::layout_moov(&self.moov, &self.root, &plans, movie_duration, &clip)?;
        let prefix = self.ftyp.len() as u64 + laid.len + mdat_header_len;
        if prefix.saturating_add(payload) > u64::from(u32::MAX) && plans.iter().any(|p| !p.co64) {
            for p in &mut plans {
                p.co64 = true;
            }
            laid = rewrite::layout_moov(&self.moov, &self.root, &plans, movie_duration, &clip)?;
        }
        rewrite::rebase(&mut laid, data_start);
        self.forget_pages();
        let mdat_header = if mdat_header_len == 16 {
            let mut h = 1u32.to_be_bytes().to_vec();
            h.extend_from_slice(b"mdat");
            h.extend_from_slice(&(payload + 16).to_be_bytes());
            h
        } else {
            let mut h = ((payload + 8) as u32).to_be_bytes().to_vec();
            h.extend_from_slice(b"mdat");
            h
        };
        let synth = laid.finish(self.moov.clone(), self.ftyp.clone(), mdat_header, self.transient);
        let mut info = self.src.info(content_type);
        info.header_len = crate::plan::Synth::len(&synth);
        info.duration = Some(movie_duration as f64 / f64::from(mts));
        info.start = Some(begin.time.secs());
        let pieces = vec![Piece::Synth(Arc::new(synth)), Piece::Source { offset: data_start, len: payload }];
        Plan::new(self.src.clone(), pieces, info)
    }

    /// The source bytes that hold every kept sample: from the earliest first sample to the
    /// latest last sample. Checks that every kept chunk lies inside it and that it lies inside
    /// the file, so the new chunk offsets are right and a sink never meets a short file.
    fn data_range(&self, plans: &mut [TrackPlan<'_>]) -> Result<(u64, u64)> {
        let mut range: Option<(u64, u64)> = None;
        for p in plans.iter_mut() {
            let (s0, s1) = (p.cut.s0, p.cut.s1);
            if s1 <= s0 {
                continue;
            }
            let t = &p.track;
            let bad = || Error::corrupt(t.trak.offset, format!("track {}: sample tables do not agree", t.id));
            let (a, b) = t.stsc.locate_pair(s0, s1 - 1, t.offsets.len() as u64);
            let (a, b) = (a.ok_or_else(bad)?, b.ok_or_else(bad)?);
            // The last kept sample's chunk cannot come before the first's: only a `stsc`
            // whose first chunks go backwards (which a seek mark may have jumped over) or a
            // forged marks file could say so, and the new tables count `b − a + 1` chunks.
            if b.chunk < a.chunk {
                return Err(bad());
            }
            let (first, _) = t.location_in(&a, s0).ok_or_else(bad)?;
            let (last, size) = t.location_in(&b, s1 - 1).ok_or_else(bad)?;
            let end = last.checked_add(size).ok_or_else(bad)?;
            p.first_offset = first;
            p.chunks = Some((a, b));
            self.forget_pages();
            range = Some(match range {
                None => (first, end),
                Some((a, b)) => (a.min(first), b.max(end)),
            });
        }
        let Some((start, end)) = range else { return Ok((0, 0)) };
        if end > self.src.len {
            return Err(Error::corrupt(end, "sample data runs past the end of the file (is it truncated?)"));
        }
        if end < start {
            return Err(Error::corrupt(
                start,
                "the last kept sample lies before the first (chunk offsets out of order)",
            ));
        }
        let chunks_ok = plans.iter().all(|p| match &p.chunks {
            Some((a, b)) => p.first_offset >= start && kept_chunks_inside(&p.track, a, b, start, end),
            None => true,
        });
        if !chunks_ok {
            return Err(Error::Unsupported(
                "chunk offsets are not in file order; remux the file with `ffmpeg -i IN -c copy OUT.mp4`".into(),
            ));
        }
        Ok((start, end))
    }
}

/// Whether the chunks after `a`'s up to `b`'s (the kept ones whose offsets the new moov
/// rebases) all start inside `start..end`, the one source range a plan copies. Offsets known
/// never to decrease (seek marks) are checked at both ends only; otherwise all of them.
fn kept_chunks_inside(t: &Track<'_>, a: &tables::ChunkPos, b: &tables::ChunkPos, start: u64, end: u64) -> bool {
    let e = &t.offsets.entries;
    let from = usize::try_from(a.chunk + 1).unwrap_or(usize::MAX).saturating_mul(e.width);
    let to = usize::try_from(b.chunk + 1).unwrap_or(usize::MAX).saturating_mul(e.width);
    let Some(kept) = e.data.get(from..to) else { return false };
    let inside = |kept: &[u8]| offsets_inside(kept, e.width, start, end);
    let w = e.width;
    if t.offsets_grow && kept.len() > 2 * w {
        inside(kept.get(..w).unwrap_or(&[])) && inside(kept.get(kept.len() - w..).unwrap_or(&[]))
    } else {
        inside(kept)
    }
}

/// Whether every big-endian offset of `width` bytes in `kept` lies in `start..end`, in one
/// branch-free pass the compiler vectorises (`o` is inside when `o − start < end − start`,
/// wrapping).
fn offsets_inside(kept: &[u8], width: usize, start: u64, end: u64) -> bool {
    let span = end.saturating_sub(start);
    // 32-bit arithmetic only when the whole range lies below 4 GiB: with `end` above it, an
    // offset below `start` would wrap into the range.
    match (u32::try_from(start), u32::try_from(end), width) {
        (Ok(s32), Ok(e32), 4) => {
            let span32 = e32.wrapping_sub(s32);
            kept.chunks_exact(4).fold(0u32, |bad, c| {
                let o = u32::from_be_bytes([c[0], c[1], c[2], c[3]]);
                bad | u32::from(o.wrapping_sub(s32) >= span32)
            }) == 0
        }
        (_, _, 4) => kept
            .chunks_exact(4)
            .all(|c| u64::from(u32::from_be_bytes([c[0], c[1], c[2], c[3]])).wrapping_sub(start) < span),
        _ => kept
            .chunks_exact(8)
            .all(|c| u64::from_be_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]).wrapping_sub(start) < span),
    }
}

impl Movie {
    /// Opens `src` as [`crate::container::open`] does: mapped for one-shot processes, read
    /// and indexed for a resident movie (`opts.resident`), with seek marks from
    /// `opts.marks_dir`. A moov larger than `opts.max_moov` is refused before it is read.
    pub fn open_for(src: Source, opts: &crate::container::Options) -> Result<Movie> {
        let mut movie = Movie::open_with(src, !opts.resident, opts.max_moov)?;
        movie.transient = opts.lean;
        if opts.resident {
            movie.build_indexes()?;
        } else if let Some(dir) = &opts.marks_dir {
            movie.use_marks_in(dir)?;
        }
        Ok(movie)
    }

    /// The registry's `open`: [`Movie::open_for`] as a container.
    pub fn open_container(
        src: Source,
        opts: &crate::container::Options,
    ) -> Result<Box<dyn crate::container::Container>> {
        Ok(Box::new(Movie::open_for(src, opts)?))
    }
}

impl crate::container::Container for Movie {
    fn source(&self) -> &Source {
        &self.src
    }

    fn describe(&self) -> Result<crate::container::Description> {
        let tracks = self.tracks()?;
        Ok(crate::container::Description { duration: Some(self.duration(&tracks)?), tracks: tracks.len() })
    }

    fn plan(&self, req: &Request, opts: &crate::container::Options) -> Result<Plan> {
        Movie::plan(self, req, opts.content_type)
    }
}
