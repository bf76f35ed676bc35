//! HLS and DASH from the same MP4 files, packaged on request: a segment index per movie
//! (`segments`), a CMAF initialisation segment per track (`init`), CMAF media segments as
//! plans whose samples are ranges of the source (`fragment`), `tx3g` subtitles as WebVTT
//! (`webvtt`), the HLS playlists (`hls`) and the DASH MPD (`dash`) written from the index,
//! the URL tail below the movie (`route`), keeping built indexes in memory or on disk
//! (`cache`), and the layout `inspect --segments` prints (`layout`). A [`Package`] also
//! keeps its rendered playlists and init segments and, in `serve`, its media segments of
//! small samples (gathered once by the kernel: `crate::sink::gather`). Depends only on the MP4
//! engine and the plan; the HTTP side calls [`answer`] (or [`answer_with`]).
//!
//! URLs (all below `/path/movie.mp4/`) and the choices made are in docs/hls-dash.md.

pub mod cache;
pub mod dash;
pub mod fragment;
pub mod fragmented;
pub mod hls;
pub mod init;
pub mod ladder;
pub mod layout;
pub mod route;
pub mod segments;
pub mod webvtt;

#[cfg(test)]
mod tests;

use crate::mp4::codec::{describe, Description};
use crate::mp4::track::Track;
use crate::mp4::Movie;
use crate::plan::{Bytes, Piece, Plan};
use crate::Result;
pub use route::PackageRequest;
pub use segments::{Clip, Media, Options, SegmentIndex};
use std::sync::Arc;

/// Content type of HLS playlists.
pub const M3U8: &str = "application/vnd.apple.mpegurl";
/// Content type of the DASH MPD.
pub const MPD: &str = "application/dash+xml";
/// Content type of segments.
pub const MP4: &str = "video/mp4";
/// Content type of subtitles.
pub const VTT: &str = "text/vtt";

/// What a packaged track's sample description and samples say, for the manifests.
#[derive(Clone, Debug, Default)]
pub struct TrackFacts {
    pub description: Description,
    /// RFC 6381 codec string (`avc1.64001f`, `mp4a.40.2`, `ac-3`, `opus`, `wvtt`).
    pub codecs: String,
    /// Frames per second (video).
    pub frame_rate: Option<f64>,
    /// Highest bits per second of one segment.
    pub peak_bps: u64,
    /// Bits per second over the whole output.
    pub average_bps: u64,
    /// Highest bits per second of the I-frame byte ranges (video).
    pub iframe_peak_bps: u64,
    /// Average bits per second of the I-frame byte ranges (video).
    pub iframe_average_bps: u64,
    /// ISO 639-2 language from `mdhd` (`None` for `und`).
    pub language: Option<String>,
}

/// The language code of a track's `mdhd` (three packed 5-bit letters).
fn language(moov: &[u8], trak: &crate::mp4::boxes::BoxHeader) -> Option<String> {
    use crate::mp4::boxes::{find, ReadBe};
    let mdia = find(moov, trak.body_start(), trak.end(), b"mdia").ok()??;
    let mdhd = find(moov, mdia.body_start(), mdia.end(), b"mdhd").ok()??;
    let body = crate::mp4::tables::body(moov, &mdhd).ok()?;
    let at = if body.u8_at(0)? == 1 { 32 } else { 20 };
    let packed = body.u16_at(at)?;
    let letters: String = [10u16, 5, 0].iter().map(|s| char::from(((packed >> s) & 0x1f) as u8 + 0x60)).collect();
    (letters.chars().all(|c| c.is_ascii_lowercase()) && letters != "und").then_some(letters)
}

/// A movie's packaging: its segment index and per-track facts, ready for any request.
pub struct Package {
    pub index: Arc<SegmentIndex>,
    pub facts: Vec<TrackFacts>,
    /// The answers every viewer asks for alike — playlists, the MPD, init segments — as
    /// rendered for their query suffix, the most recently used last (at most
    /// [`ANSWERS_KEPT`]): a long movie's media playlist is rendered once, not per request.
    answers: std::sync::Mutex<Vec<((PackageRequest, String), Plan)>>,
    /// Media segments of small interleaved samples as made self-contained by
    /// [`crate::sink::gather::stage`] (their samples gathered once into a memory copy, so a
    /// repeat is sent as one range, as a pre-packaged file would be), the most recently used
    /// last: at most [`SEGMENTS_KEPT`] and [`SEGMENT_BYTES_KEPT`] bytes of samples.
    segments: std::sync::Mutex<Vec<(PackageRequest, Plan)>>,
    /// Whether segments are kept at all: only in a package that outlives its request
    /// (`serve`'s movie cache, [`Package::keeping_segments`]); a CGI process would only
    /// copy what it sends once.
    keeps: bool,
}

/// Rendered answers kept per package (different signatures of one URL are different answers).
pub const ANSWERS_KEPT: usize = 8;

/// Media segments kept per package (see [`Package`]).
pub const SEGMENTS_KEPT: usize = 16;

/// Bytes of samples kept per package in [`SEGMENTS_KEPT`] segments; a segment of more
/// than a quarter of this, or of more than [`SEGMENT_PIECES_KEPT`] ranges, is not kept (it is
/// planned and sent from the source each time).
pub const SEGMENT_BYTES_KEPT: u64 = 2 << 20;

/// The most source ranges a kept segment is gathered from (20 s of AAC frames): the
/// gathering runs where the request is answered, `serve`'s async thread included, so a
/// hostile file of 1-byte samples cannot make it long.
pub const SEGMENT_PIECES_KEPT: usize = 1024;

/// Bits per second of `bytes` over `ticks` of `timescale`.
fn bps(bytes: u64, ticks: u64, timescale: u32) -> u64 {
    if ticks == 0 {
        return 0;
    }
    let v = bytes as f64 * 8.0 * f64::from(timescale) / ticks as f64;
    if v.is_finite() {
        v.ceil() as u64
    } else {
        0
    }
}

impl Package {
    /// Builds the segment index of `movie` for `clip` and the facts the manifests need.
    pub fn build(movie: &Movie, clip: Clip, options: &Options) -> Result<Package> {
        let tracks = movie.tracks()?;
        let header = movie.header()?;
        let index = SegmentIndex::build(&tracks, header.timescale, clip, options)?;
        Ok(Package::with_index(movie, &tracks, Arc::new(index)))
    }

    /// This package, keeping its media segments of small samples for the requests that
    /// follow (see [`Package`]): for packages that serve many requests.
    pub fn keeping_segments(mut self) -> Package {
        self.keeps = true;
        self
    }

    /// The media segments kept now and the bytes of their samples (their memory copies).
    pub fn kept_segments(&self) -> (usize, u64) {
        let kept = self.segments.lock().unwrap_or_else(|p| p.into_inner());
        (kept.len(), kept.iter().map(|(_, p)| sample_bytes(p)).sum())
    }

    /// The facts for an index already built (or loaded).
    pub fn with_index(movie: &Movie, tracks: &[Track<'_>], index: Arc<SegmentIndex>) -> Package {
        let mut facts = Vec::with_capacity(index.tracks.len());
        for (k, info) in index.tracks.iter().enumerate() {
            let Some(t) = tracks.get(info.index) else {
                facts.push(TrackFacts::default());
                continue;
            };
            let description = init::stsd_of(&movie.moov, &t.trak)
                .ok()
                .and_then(|h| describe(&movie.moov, &h, &t.handler))
                .unwrap_or_default();
            let codecs = match &t.codec {
                b"tx3g" => "wvtt".to_string(),
                _ => description.codec_string.clone(),
            };
            let ts = info.timescale.max(1);
            let (mut peak, mut ipeak, mut bytes, mut ticks, mut ibytes, mut samples) = (0, 0, 0u64, 0u64, 0u64, 0u64);
            for c in index.cells_of(k) {
                // A last segment much shorter than the target says little about the peak.
                if c.duration as f64 >= f64::from(ts) * index.target / 2.0 || index.count == 1 {
                    peak = peak.max(bps(c.bytes, c.duration, ts));
                }
                let ib = fragment::header_len(info.with_cts, c).saturating_add(u64::from(c.first_size));
                ipeak = ipeak.max(bps(ib, c.duration, ts));
                // Saturating: an index read from a cache file is checked, not trusted.
                bytes = bytes.saturating_add(c.bytes);
                ibytes = ibytes.saturating_add(ib);
                ticks = ticks.saturating_add(c.duration);
                samples = samples.saturating_add(c.s1.saturating_sub(c.s0));
            }
            let average = bps(bytes, ticks, ts);
            let frame_rate =
                (info.media == Media::Video && ticks > 0).then(|| samples as f64 * f64::from(ts) / ticks as f64);
            facts.push(TrackFacts {
                description,
                codecs,
                frame_rate,
                peak_bps: peak.max(average),
                average_bps: average,
                iframe_peak_bps: ipeak,
                iframe_average_bps: bps(ibytes, ticks, ts),
                language: language(&movie.moov, &t.trak),
            });
        }
        Package { index, facts, answers: Default::default(), segments: Default::default(), keeps: false }
    }
}

/// A plan of bytes made in memory (playlists, MPD, init segments).
fn text_plan(movie: &Movie, bytes: Vec<u8>, content_type: &'static str) -> Result<Plan> {
    let mut info = movie.src.info(content_type);
    info.header_len = bytes.len() as u64;
    Plan::new(movie.src.clone(), vec![Piece::Synth(Arc::new(Bytes(bytes)))], info)
}

/// The answer to a packaging request on `movie`: a plan (playlists and the MPD are plans of
/// in-memory bytes, so `Range` and conditional requests work the same on all of them) with
/// its content type. `query` is appended to every URL a playlist names (`?start=…&sig=…`, or
/// empty).
pub fn answer(movie: &Movie, req: &PackageRequest, clip: Clip, options: &Options, query: &str) -> Result<Plan> {
    let package = Package::build(movie, clip, options)?;
    answer_with(movie, &package, req, query)
}

/// [`answer`] with a package already built from `movie`. A playlist, MPD or init segment
/// is rendered once and kept in the package for the requests that follow. WebVTT cues are
/// made each time; a media segment is planned each time over the index (its samples ranges
/// of the source), unless the package keeps segments and this one is made of small samples:
/// then it is gathered once into a memory copy and kept ([`Package`]).
pub fn answer_with(movie: &Movie, package: &Package, req: &PackageRequest, query: &str) -> Result<Plan> {
    if let PackageRequest::Segment { .. } = req {
        return segment(movie, package, req);
    }
    if let PackageRequest::Vtt { .. } = req {
        return render(movie, package, req, query);
    }
    let memo = || package.answers.lock().unwrap_or_else(|p| p.into_inner());
    let key = (*req, query.to_string());
    if let Some(plan) = recall(&mut memo(), &key) {
        return Ok(plan);
    }
    let plan = render(movie, package, req, query)?;
    Ok(keep(&mut memo(), key, plan, ANSWERS_KEPT, u64::MAX))
}

/// A media segment: kept in the package when it is made of small interleaved samples
/// (gathered once, [`crate::sink::gather::stage`]), else planned each time over the index.
fn segment(movie: &Movie, package: &Package, req: &PackageRequest) -> Result<Plan> {
    let memo = || package.segments.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(plan) = recall(&mut memo(), req) {
        return Ok(plan);
    }
    let plan = render(movie, package, req, "")?;
    if !package.keeps {
        return Ok(plan);
    }
    // A copy that cannot be made (no memfd, a source changed since it was opened) leaves the
    // plan as it is: the sink checks the source again and says what went wrong.
    let staged = crate::sink::gather::stage(&plan, SEGMENT_BYTES_KEPT / 4, SEGMENT_PIECES_KEPT);
    let Ok(Some(staged)) = staged else { return Ok(plan) };
    Ok(keep(&mut memo(), *req, staged, SEGMENTS_KEPT, SEGMENT_BYTES_KEPT))
}

/// The plan kept under `key` in `kept` (most recently used last), moved to the end.
fn recall<K: PartialEq>(kept: &mut Vec<(K, Plan)>, key: &K) -> Option<Plan> {
    let i = kept.iter().position(|(k, _)| k == key)?;
    let hit = kept.remove(i);
    let plan = hit.1.clone();
    kept.push(hit);
    Some(plan)
}

/// Adds `plan` under `key` to `kept` (most recently used last), first dropping the least
/// recently used until at most `most` plans and `bytes_most` bytes after their heads
/// ([`sample_bytes`]) remain with it; returns the kept plan (the one already there when
/// another request kept it first, so concurrent first requests end up sending one copy).
fn keep<K: PartialEq>(kept: &mut Vec<(K, Plan)>, key: K, plan: Plan, most: usize, bytes_most: u64) -> Plan {
    if let Some((_, there)) = kept.iter().find(|(k, _)| *k == key) {
        return there.clone();
    }
    let mut bytes = kept.iter().map(|(_, p)| sample_bytes(p)).fold(sample_bytes(&plan), u64::saturating_add);
    while !kept.is_empty() && (kept.len() >= most || bytes > bytes_most) {
        bytes = bytes.saturating_sub(sample_bytes(&kept.remove(0).1));
    }
    kept.push((key, plan.clone()));
    plan
}

/// The bytes of a plan after its head: a kept segment's samples.
fn sample_bytes(p: &Plan) -> u64 {
    p.len().saturating_sub(p.info.header_len)
}

/// [`answer_with`] made afresh.
fn render(movie: &Movie, package: &Package, req: &PackageRequest, query: &str) -> Result<Plan> {
    let index = &package.index;
    let track = |media: Media, id: u32| -> Result<usize> {
        match index.track(id) {
            Some((k, t)) if t.media == media => Ok(k),
            _ => Err(crate::Error::NotFound(format!("no packaged {media:?} track {id}").to_lowercase())),
        }
    };
    match *req {
        PackageRequest::Master => text_plan(movie, hls::master(package, query).into_bytes(), M3U8),
        PackageRequest::Mpd => text_plan(movie, dash::mpd(package, query).into_bytes(), MPD),
        PackageRequest::Playlist { media: Media::Subtitle, id } => {
            text_plan(movie, hls::subtitle_playlist(package, track(Media::Subtitle, id)?, query).into_bytes(), M3U8)
        }
        PackageRequest::Playlist { media, id } => {
            text_plan(movie, hls::media_playlist(package, track(media, id)?, query).into_bytes(), M3U8)
        }
        PackageRequest::IFrames { id } => {
            text_plan(movie, hls::iframe_playlist(package, track(Media::Video, id)?, query).into_bytes(), M3U8)
        }
        PackageRequest::Init { media, id } => {
            let k = track(media, id)?;
            let tracks = movie.tracks()?;
            let t = tracks.get(index.tracks[k].index).ok_or_else(|| crate::Error::NotFound("no such track".into()))?;
            text_plan(movie, init::init_segment(movie, t)?, MP4)
        }
        PackageRequest::Segment { media, id, number } => {
            let k = track(media, id)?;
            let n = usize::try_from(number)
                .ok()
                .and_then(|n| n.checked_sub(1))
                .filter(|&n| n < index.count)
                .ok_or_else(|| crate::Error::NotFound(format!("no segment {number}")))?;
            let tracks = movie.tracks()?;
            fragment::plan_segment(movie, &tracks, index, k, n)
        }
        PackageRequest::Vtt { id, number } => {
            let k = track(Media::Subtitle, id)?;
            let window = match number {
                None => None,
                Some(number) => Some(
                    usize::try_from(number)
                        .ok()
                        .and_then(|n| n.checked_sub(1))
                        .and_then(|n| index.span(n))
                        .ok_or_else(|| crate::Error::NotFound(format!("no segment {number}")))?,
                ),
            };
            let tracks = movie.tracks()?;
            text_plan(movie, webvtt::document(movie, &tracks, index, k, window)?.into_bytes(), VTT)
        }
    }
}

/// `path` split around its last `sep`: what comes before and what comes after (as
/// `rsplit_once`). Every request goes through the URL splits that use it, CGI processes
/// included: a byte loop the compiler inlines, where the shared reverse string searcher
/// would be one more page of text for each process to fault in.
pub(crate) fn rsplit_at(path: &str, sep: u8) -> Option<(&str, &str)> {
    let i = path.bytes().rposition(|b| b == sep)?;
    Some((path.get(..i)?, path.get(i + 1..)?))
}
