//! One simulated viewer: a tokio task that, until the deadline, picks a target and a seek,
//! sends `GET path?start=S` on a (kept-alive) connection, measures the time to first byte,
//! then reads the body either as fast as it comes or paced at the playback rate, watching
//! its buffer for stalls. Per-viewer state is a socket, a few numbers and a head buffer that
//! lives only while a head is read. Body bytes are counted, never looked at, so they are
//! dropped in the kernel (`recv` with `MSG_TRUNC`, which TCP answers without copying): the
//! load generator shares the machine with the server it measures and should cost it little.

use super::http::{self, HeadScanner};
use super::playback::Playback;
use super::prefix::{Scanner, Want};
use super::stats::Failure;
use super::target::Target;
use super::transport::{Stream, DISCARD_MAX, READ_BUF};
use super::{Pace, Seek, Shared};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;

/// Seconds of media a player holds before it starts playing (at most the read-ahead).
const STARTUP: f64 = 0.5;

/// Pause after a failed request, so a dead server is not hammered in a tight loop.
const BACKOFF: Duration = Duration::from_millis(100);

/// A connection; counted in the live "active streams" while it exists.
pub(super) struct Conn {
    pub stream: Stream,
    shared: Arc<Shared>,
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.shared.live.closed();
    }
}

/// A small, fast, seedable random source (SplitMix64); quality is ample for seek times.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// What one session asks for and how long its viewer means to watch.
pub(crate) struct SessionPlan {
    /// Seconds of media the answer should hold (the file's duration minus the seek), when
    /// the probe learnt the duration: the pace for answers that state neither
    /// `X-Content-Duration` nor an `mvhd`.
    pub expected: Option<f64>,
    /// Seconds of playback before the viewer leaves; `None` = to the end.
    pub watch: Option<f64>,
}

/// Runs viewer `id` until cancelled (the caller wraps it in the deadline). Each turn of the
/// loop is one viewing session: a seek, a watch time, one request.
pub async fn run(id: u32, shared: Arc<Shared>) {
    let delay = shared.ramp.mul_f64(f64::from(id) / f64::from(shared.viewers.max(1)));
    tokio::time::sleep_until((shared.t0 + delay).into()).await;
    let mut rng = Rng::new(shared.seed ^ u64::from(id).wrapping_mul(0xA24B_AED4_963E_E407));
    let mut conn: Option<Conn> = None;
    let mut next = id as usize;
    while Instant::now() < shared.deadline {
        let Some(target) = shared.targets.get(next % shared.targets.len().max(1)) else { return };
        next = next.wrapping_add(1);
        let at = match shared.seek {
            Seek::Fixed(s) if s > 0.0 => Some(s),
            Seek::Fixed(_) => None,
            Seek::Random => target.duration.map(|d| rng.unit() * d),
        };
        let watch = shared.watch.sample(|| rng.unit());
        if let Some(kind) = super::manifest::Kind::of(&target.target.path) {
            if let Err(kind) = super::abr::session(&shared, &mut conn, target, kind, &mut rng, watch).await {
                if let Some(k) = kind {
                    shared.live.fail(k);
                }
                conn = None;
                tokio::time::sleep(BACKOFF).await;
            }
            continue;
        }
        let seek = at.and_then(|t| target.form.value(t));
        let path = match &seek {
            Some((value, _)) => target.target.path_with_start(Some(value)),
            None => target.target.path.clone(),
        };
        let begins = seek.as_ref().map_or(0.0, |s| s.1);
        let plan = SessionPlan { expected: target.duration.map(|d| (d - begins).max(0.0)).filter(|&d| d > 0.0), watch };
        let req = http::request(&path, &target.target.host_header);
        match exchange(&shared, &mut conn, &target.target, &req, &plan).await {
            Ok(()) => {}
            Err(kind) => {
                if let Some(k) = kind {
                    shared.live.fail(k);
                }
                conn = None;
                tokio::time::sleep(BACKOFF).await;
            }
        }
    }
}

/// Connects to `target` within the timeout, and for `https://` makes the TLS handshake
/// within another (its time is recorded; a failure is counted as a TLS error, the first one's
/// reason kept for the report).
pub(super) async fn connect(shared: &Arc<Shared>, target: &Target) -> Result<Conn, Failure> {
    let tcp = match tokio::time::timeout(shared.timeout, TcpStream::connect(target.addr)).await {
        Ok(Ok(tcp)) => tcp,
        _ => return Err(Failure::Connect),
    };
    let _ = tcp.set_nodelay(true);
    let stream = if target.tls {
        let Some(tls) = shared.tls.as_ref() else { return Err(Failure::Tls) };
        let began = Instant::now();
        match tokio::time::timeout(shared.timeout, tls.handshake(&target.server_name, tcp)).await {
            Ok(Ok(s)) => {
                shared.live.handshake.record(u64::try_from(began.elapsed().as_micros()).unwrap_or(u64::MAX));
                s
            }
            Ok(Err(why)) => {
                shared.live.tls_failed(why);
                return Err(Failure::Tls);
            }
            Err(_) => {
                shared.live.tls_failed("TLS handshake timed out (--timeout)".into());
                return Err(Failure::Tls);
            }
        }
    } else {
        Stream::Plain(tcp)
    };
    shared.live.opened();
    Ok(Conn { stream, shared: shared.clone() })
}

/// What happened while waiting for a response head.
pub(super) enum HeadOutcome {
    /// Got a head; `extra` are the body bytes that came with it; `first_byte` is when the
    /// first byte came.
    Head { head: http::Head, extra: Vec<u8>, first_byte: Instant },
    /// A reused connection was closed by the server before answering: retry on a new one.
    Stale,
}

/// Reads a response head within the timeout.
pub(super) async fn read_head(shared: &Shared, stream: &mut Stream, reused: bool) -> Result<HeadOutcome, Failure> {
    let mut scanner = HeadScanner::default();
    let mut first_byte = None;
    let mut extra = Vec::new();
    let deadline = tokio::time::Instant::now() + shared.timeout;
    loop {
        let read = tokio::time::timeout_at(
            deadline,
            stream.read_with(READ_BUF, |chunk| {
                let fed = scanner.feed(chunk);
                if let Ok(Some(used)) = fed {
                    extra = chunk[used..].to_vec();
                }
                fed
            }),
        )
        .await;
        let (n, fed) = match read {
            Err(_) => return Err(Failure::Timeout),
            Ok(Err(_)) if reused && first_byte.is_none() => return Ok(HeadOutcome::Stale),
            Ok(Err(_)) => return Err(Failure::Io),
            Ok(Ok(x)) => x,
        };
        if n == 0 {
            if reused && first_byte.is_none() {
                return Ok(HeadOutcome::Stale);
            }
            return Err(Failure::Protocol);
        }
        let first_byte = *first_byte.get_or_insert_with(Instant::now);
        match fed {
            Err(_) => return Err(Failure::Protocol),
            Ok(None) => continue,
            Ok(Some(_)) => {
                let head = http::parse_head(scanner.bytes()).map_err(|_| Failure::Protocol)?;
                return Ok(HeadOutcome::Head { head, extra, first_byte });
            }
        }
    }
}

/// How a body read ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    /// Read to its end (and, for a paced viewer, played until it left or the media ended).
    Finished,
    /// The viewer left before the end of the answer: the connection is closed.
    Left,
    /// The run's deadline came first.
    Cut,
}

/// One request/response on `conn` (opened or reopened as needed). `Err(None)` is a failure
/// already counted (a bad status code).
async fn exchange(
    shared: &Arc<Shared>,
    conn: &mut Option<Conn>,
    target: &Target,
    req: &[u8],
    plan: &SessionPlan,
) -> Result<(), Option<Failure>> {
    let began = Instant::now();
    let mut attempt = 0;
    let (head, extra, first_byte) = loop {
        attempt += 1;
        let reused = conn.is_some() && attempt == 1;
        let c = match conn {
            Some(c) => c,
            None => conn.insert(connect(shared, target).await?),
        };
        shared.live.requests.fetch_add(1, Relaxed);
        let wrote = tokio::time::timeout(shared.timeout, c.stream.write_all(req)).await;
        let outcome = match wrote {
            Err(_) => return Err(Some(Failure::Timeout)),
            Ok(Err(_)) if reused => HeadOutcome::Stale,
            Ok(Err(_)) => return Err(Some(Failure::Io)),
            Ok(Ok(())) => read_head(shared, &mut c.stream, reused).await?,
        };
        match outcome {
            HeadOutcome::Head { head, extra, first_byte } => break (head, extra, first_byte),
            HeadOutcome::Stale => {
                // Not the server's fault: idle keep-alive connections may be closed.
                shared.live.requests.fetch_sub(1, Relaxed);
                *conn = None;
            }
        }
    };
    let ttfb = first_byte.saturating_duration_since(began);
    shared.live.ttfb.record(u64::try_from(ttfb.as_micros()).unwrap_or(u64::MAX));
    shared.live.responses.fetch_add(1, Relaxed);
    if head.status != 200 && head.status != 206 {
        shared.live.fail_status(head.status);
        return Err(None);
    }
    shared.live.succeeded.fetch_add(1, Relaxed);
    let Some(c) = conn.as_mut() else { return Err(Some(Failure::Io)) };
    let keep = head.keep_alive;
    let outcome = read_body(shared, &mut c.stream, &head, &extra, plan).await?;
    if !keep || outcome != Outcome::Finished {
        *conn = None;
    }
    Ok(())
}

/// One answer being read: its prefix scan, its player, and what was received and watched.
/// Dropped unsettled (the run's deadline cancelled the viewer, or the read failed), it
/// counts what was watched so far and, if still reading, a stream cut at the end.
struct Session<'a> {
    shared: &'a Shared,
    head: &'a http::Head,
    plan: &'a SessionPlan,
    /// Still reading the body: a cancellation now is a stream cut at the end.
    reading: bool,
    settled: bool,
    scanner: Scanner,
    /// Set once the prefix has ended (and a rate is known).
    player: Option<Playback>,
    started: bool,
    /// The media's bytes per second, once the prefix has ended.
    rate: Option<f64>,
    prefix: u64,
    /// Body bytes received.
    total: u64,
    remaining: Option<u64>,
}

impl Drop for Session<'_> {
    fn drop(&mut self) {
        if self.reading {
            self.shared.live.cut_at_end.fetch_add(1, Relaxed);
        }
        if !self.settled {
            self.settle(Instant::now(), false, false);
        }
    }
}

impl Session<'_> {
    /// `n` body bytes arrived at `now` (the scanner has already been given them).
    fn arrived(&mut self, now: Instant, n: u64) {
        let live = &self.shared.live;
        self.total = self.total.saturating_add(n);
        live.bytes.fetch_add(n, Relaxed);
        if let Some(r) = self.remaining.as_mut() {
            *r = r.saturating_sub(n);
        }
        if let Some(p) = self.player.as_mut() {
            if let Some(stall) = p.on_data(now, n) {
                live.stalls.fetch_add(1, Relaxed);
                live.stall_micros.fetch_add((stall.seconds * 1e6) as u64, Relaxed);
            }
        } else if !self.started && (self.scanner.is_done() || self.remaining == Some(0)) {
            self.start();
        }
        self.play(now, false);
    }

    /// The prefix has ended: the media's rate is known (or not).
    fn start(&mut self) {
        self.started = true;
        self.prefix = self.scanner.prefix_len().unwrap_or(self.total).min(self.total);
        let media_len = self.head.content_length.and_then(|len| len.checked_sub(self.prefix)).filter(|&m| m > 0);
        let clip = self.head.duration.or(self.scanner.duration()).or(self.plan.expected);
        let rate = match (media_len, clip) {
            (Some(m), Some(d)) if d > 0.0 => Some(m as f64 / d),
            _ => self.shared.bitrate_bytes,
        };
        self.rate = rate.filter(|r| r.is_finite() && *r > 0.0);
        if self.rate.is_none() {
            self.shared.live.unpaced.fetch_add(1, Relaxed);
        }
    }

    /// Starts the player once [`STARTUP`] seconds of media are here (or the answer is
    /// complete), as a player does; waiting for them is start-up, not a stall.
    fn play(&mut self, now: Instant, complete: bool) {
        let (None, Some(rate)) = (&self.player, self.rate) else { return };
        let media = self.total - self.prefix;
        if complete || media as f64 / rate >= STARTUP.min(self.shared.read_ahead) {
            let mut p = Playback::new(rate, now);
            p.on_data(now, media);
            self.player = Some(p);
        }
    }

    /// Counts what the viewer watched by `now` (or, with `to_end`, will watch of what it
    /// has, up to its watch time); `leaving`: the viewer goes away now, so everything
    /// received beyond what it watched was wasted.
    fn settle(&mut self, now: Instant, leaving: bool, to_end: bool) {
        self.settled = true;
        let Some(p) = self.player.as_ref() else { return };
        let live = &self.shared.live;
        let end = p.received() as f64 / p.rate();
        let seen = if to_end { end } else { p.position(now) };
        let seen = seen.min(self.plan.watch.unwrap_or(f64::INFINITY));
        let watched = self.prefix.saturating_add(((seen * p.rate()) as u64).min(p.received()));
        live.watched_micros.fetch_add((seen * 1e6) as u64, Relaxed);
        live.bytes_watched.fetch_add(watched, Relaxed);
        if leaving {
            live.bytes_wasted.fetch_add(self.total.saturating_sub(watched), Relaxed);
            if seen + 1e-3 < end || self.remaining.is_some_and(|r| r > 0) {
                live.left.fetch_add(1, Relaxed);
            }
        }
    }
}

/// Reads the body: the prefix at once, then the media paced (or not), counting bytes and
/// stalls; a viewer with a watch time leaves when its player gets there.
async fn read_body(
    shared: &Shared,
    stream: &mut Stream,
    head: &http::Head,
    extra: &[u8],
    plan: &SessionPlan,
) -> Result<Outcome, Option<Failure>> {
    let live = &shared.live;
    if head.content_length.is_some_and(|len| extra.len() as u64 > len) {
        return Err(Some(Failure::Protocol));
    }
    let mut s = Session {
        shared,
        head,
        plan,
        reading: true,
        settled: false,
        scanner: Scanner::new(false, head.content_length),
        player: None,
        started: false,
        rate: None,
        prefix: 0,
        total: 0,
        remaining: head.content_length,
    };
    // The body bytes that came with the head.
    let now = Instant::now();
    let mut rest = extra;
    while !rest.is_empty() {
        let n = match s.scanner.want() {
            Want::Copy(k) => {
                let n = k.min(rest.len());
                s.scanner.copied(&rest[..n]);
                n
            }
            Want::Skip(k) => {
                let n = usize::try_from(k).unwrap_or(usize::MAX).min(rest.len());
                s.scanner.skipped(n as u64);
                n
            }
            Want::Done => rest.len(),
        };
        s.arrived(now, n as u64);
        rest = &rest[n..];
    }
    let paced = shared.pace == Pace::PlaybackRate;
    let mut copy = false;
    loop {
        if s.remaining == Some(0) {
            break;
        }
        let now = Instant::now();
        if now >= shared.deadline {
            // The session counts this stream as cut at the end.
            return Ok(Outcome::Cut);
        }
        let mut most = if paced { READ_BUF } else { DISCARD_MAX };
        if let Some(p) = s.player.as_ref() {
            if let Some(w) = plan.watch {
                if p.position(now) >= w {
                    s.reading = false;
                    // What already reached this machine but was never read crossed the
                    // network all the same: it is received, and wasted.
                    let queued = stream.queued();
                    let queued = s.remaining.map_or(queued, |r| queued.min(r));
                    s.total = s.total.saturating_add(queued);
                    live.bytes.fetch_add(queued, Relaxed);
                    s.settle(now, true, false);
                    return Ok(Outcome::Left);
                }
            }
            if paced {
                let mut wait = p.wait_before_read(now, shared.read_ahead);
                if let Some(w) = plan.watch {
                    wait = wait.min(p.until_position(now, w));
                }
                if !wait.is_zero() {
                    tokio::time::sleep_until((now + wait).min(shared.deadline).into()).await;
                    continue;
                }
                // Read no more than the read-ahead has room for, like a player's buffer.
                let room = (shared.read_ahead - p.buffered(now)).max(0.0) * p.rate();
                most = (room as usize).clamp(4096, READ_BUF);
            }
        }
        let max = s.remaining.map_or(most, |r| usize::try_from(r).unwrap_or(most).min(most));
        let read = match s.scanner.want() {
            Want::Copy(k) => {
                let scanner = &mut s.scanner;
                tokio::time::timeout(shared.timeout, stream.read_with(k.min(max), |b| scanner.copied(b)))
                    .await
                    .map(|r| r.map(|(n, ())| n))
            }
            Want::Skip(k) => {
                let k = usize::try_from(k).unwrap_or(usize::MAX).min(max);
                let got = tokio::time::timeout(shared.timeout, stream.discard(k, &mut copy)).await;
                if let Ok(Ok(n)) = got {
                    s.scanner.skipped(n as u64);
                }
                got
            }
            Want::Done => tokio::time::timeout(shared.timeout, stream.discard(max, &mut copy)).await,
        };
        let n = match read {
            Err(_) => {
                s.reading = false;
                return Err(Some(Failure::Timeout));
            }
            Ok(Err(_)) => {
                s.reading = false;
                return Err(Some(Failure::Io));
            }
            Ok(Ok(n)) => n as u64,
        };
        if n == 0 {
            s.reading = false;
            if s.remaining.is_some() {
                return Err(Some(Failure::ShortBody));
            }
            break;
        }
        s.arrived(Instant::now(), n);
    }
    // The whole answer is here.
    s.reading = false;
    live.completed.fetch_add(1, Relaxed);
    if !s.started {
        s.scanner.end();
        s.start();
    }
    s.play(Instant::now(), true);
    if let (true, Some(p)) = (paced, s.player.as_ref()) {
        // The viewer plays what it has, up to where it leaves, before its next session.
        let end = p.received() as f64 / p.rate();
        let until = p.until_position(Instant::now(), plan.watch.map_or(end, |w| w.min(end)));
        tokio::time::sleep_until((Instant::now() + until).min(shared.deadline).into()).await;
        if Instant::now() >= shared.deadline {
            return Ok(Outcome::Cut);
        }
        s.settle(Instant::now(), true, false);
    } else {
        // Not watched out here (reading fast, or no rate known): it plays to the end.
        s.settle(Instant::now(), true, true);
    }
    Ok(Outcome::Finished)
}
