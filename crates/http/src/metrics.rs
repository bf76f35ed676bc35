//! The server's Prometheus metrics: plain atomic counters, gauges and fixed-bucket histograms in
//! one process-wide [`METRICS`], and the text exposition format 0.0.4 written by hand
//! ([`Metrics::render`]). Counting is one relaxed atomic add on the request path — no lock, no
//! allocation, no dependency; the exposition is a few dozen lines, read only when scraped.
//! `serve` counts requests, bytes, streams, connections, first-byte and plan times, errors;
//! the caches count their own hits and misses ([`crate::media::MovieCache::stats`]), read
//! when rendering. The CGI, a process per request, keeps none (see docs/operations.md).

use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

/// Whether `serve` counts at all (`[metrics] enabled`, set once at start-up): when off, the
/// request path touches no counter, gauge or histogram and `/metrics` answers 404.
static ENABLED: AtomicBool = AtomicBool::new(true);

/// Turns counting on or off for the process (`serve`'s start-up).
pub fn set_enabled(on: bool) {
    ENABLED.store(on, Ordering::Relaxed);
}

/// True when `serve` counts (the default).
#[inline]
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// What a request asked for, for `loomiere_requests_total{kind}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestKind {
    /// An MP4 or FLV file, seeked or whole (pseudo-streaming).
    Progressive,
    /// An HLS playlist (`movie.mp4/master.m3u8`, `…/v1/index.m3u8`).
    Hls,
    /// A DASH manifest (`movie.mp4/manifest.mpd`).
    Dash,
    /// A packaged segment, which HLS and DASH players share (CMAF `init.mp4` and `.m4s`,
    /// WebVTT `.vtt`): the URL does not say which protocol asked.
    Segment,
    /// A still image (poster frames).
    Image,
    /// A directory listing page.
    Listing,
    /// Anything else: `/metrics`, `/healthz`, unparsable requests, unknown paths.
    Other,
}

impl RequestKind {
    const ALL: [RequestKind; 7] = [
        RequestKind::Progressive,
        RequestKind::Hls,
        RequestKind::Dash,
        RequestKind::Segment,
        RequestKind::Image,
        RequestKind::Listing,
        RequestKind::Other,
    ];

    fn label(self) -> &'static str {
        match self {
            RequestKind::Progressive => "progressive",
            RequestKind::Hls => "hls",
            RequestKind::Dash => "dash",
            RequestKind::Segment => "segment",
            RequestKind::Image => "image",
            RequestKind::Listing => "listing",
            RequestKind::Other => "other",
        }
    }

    /// The kind of a URL path: below a movie (`/movie.mp4/…`, packaging) by its last
    /// extension, else by the file's extension.
    pub fn of_path(path: &str) -> RequestKind {
        let ext = |name: &str| name.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase()).unwrap_or_default();
        let movie = |e: &str| matches!(e, "mp4" | "m4v" | "m4a" | "mov" | "f4v");
        let (dir, last) = path.rsplit_once('/').unwrap_or(("", path));
        if dir.split('/').any(|part| movie(&ext(part))) {
            return match ext(last).as_str() {
                "m3u8" => RequestKind::Hls,
                "mpd" => RequestKind::Dash,
                _ => RequestKind::Segment,
            };
        }
        match ext(last).as_str() {
            e if movie(e) || e == "flv" => RequestKind::Progressive,
            "jpg" | "jpeg" | "png" | "gif" | "bmp" => RequestKind::Image,
            _ => RequestKind::Other,
        }
    }
}

/// Why a request did not end well, for `loomiere_errors_total{kind}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// 400: a malformed request or position.
    BadRequest,
    /// 403: a bad or missing signature, a refused path.
    Forbidden,
    /// 404.
    NotFound,
    /// 405 and 501: a method or feature not served.
    Method,
    /// 408: the request head did not arrive in time.
    HeadTimeout,
    /// 414 and 431: the request head was too large.
    HeadTooLarge,
    /// 416: a `Range` outside the answer.
    Range,
    /// Any other 4xx.
    OtherClient,
    /// 5xx: a broken file or a server fault.
    Server,
    /// The answer stopped early because its file changed while it was sent.
    CutShort,
    /// The client went away before its answer was sent.
    ClientGone,
    /// A TLS handshake failed or timed out (an old protocol version, a scanner).
    TlsHandshake,
}

impl ErrorKind {
    const ALL: [ErrorKind; 12] = [
        ErrorKind::BadRequest,
        ErrorKind::Forbidden,
        ErrorKind::NotFound,
        ErrorKind::Method,
        ErrorKind::HeadTimeout,
        ErrorKind::HeadTooLarge,
        ErrorKind::Range,
        ErrorKind::OtherClient,
        ErrorKind::Server,
        ErrorKind::CutShort,
        ErrorKind::ClientGone,
        ErrorKind::TlsHandshake,
    ];

    fn label(self) -> &'static str {
        match self {
            ErrorKind::BadRequest => "bad_request",
            ErrorKind::Forbidden => "forbidden",
            ErrorKind::NotFound => "not_found",
            ErrorKind::Method => "method",
            ErrorKind::HeadTimeout => "head_timeout",
            ErrorKind::HeadTooLarge => "head_too_large",
            ErrorKind::Range => "range",
            ErrorKind::OtherClient => "other_client",
            ErrorKind::Server => "server",
            ErrorKind::CutShort => "cut_short",
            ErrorKind::ClientGone => "client_gone",
            ErrorKind::TlsHandshake => "tls_handshake",
        }
    }

    /// The error kind of an answer's status, if it is an error.
    pub fn of_status(status: u16) -> Option<ErrorKind> {
        Some(match status {
            400 => ErrorKind::BadRequest,
            403 => ErrorKind::Forbidden,
            404 => ErrorKind::NotFound,
            405 | 501 => ErrorKind::Method,
            408 => ErrorKind::HeadTimeout,
            414 | 431 => ErrorKind::HeadTooLarge,
            416 => ErrorKind::Range,
            401..=499 => ErrorKind::OtherClient,
            500..=599 => ErrorKind::Server,
            _ => return None,
        })
    }
}

/// Upper bounds (seconds) of the time histograms' buckets; `+Inf` is implied.
const BUCKETS: [f64; 14] = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0];

/// A histogram of durations with fixed buckets: per-bucket counts (not cumulative; made
/// cumulative when rendered), the count and the sum in nanoseconds.
pub struct Histogram {
    buckets: [AtomicU64; BUCKETS.len() + 1],
    count: AtomicU64,
    sum_ns: AtomicU64,
}

impl Histogram {
    const fn new() -> Histogram {
        Histogram {
            buckets: [const { AtomicU64::new(0) }; BUCKETS.len() + 1],
            count: AtomicU64::new(0),
            sum_ns: AtomicU64::new(0),
        }
    }

    /// Records one observation.
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        let i = BUCKETS.iter().position(|&b| secs <= b).unwrap_or(BUCKETS.len());
        if let Some(b) = self.buckets.get(i) {
            b.fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.sum_ns.fetch_add(ns, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut cumulative = 0u64;
        for (i, b) in self.buckets.iter().enumerate() {
            cumulative = cumulative.saturating_add(b.load(Ordering::Relaxed));
            match BUCKETS.get(i) {
                Some(le) => {
                    let _ = writeln!(out, "{name}_bucket{{le=\"{le}\"}} {cumulative}");
                }
                None => {
                    let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {cumulative}");
                }
            }
        }
        let sum = self.sum_ns.load(Ordering::Relaxed) as f64 / 1e9;
        let _ = writeln!(out, "{name}_sum {sum}\n{name}_count {cumulative}");
    }
}

/// Every metric `serve` exposes.
pub struct Metrics {
    /// Requests answered, by kind and status class (1xx … 5xx).
    requests: [[AtomicU64; 5]; RequestKind::ALL.len()],
    /// Response bytes sent (heads and bodies).
    pub sent_bytes: AtomicU64,
    /// Bodies being sent now.
    pub streams_active: AtomicI64,
    /// Of those, the ones paced by the throttle.
    pub streams_paced: AtomicI64,
    /// Client connections open now.
    pub connections_open: AtomicI64,
    /// Connections accepted since start.
    pub connections_total: AtomicU64,
    /// From a complete request head to the first byte of its answer written.
    pub first_byte: Histogram,
    /// Time to plan an answer (open, parse or find the movie, plan the seek).
    pub plan_time: Histogram,
    errors: [AtomicU64; ErrorKind::ALL.len()],
    /// Configuration files that did not validate on a reload.
    pub config_reload_failures: AtomicU64,
    /// Answers still being sent when the shutdown grace ran out.
    pub streams_cut_at_shutdown: AtomicU64,
}

/// The process's metrics.
pub static METRICS: Metrics = Metrics::new();

impl Metrics {
    const fn new() -> Metrics {
        Metrics {
            requests: [const { [const { AtomicU64::new(0) }; 5] }; RequestKind::ALL.len()],
            sent_bytes: AtomicU64::new(0),
            streams_active: AtomicI64::new(0),
            streams_paced: AtomicI64::new(0),
            connections_open: AtomicI64::new(0),
            connections_total: AtomicU64::new(0),
            first_byte: Histogram::new(),
            plan_time: Histogram::new(),
            errors: [const { AtomicU64::new(0) }; ErrorKind::ALL.len()],
            config_reload_failures: AtomicU64::new(0),
            streams_cut_at_shutdown: AtomicU64::new(0),
        }
    }

    /// Counts one answered request, and its error kind when its status is one.
    pub fn request(&self, kind: RequestKind, status: u16) {
        let class = usize::from((status / 100).clamp(1, 5) - 1);
        let k = RequestKind::ALL.iter().position(|&x| x == kind).unwrap_or(RequestKind::ALL.len() - 1);
        if let Some(c) = self.requests.get(k).and_then(|row| row.get(class)) {
            c.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(e) = ErrorKind::of_status(status) {
            self.error(e);
        }
    }

    /// Counts one error.
    pub fn error(&self, kind: ErrorKind) {
        if let Some(c) = ErrorKind::ALL.iter().position(|&x| x == kind).and_then(|i| self.errors.get(i)) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The text exposition format 0.0.4 (`Content-Type: text/plain; version=0.0.4`), with
    /// the caches' counts read now: `(cache label, hits, misses)`.
    pub fn render(&self, caches: &[(&str, u64, u64)]) -> String {
        let mut out = String::with_capacity(8192);
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "# HELP loomiere_build_info The running version.\n# TYPE loomiere_build_info gauge\n\
             loomiere_build_info{{version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        );
        out.push_str(
            "# HELP loomiere_requests_total Requests answered, by kind and status class.\n\
             # TYPE loomiere_requests_total counter\n",
        );
        for (k, row) in RequestKind::ALL.iter().zip(&self.requests) {
            for (class, c) in row.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "loomiere_requests_total{{kind=\"{}\",code=\"{}xx\"}} {}",
                    k.label(),
                    class + 1,
                    load(c)
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP loomiere_sent_bytes_total Response bytes sent, heads and bodies.\n\
             # TYPE loomiere_sent_bytes_total counter\nloomiere_sent_bytes_total {}",
            load(&self.sent_bytes)
        );
        let gauges: [(&str, &str, &AtomicI64); 3] = [
            ("loomiere_streams_active", "Answer bodies being sent now.", &self.streams_active),
            ("loomiere_streams_paced", "Answer bodies being sent now at the throttled rate.", &self.streams_paced),
            ("loomiere_connections_open", "Client connections open now.", &self.connections_open),
        ];
        for (name, help, g) in gauges {
            let _ =
                writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {}", g.load(Ordering::Relaxed).max(0));
        }
        let counters: [(&str, &str, &AtomicU64); 3] = [
            ("loomiere_connections_total", "Client connections accepted.", &self.connections_total),
            (
                "loomiere_config_reload_failures_total",
                "Configuration reloads refused because the file did not validate.",
                &self.config_reload_failures,
            ),
            (
                "loomiere_streams_cut_at_shutdown_total",
                "Answers still being sent when the shutdown grace period ran out.",
                &self.streams_cut_at_shutdown,
            ),
        ];
        for (name, help, c) in counters {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}", load(c));
        }
        self.first_byte.render(
            &mut out,
            "loomiere_first_byte_seconds",
            "From a complete request head to the first byte of its answer written.",
        );
        self.plan_time.render(
            &mut out,
            "loomiere_plan_seconds",
            "Time to plan an answer: open the file, find or parse its index, plan the seek.",
        );
        out.push_str(
            "# HELP loomiere_errors_total Requests that did not end well, by kind.\n\
             # TYPE loomiere_errors_total counter\n",
        );
        for (k, c) in ErrorKind::ALL.iter().zip(&self.errors) {
            let _ = writeln!(out, "loomiere_errors_total{{kind=\"{}\"}} {}", k.label(), load(c));
        }
        for (name, help, hits) in [
            ("loomiere_cache_hits_total", "Lookups answered from a cache, by cache.", true),
            ("loomiere_cache_misses_total", "Lookups a cache could not answer, by cache.", false),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            for (cache, h, m) in caches {
                let _ = writeln!(out, "{name}{{cache=\"{cache}\"}} {}", if hits { h } else { m });
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_is_cumulative() {
        let h = Histogram::new();
        h.observe(Duration::from_micros(50));
        h.observe(Duration::from_millis(3));
        h.observe(Duration::from_secs(10));
        let mut out = String::new();
        h.render(&mut out, "t", "help");
        assert!(out.contains("t_bucket{le=\"0.0001\"} 1\n"), "{out}");
        assert!(out.contains("t_bucket{le=\"0.005\"} 2\n"), "{out}");
        assert!(out.contains("t_bucket{le=\"5\"} 2\n"), "{out}");
        assert!(out.contains("t_bucket{le=\"+Inf\"} 3\n"), "{out}");
        assert!(out.contains("t_count 3\n"), "{out}");
    }

    #[test]
    fn kinds_of_paths_and_statuses() {
        assert_eq!(RequestKind::of_path("/a/b.MP4"), RequestKind::Progressive);
        assert_eq!(RequestKind::of_path("/f/m.mp4/master.m3u8"), RequestKind::Hls);
        assert_eq!(RequestKind::of_path("/m.MOV/v1/index.m3u8"), RequestKind::Hls);
        assert_eq!(RequestKind::of_path("/m.mp4/manifest.mpd"), RequestKind::Dash);
        assert_eq!(RequestKind::of_path("/m.mp4/v1/init.mp4"), RequestKind::Segment);
        assert_eq!(RequestKind::of_path("/m.mp4/a2/7.m4s"), RequestKind::Segment);
        assert_eq!(RequestKind::of_path("/m.mp4/s3/all.vtt"), RequestKind::Segment);
        assert_eq!(RequestKind::of_path("/x.m3u8"), RequestKind::Other);
        assert_eq!(RequestKind::of_path("/p.jpg"), RequestKind::Image);
        assert_eq!(RequestKind::of_path("/healthz"), RequestKind::Other);
        assert_eq!(ErrorKind::of_status(416), Some(ErrorKind::Range));
        assert_eq!(ErrorKind::of_status(206), None);
    }
}
