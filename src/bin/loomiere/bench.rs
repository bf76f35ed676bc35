//! `loomiere bench URL... [--viewers N] [--duration S] …`: parses arguments into a
//! `loomiere::bench::Config`, shows live progress on a terminal (indicatif) while the
//! library runs the load, then prints a table (comfy-table) or JSON; fails (non-zero exit)
//! when nothing succeeded or more requests failed than `--max-error-rate` allows.

use anyhow::Result;
use clap::ValueEnum;
use comfy_table::{presets::UTF8_FULL_CONDENSED, Cell, CellAlignment, Table};
use indicatif::{ProgressBar, ProgressStyle};
use loomiere::bench::{Bench, Config, Pace, Report, Seek, Watch};
use std::io::IsTerminal;
use std::time::Duration;

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum SeekMode {
    /// Uniformly random within the media (its duration comes from the server's
    /// X-Content-Duration or the file's index).
    Random,
    /// Always --start seconds.
    Fixed,
}

#[derive(clap::Args)]
pub struct Args {
    /// URLs to load, http:// or https:// (loopback only: 127.0.0.0/8, [::1], localhost);
    /// viewers take turns.
    #[arg(required = true)]
    pub urls: Vec<String>,
    /// Simulated viewers (concurrent streams).
    #[arg(long, short = 'n', default_value_t = 10)]
    pub viewers: u32,
    /// Run time in seconds; streams still playing at the end are cut.
    #[arg(long, short = 'd', default_value_t = 10.0)]
    pub duration: f64,
    /// Start the viewers evenly over this many seconds.
    #[arg(long, default_value_t = 1.0)]
    pub ramp: f64,
    /// Where viewers seek with start= (default: random, or fixed when --start is given); a
    /// start already in the URL is replaced.
    #[arg(long, value_enum)]
    pub seek: Option<SeekMode>,
    /// The start time for --seek fixed, in seconds (0: the URL as written).
    #[arg(long)]
    pub start: Option<f64>,
    /// Read at the media's playback rate, like a player (the default).
    #[arg(long, conflicts_with = "fast")]
    pub playback_rate: bool,
    /// Read as fast as the server sends.
    #[arg(long)]
    pub fast: bool,
    /// Playback rate in kbit/s for answers whose duration is unknown.
    #[arg(long)]
    pub bitrate: Option<f64>,
    /// Seconds a paced viewer buffers ahead of playback.
    #[arg(long, default_value_t = 4.0)]
    pub read_ahead: f64,
    /// Connect timeout and longest wait for data, in seconds.
    #[arg(long, default_value_t = 10.0)]
    pub timeout: f64,
    /// Runtime worker threads (1: a single-threaded runtime). Default: CPUs, at most 4.
    #[arg(long)]
    pub threads: Option<usize>,
    /// Seconds each viewer watches before leaving: all, retention (many leave in the first
    /// minute, a tail stays to the end; see docs/bench.md), S, or A..B (uniform).
    #[arg(long, default_value = "all", value_name = "MODEL")]
    pub watch: String,
    /// Fail (exit status 1) when more than this percentage of requests fail.
    #[arg(long, default_value_t = 2.0, value_name = "PERCENT")]
    pub max_error_rate: f64,
    /// HLS/DASH targets (URLs ending in .m3u8 or .mpd): play the Nth variant of a
    /// multivariant playlist, or the Nth Representation of an MPD (1 = the first).
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub variant: usize,
    /// Seed for seek positions and watch times (the same seed draws the same viewers).
    #[arg(long)]
    pub seed: Option<u64>,
    /// https:// targets: trust the CA certificates in FILE (PEM), like curl --cacert.
    /// Default: the system CA bundle.
    #[arg(long, value_name = "FILE", value_hint = clap::ValueHint::FilePath)]
    pub cacert: Option<std::path::PathBuf>,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

fn seconds(what: &str, s: f64) -> Result<Duration> {
    Duration::try_from_secs_f64(s).map_err(|_| anyhow::anyhow!("--{what} must be a number of seconds ≥ 0"))
}

pub fn run(a: Args) -> Result<()> {
    let config = Config {
        urls: a.urls,
        viewers: a.viewers,
        duration: seconds("duration", a.duration)?,
        ramp: seconds("ramp", a.ramp)?,
        seek: match (a.seek, a.start) {
            (Some(SeekMode::Random), Some(_)) => anyhow::bail!("--start goes with --seek fixed"),
            (Some(SeekMode::Random), None) | (None, None) => Seek::Random,
            (Some(SeekMode::Fixed), s) | (None, s @ Some(_)) => Seek::Fixed(s.unwrap_or(0.0)),
        },
        pace: if a.fast { Pace::Fast } else { Pace::PlaybackRate },
        bitrate_kbps: a.bitrate,
        timeout: seconds("timeout", a.timeout)?,
        read_ahead: a.read_ahead,
        threads: a.threads,
        watch: Watch::parse(&a.watch)?,
        seed: a.seed.unwrap_or(Config::default().seed),
        variant: a.variant,
        cacert: a.cacert,
    };
    if !(a.max_error_rate.is_finite() && (0.0..=100.0).contains(&a.max_error_rate)) {
        anyhow::bail!("--max-error-rate must be a percentage between 0 and 100");
    }
    let total = config.duration;
    let bench = Bench::new(config)?;
    let progress = std::io::stderr().is_terminal().then(|| spawn_progress(&bench, total));
    let report = bench.run();
    if let Some((bar, handle)) = progress {
        bar.finish_and_clear();
        let _ = handle.join();
    }
    let report = report?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("{}", table(&report));
    }
    verdict(&report, a.max_error_rate)
}

/// The exit status: an error when nothing succeeded or too many requests failed.
fn verdict(r: &Report, max_error_rate: f64) -> Result<()> {
    let e = &r.errors;
    if r.succeeded == 0 {
        let why = if e.tls > 0 && e.tls == e.total {
            format!(
                "every TLS handshake failed ({} tries): {}",
                e.tls,
                r.tls_error.as_deref().unwrap_or("no reason given")
            )
        } else if e.connect > 0 && e.connect == e.total {
            format!("every connection was refused or timed out ({} tries); is the server running?", e.connect)
        } else if e.total > 0 {
            format!("all {} requests failed (see the errors above)", e.total)
        } else {
            "no request was answered in the run's time".to_string()
        };
        anyhow::bail!("no request succeeded: {why}");
    }
    let pct = r.error_rate * 100.0;
    if pct > max_error_rate {
        anyhow::bail!(
            "{pct:.1} % of requests failed, more than --max-error-rate {max_error_rate} % ({} errors){}",
            e.total,
            r.tls_error.as_ref().map(|why| format!("; first TLS error: {why}")).unwrap_or_default()
        );
    }
    Ok(())
}

/// A thread that redraws the progress bar from the live counters until it is finished.
fn spawn_progress(bench: &Bench, total: Duration) -> (ProgressBar, std::thread::JoinHandle<()>) {
    let bar = ProgressBar::new(total.as_millis().try_into().unwrap_or(u64::MAX));
    bar.set_style(
        ProgressStyle::with_template("{elapsed:>4} [{bar:30}] {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let live = bench.live();
    let b = bar.clone();
    let handle = std::thread::spawn(move || {
        let start = std::time::Instant::now();
        let mut last = (start, 0u64);
        while !b.is_finished() {
            std::thread::sleep(Duration::from_millis(250));
            let s = live.snapshot();
            let now = std::time::Instant::now();
            let dt = now.duration_since(last.0).as_secs_f64().max(1e-3);
            let rate = s.bytes.saturating_sub(last.1) as f64 * 8.0 / 1e6 / dt;
            last = (now, s.bytes);
            b.set_position(start.elapsed().as_millis().try_into().unwrap_or(u64::MAX));
            b.set_message(format!(
                "{} streams (peak {}) | {} req | {rate:.1} Mbit/s | {} stalls | {} errors",
                s.active, s.peak, s.requests, s.stalls, s.errors
            ));
        }
    });
    (bar, handle)
}

fn table(r: &Report) -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED);
    t.set_header(vec!["measure", "value"]);
    let mut row = |k: &str, v: String| {
        t.add_row(vec![Cell::new(k), Cell::new(v).set_alignment(CellAlignment::Right)]);
    };
    row("targets", r.targets.join(" "));
    row("viewers / mode / seek / watch", format!("{} / {} / {} / {}", r.viewers, r.mode, r.seek, r.watch));
    for w in &r.warnings {
        row("WARNING", w.clone());
    }
    row("runtime", r.runtime.clone());
    row("elapsed", format!("{:.2} s", r.elapsed_s));
    row("requests sent / answered", format!("{} / {}", r.requests, r.responses));
    row("bodies completed / cut at end", format!("{} / {}", r.completed, r.cut_at_end));
    row("requests/s", format!("{:.1}", r.requests_per_s));
    row("throughput", format!("{:.1} Mbit/s ({} bytes)", r.mbit_per_s, r.bytes));
    let l = &r.ttfb_ms;
    row("TTFB p50 / p90 / p99 / max", format!("{:.2} / {:.2} / {:.2} / {:.2} ms", l.p50, l.p90, l.p99, l.max));
    if let Some(h) = &r.tls_handshake_ms {
        row(
            "TLS handshake p50 / p90 / p99 / max",
            format!("{:.2} / {:.2} / {:.2} / {:.2} ms ({})", h.p50, h.p90, h.p99, h.max, h.count),
        );
    }
    row("stalls", format!("{} ({:.2} s waiting)", r.stalls, r.stall_s));
    if let Some(a) = &r.abr {
        let lat = |l: &loomiere::bench::Latency| format!("{:.2} / {:.2} / {:.2} ms ({})", l.p50, l.p90, l.p99, l.count);
        row("HLS/DASH sessions / segments", format!("{} / {}", a.sessions, a.segments));
        row("playlist TTFB p50 / p90 / p99", lat(&a.ttfb_playlist_ms));
        row("init TTFB p50 / p90 / p99", lat(&a.ttfb_init_ms));
        row("segment TTFB p50 / p90 / p99", lat(&a.ttfb_segment_ms));
        row("segment download p50 / p90 / p99", lat(&a.segment_download_ms));
        if let Some(e) = &a.first_error {
            row("manifest error", e.clone());
        }
    }
    row("media watched", format!("{:.1} min ({} bytes, prefixes included)", r.watched_s / 60.0, r.bytes_watched));
    row(
        "wasted (received, not watched)",
        format!(
            "{} bytes = {:.1} % of received; {} viewers left early",
            r.bytes_wasted,
            r.wasted_fraction * 100.0,
            r.left
        ),
    );
    if r.unpaced > 0 {
        row("unpaced (no rate known)", r.unpaced.to_string());
    }
    let e = &r.errors;
    let mut errs = format!(
        "{} (connect {}, tls {}, timeout {}, short body {}, protocol {}, io {}",
        e.total, e.connect, e.tls, e.timeout, e.short_body, e.protocol, e.io
    );
    for (code, n) in &e.status {
        errs.push_str(&format!(", HTTP {code}: {n}"));
    }
    errs.push(')');
    row("errors", errs);
    if let Some(why) = &r.tls_error {
        row("first TLS error", why.clone());
    }
    row("error rate", format!("{:.2} % ({} answers succeeded)", r.error_rate * 100.0, r.succeeded));
    row("peak streams held", r.peak_streams.to_string());
    row("open-file limit", r.nofile_limit.to_string());
    if let Some(kib) = r.peak_rss_kib {
        row("bench peak memory", format!("{:.1} MiB", kib as f64 / 1024.0));
    }
    t
}
