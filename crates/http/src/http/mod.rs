//! The HTTP core shared by every front end (CGI, inetd, the tokio server): one pure,
//! synchronous function, [`respond`], turns a request into a [`Response`] — status, headers
//! and a body that is nothing, a short text, or a slice of a [`Plan`]. It opens the media
//! file (through [`path::open`] and [`crate::media::plan`]) and nothing else: no socket,
//! no sleeping. `serve` runs [`respond_held`] (what its movie cache holds: nothing read but
//! the file's identity) on its async threads and [`respond_cached`] (which may read a 4 MB
//! `moov` or build a segment index) on tokio's blocking pool.
//!
//! Routing is here too: a directory (with `listing` on: [`listing`]) or a media file; the
//! parts of an exchange around [`respond`] that every driver shares — reading a head within
//! its limits, the refusals, keep-alive, the log line — are in [`exchange`].
//!
//! Sub-modules: [`package`] (HLS/DASH below a movie, CORS), [`query`] (start/end/exact), [`range`] (`Range`), [`conditional`] (ETag,
//! dates, 304), [`path`] (confinement), [`signed`] (signed URLs), [`wire`] (parsing a raw
//! HTTP/1.x request head), [`percent`] (decoding). Heads are serialised here for CGI
//! ([`Response::cgi_head`]) and raw HTTP ([`Response::http_head`]).

pub mod conditional;
pub mod exchange;
mod ladder;
pub mod listing;
pub mod package;
pub mod path;
pub mod percent;
pub mod query;
pub mod range;
pub mod signed;
pub mod stand_in;
pub mod wire;

use crate::config::{Config, ConfigError};
use crate::media::Kind;
use crate::plan::Plan;
use crate::request::{BareUnit, Position, Request};
use path::Target;
use range::RangeAnswer;
use std::ops::Range;
use std::time::SystemTime;

/// A request as every front end sees it, whatever it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpRequest {
    /// `GET`, `HEAD`, … (case-sensitive, as HTTP says).
    pub method: String,
    /// The path, in the form the front end received it.
    pub target: Target,
    /// The raw query string without `?` (percent-encoded).
    pub query: String,
    /// `Range` header.
    pub range: Option<String>,
    /// `If-None-Match` header.
    pub if_none_match: Option<String>,
    /// `If-Modified-Since` header.
    pub if_modified_since: Option<String>,
    /// `If-Range` header.
    pub if_range: Option<String>,
}

impl HttpRequest {
    /// A `GET` for a raw URL path with no headers (tests, tools).
    pub fn get(url_path: &str, query: &str) -> HttpRequest {
        HttpRequest {
            method: "GET".into(),
            target: Target::Url(url_path.into()),
            query: query.into(),
            range: None,
            if_none_match: None,
            if_modified_since: None,
            if_range: None,
        }
    }
}

/// What to send after the head.
pub enum Body {
    /// Nothing (HEAD, 304; `Content-Length` in the headers still tells the size).
    Empty,
    /// A short text (errors).
    Text(String),
    /// Output bytes `range` of `plan`.
    Plan { plan: Plan, range: Range<u64> },
}

impl std::fmt::Debug for Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Body::Empty => f.write_str("Empty"),
            Body::Text(t) => write!(f, "Text({t:?})"),
            Body::Plan { plan, range } => write!(f, "Plan({} bytes, {range:?})", plan.len()),
        }
    }
}

/// An answer: status, headers (without `Date`, `Connection`, `Status`) and body.
#[derive(Debug)]
pub struct Response {
    /// HTTP status code.
    pub status: u16,
    /// Headers in order; names in canonical case.
    pub headers: Vec<(&'static str, String)>,
    /// The body.
    pub body: Body,
    /// A line for the server log, when something was refused or failed.
    pub log: Option<String>,
}

impl Response {
    /// A short `text/plain` answer: the status line, then the reason when there is one. The
    /// reason is also the answer's log line, so it must never hold an internal path.
    pub fn error(status: u16, why: Option<String>) -> Response {
        let why = why.map(|w| one_line(&w));
        let text = match &why {
            Some(w) => format!("{status} {}\n{w}\n", reason(status)),
            None => format!("{status} {}\n", reason(status)),
        };
        Response {
            status,
            headers: vec![
                ("Content-Type", "text/plain; charset=utf-8".into()),
                ("Content-Length", text.len().to_string()),
            ],
            body: Body::Text(text),
            log: why,
        }
    }

    /// An error about the file a request names: the body gives the reason, the log line the
    /// URL path and the same reason.
    pub fn refused(status: u16, url_path: &str, why: &str) -> Response {
        let mut r = Response::error(status, Some(why.to_string()));
        r.log = Some(format!("{url_path}: {}", one_line(why)));
        r
    }

    /// An error whose full reason is for the operator only (it names files on the server):
    /// the client reads `public`, the log gets `log`.
    pub fn error_private(status: u16, public: &str, log: String) -> Response {
        let mut r = Response::error(status, Some(public.to_string()));
        r.log = Some(log);
        r
    }

    /// The 500 every front end answers when the configuration cannot be loaded: the client
    /// is told only that (the reason names the server's files), the log gets the reason.
    pub fn config_error(e: &ConfigError) -> Response {
        Response::config_error_text(e.to_string())
    }

    /// [`Response::config_error`] for a reason already worded.
    pub fn config_error_text(log: String) -> Response {
        Response::error_private(500, "the server's configuration cannot be loaded; the reason is in its log", log)
    }

    /// The value of header `name` (case-insensitive), if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The number of body bytes a GET would carry (from `Content-Length`).
    pub fn content_length(&self) -> Option<u64> {
        self.header("Content-Length")?.parse().ok()
    }

    /// The head for a CGI answer: `Status:` line, headers, blank line (CRLF line ends).
    /// Joined with `push_str` rather than formatted: every CGI process writes one, and the
    /// formatting machinery's string instances are code it would fault in for nothing.
    pub fn cgi_head(&self) -> String {
        let mut s = String::with_capacity(256);
        s.push_str("Status: ");
        s.push_str(&self.status.to_string());
        s.push(' ');
        s.push_str(reason(self.status));
        s.push_str("\r\n");
        push_headers(&mut s, &self.headers);
        s.push_str("\r\n");
        s
    }

    /// The head for a raw HTTP/1.x answer: status line, `Date`, `Server`, the headers and
    /// `Connection: keep-alive|close`.
    pub fn http_head(&self, http10: bool, keep_alive: bool, now: SystemTime) -> String {
        let version = if http10 { "HTTP/1.0" } else { "HTTP/1.1" };
        let mut s = format!("{version} {} {}\r\n", self.status, reason(self.status));
        s.push_str(&format!("Date: {}\r\nServer: loomiere\r\n", conditional::http_date(now)));
        push_headers(&mut s, &self.headers);
        s.push_str(if keep_alive { "Connection: keep-alive\r\n\r\n" } else { "Connection: close\r\n\r\n" });
        s
    }
}

/// `name: value` lines (CRLF ends) of `headers`.
fn push_headers(s: &mut String, headers: &[(&'static str, String)]) {
    for (n, v) in headers {
        s.push_str(n);
        s.push_str(": ");
        s.push_str(v);
        s.push_str("\r\n");
    }
}

/// The reason phrase for the statuses loomiere sends.
pub fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        206 => "Partial Content",
        304 => "Not Modified",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        413 => "Content Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Range Not Satisfiable",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}

/// `text` on one line (a reason inside a body or a log line never starts a new one).
fn one_line(text: &str) -> String {
    text.replace(['\n', '\r'], " ")
}

/// The single entry point: answers `req` under `cfg`. Never panics, never blocks beyond
/// opening the file and reading its index.
pub fn respond(cfg: &Config, req: &HttpRequest) -> Response {
    let mut resp = respond_full(cfg, req, SystemTime::now());
    exchange::strip_head_body(req, &mut resp, false);
    resp
}

/// [`respond`] for a long-running server: MP4 movies are taken from (and kept in) `cache`, so
/// the viewers of one file share one opened movie, its mapped `moov` and its descriptor.
pub fn respond_cached(cfg: &Config, req: &HttpRequest, cache: &crate::media::MovieCache) -> Response {
    let mut resp = respond_inner(cfg, req, SystemTime::now(), Some(&Movies::all(cache)));
    crate::storage::add_cache_headers(cfg, &mut resp);
    exchange::strip_head_body(req, &mut resp, false);
    resp
}

/// [`respond_cached`] from memory only, for a caller on an event loop: the answer when
/// everything it needs besides opening (and `fstat`ing) the file is already held — an HLS/DASH
/// package (playlists, init and media segments), a remembered MP4 seek — and refusals found
/// before any file is read; `None` when answering would read a file or build an index (a
/// movie or package not held, a seek not remembered, FLV, a whole file, a directory listing,
/// a ladder sidecar): the caller then runs [`respond_cached`] where blocking is allowed.
/// What it answers, and the cache counters it moves, are those of [`respond_cached`].
pub fn respond_held(cfg: &Config, req: &HttpRequest, cache: &crate::media::MovieCache) -> Option<Response> {
    let movies = Movies::held(cache);
    let mut resp = respond_inner(cfg, req, SystemTime::now(), Some(&movies));
    if movies.missed() {
        return None;
    }
    crate::storage::add_cache_headers(cfg, &mut resp);
    exchange::strip_head_body(req, &mut resp, false);
    Some(resp)
}

/// How the core reaches `serve`'s movie cache: for any answer (a miss opens the movie and
/// builds what is asked), or only for what it already holds (a miss is noted and its answer
/// is worthless: [`respond_held`]).
pub struct Movies<'a> {
    pub(crate) cache: &'a crate::media::MovieCache,
    /// Only what is held: nothing is read from a file besides opening it.
    pub(crate) held_only: bool,
    /// Set by a held-only lookup that missed.
    missed: std::cell::Cell<bool>,
}

impl<'a> Movies<'a> {
    /// Every lookup, misses included.
    pub fn all(cache: &'a crate::media::MovieCache) -> Movies<'a> {
        Movies { cache, held_only: false, missed: std::cell::Cell::new(false) }
    }

    /// Only what `cache` holds.
    pub fn held(cache: &'a crate::media::MovieCache) -> Movies<'a> {
        Movies { cache, held_only: true, missed: std::cell::Cell::new(false) }
    }

    /// Notes a held-only lookup that would have to read: the error its answer carries (never
    /// sent).
    pub(crate) fn miss(&self) -> crate::Error {
        self.missed.set(true);
        crate::Error::Io { context: "not held in memory".into(), source: std::io::ErrorKind::WouldBlock.into() }
    }

    /// Whether a held-only lookup missed.
    pub fn missed(&self) -> bool {
        self.missed.get()
    }
}

/// [`respond`] at a given time (signed-URL expiry), body included even for HEAD.
pub fn respond_full(cfg: &Config, req: &HttpRequest, now: SystemTime) -> Response {
    let mut resp = respond_inner(cfg, req, now, None);
    crate::storage::add_cache_headers(cfg, &mut resp);
    resp
}

fn respond_inner(cfg: &Config, req: &HttpRequest, now: SystemTime, cache: Option<&Movies>) -> Response {
    // HLS/DASH below a movie (`/movie.mp4/master.m3u8`) and CORS preflights.
    if let Some(r) = package::preflight(cfg, req) {
        return r;
    }
    if req.method != "GET" && req.method != "HEAD" {
        let mut r = Response::error(405, Some(format!("method {:?} is not served (GET and HEAD are)", req.method)));
        r.headers.push(("Allow", "GET, HEAD".into()));
        return r;
    }
    if let Some(r) = package::respond(cfg, req, now, cache) {
        return r;
    }
    // A bitrate ladder's presentation (`/title.ladder/master.m3u8`, `…/r2/v1/3.m4s`).
    if let Some(r) = ladder::respond(cfg, req, now, cache) {
        return r;
    }
    // A directory, when listings are on: its own signature check comes before anything is
    // read from it (see `listing`).
    if cfg.listing {
        if let Some(dir) = listing::resolve(cfg, &req.target) {
            if let Some(movies) = cache.filter(|m| m.held_only) {
                return Response::error(503, Some(movies.miss().to_string()));
            }
            return match listing::authorize(cfg, &dir, &req.query, now) {
                Ok(signed_until) => listing::page(cfg, &dir, req.method == "HEAD", signed_until),
                Err(refusal) => *refusal,
            };
        }
    }
    let q = match query::Query::parse(&req.query) {
        Ok(q) => q,
        Err(e) => return Response::error(400, Some(e.to_string())),
    };
    let rel = match path::normalize(cfg, &req.target) {
        Ok(r) => r,
        Err(e) => return Response::error(e.status(), Some(e.reason())),
    };
    let url = rel.url_path();
    if let Some(secret) = &cfg.secret {
        let now_secs = now.duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        if let Err(e) = signed::verify(secret, &url, q.expires.as_deref(), q.sig.as_deref(), now_secs) {
            return Response::refused(403, &url, &e.to_string());
        }
    }
    let opened = match path::open(cfg, &rel) {
        Ok(o) => o,
        Err(e) => return Response::refused(e.status(), &url, &e.reason()),
    };
    let request = match media_request(opened.kind, &q) {
        Ok(r) => r,
        Err(e) => return Response::refused(400, &url, &e.to_string()),
    };
    let opts = crate::media::Options {
        max_moov: cfg.max_moov_bytes,
        marks_dir: cfg.index_cache.clone(),
        ..crate::media::Options::for_kind(opened.kind, &opened.real)
    };
    let planned = match cache {
        Some(m) if m.held_only => m.cache.plan_held(&opened.source, &request, &opts).unwrap_or_else(|| Err(m.miss())),
        Some(m) => m.cache.plan(&opened.real, opened.source, &request, &opts),
        None => crate::media::plan(opened.source, &request, &opts),
    };
    let plan = match planned {
        Ok(p) => p,
        // Engine errors speak of the file's contents, never of its place on the server.
        Err(e) => return Response::refused(e.http_status(), &url, &e.to_string()),
    };
    answer_plan(plan, &request, req)
}

/// The engine request for a query: a bare `start`/`end` number is bytes for FLV, seconds
/// otherwise; images ignore positions; an MP4 `end` not after `start` is ignored (nginx).
pub fn media_request(kind: Kind, q: &query::Query) -> crate::Result<Request> {
    let Some(unit) = kind.format().bare_unit else { return Ok(Request::default()) };
    let example = match unit {
        BareUnit::Seconds => "30.5",
        BareUnit::Bytes => "123456 (a byte offset) or 30.5s",
    };
    let parse = |key: &str, t: &Option<String>| match t.as_deref() {
        None => Ok(None),
        Some(t) if t.trim().is_empty() => Err(crate::Error::bad_request(format!(
            "{key} is empty: give a position (e.g. {key}={example}) or leave {key} out"
        ))),
        Some(t) => Position::parse(t, unit).map(Some),
    };
    let (start, mut end) = (parse("start", &q.start)?, parse("end", &q.end)?);
    // An MP4 `end` at or before `start` is ignored, as nginx's mp4 module does (a player's
    // stale `end` still gets the movie from `start`); `cut --end` refuses it instead.
    if let (Kind::Mp4, Some(Position::Seconds(s)), Some(Position::Seconds(e))) = (kind, start, end) {
        if e <= s {
            end = None;
        }
    }
    Ok(Request { start, end, exact: q.exact, force_co64: false })
}

/// Headers, validators, conditional and range handling for a built plan.
pub(crate) fn answer_plan(plan: Plan, request: &Request, req: &HttpRequest) -> Response {
    let len = plan.len();
    // An object in storage is known by its store ETag as well (see `crate::storage`).
    let version = match &plan.source().version {
        crate::source::Version::Tag(t) => Some(&**t),
        _ => None,
    };
    let etag = conditional::etag_versioned(&plan.info, len, request, version);
    let mut headers: Vec<(&'static str, String)> = vec![("Content-Type", plan.info.content_type.to_string())];
    let mut validators = vec![("ETag", etag.clone())];
    if let Some(m) = plan.info.modified {
        validators.push(("Last-Modified", conditional::http_date(m)));
    }
    let not_modified = match (&req.if_none_match, &req.if_modified_since) {
        (Some(inm), _) => conditional::none_match_hits(inm, &etag),
        (None, Some(ims)) => conditional::not_modified_since(ims, plan.info.modified),
        (None, None) => false,
    };
    if not_modified {
        validators.push(("Accept-Ranges", "bytes".into()));
        return Response { status: 304, headers: validators, body: Body::Empty, log: None };
    }
    headers.extend(validators);
    headers.push(("Accept-Ranges", "bytes".into()));
    if let Some(d) = plan.info.duration {
        if d.is_finite() && d >= 0.0 {
            headers.push(("X-Content-Duration", format!("{d:.3}")));
        }
    }
    let honour_range = match &req.if_range {
        Some(ir) => conditional::if_range_holds(ir, &etag, plan.info.modified),
        None => true,
    };
    let answer = if honour_range { range::resolve(req.range.as_deref(), len) } else { RangeAnswer::Full };
    match answer {
        RangeAnswer::Full => {
            headers.push(("Content-Length", len.to_string()));
            Response { status: 200, headers, body: Body::Plan { plan, range: 0..len }, log: None }
        }
        RangeAnswer::Partial(r) => {
            headers.push(("Content-Length", (r.end - r.start).to_string()));
            headers.push(("Content-Range", format!("bytes {}-{}/{len}", r.start, r.end.saturating_sub(1))));
            Response { status: 206, headers, body: Body::Plan { plan, range: r }, log: None }
        }
        RangeAnswer::Unsatisfiable => {
            let asked = req.range.as_deref().unwrap_or_default();
            let mut r = Response::error(416, Some(format!("range {asked:?} starts past the answer's {len} bytes")));
            r.headers.push(("Content-Range", format!("bytes */{len}")));
            r
        }
    }
}

#[cfg(test)]
mod tests;
