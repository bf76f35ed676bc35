//! `stream.conf`: the server configuration, a small TOML file read again on every request so
//! an edit takes effect on the next one without a restart. This module owns the keys, their
//! defaults, their validation and where the file is looked for; it never serves anything.
//!
//! Where the file comes from ([`ConfigSource`]):
//! - an explicit path (`--config FILE` or `LOOMIERE_CONFIG`): it must exist and be valid;
//! - otherwise `/etc/loomiere/stream.conf`: used when it exists (and must then be valid);
//!   when it does not exist, the front end's fallback document root (CGI: `DOCUMENT_ROOT`)
//!   is served with the defaults below, and with no fallback root it is an error.
//!
//! A file that cannot be read or does not validate is an error — CGI and inetd answer 500 and
//! log the reason; `serve` refuses it at start-up and, on a reload, logs it and keeps its last
//! good configuration — never a silent fallback to defaults that might serve more than meant.
//!
//! ```toml
//! document_root = "/srv/video"          # required when a file is used
//! extensions = ["mp4", "m4v", "flv", "jpg"]  # default: every kind loomiere serves
//! throttle = 1.2                        # pace at 1.2 × the media bit rate; 0 = off (default)
//! burst_seconds = 3                     # media seconds sent at full speed after the header
//! max_moov_bytes = 67108864             # larger moov boxes are refused (default 64 MiB)
//! follow_symlinks = false               # may symlinks lead out of the root? (default no)
//! secret = "at least 16 characters"     # when set, every URL must be signed (see http::signed)
//! log = "stderr"                        # or "off", or an absolute file path (appended to)
//! listing = false                       # `serve`: directory listing page
//! index_cache = "/var/cache/loomiere"   # CGI: keep each movie's seek marks here (default off)
//! access_log_format = "common"          # `serve`: "common", "combined" or "json"
//! [server]                              # `serve` limits
//! listen_backlog = 4096                 # kernel queue of connections not yet accepted
//! max_connections = 1024
//! max_header_bytes = 8192
//! header_timeout_secs = 10
//! shutdown_grace_secs = 5               # SIGTERM: how long running answers may go on
//! [metrics]                             # `serve`: Prometheus /metrics
//! enabled = true                        # false: no counting at all, /metrics is 404 (start-up only)
//! listen = "127.0.0.1:9100"             # own listener (start-up only); unset: on the public one
//! [tls]                                 # `serve`: an HTTPS listener beside the HTTP one
//! listen = "0.0.0.0:8443"               # start-up only
//! certificate = "/etc/loomiere/cert.pem"  # PEM chain, leaf first; re-read on SIGHUP
//! key = "/etc/loomiere/key.pem"         # PEM private key (PKCS#8, PKCS#1 or SEC1)
//! ```

use serde::Deserialize;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The default configuration file.
pub const DEFAULT_PATH: &str = "/etc/loomiere/stream.conf";
/// The environment variable naming a configuration file.
pub const ENV_VAR: &str = "LOOMIERE_CONFIG";
/// A configuration file larger than this is refused (it is a few lines of TOML).
const MAX_FILE_BYTES: u64 = 64 * 1024;

/// Why a configuration could not be had. Front ends answer 500 and log it.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config {path}: {}", crate::error::plain_io(source))]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML or has unknown keys or wrong types; `at` is where
    /// (`, line 3, column 7`, empty when the parser does not say).
    #[error("config {path}{at}: {message}")]
    Parse { path: PathBuf, at: String, message: String },
    /// A value is out of range or inconsistent; `at` is the line of its key when known
    /// (`, line 3, column 1`).
    #[error("config {path}{at}: {message}")]
    Invalid { path: PathBuf, at: String, message: String },
    /// No file and no fallback document root.
    #[error("no config file ({path} does not exist) and no document root given")]
    NoRoot { path: PathBuf },
}

/// Where the log lines go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LogTarget {
    /// Standard error (the web server's error log under CGI).
    Stderr,
    /// Appended to this file.
    File(PathBuf),
    /// Nowhere (`log = "off"`; also what inetd mode uses when stderr is the client socket).
    Off,
}

/// Limits of the standalone server (`loomiere serve`).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerLimits {
    /// `serve`: length of the kernel's queue of connections not yet accepted (`listen(2)`'s
    /// backlog), capped by `/proc/sys/net/core/somaxconn`; read at start-up only.
    pub listen_backlog: u32,
    /// Connections served at once; when reached, idle keep-alive connections are closed
    /// (oldest first) to admit new ones, and further clients wait in the listen queue.
    pub max_connections: usize,
    /// Largest request head (request line + headers) accepted, in bytes.
    pub max_header_bytes: usize,
    /// Seconds a client may take to send its request head.
    pub header_timeout_secs: u64,
    /// Seconds running answers may go on after SIGTERM before they are cut.
    pub shutdown_grace_secs: u64,
}

impl Default for ServerLimits {
    fn default() -> Self {
        ServerLimits {
            listen_backlog: 4096,
            max_connections: 1024,
            max_header_bytes: 8192,
            header_timeout_secs: 10,
            shutdown_grace_secs: 5,
        }
    }
}

/// How `serve` writes access log lines (`access_log_format`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AccessLogFormat {
    /// The common log format, then the seconds the answer took (the default).
    #[default]
    Common,
    /// nginx's `combined` (referer, user agent), then the seconds taken, the seconds to the
    /// first byte, the seek asked and the seek served.
    Combined,
    /// One JSON object per line with every field.
    Json,
}

/// `[metrics]`: whether `serve` counts, and where it exposes its Prometheus metrics.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// `false`: the request path does no metrics work at all and `/metrics` answers 404
    /// (read at start-up; a reload does not change it).
    #[serde(default = "yes")]
    pub enabled: bool,
    /// A separate listener for `/metrics` (read at start-up); when set, the public
    /// listener does not serve `/metrics`.
    pub listen: Option<std::net::SocketAddr>,
}

fn yes() -> bool {
    true
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig { enabled: true, listen: None }
    }
}

/// `[tls]`: an HTTPS listener of `serve` beside the HTTP one.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// Where HTTPS is served (read at start-up).
    pub listen: std::net::SocketAddr,
    /// PEM certificate chain, leaf first (re-read on SIGHUP).
    pub certificate: PathBuf,
    /// PEM private key (re-read on SIGHUP).
    pub key: PathBuf,
}

/// A validated configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// The directory served, canonical (symlinks resolved) and absolute.
    pub document_root: PathBuf,
    /// Extensions served, lower case, each one loomiere knows.
    pub extensions: Vec<String>,
    /// Pace factor over the media bit rate; 0 = no throttle.
    pub throttle: f64,
    /// Seconds of media sent at full speed after the header part.
    pub burst_seconds: f64,
    /// Largest source `moov` (and synthesised header part) accepted, in bytes.
    pub max_moov_bytes: u64,
    /// Whether symlinks may lead out of the document root.
    pub follow_symlinks: bool,
    /// Signed-URL secret; when set, unsigned or badly signed requests get 403.
    pub secret: Option<String>,
    /// Where log lines go.
    pub log: LogTarget,
    /// `serve`: whether directories get a listing page.
    pub listing: bool,
    /// `serve`: connection limits.
    pub server: ServerLimits,
    /// CGI: a directory where each movie's seek marks are kept between processes (see
    /// `mp4::marks`), so a request jumps into the sample tables instead of scanning them.
    pub index_cache: Option<PathBuf>,
    /// `serve`: the access log's format.
    pub access_log_format: AccessLogFormat,
    /// `serve`: the metrics listener.
    pub metrics: MetricsConfig,
    /// `serve`: the HTTPS listener.
    pub tls: Option<TlsConfig>,
    /// HLS/DASH answers carry `Access-Control-Allow-Origin: *` and `OPTIONS` preflights are
    /// answered (see docs/hls-dash.md).
    pub cors: bool,
    /// HLS/DASH: target media segment duration in seconds.
    pub segment_seconds: f64,
    /// `Cache-Control: public, max-age=N` on media answers (`cache_max_age_secs`), so a cache
    /// in front (Varnish, a CDN) may keep them; `None`: no `Cache-Control` header.
    pub cache_max_age: Option<u64>,
    /// `serve`: media read from S3-compatible object storage instead of `document_root`
    /// (`[storage]`, see `crate::storage`).
    pub storage: Option<crate::storage::StorageConfig>,
}

/// The file as written; every key optional except the root.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    document_root: Option<PathBuf>,
    extensions: Option<Vec<String>>,
    throttle: Option<f64>,
    burst_seconds: Option<f64>,
    max_moov_bytes: Option<u64>,
    follow_symlinks: Option<bool>,
    secret: Option<String>,
    log: Option<String>,
    listing: Option<bool>,
    server: Option<ServerLimits>,
    index_cache: Option<PathBuf>,
    access_log_format: Option<String>,
    metrics: Option<MetricsConfig>,
    tls: Option<TlsConfig>,
    cors: Option<bool>,
    segment_seconds: Option<f64>,
    cache_max_age_secs: Option<u64>,
    storage: Option<crate::storage::RawStorage>,
}

/// Where to look for the configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigSource {
    /// A file the operator named: it must exist.
    Explicit(PathBuf),
    /// [`DEFAULT_PATH`]: optional.
    Default,
}

impl ConfigSource {
    /// `--config` if given, else `LOOMIERE_CONFIG` if set and non-empty, else the default.
    pub fn from_flag_or_env(flag: Option<PathBuf>) -> ConfigSource {
        if let Some(p) = flag {
            return ConfigSource::Explicit(p);
        }
        match std::env::var_os(ENV_VAR) {
            Some(v) if !v.is_empty() => ConfigSource::Explicit(PathBuf::from(v)),
            _ => ConfigSource::Default,
        }
    }

    /// Reads and validates the configuration. `fallback_root` is served with the defaults
    /// when the source is [`ConfigSource::Default`] and that file does not exist.
    pub fn load(&self, fallback_root: Option<&Path>) -> Result<Config, ConfigError> {
        match self {
            ConfigSource::Explicit(p) => Config::from_file(p),
            ConfigSource::Default => {
                let p = Path::new(DEFAULT_PATH);
                // rustix's lstat, not std's: on a missing file std follows its failed statx
                // with a probe call (to tell "no statx" from "no file"), on every CGI request.
                match rustix::fs::lstat(p) {
                    Err(rustix::io::Errno::NOENT) => match fallback_root {
                        Some(root) => Config::with_root(root),
                        None => Err(ConfigError::NoRoot { path: p.to_path_buf() }),
                    },
                    _ => Config::from_file(p),
                }
            }
        }
    }
}

impl Config {
    /// The defaults, serving `root`.
    pub fn with_root(root: &Path) -> Result<Config, ConfigError> {
        let raw = RawConfig {
            document_root: Some(root.to_path_buf()),
            extensions: None,
            throttle: None,
            burst_seconds: None,
            max_moov_bytes: None,
            follow_symlinks: None,
            secret: None,
            log: None,
            listing: None,
            server: None,
            index_cache: None,
            access_log_format: None,
            metrics: None,
            tls: None,
            cors: None,
            segment_seconds: None,
            cache_max_age_secs: None,
            storage: None,
        };
        Config::validate(raw, Path::new("(defaults)"))
    }

    /// Reads and validates one file.
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let read_err = |source| ConfigError::Read { path: path.to_path_buf(), source };
        // O_NONBLOCK: a FIFO put where the file should be must not stall every request.
        let file = std::os::unix::fs::OpenOptionsExt::custom_flags(
            std::fs::OpenOptions::new().read(true),
            rustix::fs::OFlags::NONBLOCK.bits() as i32,
        )
        .open(path)
        .map_err(read_err)?;
        let meta = file.metadata().map_err(read_err)?;
        if !meta.is_file() || meta.len() > MAX_FILE_BYTES {
            return Err(ConfigError::Invalid {
                path: path.to_path_buf(),
                at: String::new(),
                message: format!("not a regular file of at most {MAX_FILE_BYTES} bytes"),
            });
        }
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::Read::take(file, MAX_FILE_BYTES), &mut text).map_err(read_err)?;
        Config::parse(&text, path)
    }

    /// Parses and validates TOML text; `path` is used in messages and to resolve nothing.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            at: e.span().map(|s| line_column(text, s.start)).unwrap_or_default(),
            message: e.message().trim_end().replace('\n', "; "),
        })?;
        Config::validate(raw, path).map_err(|e| match e {
            ConfigError::Invalid { path, at, message } if at.is_empty() => {
                let at = key_line(text, &message).map(|l| format!(", line {l}, column 1")).unwrap_or_default();
                ConfigError::Invalid { path, at, message }
            }
            e => e,
        })
    }

    fn validate(raw: RawConfig, path: &Path) -> Result<Config, ConfigError> {
        let invalid = |message: String| ConfigError::Invalid { path: path.to_path_buf(), at: String::new(), message };
        let root = raw.document_root.ok_or_else(|| invalid("document_root is required".into()))?;
        if !root.is_absolute() {
            return Err(invalid(format!("document_root {} must be an absolute path", root.display())));
        }
        let document_root =
            root.canonicalize().map_err(|e| invalid(format!("document_root {}: {e}", root.display())))?;
        if !document_root.is_dir() {
            return Err(invalid(format!("document_root {} is not a directory", root.display())));
        }
        let extensions = match raw.extensions {
            None => crate::container::extensions().map(str::to_string).collect(),
            Some(list) => {
                let mut out = Vec::new();
                for e in list {
                    let e = e.trim_start_matches('.').to_ascii_lowercase();
                    if !crate::container::extensions().any(|k| k == e) {
                        return Err(invalid(format!(
                            "extension {e:?} is not one loomiere serves ({})",
                            crate::container::extensions().collect::<Vec<_>>().join(" ")
                        )));
                    }
                    out.push(e);
                }
                out
            }
        };
        let throttle = raw.throttle.unwrap_or(0.0);
        if !(throttle == 0.0 || (0.01..=1000.0).contains(&throttle)) {
            return Err(invalid(format!("throttle {throttle} must be 0 (off) or between 0.01 and 1000")));
        }
        let burst_seconds = raw.burst_seconds.unwrap_or(3.0);
        if !(0.0..=86_400.0).contains(&burst_seconds) {
            return Err(invalid(format!("burst_seconds {burst_seconds} must be between 0 and 86400")));
        }
        let max_moov_bytes = raw.max_moov_bytes.unwrap_or(64 << 20);
        if max_moov_bytes < 1024 {
            return Err(invalid(format!("max_moov_bytes {max_moov_bytes} is below 1024")));
        }
        if let Some(s) = &raw.secret {
            if s.len() < 16 {
                return Err(invalid("secret must be at least 16 characters".into()));
            }
        }
        let log = match raw.log.as_deref() {
            None | Some("stderr") => LogTarget::Stderr,
            Some("off") => LogTarget::Off,
            Some(p) if Path::new(p).is_absolute() => LogTarget::File(PathBuf::from(p)),
            Some(p) => return Err(invalid(format!("log {p:?} must be \"stderr\", \"off\" or an absolute file path"))),
        };
        if let Some(dir) = &raw.index_cache {
            if !dir.is_absolute() {
                return Err(invalid(format!("index_cache {} must be an absolute path", dir.display())));
            }
        }
        let segment_seconds = raw.segment_seconds.unwrap_or(crate::package::segments::DEFAULT_TARGET);
        let (lo, hi) = crate::package::segments::TARGET_RANGE;
        if !(lo..=hi).contains(&segment_seconds) {
            return Err(invalid(format!("segment_seconds {segment_seconds} must be between {lo} and {hi}")));
        }
        if let Some(age) = raw.cache_max_age_secs {
            if age > 31_536_000 {
                return Err(invalid(format!("cache_max_age_secs {age} must be at most 31536000 (a year)")));
            }
        }
        let storage = match raw.storage {
            None => None,
            Some(s) => Some(crate::storage::StorageConfig::validate(s).map_err(invalid)?),
        };
        let server = raw.server.unwrap_or_default();
        if server.max_connections == 0 || server.max_header_bytes < 256 || server.header_timeout_secs == 0 {
            return Err(invalid(
                "server: max_connections ≥ 1, max_header_bytes ≥ 256 and header_timeout_secs ≥ 1 are required".into(),
            ));
        }
        if !(1..=65_535).contains(&server.listen_backlog) {
            return Err(invalid(format!(
                "server: listen_backlog {} must be between 1 and 65535",
                server.listen_backlog
            )));
        }
        if server.shutdown_grace_secs > 86_400 {
            return Err(invalid(format!(
                "server: shutdown_grace_secs {} must be at most 86400",
                server.shutdown_grace_secs
            )));
        }
        let access_log_format = match raw.access_log_format.as_deref() {
            None | Some("common") => AccessLogFormat::Common,
            Some("combined") => AccessLogFormat::Combined,
            Some("json") => AccessLogFormat::Json,
            Some(f) => {
                return Err(invalid(format!("access_log_format {f:?} must be \"common\", \"combined\" or \"json\"")))
            }
        };
        if let Some(t) = &raw.tls {
            if !t.certificate.is_absolute() || !t.key.is_absolute() {
                return Err(invalid("tls: certificate and key must be absolute paths".into()));
            }
        }
        if raw.metrics.as_ref().is_some_and(|m| !m.enabled && m.listen.is_some()) {
            return Err(invalid("[metrics] listen is set but enabled = false: drop one of them".into()));
        }
        Ok(Config {
            document_root,
            extensions,
            throttle,
            burst_seconds,
            max_moov_bytes,
            follow_symlinks: raw.follow_symlinks.unwrap_or(false),
            secret: raw.secret,
            log,
            listing: raw.listing.unwrap_or(false),
            server,
            index_cache: raw.index_cache,
            access_log_format,
            metrics: raw.metrics.unwrap_or_default(),
            tls: raw.tls,
            cors: raw.cors.unwrap_or(true),
            segment_seconds,
            cache_max_age: raw.cache_max_age_secs,
            storage,
        })
    }

    /// True when `ext` (any case, no dot) is served.
    pub fn allows_extension(&self, ext: &str) -> bool {
        self.extensions.iter().any(|e| e.eq_ignore_ascii_case(ext))
    }

    /// Writes one log line to the configured target (errors writing the log are ignored:
    /// a full disk must not turn into a failed stream).
    pub fn log(&self, line: &str) {
        log_to(&self.log, line);
    }
}

/// The line (from 1) of the key a validation message is about: the message's first word
/// (`throttle -2 must be …`), found as `key =` at the start of a line (`[server]` for the
/// server limits).
fn key_line(text: &str, message: &str) -> Option<usize> {
    let word = message.split([' ', ':']).next()?;
    let key = match word {
        "extension" => "extensions",
        "server" => "[server]",
        "tls" => "[tls]",
        w => w,
    };
    text.lines()
        .position(|l| {
            let l = l.trim_start();
            match l.strip_prefix(key) {
                Some(rest) if key.starts_with('[') => rest.trim().is_empty() || rest.trim_start().starts_with('#'),
                Some(rest) => rest.trim_start().starts_with('='),
                None => false,
            }
        })
        .map(|i| i + 1)
}

/// `, line L, column C` (both from 1; the column counts characters) of byte `at` of `text`.
fn line_column(text: &str, at: usize) -> String {
    let mut at = at.min(text.len());
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    let before = &text[..at];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
    format!(", line {line}, column {column}")
}

/// Writes one line, prefixed with an RFC 3339 UTC timestamp and `loomiere[PID]:`, to
/// `target`: `2026-11-30T08:20:27.123Z loomiere[4242]: configuration reloaded`. The file is
/// opened for each line, so a log rotated away (SIGUSR1 or not) is followed at once.
pub fn log_to(target: &LogTarget, line: &str) {
    let now = crate::http::conditional::rfc3339(std::time::SystemTime::now());
    let text = format!("{now} loomiere[{}]: {}\n", std::process::id(), line.replace(['\n', '\r'], " "));
    match target {
        LogTarget::Off => {}
        LogTarget::Stderr => {
            let _ = std::io::stderr().write_all(text.as_bytes());
        }
        LogTarget::File(p) => {
            let f = std::fs::OpenOptions::new().append(true).create(true).open(p);
            match f {
                Ok(mut f) => {
                    let _ = f.write_all(text.as_bytes());
                }
                Err(_) => {
                    let _ = std::io::stderr().write_all(text.as_bytes());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root() -> String {
        std::env::temp_dir().display().to_string()
    }

    #[test]
    fn minimal_file_gets_defaults() {
        let c = Config::parse(&format!("document_root = {:?}", root()), Path::new("t")).unwrap();
        assert_eq!(c.throttle, 0.0);
        assert_eq!(c.burst_seconds, 3.0);
        assert!(!c.follow_symlinks);
        assert!(c.allows_extension("MP4"));
        assert_eq!(c.log, LogTarget::Stderr);
        assert_eq!(c.server, ServerLimits::default());
        assert!(c.metrics.enabled);
        let r = root();
        let c = Config::parse(&format!("document_root = {r:?}\n[metrics]\nlisten = \"127.0.0.1:9\""), Path::new("t"));
        assert!(c.unwrap().metrics.enabled, "a [metrics] table without enabled keeps them on");
        let c = Config::parse(&format!("document_root = {r:?}\n[metrics]\nenabled = false"), Path::new("t"));
        assert!(!c.unwrap().metrics.enabled);
    }

    #[test]
    fn full_file_parses() {
        let text = format!(
            "document_root = {:?}\nextensions = [\"mp4\", \".FLV\"]\nthrottle = 1.5\nburst_seconds = 4\n\
             secret = \"0123456789abcdef\"\nlog = \"/tmp/x.log\"\nlisting = true\n\
             [server]\nmax_connections = 10\nlisten_backlog = 511\n",
            root()
        );
        let c = Config::parse(&text, Path::new("t")).unwrap();
        assert_eq!(c.extensions, vec!["mp4", "flv"]);
        assert!(!c.allows_extension("jpg"));
        assert_eq!(c.throttle, 1.5);
        assert_eq!(c.server.max_connections, 10);
        assert_eq!(c.server.listen_backlog, 511);
        assert_eq!(c.server.max_header_bytes, 8192);
        assert_eq!(c.log, LogTarget::File("/tmp/x.log".into()));
    }

    #[test]
    fn bad_files_are_errors() {
        let r = root();
        for bad in [
            String::new(),
            "document_root = \"relative\"".into(),
            "document_root = \"/nonexistent/loomiere\"".into(),
            format!("document_root = {r:?}\nunknown_key = 1"),
            format!("document_root = {r:?}\nextensions = [\"txt\"]"),
            format!("document_root = {r:?}\nthrottle = -1"),
            format!("document_root = {r:?}\nthrottle = nan"),
            format!("document_root = {r:?}\nburst_seconds = inf"),
            format!("document_root = {r:?}\nsecret = \"short\""),
            format!("document_root = {r:?}\nlog = \"relative.log\""),
            format!("document_root = {r:?}\n[server]\nmax_connections = 0"),
            format!("document_root = {r:?}\n[server]\nlisten_backlog = 0"),
            format!("document_root = {r:?}\n[server]\nlisten_backlog = 70000"),
            format!("document_root = {r:?}\n[server]\nbogus = 0"),
            format!("document_root = {r:?}\n[server]\nshutdown_grace_secs = 100000"),
            format!("document_root = {r:?}\naccess_log_format = \"xml\""),
            format!("document_root = {r:?}\n[metrics]\nlisten = \"nowhere\""),
            format!("document_root = {r:?}\n[metrics]\nenabled = false\nlisten = \"127.0.0.1:9\""),
            format!("document_root = {r:?}\n[tls]\nlisten = \"127.0.0.1:1\"\ncertificate = \"c.pem\"\nkey = \"/k\""),
            format!("document_root = {r:?}\n[tls]\nlisten = \"127.0.0.1:1\"\nkey = \"/k\""),
            "document_root = ".into(),
        ] {
            assert!(Config::parse(&bad, Path::new("t")).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn syntax_errors_name_line_and_column() {
        let text = format!("document_root = {:?}\nthrottle = 1.5\nburst_seconds = = 3\n", root());
        let e = Config::parse(&text, Path::new("/etc/loomiere/stream.conf")).unwrap_err().to_string();
        assert!(e.starts_with("config /etc/loomiere/stream.conf, line 3, column "), "{e}");
        assert!(!e.contains('\n'), "{e}");
        let e = Config::parse(&format!("document_root = {:?}\nthrotle = 1", root()), Path::new("c")).unwrap_err();
        assert!(e.to_string().contains("line 2, column 1"), "{e}");
        assert!(e.to_string().contains("throtle"), "{e}");
        assert_eq!(line_column("a\nbé=x", 5), ", line 2, column 3");
        // A value out of range names the line of its key.
        let text = format!("# stream.conf\ndocument_root = {:?}\n\n  throttle = -2\n", root());
        let e = Config::parse(&text, Path::new("c")).unwrap_err().to_string();
        assert!(e.starts_with("config c, line 4, column 1: throttle -2 must be"), "{e}");
        let text = format!("document_root = {:?}\n[server]\nmax_connections = 0\n", root());
        let e = Config::parse(&text, Path::new("c")).unwrap_err().to_string();
        assert!(e.starts_with("config c, line 2, column 1: server:"), "{e}");
    }

    #[test]
    fn fifo_config_is_refused_not_waited_on() {
        let p = std::env::temp_dir().join(format!("loomiere-cfg-fifo-{}", std::process::id()));
        let _ = std::fs::remove_file(&p);
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &p,
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::RUSR | rustix::fs::Mode::WUSR,
            0,
        )
        .unwrap();
        assert!(matches!(Config::from_file(&p), Err(ConfigError::Invalid { .. })));
        let _ = std::fs::remove_file(&p);
    }

    #[test]
    fn explicit_missing_file_is_an_error() {
        let s = ConfigSource::Explicit("/nonexistent/loomiere.conf".into());
        assert!(matches!(s.load(Some(Path::new("/tmp"))), Err(ConfigError::Read { .. })));
    }
}
