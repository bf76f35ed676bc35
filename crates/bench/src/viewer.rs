//! One simulated viewer: a tokio task that, until the deadline, picks a target and a seek,
//! sends `GET path?start=S` on a (kept-alive) connection, measures the time to first byte,
//! then reads the body either as fast as it comes or paced at the playback rate, watching
//! its buffer for stalls. Per-viewer state is a socket, a few numbers and a head buffer that
//! lives only while a head is read. Body bytes are counted, never looked at, so they are
//! dropped in the kernel (`recv` with `MSG_TRUNC`, which TCP answers without copying): the
//! load generator shares the machine with the server it measures and should cost it little.

use super::http::{self, HeadScanner};
use super::playback::Playback;
use super::stats::Failure;
use super::{Pace, Seek, Shared};
use std::cell::RefCell;
use std::io;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// Bytes pulled from a socket per read; one such buffer per runtime thread.
const READ_BUF: usize = 64 * 1024;

/// Pause after a failed request, so a dead server is not hammered in a tight loop.
const BACKOFF: Duration = Duration::from_millis(100);

/// The most body bytes one read may drop when reading as fast as possible.
const DISCARD_MAX: usize = 1 << 20;

thread_local! {
    static BUF: RefCell<Box<[u8]>> = RefCell::new(vec![0u8; READ_BUF].into_boxed_slice());
    /// The length handed to a discarding `recv`. The kernel writes nothing into it, so its
    /// zeroed pages are never touched and cost no memory.
    static DISCARD: RefCell<Box<[u8]>> = RefCell::new(vec![0u8; DISCARD_MAX].into_boxed_slice());
}

/// Waits until `stream` has data and drops at most `max` bytes of it without copying them
/// (`MSG_TRUNC`); falls back to reading into the thread's buffer where the kernel refuses
/// the flag. Returns 0 at end of stream.
async fn discard(stream: &TcpStream, max: usize, copy: &mut bool) -> io::Result<usize> {
    while !*copy {
        stream.readable().await?;
        let got = DISCARD.with(|b| {
            let mut b = b.borrow_mut();
            let take = max.clamp(1, b.len());
            let flags = rustix::net::RecvFlags::TRUNC | rustix::net::RecvFlags::DONTWAIT;
            stream.try_io(tokio::io::Interest::READABLE, || {
                rustix::net::recv(stream, &mut b[..take], flags).map(|(_, n)| n.min(take)).map_err(io::Error::from)
            })
        });
        match got {
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e)
                if [rustix::io::Errno::INVAL, rustix::io::Errno::OPNOTSUPP]
                    .iter()
                    .any(|no| e.raw_os_error() == Some(no.raw_os_error())) =>
            {
                *copy = true;
            }
            Err(e) => return Err(e),
        }
    }
    read_with(stream, max.min(READ_BUF), |_| ()).await.map(|(n, ())| n)
}

/// Waits until `stream` has data and reads at most `max` bytes into the thread's buffer,
/// handing them to `f`. Returns 0 at end of stream.
async fn read_with<R>(stream: &TcpStream, max: usize, mut f: impl FnMut(&[u8]) -> R) -> io::Result<(usize, R)> {
    loop {
        stream.readable().await?;
        let got = BUF.with(|b| {
            let mut b = b.borrow_mut();
            let take = max.clamp(1, b.len());
            match stream.try_read(&mut b[..take]) {
                Ok(n) => Ok(Some((n, f(&b[..n])))),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
                Err(e) => Err(e),
            }
        })?;
        if let Some(done) = got {
            return Ok(done);
        }
    }
}

/// A connection; counted in the live "active streams" while it exists.
struct Conn {
    stream: TcpStream,
    shared: Arc<Shared>,
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.shared.live.closed();
    }
}

/// Marks a body being read; if the viewer is cancelled at the deadline while armed, the
/// stream counts as cut at the end rather than lost.
struct InFlight<'a> {
    shared: &'a Shared,
    armed: bool,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.shared.live.cut_at_end.fetch_add(1, Relaxed);
        }
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

/// Runs viewer `id` until cancelled (the caller wraps it in the deadline).
pub async fn run(id: u32, shared: Arc<Shared>) {
    let delay = shared.ramp.mul_f64(f64::from(id) / f64::from(shared.viewers.max(1)));
    tokio::time::sleep_until((shared.t0 + delay).into()).await;
    let mut rng = Rng::new(shared.seed ^ u64::from(id).wrapping_mul(0xA24B_AED4_963E_E407));
    let mut conn: Option<Conn> = None;
    let mut next = id as usize;
    while Instant::now() < shared.deadline {
        let Some(target) = shared.targets.get(next % shared.targets.len().max(1)) else { return };
        next = next.wrapping_add(1);
        let start = match shared.seek {
            Seek::Fixed(s) if s > 0.0 => Some(s),
            Seek::Fixed(_) => None,
            Seek::Random => target.media_duration.map(|d| rng.unit() * d),
        };
        let path = target.target.path_with_start(start);
        let req = http::request(&path, &target.target.host_header);
        match exchange(&shared, &mut conn, target.target.addr, &req).await {
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

/// Connects to `addr` within the timeout.
async fn connect(shared: &Arc<Shared>, addr: std::net::SocketAddr) -> Result<Conn, Failure> {
    match tokio::time::timeout(shared.timeout, TcpStream::connect(addr)).await {
        Ok(Ok(stream)) => {
            let _ = stream.set_nodelay(true);
            shared.live.opened();
            Ok(Conn { stream, shared: shared.clone() })
        }
        _ => Err(Failure::Connect),
    }
}

/// What happened while waiting for a response head.
enum HeadOutcome {
    /// Got a head; `extra` body bytes came with it; `first_byte` is when the first byte came.
    Head { head: http::Head, extra: usize, first_byte: Instant },
    /// A reused connection was closed by the server before answering: retry on a new one.
    Stale,
}

/// Reads a response head within the timeout.
async fn read_head(shared: &Shared, stream: &TcpStream, reused: bool) -> Result<HeadOutcome, Failure> {
    let mut scanner = HeadScanner::default();
    let mut first_byte = None;
    let deadline = tokio::time::Instant::now() + shared.timeout;
    loop {
        let read = tokio::time::timeout_at(deadline, read_with(stream, READ_BUF, |chunk| scanner.feed(chunk))).await;
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
            Ok(Some(used)) => {
                let head = http::parse_head(scanner.bytes()).map_err(|_| Failure::Protocol)?;
                return Ok(HeadOutcome::Head { head, extra: n - used, first_byte });
            }
        }
    }
}

/// One request/response on `conn` (opened or reopened as needed). `Err(None)` is a failure
/// already counted (a bad status code).
async fn exchange(
    shared: &Arc<Shared>,
    conn: &mut Option<Conn>,
    addr: std::net::SocketAddr,
    req: &[u8],
) -> Result<(), Option<Failure>> {
    let began = Instant::now();
    let mut attempt = 0;
    let (head, extra, first_byte) = loop {
        attempt += 1;
        let reused = conn.is_some() && attempt == 1;
        let c = match conn {
            Some(c) => c,
            None => conn.insert(connect(shared, addr).await?),
        };
        shared.live.requests.fetch_add(1, Relaxed);
        let wrote = tokio::time::timeout(shared.timeout, c.stream.write_all(req)).await;
        let outcome = match wrote {
            Err(_) => return Err(Some(Failure::Timeout)),
            Ok(Err(_)) if reused => HeadOutcome::Stale,
            Ok(Err(_)) => return Err(Some(Failure::Io)),
            Ok(Ok(())) => read_head(shared, &c.stream, reused).await?,
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
    let Some(c) = conn.as_ref() else { return Err(Some(Failure::Io)) };
    let keep = head.keep_alive;
    let finished = read_body(shared, &c.stream, &head, extra as u64, first_byte).await?;
    if !keep || !finished {
        *conn = None;
    }
    Ok(())
}

/// Reads the body, paced or not, counting bytes and stalls. `Ok(false)`: cut at the deadline.
async fn read_body(
    shared: &Shared,
    stream: &TcpStream,
    head: &http::Head,
    extra: u64,
    first_byte: Instant,
) -> Result<bool, Option<Failure>> {
    let live = &shared.live;
    let rate = match (head.duration, head.content_length) {
        (Some(d), Some(len)) if len > 0 => Some(len as f64 / d),
        _ => shared.bitrate_bytes,
    };
    if rate.is_none() {
        live.unpaced.fetch_add(1, Relaxed);
    }
    // The player starts with the first byte of the body, not of the head: a server may send
    // the head in a write of its own, and that gap is not a stall.
    let mut player = if extra > 0 { rate.map(|r| Playback::new(r, first_byte)) } else { None };
    let mut remaining = head.content_length;
    if let Some(r) = remaining.as_mut() {
        if extra > *r {
            return Err(Some(Failure::Protocol));
        }
        *r -= extra;
    }
    if let Some(p) = player.as_mut() {
        p.on_data(first_byte, extra);
    }
    live.bytes.fetch_add(extra, Relaxed);
    let mut guard = InFlight { shared, armed: true };
    let paced = shared.pace == Pace::PlaybackRate;
    let mut copy = false;
    while remaining != Some(0) {
        if Instant::now() >= shared.deadline {
            // The guard counts this stream as cut at the end.
            return Ok(false);
        }
        if let (true, Some(p)) = (paced, player.as_ref()) {
            let wait = p.wait_before_read(Instant::now(), shared.read_ahead);
            if !wait.is_zero() {
                tokio::time::sleep(wait).await;
            }
        }
        let most = if paced { READ_BUF } else { DISCARD_MAX };
        let max = remaining.map_or(most, |r| usize::try_from(r).unwrap_or(most).min(most));
        let n = match tokio::time::timeout(shared.timeout, discard(stream, max, &mut copy)).await {
            Err(_) => {
                guard.armed = false;
                return Err(Some(Failure::Timeout));
            }
            Ok(Err(_)) => {
                guard.armed = false;
                return Err(Some(Failure::Io));
            }
            Ok(Ok(n)) => n as u64,
        };
        if n == 0 {
            guard.armed = false;
            return match remaining {
                Some(_) => Err(Some(Failure::ShortBody)),
                None => {
                    live.completed.fetch_add(1, Relaxed);
                    Ok(true)
                }
            };
        }
        let now = Instant::now();
        if player.is_none() {
            player = rate.map(|r| Playback::new(r, now));
        }
        if let Some(p) = player.as_mut() {
            if let Some(stall) = p.on_data(now, n) {
                live.stalls.fetch_add(1, Relaxed);
                live.stall_micros.fetch_add((stall.seconds * 1e6) as u64, Relaxed);
            }
        }
        live.bytes.fetch_add(n, Relaxed);
        if let Some(r) = remaining.as_mut() {
            *r = r.saturating_sub(n);
        }
    }
    guard.armed = false;
    live.completed.fetch_add(1, Relaxed);
    Ok(true)
}

/// Asks `HEAD path` on a fresh connection and returns its `X-Content-Duration`.
pub async fn probe_duration(shared: &Arc<Shared>, target: &super::target::Target) -> Option<f64> {
    let mut conn = connect(shared, target.addr).await.ok()?;
    let req = format!("HEAD {} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n", target.path, target.host_header);
    tokio::time::timeout(shared.timeout, conn.stream.write_all(req.as_bytes())).await.ok()?.ok()?;
    match read_head(shared, &conn.stream, false).await.ok()? {
        HeadOutcome::Head { head, .. } if head.status == 200 || head.status == 206 => head.duration,
        _ => None,
    }
}
