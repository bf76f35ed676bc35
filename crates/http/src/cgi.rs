//! The blocking front ends: CGI/1.1 (RFC 3875) and inetd (one HTTP/1.x connection on
//! stdin/stdout, as tcpsvd or xinetd hand it over). Both build an [`HttpRequest`], load the
//! configuration (once per request), call [`http::respond`] and write the answer with the
//! zero-copy sink and the throttle. No threads, no async runtime: this is the path a web
//! server forks for every request, so it does as little as possible.
//!
//! Which file a CGI request names, in order:
//! 1. `PATH_INFO` when non-empty (Apache `Action`/`ScriptAlias`, nginx + fcgiwrap): a decoded
//!    URL path relative to the document root;
//! 2. `SCRIPT_NAME` when it has a media extension (lighttpd `cgi.assign`, busybox httpd
//!    interpreters: the "script" is the media file itself);
//! 3. `PATH_TRANSLATED` (a file-system path), which must lie inside the document root.
//!
//! The document root is the configuration's; without a configuration file, `DOCUMENT_ROOT`.

use crate::config::{log_to, Config, ConfigSource, LogTarget};
use crate::http::exchange::{self, HeadFailure, HeadState};
use crate::http::path::Target;
use crate::http::{self, wire, HttpRequest, Response};
use crate::throttle;
use std::io;
use std::os::fd::BorrowedFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

/// The most requests served on one inetd connection.
const MAX_REQUESTS_PER_CONNECTION: usize = 100;
/// How long a blocked write to an inetd client may take before the connection is dropped.
const SEND_TIMEOUT: Duration = Duration::from_secs(60);

/// How a front end run ended (for the exit status).
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Answered (whatever the status).
    Answered,
    /// The client went away mid-answer.
    HungUp,
}

/// A request from CGI environment variables; `env` looks one up. Also returns
/// `DOCUMENT_ROOT`, the fallback root when there is no configuration file.
pub fn request_from_env(env: impl Fn(&str) -> Option<String>) -> (HttpRequest, Option<PathBuf>) {
    let nonempty = |k: &str| env(k).filter(|v| !v.is_empty());
    // A movie, or a bitrate ladder's sidecar (`title.ladder`), named by the script path.
    let script_media = nonempty("SCRIPT_NAME").filter(|s| {
        crate::Kind::of(Path::new(s)).is_some() || s.rsplit('/').next().is_some_and(crate::package::ladder::is_ladder)
    });
    let target = if let (Some(pi), Some(sn)) = (nonempty("PATH_INFO"), &script_media) {
        // The web server runs loomiere for the movie itself (`cgi.assign` by extension) and
        // passes what follows it (`/master.m3u8`) as PATH_INFO: HLS/DASH below the movie.
        Target::Decoded(format!("{sn}{pi}"))
    } else if let Some(pi) = nonempty("PATH_INFO") {
        Target::Decoded(pi)
    } else if let Some(sn) = script_media {
        Target::Decoded(sn)
    } else if let Some(pt) = nonempty("PATH_TRANSLATED") {
        Target::Translated(PathBuf::from(pt))
    } else {
        // Nothing names a file: the root, which is refused as a directory.
        Target::Decoded("/".into())
    };
    let req = HttpRequest {
        method: nonempty("REQUEST_METHOD").unwrap_or_else(|| "GET".into()),
        target,
        query: env("QUERY_STRING").unwrap_or_default(),
        range: nonempty("HTTP_RANGE"),
        if_none_match: nonempty("HTTP_IF_NONE_MATCH"),
        if_modified_since: nonempty("HTTP_IF_MODIFIED_SINCE"),
        if_range: nonempty("HTTP_IF_RANGE"),
    };
    (req, nonempty("DOCUMENT_ROOT").map(PathBuf::from))
}

/// Answers one CGI request from the process environment on `out` (stdout).
pub fn run_cgi(source: &ConfigSource, out: BorrowedFd<'_>) -> io::Result<Outcome> {
    let (req, doc_root) = request_from_env(|k| std::env::var(k).ok());
    let (resp, cfg) = answer(source, doc_root.as_deref(), &req, true, true);
    let head = resp.cgi_head();
    let result = send(&resp, head, cfg.as_ref(), out);
    // One request per process, and the process exits next: the kernel takes back its memory
    // and mappings at once, so dropping the plan piece by piece (its segments, the moov
    // mapping) would only delay the exit.
    std::mem::forget((resp, cfg));
    result
}

/// Loads the configuration and answers; the log line (if any) goes where the configuration
/// says, or to stderr when there is none.
fn answer(
    source: &ConfigSource,
    doc_root: Option<&Path>,
    req: &HttpRequest,
    stderr_ok: bool,
    one_shot: bool,
) -> (Response, Option<Config>) {
    match source.load(doc_root) {
        Ok(mut cfg) => {
            if !stderr_ok && cfg.log == LogTarget::Stderr {
                cfg.log = LogTarget::Off;
            }
            let resp = if one_shot { respond_once(&cfg, req) } else { http::respond(&cfg, req) };
            exchange::log_answer(&cfg, &resp, &req.method);
            (resp, Some(cfg))
        }
        Err(e) => {
            let resp = Response::config_error(&e);
            if stderr_ok {
                log_to(&LogTarget::Stderr, &format!("500 {e}"));
            }
            (resp, None)
        }
    }
}

/// [`http::respond`] for a process that answers once and exits: a `HEAD` answer's plan is
/// forgotten rather than dropped (see [`run_cgi`]).
fn respond_once(cfg: &Config, req: &HttpRequest) -> Response {
    let mut resp = http::respond_full(cfg, req, std::time::SystemTime::now());
    exchange::strip_head_body(req, &mut resp, true);
    resp
}

/// Writes the head and the body (throttled as configured). A client that went away is
/// [`Outcome::HungUp`], not an error.
fn send(resp: &Response, head: String, cfg: Option<&Config>, out: BorrowedFd<'_>) -> io::Result<Outcome> {
    let delivery = exchange::delivery(resp, head, cfg);
    let result = (|| {
        write_all(out, &delivery.prefix)?;
        match &delivery.plan {
            None => Ok(()),
            Some((plan, range, pacer)) => throttle::send_paced(plan, range.clone(), out, pacer.as_ref()).map(|_| ()),
        }
    })();
    match result {
        Ok(()) => Ok(Outcome::Answered),
        Err(e) if is_hang_up(&e) => Ok(Outcome::HungUp),
        Err(e) => Err(e),
    }
}

fn is_hang_up(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::BrokenPipe
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::WouldBlock
            | io::ErrorKind::TimedOut
    )
}

/// Writes all of `buf` to a blocking descriptor.
pub fn write_all(out: BorrowedFd<'_>, mut buf: &[u8]) -> io::Result<()> {
    while !buf.is_empty() {
        match rustix::io::write(out, buf) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => buf = buf.get(n..).unwrap_or(&[]),
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Serves one inetd connection: HTTP/1.0 or 1.1 requests read from `input`, answered on
/// `output` (keep-alive honoured, up to a limit). Each request head must arrive within the
/// configured `header_timeout_secs` and fit in `max_header_bytes`.
pub fn serve_inetd(source: &ConfigSource, input: BorrowedFd<'_>, output: BorrowedFd<'_>) -> io::Result<Outcome> {
    // A client that stops reading must not hold the process forever.
    let _ = rustix::net::sockopt::set_socket_timeout(output, rustix::net::sockopt::Timeout::Send, Some(SEND_TIMEOUT));
    // xinetd (unlike tcpsvd) puts the client socket on stderr too: a log line there would
    // corrupt the answer.
    let stderr_ok = !same_file(rustix::stdio::stderr(), output);
    let mut buf: Vec<u8> = Vec::new();
    for _ in 0..MAX_REQUESTS_PER_CONNECTION {
        // Limits come from the configuration as it is now; a broken file still gets a 500.
        let limits = source.load(None).map(|c| c.server).unwrap_or_default();
        let head = match read_head(input, &mut buf, limits.max_header_bytes, limits.header_timeout_secs) {
            Ok(Some(h)) => h,
            Ok(None) => return Ok(Outcome::Answered),
            Err(failure) => {
                let resp = failure.response();
                let head = resp.http_head(false, false, SystemTime::now());
                return send(&resp, head, None, output);
            }
        };
        let (resp, keep_alive, http10, cfg) = match wire::parse(&head) {
            Ok(w) => {
                let (resp, cfg) = answer(source, None, &w.request, stderr_ok, false);
                (resp, exchange::keep_alive(&w, false), w.http10, cfg)
            }
            Err(e) => {
                if stderr_ok {
                    log_to(&LogTarget::Stderr, &format!("{} {}", e.status, e.why));
                }
                (Response::error(e.status, Some(e.why)), false, false, None)
            }
        };
        let head = resp.http_head(http10, keep_alive, SystemTime::now());
        if send(&resp, head, cfg.as_ref(), output)? == Outcome::HungUp {
            return Ok(Outcome::HungUp);
        }
        if !keep_alive {
            return Ok(Outcome::Answered);
        }
    }
    Ok(Outcome::Answered)
}

/// Whether two descriptors are the same open file (device and inode).
fn same_file(a: BorrowedFd<'_>, b: BorrowedFd<'_>) -> bool {
    match (rustix::fs::fstat(a), rustix::fs::fstat(b)) {
        (Ok(x), Ok(y)) => x.st_dev == y.st_dev && x.st_ino == y.st_ino,
        _ => false,
    }
}

/// Reads until a complete head is in `buf`, returns it and keeps what follows in `buf`.
/// `Ok(None)`: the client closed the connection before sending anything.
fn read_head(
    input: BorrowedFd<'_>,
    buf: &mut Vec<u8>,
    max: usize,
    timeout_secs: u64,
) -> Result<Option<Vec<u8>>, HeadFailure> {
    use rustix::event::{poll, PollFd, PollFlags, Timespec};
    let deadline = Instant::now() + Duration::from_secs(timeout_secs);
    let mut chunk = [0u8; 4096];
    loop {
        match exchange::head_state(buf, max) {
            HeadState::Complete(n) => {
                let rest = buf.split_off(n);
                let head = std::mem::replace(buf, rest);
                return Ok(Some(head));
            }
            HeadState::TooLarge => return Err(HeadFailure::TooLarge),
            HeadState::Incomplete => {}
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return if buf.is_empty() { Ok(None) } else { Err(HeadFailure::TimedOut) };
        }
        let ts = Timespec { tv_sec: left.as_secs() as i64, tv_nsec: i64::from(left.subsec_nanos()) };
        let mut fds = [PollFd::from_borrowed_fd(input, PollFlags::IN)];
        match poll(&mut fds, Some(&ts)) {
            Ok(0) => continue,
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => continue,
            Err(_) => return Ok(None),
        }
        match rustix::io::read(input, &mut chunk) {
            Ok(0) => return if buf.is_empty() { Ok(None) } else { Err(HeadFailure::Truncated) },
            Ok(n) => buf.extend_from_slice(chunk.get(..n).unwrap_or(&[])),
            Err(rustix::io::Errno::INTR) | Err(rustix::io::Errno::AGAIN) => continue,
            Err(_) => return Ok(None),
        }
    }
}

/// Whether `args` (argv, program name first) are the words Apache derives from an ISINDEX
/// query (a query string without `=`, split on `+` and decoded, passed as arguments): such a
/// CGI call must never be read as loomiere's own command line. Takes argv as bytes in any
/// form (`&[String]`, raw C strings) so the CGI entry need not collect it.
pub fn args_from_isindex<A: AsRef<[u8]>>(args: impl IntoIterator<Item = A>, query: Option<&str>) -> bool {
    let Some(q) = query.filter(|q| !q.is_empty() && !q.contains('=')) else { return false };
    let mut rest = args.into_iter().skip(1);
    for w in q.split('+') {
        let word = http::percent::decode(w.as_bytes(), false).unwrap_or_default();
        match rest.next() {
            Some(a) if a.as_ref() == word.as_slice() => {}
            _ => return false,
        }
    }
    rest.next().is_none()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::os::fd::AsFd;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |k| m.get(k).cloned()
    }

    #[test]
    fn path_sources_in_order() {
        let (r, root) = request_from_env(env(&[
            ("PATH_INFO", "/v/a.mp4"),
            ("SCRIPT_NAME", "/cgi-bin/loomiere"),
            ("PATH_TRANSLATED", "/srv/v/a.mp4"),
            ("DOCUMENT_ROOT", "/srv"),
            ("REQUEST_METHOD", "HEAD"),
            ("QUERY_STRING", "start=5"),
            ("HTTP_RANGE", "bytes=0-1"),
            ("HTTP_IF_NONE_MATCH", "\"x\""),
        ]));
        assert_eq!(r.target, Target::Decoded("/v/a.mp4".into()));
        assert_eq!(root.as_deref(), Some(Path::new("/srv")));
        assert_eq!(r.method, "HEAD");
        assert_eq!(r.query, "start=5");
        assert_eq!(r.range.as_deref(), Some("bytes=0-1"));
        assert_eq!(r.if_none_match.as_deref(), Some("\"x\""));
        let (r, _) = request_from_env(env(&[("SCRIPT_NAME", "/v/a.flv"), ("PATH_INFO", "")]));
        assert_eq!(r.target, Target::Decoded("/v/a.flv".into()));
        assert_eq!(r.method, "GET");
        // loomiere assigned to the extension, HLS below the movie: the two are joined.
        let (r, _) = request_from_env(env(&[("SCRIPT_NAME", "/v/a.mp4"), ("PATH_INFO", "/v1/3.m4s")]));
        assert_eq!(r.target, Target::Decoded("/v/a.mp4/v1/3.m4s".into()));
        let (r, _) = request_from_env(env(&[("SCRIPT_NAME", "/v/t.ladder"), ("PATH_INFO", "/r2/v1/3.m4s")]));
        assert_eq!(r.target, Target::Decoded("/v/t.ladder/r2/v1/3.m4s".into()));
        let (r, _) = request_from_env(env(&[("SCRIPT_NAME", "/cgi-bin/x"), ("PATH_TRANSLATED", "/srv/a.mp4")]));
        assert_eq!(r.target, Target::Translated("/srv/a.mp4".into()));
        let (r, root) = request_from_env(env(&[]));
        assert_eq!(r.target, Target::Decoded("/".into()));
        assert_eq!(root, None);
    }

    #[test]
    fn isindex_words_are_recognised() {
        let args: Vec<String> = ["loomiere", "serve", "--listen"].iter().map(|s| s.to_string()).collect();
        assert!(args_from_isindex(&args, Some("serve+--listen")));
        assert!(args_from_isindex(&args, Some("serve+%2D-listen")));
        assert!(!args_from_isindex(&args, Some("start=serve")));
        assert!(!args_from_isindex(&args, None));
        assert!(!args_from_isindex(&args[..1], Some("x")));
    }

    #[test]
    fn inetd_head_reading() {
        let (r, w) = rustix::pipe::pipe().unwrap();
        write_all(w.as_fd(), b"GET / HTTP/1.0\r\n\r\nGET /b HTTP/1.0\r\n\r\n").unwrap();
        let mut buf = Vec::new();
        let h = read_head(r.as_fd(), &mut buf, 1024, 5).unwrap().unwrap();
        assert_eq!(h, b"GET / HTTP/1.0\r\n\r\n");
        let h = read_head(r.as_fd(), &mut buf, 1024, 5).unwrap().unwrap();
        assert_eq!(h, b"GET /b HTTP/1.0\r\n\r\n");
        write_all(w.as_fd(), &[b'a'; 600]).unwrap();
        assert_eq!(read_head(r.as_fd(), &mut buf, 512, 5).map_err(HeadFailure::status), Err(431));
        buf.clear();
        drop(w);
        assert_eq!(read_head(r.as_fd(), &mut buf, 512, 5), Ok(None));
    }

    #[test]
    fn inetd_slow_head_times_out() {
        let (r, w) = rustix::pipe::pipe().unwrap();
        write_all(w.as_fd(), b"GET / HTTP/1.0\r\n").unwrap();
        let mut buf = Vec::new();
        assert_eq!(read_head(r.as_fd(), &mut buf, 1024, 1).map_err(HeadFailure::status), Err(408));
        // An idle connection with nothing sent just closes.
        let (r2, _w2) = rustix::pipe::pipe().unwrap();
        assert_eq!(read_head(r2.as_fd(), &mut Vec::new(), 1024, 1), Ok(None));
        drop(w);
    }
}
