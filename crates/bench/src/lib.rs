//! `loomiere bench`: a streaming-aware HTTP load generator for loopback servers.
//!
//! Simulated viewers (tokio tasks, started evenly over a ramp) run viewing sessions: a seek
//! (`start=`, random within the media or fixed, in the form the server takes), a watch time
//! (`--watch`), one request whose prefix (moov, FLV metadata) is read at once and whose media
//! is read either as fast as it comes or at the media's bitrate; the viewer leaves (closes
//! the connection) when its player reaches the watch time. The run reports time to first
//! byte, requests/s, throughput, stalls (playback would have frozen), bytes watched and
//! wasted, errors by kind and the peak number of streams held. Everything is bounded:
//! viewers, run time, per-request timeouts, head size. Only loopback targets are accepted
//! ([`target`]).
//!
//! A target whose path ends in `.m3u8` or `.mpd` is played as HLS or DASH instead (`abr`:
//! manifest, init segment, segments at playback rate; [`manifest`] reads the manifests).
//!
//! Submodules: [`target`] (URLs, loopback rule), [`transport`] (plain TCP or TLS under a
//! connection, the trusted CAs), [`http`] (the minimal HTTP/1.1 client protocol), `probe` (duration and seek form per target), [`prefix`] (where the media
//! starts in an answer), [`playback`] (the player clock and stalls), [`watch`] (watch-time
//! distributions), [`stats`] (counters, histogram, report) and `viewer` (the per-viewer
//! task).

mod abr;
pub mod http;
pub mod manifest;
pub mod playback;
pub mod prefix;
mod probe;
pub mod stats;
pub mod target;
pub mod transport;
mod viewer;
pub mod watch;

use loomiere_engine::{Error, Result};
pub use stats::{Latency, Live, Report, Snapshot};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};
pub use target::Target;
pub use watch::Watch;

/// Most viewers one run may simulate.
pub const MAX_VIEWERS: u32 = 50_000;
/// Longest run.
pub const MAX_DURATION: Duration = Duration::from_secs(24 * 3600);
/// Most target URLs.
pub const MAX_TARGETS: usize = 1000;
/// File descriptors kept free for everything that is not a viewer's socket.
const SPARE_FDS: u64 = 64;

/// Where viewers seek.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Seek {
    /// Uniformly within the media's duration (learnt from the server's `X-Content-Duration`
    /// or the file's index); no seek when neither says it.
    Random,
    /// Always this many seconds (0 = no `start` parameter).
    Fixed(f64),
}

/// How viewers read bodies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pace {
    /// Like a player: keep at most `read_ahead` seconds buffered.
    PlaybackRate,
    /// As fast as the data arrives.
    Fast,
}

/// A bench run's settings.
#[derive(Clone, Debug)]
pub struct Config {
    pub urls: Vec<String>,
    pub viewers: u32,
    pub duration: Duration,
    /// Viewers start evenly spread over this time.
    pub ramp: Duration,
    pub seek: Seek,
    pub pace: Pace,
    /// Playback rate in kbit/s for responses without `X-Content-Duration`.
    pub bitrate_kbps: Option<f64>,
    /// Connect timeout and the longest wait for any data.
    pub timeout: Duration,
    /// Seconds a paced viewer buffers ahead.
    pub read_ahead: f64,
    /// Runtime worker threads; 1 runs a current-thread runtime. `None`: the default.
    pub threads: Option<usize>,
    /// Seed for seek positions and watch times (runs are repeatable).
    pub seed: u64,
    /// How long viewers watch before leaving (paced viewers only).
    pub watch: Watch,
    /// HLS/DASH targets: the variant (HLS) or Representation (DASH) played, 1 = the first.
    pub variant: usize,
    /// `https://` targets: the CA certificates (PEM) trusted; `None`: the system bundle.
    pub cacert: Option<std::path::PathBuf>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            urls: Vec::new(),
            viewers: 10,
            duration: Duration::from_secs(10),
            ramp: Duration::from_secs(1),
            seek: Seek::Random,
            pace: Pace::PlaybackRate,
            bitrate_kbps: None,
            timeout: Duration::from_secs(10),
            read_ahead: 4.0,
            threads: None,
            seed: 0x6c6f_6f6d_6965_7265,
            watch: Watch::All,
            variant: 1,
            cacert: None,
        }
    }
}

pub(crate) use probe::Probed;

/// What every viewer task shares (read-only apart from the atomic counters).
#[derive(Clone)]
pub(crate) struct Shared {
    pub targets: Vec<Probed>,
    pub viewers: u32,
    pub t0: Instant,
    /// When the run ends; viewers also check it themselves so that a busy runtime cannot
    /// overrun it by much.
    pub deadline: Instant,
    pub ramp: Duration,
    pub seek: Seek,
    pub pace: Pace,
    pub bitrate_bytes: Option<f64>,
    pub timeout: Duration,
    pub read_ahead: f64,
    pub seed: u64,
    pub watch: Watch,
    pub live: Arc<Live>,
    /// HLS/DASH: the variant played (1 = the first) and the segment lists shared by viewers.
    pub variant: usize,
    pub lists: Arc<abr::Lists>,
    /// The TLS client, when a target is `https://`.
    pub tls: Option<transport::Tls>,
}

/// A validated bench, ready to run; its live counters can be watched from another thread.
pub struct Bench {
    config: Config,
    targets: Vec<Target>,
    live: Arc<Live>,
    nofile: u64,
    tls: Option<transport::Tls>,
}

impl Bench {
    /// Checks the settings (loopback targets only, bounds) and raises the open-file limit to
    /// its hard maximum.
    pub fn new(config: Config) -> Result<Bench> {
        if config.urls.is_empty() {
            return Err(Error::bad_request("bench needs at least one URL"));
        }
        if config.urls.len() > MAX_TARGETS {
            return Err(Error::bad_request(format!("at most {MAX_TARGETS} URLs")));
        }
        let targets = config.urls.iter().map(|u| Target::parse(u)).collect::<Result<Vec<_>>>()?;
        if config.viewers == 0 || config.viewers > MAX_VIEWERS {
            return Err(Error::bad_request(format!("--viewers must be 1..={MAX_VIEWERS}")));
        }
        if config.duration.is_zero() || config.duration > MAX_DURATION {
            return Err(Error::bad_request("--duration must be more than 0 and at most 86400 seconds"));
        }
        if config.ramp > config.duration {
            return Err(Error::bad_request("--ramp must not be longer than --duration"));
        }
        if config.timeout < Duration::from_millis(10) || config.timeout > Duration::from_secs(600) {
            return Err(Error::bad_request("--timeout must be 0.01..=600 seconds"));
        }
        if let Seek::Fixed(s) = config.seek {
            if !(s.is_finite() && s >= 0.0) {
                return Err(Error::bad_request("--start must be a number of seconds ≥ 0"));
            }
        }
        if let Some(k) = config.bitrate_kbps {
            if !(k.is_finite() && k > 0.0 && k < 1e9) {
                return Err(Error::bad_request("--bitrate must be a positive number of kbit/s"));
            }
        }
        if !(config.read_ahead.is_finite() && config.read_ahead >= 0.0) {
            return Err(Error::bad_request("read-ahead must be ≥ 0 seconds"));
        }
        if config.watch != Watch::All && config.pace == Pace::Fast {
            return Err(Error::bad_request("--watch needs paced viewers (it cannot go with --fast)"));
        }
        if config.variant == 0 || config.variant > 1000 {
            return Err(Error::bad_request("--variant must be 1..=1000"));
        }
        if config.threads.is_some_and(|t| t == 0 || t > 256) {
            return Err(Error::bad_request("--threads must be 1..=256"));
        }
        let tls = if targets.iter().any(|t| t.tls) || config.cacert.is_some() {
            Some(transport::Tls::new(config.cacert.as_deref())?)
        } else {
            None
        };
        let nofile = raise_nofile();
        let needed = u64::from(config.viewers) + SPARE_FDS;
        if needed > nofile {
            return Err(Error::bad_request(format!(
                "{} viewers need about {needed} open files but the limit is {nofile} (raise the hard limit: ulimit -Hn)",
                config.viewers
            )));
        }
        Ok(Bench { config, targets, live: Arc::new(Live::default()), nofile, tls })
    }

    /// The live counters (for a progress display).
    pub fn live(&self) -> Arc<Live> {
        self.live.clone()
    }

    /// The open-file limit in force.
    pub fn nofile_limit(&self) -> u64 {
        self.nofile
    }

    /// Runs the bench to its end (at most one timeout for the duration probes, then the
    /// duration) and reports.
    pub fn run(self) -> Result<Report> {
        let threads = self.config.threads.unwrap_or_else(default_threads);
        let runtime = if threads == 1 {
            tokio::runtime::Builder::new_current_thread().enable_all().build()
        } else {
            tokio::runtime::Builder::new_multi_thread().worker_threads(threads).enable_all().build()
        }
        .map_err(|e| Error::io("cannot start the tokio runtime", e))?;
        let flavour = if threads == 1 { "current-thread".to_string() } else { format!("multi-thread:{threads}") };
        runtime.block_on(self.run_async(flavour))
    }

    async fn run_async(self, runtime: String) -> Result<Report> {
        let c = &self.config;
        let mut shared = Shared {
            targets: Vec::new(),
            viewers: c.viewers,
            t0: Instant::now(),
            deadline: Instant::now(),
            ramp: c.ramp,
            seek: c.seek,
            pace: c.pace,
            bitrate_bytes: c.bitrate_kbps.map(|k| k * 1000.0 / 8.0),
            timeout: c.timeout,
            read_ahead: c.read_ahead,
            seed: c.seed,
            watch: c.watch,
            live: self.live.clone(),
            variant: c.variant,
            lists: Arc::default(),
            tls: self.tls.clone(),
        };
        // The probe's connections are not part of the measurement.
        let probe = Arc::new(Shared { live: Arc::new(Live::default()), ..shared.clone() });
        // All probes at once, bounded by one timeout in total.
        let mut probed: Vec<Option<Probed>> = vec![None; self.targets.len()];
        let mut warnings: Vec<(usize, Vec<String>)> = Vec::new();
        let mut probes = tokio::task::JoinSet::new();
        for (i, target) in self.targets.iter().enumerate() {
            if manifest::Kind::of(&target.path).is_some() {
                // HLS/DASH: the manifest says the durations; nothing to probe.
                probed[i] = Some(Probed { target: target.clone(), duration: None, form: probe::SeekForm::None });
                continue;
            }
            let (probe, target, seek) = (probe.clone(), target.clone(), c.seek);
            probes.spawn(async move { (i, probe::probe(&probe, target, seek).await) });
        }
        let until = tokio::time::Instant::now() + c.timeout;
        while let Ok(Some(Ok((i, (p, w))))) = tokio::time::timeout_at(until, probes.join_next()).await {
            if let Some(slot) = probed.get_mut(i) {
                *slot = Some(p);
            }
            warnings.push((i, w));
        }
        probes.abort_all();
        warnings.sort_by_key(|w| w.0);
        let mut warnings: Vec<String> = warnings.into_iter().flat_map(|w| w.1).collect();
        for (target, p) in self.targets.iter().zip(probed) {
            shared.targets.push(p.unwrap_or_else(|| {
                warnings.push(format!("{}: no answer to the probe within --timeout; not seeked", target.url));
                Probed { target: target.clone(), duration: None, form: probe::SeekForm::None }
            }));
        }
        for w in &warnings {
            eprintln!("loomiere bench: warning: {w}");
        }
        shared.t0 = Instant::now();
        shared.deadline = shared.t0 + c.duration;
        let deadline = tokio::time::Instant::from_std(shared.deadline);
        let shared = Arc::new(shared);
        let mut tasks = tokio::task::JoinSet::new();
        for id in 0..c.viewers {
            let sh = shared.clone();
            tasks.spawn(async move {
                let _ = tokio::time::timeout_at(deadline, viewer::run(id, sh)).await;
            });
        }
        while tasks.join_next().await.is_some() {}
        let elapsed = shared.t0.elapsed().as_secs_f64();
        Ok(self.report(elapsed, runtime, warnings))
    }

    fn report(&self, elapsed: f64, runtime: String, warnings: Vec<String>) -> Report {
        let live = &self.live;
        let c = &self.config;
        let bytes = live.bytes.load(Relaxed);
        let responses = live.responses.load(Relaxed);
        let per_s = |n: u64| if elapsed > 0.0 { n as f64 / elapsed } else { 0.0 };
        Report {
            targets: c.urls.clone(),
            viewers: c.viewers,
            mode: match c.pace {
                Pace::PlaybackRate => "playback-rate",
                Pace::Fast => "fast",
            },
            seek: match c.seek {
                Seek::Random => "random".into(),
                Seek::Fixed(s) => format!("fixed:{s}"),
            },
            watch: c.watch.describe(),
            runtime,
            warnings,
            elapsed_s: elapsed,
            requests: live.requests.load(Relaxed),
            responses,
            completed: live.completed.load(Relaxed),
            cut_at_end: live.cut_at_end.load(Relaxed),
            requests_per_s: per_s(responses),
            bytes,
            bytes_per_s: per_s(bytes),
            mbit_per_s: per_s(bytes) * 8.0 / 1e6,
            ttfb_ms: stats::Latency::of(&live.ttfb),
            tls_handshake_ms: self.targets.iter().any(|t| t.tls).then(|| stats::Latency::of(&live.handshake)),
            tls_error: live.first_tls_error(),
            stalls: live.stalls.load(Relaxed),
            stall_s: live.stall_micros.load(Relaxed) as f64 / 1e6,
            unpaced: live.unpaced.load(Relaxed),
            left: live.left.load(Relaxed),
            watched_s: live.watched_micros.load(Relaxed) as f64 / 1e6,
            bytes_watched: live.bytes_watched.load(Relaxed),
            bytes_wasted: live.bytes_wasted.load(Relaxed),
            wasted_fraction: if bytes > 0 { live.bytes_wasted.load(Relaxed) as f64 / bytes as f64 } else { 0.0 },
            succeeded: live.succeeded.load(Relaxed),
            error_rate: {
                let e = live.errors();
                let tried = live.requests.load(Relaxed) + e.connect + e.tls;
                if tried > 0 {
                    e.total as f64 / tried as f64
                } else {
                    0.0
                }
            },
            errors: live.errors(),
            peak_streams: live.peak.load(Relaxed),
            nofile_limit: self.nofile,
            peak_rss_kib: stats::peak_rss_kib(),
            abr: c.urls.iter().any(|u| Target::parse(u).is_ok_and(|t| manifest::Kind::of(&t.path).is_some())).then(
                || {
                    let mut r = live.abr.report();
                    if let Ok(Some(e)) = live.abr.first_error.lock().map(|e| e.clone()) {
                        r.first_error = Some(e);
                    }
                    r
                },
            ),
        }
    }
}

/// The default runtime: see docs/bench.md for the measurements behind it.
fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get()).min(4)
}

/// Raises the soft open-file limit to the hard limit; returns the soft limit now in force.
pub fn raise_nofile() -> u64 {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let lim = getrlimit(Resource::Nofile);
    if let Some(max) = lim.maximum {
        if lim.current.is_some_and(|c| c < max) {
            let _ = setrlimit(Resource::Nofile, Rlimit { current: Some(max), maximum: Some(max) });
        }
    }
    getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX)
}
