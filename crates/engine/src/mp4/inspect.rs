//! `inspect` for MP4: the file (size, brands, where the `moov` is, with a faststart hint),
//! the box tree (type, offset, size, depth) and per track the codec string, profile, picture
//! size, frame rate, sample rate and channels, bitrate, duration and keyframes (count,
//! spacing, and on request every keyframe's presentation time and file offset), as a
//! serialisable report with a table rendering. Keyframes are found in one forward pass over
//! the sample tables (no per-sample loop over `stts`/`stsc`), so a hostile table costs time
//! linear in its size. A damaged file yields what could be read up to the fault and an error
//! naming its offset, never a panic.

use super::boxes::{children, find, fourcc_name, walk_top, BoxHeader};
use super::codec::{describe, Description};
use super::tables::stsc_span;
use super::track::Track;
use super::Movie;
use crate::media::Source;
use serde::Serialize;

/// One box of the tree.
#[derive(Clone, Debug, Serialize)]
pub struct BoxRow {
    #[serde(rename = "type")]
    pub kind: String,
    pub offset: u64,
    pub size: u64,
    pub depth: u32,
}

/// One track's summary.
#[derive(Clone, Debug, Serialize)]
pub struct TrackRow {
    pub id: u32,
    /// `video`, `audio`, or the handler code.
    pub kind: String,
    /// The sample description's four-character code (`avc1`, `mp4a`).
    pub codec: String,
    /// RFC 6381 codec string (`avc1.64001f`, `mp4a.40.2`), or the four-character code.
    pub codec_string: String,
    /// Profile name (`High`, `LC`), when known.
    pub profile: Option<String>,
    /// Coded level (`level_idc`), when known.
    pub level: Option<u32>,
    pub width: Option<u32>,
    pub height: Option<u32>,
    /// Video: samples per second of media.
    pub frame_rate: Option<f64>,
    pub sample_rate: Option<u32>,
    pub channels: Option<u32>,
    pub timescale: u32,
    /// Seconds presented: the edit list's when it has one, else the media's.
    pub duration: f64,
    /// Seconds of media (sum of the sample durations).
    pub media_duration: f64,
    pub samples: u64,
    /// Number of sync (key) samples.
    pub sync_samples: u64,
    /// True when the track has no `stss`: every sample is a sync sample.
    pub all_sync: bool,
    /// Average bits per second (sample bytes over the media duration, as ffprobe counts).
    pub bitrate: u64,
    /// Keyframe count and spacing (video tracks and tracks with `stss`).
    pub keyframes: Option<Keyframes>,
    /// Every keyframe, with `--keyframes` ([`Options::keyframes`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keyframe_list: Option<Vec<KeyframeAt>>,
}

/// Keyframe count and the time between consecutive keyframes, seconds.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Keyframes {
    pub count: u64,
    pub min_spacing: Option<f64>,
    pub avg_spacing: Option<f64>,
    pub max_spacing: Option<f64>,
}

/// One keyframe: its sample number (0-based), presentation time and where its bytes are.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct KeyframeAt {
    pub sample: u64,
    /// Presentation time, seconds (edit list applied, as players and ffprobe show it).
    pub time: f64,
    /// File offset of the sample's first byte.
    pub offset: u64,
    pub size: u64,
}

/// The file's brands (`ftyp`).
#[derive(Clone, Debug, Default, Serialize)]
pub struct Brands {
    pub major: String,
    pub minor_version: u32,
    pub compatible: Vec<String>,
}

/// Where the `moov` is.
#[derive(Clone, Debug, Serialize)]
pub struct MoovAt {
    pub offset: u64,
    pub size: u64,
    /// `before mdat`, `after mdat` or `no mdat`.
    pub position: String,
}

/// What to inspect beyond the summary.
#[derive(Clone, Copy, Debug, Default)]
pub struct Options {
    /// List every keyframe (at most [`MAX_LISTED`] per track).
    pub keyframes: bool,
}

/// Keyframes listed at most per track (a hostile `stss` may claim billions).
pub const MAX_LISTED: usize = 1 << 22;

/// What `inspect` reports about an MP4 file.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Report {
    pub file_size: u64,
    pub brands: Option<Brands>,
    pub moov: Option<MoovAt>,
    /// What to do about the layout, when something should be done.
    pub hint: Option<String>,
    /// Duration of the movie in seconds, when known.
    pub duration: Option<f64>,
    /// Bits per second of the whole file over the duration.
    pub bitrate: Option<u64>,
    pub tracks: Vec<TrackRow>,
    pub boxes: Vec<BoxRow>,
    /// A fragmented file's fragments (see `crate::fmp4::inspect`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fragments: Option<crate::fmp4::inspect::Fragments>,
    /// The first fault found, with its offset.
    pub error: Option<String>,
}

/// Boxes whose payload is a list of boxes.
const CONTAINERS: &[&[u8; 4]] = &[b"moov", b"trak", b"mdia", b"minf", b"stbl", b"edts", b"dinf", b"udta", b"mvex"];
/// Rows listed at most (a hostile file could hold millions of tiny boxes).
const MAX_ROWS: usize = 100_000;

/// Inspects an MP4 source (summary, no keyframe list).
pub fn inspect(src: Source) -> Report {
    inspect_with(src, Options::default())
}

/// Inspects an MP4 source with `options`.
pub fn inspect_with(src: Source, options: Options) -> Report {
    let mut report = Report { file_size: src.len, ..Report::default() };
    let (top, fault) = walk_top(&src, src.len, true);
    report.brands = top.ftyp.and_then(|f| brands(&src, &f));
    if let Some(m) = top.moov {
        let position = match top.mdat {
            Some(d) if d.offset < m.offset => "after mdat",
            Some(_) => "before mdat",
            None => "no mdat",
        };
        if position == "after mdat" {
            report.hint = Some(
                "the moov is after the mdat: players must fetch the end of the file before they can start; \
                 run `loomiere index FILE` to move it to the front (faststart)"
                    .into(),
            );
        }
        report.moov = Some(MoovAt { offset: m.offset, size: m.size, position: position.into() });
    }
    let opened = Movie::open(src);
    for h in &top.boxes {
        push(&mut report, h, 0, 0);
        if let (b"moov", Ok(movie)) = (&h.kind, &opened) {
            tree(&mut report, &movie.moov, &movie.root, 1, h.offset);
        }
    }
    if let Some(e) = fault {
        report.error = Some(e.to_string());
    }
    let movie = match opened {
        Ok(m) => m,
        Err(e) => {
            report.error = report.error.take().or(Some(e.to_string()));
            return report;
        }
    };
    let tracks = match movie.tracks() {
        Ok(t) => t,
        Err(e) => {
            report.error = report.error.take().or(Some(e.to_string()));
            return report;
        }
    };
    report.duration = movie.duration(&tracks).ok();
    report.bitrate = report.duration.filter(|&d| d > 0.0).map(|d| (report.file_size as f64 * 8.0 / d) as u64);
    let movie_timescale = movie.header().map_or(0, |h| h.timescale);
    for t in &tracks {
        report.tracks.push(track_row(&movie.moov, t, movie_timescale, options));
    }
    if movie.fragmented {
        match crate::fmp4::index::build(&movie.src, &movie) {
            Ok(index) => {
                crate::fmp4::inspect::fill_tracks(&index, &mut report.tracks);
                let d = crate::fmp4::seek::duration(&index, movie_timescale);
                report.duration = Some(d);
                report.bitrate = (d > 0.0).then(|| (report.file_size as f64 * 8.0 / d) as u64);
                report.fragments = Some(crate::fmp4::inspect::fragments(&index));
                report.hint = Some(
                    "the file is fragmented: loomiere seeks in it as it is; `loomiere index FILE` \
                     rewrites it as a progressive faststart MP4 (defragmented)"
                        .into(),
                );
            }
            Err(e) => report.error = report.error.take().or(Some(e.to_string())),
        }
    }
    report
}

/// The `ftyp` brands (the box is read when it is at most 64 KiB).
fn brands(src: &Source, ftyp: &BoxHeader) -> Option<Brands> {
    let len = usize::try_from(ftyp.body_len()).ok().filter(|&l| (8..=64 << 10).contains(&l))?;
    let mut body = vec![0u8; len];
    src.read_exact_at(&mut body, ftyp.body_start()).ok()?;
    let code = |b: &[u8]| fourcc_name(&[b[0], b[1], b[2], b[3]]);
    Some(Brands {
        major: code(&body[0..4]),
        minor_version: u32::from_be_bytes([body[4], body[5], body[6], body[7]]),
        compatible: body[8..].chunks_exact(4).map(code).collect(),
    })
}

/// The first `stsd` of a track, if the path to it is readable.
fn stsd_of(moov: &[u8], trak: &BoxHeader) -> Option<BoxHeader> {
    let mdia = find(moov, trak.body_start(), trak.end(), b"mdia").ok()??;
    let minf = find(moov, mdia.body_start(), mdia.end(), b"minf").ok()??;
    let stbl = find(moov, minf.body_start(), minf.end(), b"stbl").ok()??;
    find(moov, stbl.body_start(), stbl.end(), b"stsd").ok()?
}

fn track_row(moov: &[u8], t: &Track<'_>, movie_timescale: u32, options: Options) -> TrackRow {
    let desc = stsd_of(moov, &t.trak)
        .and_then(|h| describe(moov, &h, &t.handler))
        .unwrap_or_else(|| Description { codec_string: fourcc_name(&t.codec), ..Description::default() });
    let media = t.seconds();
    let shown = (t.edit.present && t.edit.shown > 0 && movie_timescale > 0)
        .then(|| t.edit.shown as f64 / f64::from(movie_timescale));
    let duration = shown.unwrap_or(media);
    // As ffprobe counts it: sample bytes over the media's own duration.
    let seconds_for_rate = if media > 0.0 { media } else { duration };
    let with_keyframes = t.is_video() || t.stss.is_some();
    let (keyframes, keyframe_list) = if with_keyframes {
        let (k, list) = keyframes(t, movie_timescale, options.keyframes);
        (Some(k), list)
    } else {
        (None, None)
    };
    TrackRow {
        id: t.id,
        kind: match &t.handler {
            b"vide" => "video".into(),
            b"soun" => "audio".into(),
            h => fourcc_name(h),
        },
        codec: fourcc_name(&t.codec),
        codec_string: desc.codec_string,
        profile: desc.profile,
        level: desc.level,
        width: desc.width,
        height: desc.height,
        frame_rate: (t.is_video() && media > 0.0).then(|| t.samples as f64 / media),
        sample_rate: desc.sample_rate,
        channels: desc.channels,
        timescale: t.mdhd.timescale,
        duration,
        media_duration: media,
        samples: t.samples,
        sync_samples: t.stss.as_ref().map_or(t.samples, |s| s.len() as u64),
        all_sync: t.stss.is_none(),
        bitrate: if seconds_for_rate > 0.0 { (t.total_bytes() as f64 * 8.0 / seconds_for_rate) as u64 } else { 0 },
        keyframes,
        keyframe_list,
    }
}

/// Keyframe statistics of a track and, when `list` is set, every keyframe (at most
/// [`MAX_LISTED`]). Sync samples are visited in increasing order with forward cursors over
/// `stts`, `ctts` and `stsc`; an `stss` entry that does not increase, or names a sample past
/// the tables, ends the walk.
fn keyframes(t: &Track<'_>, movie_timescale: u32, list: bool) -> (Keyframes, Option<Vec<KeyframeAt>>) {
    let mut stats = Keyframes::default();
    let mut listed = list.then(Vec::new);
    let timescale = f64::from(t.mdhd.timescale.max(1));
    let delay = if movie_timescale > 0 { t.edit.delay as f64 / f64::from(movie_timescale) } else { 0.0 };
    let media_time = i128::from(t.edit.media_time);
    let count = t.stss.as_ref().map_or(t.samples, |s| s.len() as u64);
    // Without `stss` every sample is a keyframe: walk them only as far as a list needs.
    let walk = match (&t.stss, list) {
        (Some(_), _) => count,
        (None, true) => count.min(MAX_LISTED as u64),
        (None, false) => 0,
    };
    let mut cursor = Cursor::new(t);
    let mut last_time: Option<f64> = None;
    let mut spacing_sum = 0.0;
    let mut spaced = 0u64;
    let mut seen = 0u64;
    let mut previous: Option<u64> = None;
    for i in 0..walk {
        let s = match &t.stss {
            Some(stss) => stss.get(i as usize),
            None => i,
        };
        if previous.is_some_and(|p| s <= p) || s >= t.samples {
            break;
        }
        previous = Some(s);
        let Some(dts) = cursor.dts(s) else { break };
        let pts = i128::from(dts) + i128::from(cursor.cts(s)) - media_time;
        let time = pts as f64 / timescale + delay;
        seen += 1;
        if let Some(prev) = last_time {
            let gap = time - prev;
            stats.min_spacing = Some(stats.min_spacing.map_or(gap, |m: f64| m.min(gap)));
            stats.max_spacing = Some(stats.max_spacing.map_or(gap, |m: f64| m.max(gap)));
            spacing_sum += gap;
            spaced += 1;
        }
        last_time = Some(time);
        if let Some(l) = listed.as_mut() {
            if l.len() < MAX_LISTED {
                if let Some((offset, size)) = cursor.location(s) {
                    l.push(KeyframeAt { sample: s, time: round6(time), offset, size });
                }
            }
        }
    }
    stats.count = if t.stss.is_some() { seen } else { count };
    if t.stss.is_none() {
        // Every sample is a keyframe: the spacing is the sample durations.
        let (mut min, mut max) = (None::<u32>, None::<u32>);
        for i in 0..t.stts.len() {
            let (n, d) = t.stts.entry(i);
            if n > 0 {
                min = Some(min.map_or(d, |m| m.min(d)));
                max = Some(max.map_or(d, |m| m.max(d)));
            }
        }
        stats.min_spacing = min.map(|d| f64::from(d) / timescale);
        stats.max_spacing = max.map(|d| f64::from(d) / timescale);
        stats.avg_spacing = (t.samples > 0).then(|| t.seconds() / t.samples as f64);
    } else {
        stats.avg_spacing = (spaced > 0).then(|| spacing_sum / spaced as f64);
    }
    for v in [&mut stats.min_spacing, &mut stats.avg_spacing, &mut stats.max_spacing] {
        *v = v.map(round6);
    }
    (stats, listed)
}

fn round6(x: f64) -> f64 {
    (x * 1e6).round() / 1e6
}

/// Forward cursors over a track's run tables and chunks, for samples visited in increasing
/// order: each table is walked once in total.
struct Cursor<'t, 'a> {
    t: &'t Track<'a>,
    /// `stts`: entry, its first sample, the decode time of that sample.
    stts: (usize, u64, u64),
    /// `ctts`: entry and its first sample.
    ctts: (usize, u64),
    /// `stsc`: entry, its chunk span, the first sample of the span's first chunk.
    stsc: Option<(usize, (u64, u64), u64)>,
    /// Within a chunk: the chunk, a sample in it and that sample's file offset.
    within: Option<(u64, u64, u64)>,
}

impl<'t, 'a> Cursor<'t, 'a> {
    fn new(t: &'t Track<'a>) -> Self {
        let mut c = Cursor { t, stts: (0, 0, 0), ctts: (0, 0), stsc: None, within: None };
        c.stsc = c.span(0, 0);
        c
    }

    /// Decode time of sample `s`, `None` past the `stts` table.
    fn dts(&mut self, s: u64) -> Option<u64> {
        let (mut i, mut first, mut time) = self.stts;
        while i < self.t.stts.len() {
            let (n, d) = self.t.stts.entry(i);
            let n = u64::from(n);
            if s < first.checked_add(n)? {
                self.stts = (i, first, time);
                return time.checked_add((s - first).checked_mul(u64::from(d))?);
            }
            first += n;
            time = time.checked_add(n.checked_mul(u64::from(d))?)?;
            i += 1;
        }
        self.stts = (i, first, time);
        None
    }

    /// Composition offset of sample `s` (0 without `ctts` or past it).
    fn cts(&mut self, s: u64) -> i64 {
        let Some(ctts) = &self.t.ctts else { return 0 };
        let (mut i, mut first) = self.ctts;
        while i < ctts.len() {
            let (n, v) = ctts.entry(i);
            let n = u64::from(n);
            if s < first.saturating_add(n) {
                self.ctts = (i, first);
                return i64::from(v as i32);
            }
            first = first.saturating_add(n);
            i += 1;
        }
        self.ctts = (i, first);
        0
    }

    /// The chunk span of `stsc` entry `i` (from entry `i` on, skipping none), whose first
    /// sample is `first`.
    fn span(&self, i: usize, first: u64) -> Option<(usize, (u64, u64), u64)> {
        let stsc = &self.t.stsc;
        if i >= stsc.len() {
            return None;
        }
        let chunks = self.t.offsets.len() as u64;
        let next = (i + 1 < stsc.len()).then(|| u64::from(stsc.entry(i + 1).0));
        let span = stsc_span(u64::from(stsc.entry(i).0), next, chunks)?;
        Some((i, span, first))
    }

    /// File offset and size of sample `s`.
    fn location(&mut self, s: u64) -> Option<(u64, u64)> {
        loop {
            let (i, (start, end), first) = self.stsc?;
            let spc = u64::from(self.t.stsc.entry(i).1);
            let samples = (end - start).checked_mul(spc)?;
            let span_end = first.checked_add(samples)?;
            if s < span_end {
                let chunk = start.checked_add(s.checked_sub(first)?.checked_div(spc)?)?;
                let chunk_first = first.checked_add((chunk - start).checked_mul(spc)?)?;
                let (from, base) = match self.within {
                    Some((c, at, off)) if c == chunk && at <= s => (at, off),
                    _ => (chunk_first, self.t.offsets.get(usize::try_from(chunk).ok()?)),
                };
                let offset = base.checked_add(self.t.sizes.sum(from, s))?;
                self.within = Some((chunk, s, offset));
                return Some((offset, u64::from(self.t.sizes.get(usize::try_from(s).ok()?))));
            }
            // The next entry must start where this one ends.
            self.stsc = self.span(i + 1, span_end).filter(|n| n.1 .0 == end);
        }
    }
}

fn row(h: &BoxHeader, depth: u32, base: u64) -> BoxRow {
    BoxRow { kind: h.name(), offset: h.offset + base, size: h.size, depth }
}

fn push(report: &mut Report, h: &BoxHeader, depth: u32, base: u64) {
    if report.boxes.len() < MAX_ROWS {
        report.boxes.push(row(h, depth, base));
    }
}

fn tree(report: &mut Report, moov: &[u8], parent: &BoxHeader, depth: u32, base: u64) {
    if depth > 16 {
        return;
    }
    for h in children(moov, parent.body_start(), parent.end()) {
        match h {
            Ok(h) => {
                push(report, &h, depth, base);
                if CONTAINERS.contains(&&h.kind) {
                    tree(report, moov, &h, depth + 1, base);
                }
            }
            Err(e) => {
                if report.error.is_none() {
                    report.error = Some(match e {
                        crate::Error::Corrupt { offset, what } => {
                            format!("corrupt file at offset {}: {what}", offset.saturating_add(base))
                        }
                        e => e.to_string(),
                    });
                }
                return;
            }
        }
    }
}
