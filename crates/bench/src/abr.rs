//! HLS and DASH viewers for `loomiere bench`: a target whose path ends in `.m3u8` or `.mpd`
//! is played as a segmented presentation. A session fetches the manifest (and, for an HLS
//! multivariant playlist, the chosen variant's media playlist), the init segment, then the
//! segments from a start segment (the first, the one holding `--start`, or a random one),
//! one at a time on a kept-alive connection: the next segment is asked for when the
//! player's buffer holds less than [`SEGMENTS_AHEAD`] segments (at once with `--fast`).
//! The player takes whole segments (as MSE players append them), starts once the first has
//! arrived, and stalls when the buffer runs dry before the next one is in. A viewer with a
//! watch time leaves when its player gets there, closing the connection (a segment being
//! downloaded is dropped: its bytes and the buffered segments are wasted). Per-kind time to
//! first byte (playlist, init, segment) and segment download time go to [`AbrLive`].
//!
//! Parsed segment lists are shared between viewers ([`Lists`]), keyed by playlist path and
//! checked against a hash of the body each viewer received, so a thousand viewers of a
//! two-hour movie hold one list, not a thousand.

use super::http;
use super::manifest::{self, Hls, Kind, MediaList};
use super::playback::Playback;
use super::stats::{Failure, Histogram, Latency};
use super::viewer::{self, Conn, HeadOutcome, Rng};
use super::{Pace, Probed, Seek, Shared};
use serde::Serialize;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// The player asks for the next segment when it holds less than this many segments' worth
/// (of the longest segment) of media.
pub const SEGMENTS_AHEAD: f64 = 3.0;

/// Largest manifest body the bench reads.
pub const MAX_MANIFEST: usize = 16 << 20;

/// Most distinct segment lists kept for sharing.
const MAX_LISTS: usize = 1024;

/// The player's clock counts microseconds of media as its "bytes".
const CLOCK: f64 = 1e6;

/// HLS/DASH counters.
#[derive(Default)]
pub struct AbrLive {
    pub ttfb_playlist: Histogram,
    pub ttfb_init: Histogram,
    pub ttfb_segment: Histogram,
    /// Request to last byte of whole segments, µs.
    pub segment_time: Histogram,
    pub sessions: AtomicU64,
    pub segments: AtomicU64,
    /// The first manifest that could not be read, and why.
    pub first_error: Mutex<Option<String>>,
}

/// HLS/DASH part of the report (present when a target was a manifest).
#[derive(Clone, Debug, Default, Serialize)]
pub struct AbrReport {
    /// Viewing sessions started (manifest fetched).
    pub sessions: u64,
    /// Segments downloaded whole.
    pub segments: u64,
    pub ttfb_playlist_ms: Latency,
    pub ttfb_init_ms: Latency,
    pub ttfb_segment_ms: Latency,
    /// Request to last byte of a whole segment.
    pub segment_download_ms: Latency,
    /// The first manifest that could not be read, and why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_error: Option<String>,
}

impl AbrLive {
    pub fn report(&self) -> AbrReport {
        AbrReport {
            sessions: self.sessions.load(Relaxed),
            segments: self.segments.load(Relaxed),
            ttfb_playlist_ms: Latency::of(&self.ttfb_playlist),
            ttfb_init_ms: Latency::of(&self.ttfb_init),
            ttfb_segment_ms: Latency::of(&self.ttfb_segment),
            segment_download_ms: Latency::of(&self.segment_time),
            first_error: None,
        }
    }

    fn note(&self, why: String) {
        if let Ok(mut e) = self.first_error.lock() {
            e.get_or_insert(why);
        }
    }
}

/// Segment lists shared between viewers: playlist path → (hash of the body, list with
/// resolved paths).
#[derive(Default)]
pub struct Lists(Mutex<HashMap<String, (u64, Arc<MediaList>)>>);

impl Lists {
    fn get(&self, key: &str, hash: u64) -> Option<Arc<MediaList>> {
        let map = self.0.lock().ok()?;
        map.get(key).filter(|e| e.0 == hash).map(|e| e.1.clone())
    }

    fn put(&self, key: &str, hash: u64, list: Arc<MediaList>) {
        if let Ok(mut map) = self.0.lock() {
            if map.len() < MAX_LISTS || map.contains_key(key) {
                map.insert(key.to_string(), (hash, list));
            }
        }
    }
}

/// FNV-1a.
fn hash(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3))
}

/// Which histogram a request's time to first byte goes to.
#[derive(Clone, Copy)]
enum What {
    Playlist,
    Init,
    Segment,
}

/// Where a body goes.
enum Sink<'a> {
    /// Kept (a manifest), at most [`MAX_MANIFEST`] bytes.
    Keep(&'a mut Vec<u8>),
    /// Counted and dropped; the count is kept up to date so that a cancelled download still
    /// says how much arrived.
    Count(&'a mut u64),
}

/// One GET on `conn` (opened or reopened as needed), body read to its end. `Err(None)`: a
/// failure already counted.
async fn get(
    shared: &Arc<Shared>,
    conn: &mut Option<Conn>,
    target: &Probed,
    path: &str,
    what: What,
    mut sink: Sink<'_>,
) -> Result<(), Option<Failure>> {
    let live = &shared.live;
    let req = http::request(path, &target.target.host_header);
    let began = Instant::now();
    let mut attempt = 0;
    let (head, extra, first_byte) = loop {
        attempt += 1;
        let reused = conn.is_some() && attempt == 1;
        let c = match conn {
            Some(c) => c,
            None => conn.insert(viewer::connect(shared, &target.target).await?),
        };
        live.requests.fetch_add(1, Relaxed);
        let outcome = match tokio::time::timeout(shared.timeout, c.stream.write_all(&req)).await {
            Err(_) => return Err(Some(Failure::Timeout)),
            Ok(Err(_)) if reused => HeadOutcome::Stale,
            Ok(Err(_)) => return Err(Some(Failure::Io)),
            Ok(Ok(())) => viewer::read_head(shared, &mut c.stream, reused).await?,
        };
        match outcome {
            HeadOutcome::Head { head, extra, first_byte } => break (head, extra, first_byte),
            HeadOutcome::Stale => {
                live.requests.fetch_sub(1, Relaxed);
                *conn = None;
            }
        }
    };
    let ttfb = u64::try_from(first_byte.saturating_duration_since(began).as_micros()).unwrap_or(u64::MAX);
    live.ttfb.record(ttfb);
    match what {
        What::Playlist => &live.abr.ttfb_playlist,
        What::Init => &live.abr.ttfb_init,
        What::Segment => &live.abr.ttfb_segment,
    }
    .record(ttfb);
    live.responses.fetch_add(1, Relaxed);
    if head.status != 200 && head.status != 206 {
        live.fail_status(head.status);
        *conn = None;
        return Err(None);
    }
    live.succeeded.fetch_add(1, Relaxed);
    let Some(c) = conn.as_mut() else { return Err(Some(Failure::Io)) };
    let Some(length) = head.content_length else {
        // Unframed answers are not what a segment server sends; not worth a reader.
        *conn = None;
        return Err(Some(Failure::Protocol));
    };
    if extra.len() as u64 > length {
        *conn = None;
        return Err(Some(Failure::Protocol));
    }
    if let Sink::Keep(_) = sink {
        if length > MAX_MANIFEST as u64 {
            live.abr.note(format!("{path}: a manifest of {length} bytes (the bench reads at most {MAX_MANIFEST})"));
            *conn = None;
            return Err(Some(Failure::Protocol));
        }
    }
    let mut got = 0u64;
    let take = |chunk: &[u8], sink: &mut Sink| {
        live.bytes.fetch_add(chunk.len() as u64, Relaxed);
        match sink {
            Sink::Keep(v) => v.extend_from_slice(chunk),
            Sink::Count(n) => **n += chunk.len() as u64,
        }
    };
    take(&extra, &mut sink);
    got += extra.len() as u64;
    let mut copy = false;
    while got < length {
        let max = usize::try_from(length - got).unwrap_or(usize::MAX).min(1 << 20);
        let read = match &mut sink {
            Sink::Keep(v) => tokio::time::timeout(shared.timeout, c.stream.read_with(max, |b| v.extend_from_slice(b)))
                .await
                .map(|r| r.map(|(n, ())| n)),
            Sink::Count(_) => tokio::time::timeout(shared.timeout, c.stream.discard(max, &mut copy)).await,
        };
        let n = match read {
            Err(_) => return Err(Some(Failure::Timeout)),
            Ok(Err(_)) => return Err(Some(Failure::Io)),
            Ok(Ok(0)) => return Err(Some(Failure::ShortBody)),
            Ok(Ok(n)) => n as u64,
        };
        got += n;
        live.bytes.fetch_add(n, Relaxed);
        if let Sink::Count(c) = &mut sink {
            **c += n;
        }
    }
    live.completed.fetch_add(1, Relaxed);
    if !head.keep_alive {
        *conn = None;
    }
    Ok(())
}

/// Fetches a manifest body as text.
async fn fetch_text(
    shared: &Arc<Shared>,
    conn: &mut Option<Conn>,
    target: &Probed,
    path: &str,
) -> Result<(String, u64), Option<Failure>> {
    let mut body = Vec::new();
    get(shared, conn, target, path, What::Playlist, Sink::Keep(&mut body)).await?;
    let h = hash(&body);
    match String::from_utf8(body) {
        Ok(s) => Ok((s, h)),
        Err(_) => {
            shared.live.abr.note(format!("{path}: the manifest is not UTF-8 text"));
            Err(Some(Failure::Protocol))
        }
    }
}

/// A request path for a URI named by the manifest at `base`: relative, absolute path, or an
/// absolute URL on the same loopback server.
fn locate(shared: &Shared, target: &Probed, base: &str, uri: &str) -> Result<String, Option<Failure>> {
    if let Some(p) = manifest::resolve(base, uri) {
        return Ok(p);
    }
    match super::Target::parse(uri) {
        Ok(t) if t.addr == target.target.addr && t.tls == target.target.tls => Ok(t.path),
        _ => {
            shared.live.abr.note(format!("{base}: {uri:?} is not on the bench's target server"));
            Err(Some(Failure::Protocol))
        }
    }
}

/// The variant's segment list (paths resolved), from the shared lists or parsed now.
async fn media_list(
    shared: &Arc<Shared>,
    conn: &mut Option<Conn>,
    target: &Probed,
    kind: Kind,
    bytes: &mut u64,
) -> Result<(String, Arc<MediaList>), Option<Failure>> {
    let bad = |path: &str, why: String| {
        shared.live.abr.note(format!("{path}: {why}"));
        Some(Failure::Protocol)
    };
    let mut path = target.target.path.clone();
    let (mut text, mut h) = fetch_text(shared, conn, target, &path).await?;
    *bytes += text.len() as u64;
    let key = |path: &str| format!("{path}#{}", shared.variant);
    if let Some(list) = shared.lists.get(&key(&path), h) {
        return Ok((path, list));
    }
    let list = match kind {
        Kind::Dash => manifest::parse_mpd(&text, shared.variant).map_err(|e| bad(&path, e))?.0,
        Kind::Hls => {
            let mut list = None;
            // A multivariant playlist, then its variant's media playlist (one level only).
            for _ in 0..2 {
                match manifest::parse_hls(&text).map_err(|e| bad(&path, e))? {
                    Hls::Media(m) => {
                        list = Some(m);
                        break;
                    }
                    Hls::Master(variants) if list.is_none() && path == target.target.path => {
                        let Some(uri) = variants.get(shared.variant.saturating_sub(1)) else {
                            return Err(bad(
                                &path,
                                format!("{} variants; --variant {} is not one of them", variants.len(), shared.variant),
                            ));
                        };
                        path = locate(shared, target, &path, uri)?;
                        (text, h) = fetch_text(shared, conn, target, &path).await?;
                        *bytes += text.len() as u64;
                        if let Some(list) = shared.lists.get(&key(&path), h) {
                            return Ok((path, list));
                        }
                    }
                    Hls::Master(_) => return Err(bad(&path, "a variant playlist that is itself multivariant".into())),
                }
            }
            list.ok_or_else(|| bad(&path, "no media playlist".into()))?
        }
    };
    let mut resolved = MediaList { init: None, segments: Vec::with_capacity(list.segments.len()) };
    if let Some(i) = &list.init {
        resolved.init = Some(locate(shared, target, &path, i)?);
    }
    for s in list.segments {
        let uri = locate(shared, target, &path, &s.uri)?;
        resolved.segments.push(manifest::Segment { uri, duration: s.duration });
    }
    let list = Arc::new(resolved);
    shared.lists.put(&key(&path), h, list.clone());
    Ok((path, list))
}

/// One segment in the player's buffer: its media seconds and bytes.
struct Buffered {
    end: f64,
    duration: f64,
    bytes: u64,
}

/// What a session received and watched, counted into the live totals once.
struct Account<'a> {
    shared: &'a Shared,
    /// Manifests and init segment: watched as soon as received.
    prefix: u64,
    /// Segments wholly played.
    played: u64,
    /// Everything received.
    total: u64,
    buffer: VecDeque<Buffered>,
    player: Option<Playback>,
    watch: Option<f64>,
    settled: bool,
}

impl Account<'_> {
    /// Moves the segments played by `position` out of the buffer.
    fn advance(&mut self, position: f64) {
        while self.buffer.front().is_some_and(|b| b.end <= position + 1e-9) {
            if let Some(b) = self.buffer.pop_front() {
                self.played = self.played.saturating_add(b.bytes);
            }
        }
    }

    /// Counts the session: watched up to `position` (or the watch time); with `leaving`,
    /// the rest of what was received was wasted.
    fn settle(&mut self, position: f64, leaving: bool) {
        if self.settled {
            return;
        }
        self.settled = true;
        let position = position.min(self.watch.unwrap_or(f64::INFINITY)).max(0.0);
        self.advance(position);
        let mut watched = self.prefix.saturating_add(self.played);
        if let Some(b) = self.buffer.front() {
            let start = b.end - b.duration;
            if position > start && b.duration > 0.0 {
                let part = ((position - start) / b.duration).clamp(0.0, 1.0);
                watched = watched.saturating_add((b.bytes as f64 * part) as u64);
            }
        }
        let watched = watched.min(self.total);
        let live = &self.shared.live;
        live.watched_micros.fetch_add((position * 1e6) as u64, Relaxed);
        live.bytes_watched.fetch_add(watched, Relaxed);
        if leaving {
            live.bytes_wasted.fetch_add(self.total - watched, Relaxed);
        }
    }

    fn position(&self, now: Instant) -> f64 {
        self.player.as_ref().map_or(0.0, |p| p.position(now))
    }
}

impl Drop for Account<'_> {
    fn drop(&mut self) {
        // Cut by the run's deadline (or a failure): what was watched so far counts.
        let at = self.position(Instant::now());
        self.settle(at, false);
    }
}

/// Runs one viewing session of a manifest target.
pub(super) async fn session(
    shared: &Arc<Shared>,
    conn: &mut Option<Conn>,
    target: &Probed,
    kind: Kind,
    rng: &mut Rng,
    watch: Option<f64>,
) -> Result<(), Option<Failure>> {
    let live = &shared.live;
    let mut manifests = 0u64;
    let (_, list) = media_list(shared, conn, target, kind, &mut manifests).await?;
    live.abr.sessions.fetch_add(1, Relaxed);
    let mut acc = Account {
        shared,
        prefix: manifests,
        played: 0,
        total: manifests,
        buffer: VecDeque::new(),
        player: None,
        watch,
        settled: false,
    };
    if let Some(init) = &list.init {
        let mut n = 0;
        let fetched = get(shared, conn, target, init, What::Init, Sink::Count(&mut n)).await;
        // Manifests and init are watched whole: a player needs all of them.
        acc.prefix = acc.prefix.saturating_add(n);
        acc.total = acc.total.saturating_add(n);
        fetched?;
    }
    let segments = &list.segments;
    let first = match shared.seek {
        Seek::Random => ((rng.unit() * segments.len() as f64) as usize).min(segments.len() - 1),
        Seek::Fixed(s) if s > 0.0 => {
            let mut t = 0.0;
            segments
                .iter()
                .position(|seg| {
                    t += seg.duration;
                    t > s
                })
                .unwrap_or(segments.len() - 1)
        }
        Seek::Fixed(_) => 0,
    };
    let goal = SEGMENTS_AHEAD * list.longest();
    let paced = shared.pace == Pace::PlaybackRate;
    let mut received = 0.0;
    for seg in &segments[first..] {
        if Instant::now() >= shared.deadline {
            return Ok(());
        }
        // Wait until the buffer wants another segment, leaving if the watch time comes.
        if let (true, Some(p)) = (paced, acc.player.as_ref()) {
            let now = Instant::now();
            let mut wait = p.wait_before_read(now, goal);
            if let Some(w) = watch {
                wait = wait.min(p.until_position(now, w));
            }
            if !wait.is_zero() {
                tokio::time::sleep_until((now + wait).min(shared.deadline).into()).await;
                if Instant::now() >= shared.deadline {
                    return Ok(());
                }
            }
            if let Some(w) = watch {
                if acc.position(Instant::now()) >= w {
                    leave(&mut acc, conn, w);
                    return Ok(());
                }
            }
        }
        // The player leaves while this segment downloads if its clock reaches the watch
        // time before the buffer runs out.
        let leave_at = match (watch, acc.player.as_ref()) {
            (Some(w), Some(p)) if paced && received >= w => Some(Instant::now() + p.until_position(Instant::now(), w)),
            _ => None,
        };
        let until = leave_at.map_or(shared.deadline, |l| l.min(shared.deadline));
        let mut got = 0u64;
        let began = Instant::now();
        let fetched = tokio::time::timeout_at(
            until.into(),
            get(shared, conn, target, &seg.uri, What::Segment, Sink::Count(&mut got)),
        )
        .await;
        acc.total = acc.total.saturating_add(got);
        match fetched {
            Err(_) => {
                if Instant::now() >= shared.deadline {
                    *conn = None;
                    live.cut_at_end.fetch_add(1, Relaxed);
                    return Ok(());
                }
                // Leaving mid-segment: what already reached this machine unread crossed the
                // network all the same (received, and wasted), as for progressive viewers.
                if let Some(c) = conn.as_ref() {
                    let queued = c.stream.queued();
                    acc.total = acc.total.saturating_add(queued);
                    live.bytes.fetch_add(queued, Relaxed);
                }
                leave(&mut acc, conn, watch.unwrap_or(f64::INFINITY));
                return Ok(());
            }
            Ok(Err(e)) => return Err(e),
            Ok(Ok(())) => {}
        }
        let now = Instant::now();
        live.abr.segment_time.record(u64::try_from(now.duration_since(began).as_micros()).unwrap_or(u64::MAX));
        live.abr.segments.fetch_add(1, Relaxed);
        received += seg.duration;
        acc.buffer.push_back(Buffered { end: received, duration: seg.duration, bytes: got });
        let media = (seg.duration * CLOCK) as u64;
        match acc.player.as_mut() {
            None => {
                let mut p = Playback::new(CLOCK, now);
                p.on_data(now, media);
                acc.player = Some(p);
            }
            Some(p) => {
                if let Some(stall) = p.on_data(now, media) {
                    live.stalls.fetch_add(1, Relaxed);
                    live.stall_micros.fetch_add((stall.seconds * 1e6) as u64, Relaxed);
                }
            }
        }
        if !paced {
            acc.advance(received);
        }
    }
    // Every segment is here: play out to the watch time or the end.
    let end = received.min(watch.unwrap_or(f64::INFINITY));
    if let (true, Some(p)) = (paced, acc.player.as_ref()) {
        let now = Instant::now();
        tokio::time::sleep_until((now + p.until_position(now, end)).min(shared.deadline).into()).await;
        if Instant::now() >= shared.deadline {
            return Ok(());
        }
    }
    if watch.is_some_and(|w| w < received) {
        live.left.fetch_add(1, Relaxed);
    }
    acc.settle(end, true);
    Ok(())
}

/// The viewer leaves at `position`: its connection closes, what it did not watch is wasted.
fn leave(acc: &mut Account, conn: &mut Option<Conn>, position: f64) {
    *conn = None;
    acc.shared.live.left.fetch_add(1, Relaxed);
    let at = acc.position(Instant::now()).min(position);
    acc.settle(at, true);
}
