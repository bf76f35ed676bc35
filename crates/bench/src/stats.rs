//! What the bench counts and reports: lock-free live counters shared by every viewer (also
//! read by the progress display), a fixed-size log-linear latency histogram (bounded memory
//! however many requests run), and the final [`Report`], serialisable as JSON.

use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;

/// 64 exact buckets, then 32 per power of two: about 3 % resolution up to `u64::MAX` µs.
const BUCKETS: usize = 64 + 58 * 32;

/// A concurrent histogram of microsecond values with fixed memory (~15 KiB).
pub struct Histogram {
    buckets: Box<[AtomicU64]>,
    max: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram { buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(), max: AtomicU64::new(0) }
    }
}

fn bucket_of(v: u64) -> usize {
    if v < 64 {
        return v as usize;
    }
    let e = 63 - v.leading_zeros() as usize; // 6..=63
    let sub = ((v >> (e - 5)) & 31) as usize;
    64 + (e - 6) * 32 + sub
}

/// The middle of bucket `i`.
fn bucket_mid(i: usize) -> u64 {
    if i < 64 {
        return i as u64;
    }
    let e = (i - 64) / 32 + 6;
    let sub = ((i - 64) % 32) as u64;
    let width = 1u64 << (e - 5);
    ((32 + sub) << (e - 5)).saturating_add(width / 2)
}

impl Histogram {
    /// Records one value.
    pub fn record(&self, micros: u64) {
        if let Some(b) = self.buckets.get(bucket_of(micros)) {
            b.fetch_add(1, Relaxed);
        }
        self.max.fetch_max(micros, Relaxed);
    }

    /// Number of values recorded.
    pub fn count(&self) -> u64 {
        self.buckets.iter().map(|b| b.load(Relaxed)).sum()
    }

    /// The value at quantile `q` (0..=1), never above the exact maximum; 0 when empty.
    pub fn quantile(&self, q: f64) -> u64 {
        let total = self.count();
        if total == 0 {
            return 0;
        }
        let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).max(1);
        let mut seen = 0u64;
        for (i, b) in self.buckets.iter().enumerate() {
            seen += b.load(Relaxed);
            if seen >= rank {
                return bucket_mid(i).min(self.max());
            }
        }
        self.max()
    }

    /// The largest value recorded.
    pub fn max(&self) -> u64 {
        self.max.load(Relaxed)
    }
}

/// Kinds of failed requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// The TCP connection could not be made (refused, unreachable, connect timeout).
    Connect,
    /// No data for the idle timeout while waiting for the head or the body.
    Timeout,
    /// The connection ended before `Content-Length` bytes arrived.
    ShortBody,
    /// The response was not valid HTTP/1.x (or its head was too long).
    Protocol,
    /// A read or write failed (reset, broken pipe…).
    Io,
    /// The TLS handshake failed (certificate not trusted, protocol refused, timed out).
    Tls,
}

/// Counters updated by the viewers while the bench runs.
#[derive(Default)]
pub struct Live {
    /// Requests sent.
    pub requests: AtomicU64,
    /// Response heads received.
    pub responses: AtomicU64,
    /// Bodies read to their end.
    pub completed: AtomicU64,
    /// Streams still running when the duration ended (not errors).
    pub cut_at_end: AtomicU64,
    /// Body bytes received.
    pub bytes: AtomicU64,
    /// Connections open right now.
    pub active: AtomicU64,
    /// Most connections open at once.
    pub peak: AtomicU64,
    /// Playback stalls.
    pub stalls: AtomicU64,
    /// Total stalled playback time, µs.
    pub stall_micros: AtomicU64,
    /// Responses whose playback rate was unknown (read as fast as possible).
    pub unpaced: AtomicU64,
    /// Responses with a 2xx status.
    pub succeeded: AtomicU64,
    /// Viewers who left before the end of their answer.
    pub left: AtomicU64,
    /// Media time watched, µs.
    pub watched_micros: AtomicU64,
    /// Bytes of prefix and of media watched.
    pub bytes_watched: AtomicU64,
    /// Bytes received beyond what was watched when the viewer left.
    pub bytes_wasted: AtomicU64,
    /// Time to first byte, µs.
    pub ttfb: Histogram,
    /// TLS handshakes that succeeded, µs each (`https://` targets).
    pub handshake: Histogram,
    /// HLS/DASH viewers' own counters.
    pub abr: super::abr::AbrLive,
    /// Why the first TLS handshake failed.
    first_tls_error: Mutex<Option<String>>,
    connect: AtomicU64,
    tls: AtomicU64,
    timeout: AtomicU64,
    short_body: AtomicU64,
    protocol: AtomicU64,
    io: AtomicU64,
    status: Mutex<BTreeMap<u16, u64>>,
}

/// A consistent-enough view of the counters for a progress line.
#[derive(Clone, Copy, Debug, Default)]
pub struct Snapshot {
    pub requests: u64,
    pub completed: u64,
    pub bytes: u64,
    pub active: u64,
    pub peak: u64,
    pub errors: u64,
    pub stalls: u64,
}

impl Live {
    /// Counts one failure.
    pub fn fail(&self, kind: Failure) {
        let c = match kind {
            Failure::Connect => &self.connect,
            Failure::Timeout => &self.timeout,
            Failure::ShortBody => &self.short_body,
            Failure::Protocol => &self.protocol,
            Failure::Io => &self.io,
            Failure::Tls => &self.tls,
        };
        c.fetch_add(1, Relaxed);
    }

    /// Keeps why a TLS handshake failed, when it is the first (the failure itself is
    /// counted by [`Live::fail`]).
    pub fn tls_failed(&self, why: String) {
        if let Ok(mut first) = self.first_tls_error.lock() {
            first.get_or_insert(why);
        }
    }

    /// Why the first TLS handshake failed.
    pub fn first_tls_error(&self) -> Option<String> {
        self.first_tls_error.lock().ok().and_then(|f| f.clone())
    }

    /// Counts a response with an unexpected status code.
    pub fn fail_status(&self, code: u16) {
        if let Ok(mut m) = self.status.lock() {
            *m.entry(code).or_default() += 1;
        }
    }

    /// Notes a connection opening; pair with [`Live::closed`].
    pub fn opened(&self) {
        let now = self.active.fetch_add(1, Relaxed) + 1;
        self.peak.fetch_max(now, Relaxed);
    }

    /// Notes a connection closing.
    pub fn closed(&self) {
        self.active.fetch_sub(1, Relaxed);
    }

    /// The error counts.
    pub fn errors(&self) -> Errors {
        let status: BTreeMap<u16, u64> = self.status.lock().map(|m| m.clone()).unwrap_or_default();
        let mut e = Errors {
            connect: self.connect.load(Relaxed),
            timeout: self.timeout.load(Relaxed),
            short_body: self.short_body.load(Relaxed),
            protocol: self.protocol.load(Relaxed),
            io: self.io.load(Relaxed),
            tls: self.tls.load(Relaxed),
            status,
            total: 0,
        };
        e.total = e.connect + e.timeout + e.short_body + e.protocol + e.io + e.tls + e.status.values().sum::<u64>();
        e
    }

    /// Current values for a progress display.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            requests: self.requests.load(Relaxed),
            completed: self.completed.load(Relaxed),
            bytes: self.bytes.load(Relaxed),
            active: self.active.load(Relaxed),
            peak: self.peak.load(Relaxed),
            errors: self.errors().total,
            stalls: self.stalls.load(Relaxed),
        }
    }
}

/// Failed requests by kind.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Errors {
    pub connect: u64,
    pub timeout: u64,
    pub short_body: u64,
    pub protocol: u64,
    pub io: u64,
    /// TLS handshakes that failed.
    pub tls: u64,
    /// Responses with a status other than 200/206, by code.
    pub status: BTreeMap<u16, u64>,
    pub total: u64,
}

/// Time-to-first-byte summary in milliseconds (from the start of the request, including
/// the connect when a new connection was needed, to the first response byte).
#[derive(Clone, Debug, Default, Serialize)]
pub struct Latency {
    pub count: u64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
}

impl Latency {
    /// The summary of a histogram of microseconds.
    pub fn of(h: &Histogram) -> Latency {
        let ms = |us: u64| us as f64 / 1000.0;
        Latency {
            count: h.count(),
            p50: ms(h.quantile(0.50)),
            p90: ms(h.quantile(0.90)),
            p99: ms(h.quantile(0.99)),
            max: ms(h.max()),
        }
    }
}

/// The result of a bench run.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// The URLs loaded.
    pub targets: Vec<String>,
    /// Simulated viewers.
    pub viewers: u32,
    /// `playback-rate` or `fast`.
    pub mode: &'static str,
    /// `random` or `fixed:SECONDS`.
    pub seek: String,
    /// The watch-time model (`all`, `retention`, `S`, `A..B`).
    pub watch: String,
    /// The tokio runtime flavour used.
    pub runtime: String,
    /// What the probe could not do (a target that cannot be seeked…), also printed on
    /// stderr before the run.
    pub warnings: Vec<String>,
    /// Wall time from the first viewer's start to the last viewer's end, seconds.
    pub elapsed_s: f64,
    /// Requests sent.
    pub requests: u64,
    /// Response heads received.
    pub responses: u64,
    /// Bodies read to their end.
    pub completed: u64,
    /// Streams still running when the duration ended (not errors).
    pub cut_at_end: u64,
    /// Response heads per second.
    pub requests_per_s: f64,
    /// Body bytes received.
    pub bytes: u64,
    pub bytes_per_s: f64,
    pub mbit_per_s: f64,
    pub ttfb_ms: Latency,
    /// TLS handshakes (`https://` targets; also inside the time to first byte of the request
    /// that opened the connection).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_handshake_ms: Option<Latency>,
    /// Why the first TLS handshake failed, when one did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_error: Option<String>,
    /// Times a viewer's buffer ran dry.
    pub stalls: u64,
    /// Total playback time lost to stalls, seconds.
    pub stall_s: f64,
    /// Responses without a known playback rate (no duration known, no `--bitrate`).
    pub unpaced: u64,
    /// Viewers who left before the end of their answer (`--watch`).
    pub left: u64,
    /// Media time watched by all viewers, seconds.
    pub watched_s: f64,
    /// Bytes watched: prefixes plus the media played.
    pub bytes_watched: u64,
    /// Bytes received beyond what was watched when viewers left.
    pub bytes_wasted: u64,
    /// `bytes_wasted / bytes`.
    pub wasted_fraction: f64,
    /// Responses with a 2xx status.
    pub succeeded: u64,
    /// Failed requests / (requests sent + failed connects).
    pub error_rate: f64,
    pub errors: Errors,
    /// Most connections held open at once.
    pub peak_streams: u64,
    /// The open-file limit after raising it.
    pub nofile_limit: u64,
    /// This process's peak resident memory, KiB (Linux).
    pub peak_rss_kib: Option<u64>,
    /// HLS/DASH figures, when a target was a manifest.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub abr: Option<super::abr::AbrReport>,
}

/// Peak resident set size of this process from `/proc/self/status`.
pub fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_monotonic_and_close() {
        let mut last = 0;
        for v in [0u64, 1, 63, 64, 65, 100, 1000, 12_345, 1 << 20, u64::MAX / 3, u64::MAX] {
            let b = bucket_of(v);
            assert!(b >= last && b < BUCKETS, "{v}");
            last = b;
            let mid = bucket_mid(b) as f64;
            if v > 0 {
                assert!((mid - v as f64).abs() / v as f64 <= 0.04, "{v} -> {mid}");
            }
        }
    }

    #[test]
    fn quantiles() {
        let h = Histogram::default();
        assert_eq!(h.quantile(0.5), 0);
        for v in 1..=1000u64 {
            h.record(v * 1000);
        }
        assert_eq!(h.count(), 1000);
        let p50 = h.quantile(0.5) as f64;
        assert!((p50 - 500_000.0).abs() < 20_000.0, "{p50}");
        let p99 = h.quantile(0.99) as f64;
        assert!((p99 - 990_000.0).abs() < 40_000.0, "{p99}");
        assert_eq!(h.quantile(1.0), 1_000_000);
        assert_eq!(h.max(), 1_000_000);
    }
}
