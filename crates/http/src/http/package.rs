//! The HTTP side of HLS/DASH packaging, kept to one entry ([`respond`]) that the core calls
//! before its own path handling: a path whose MP4 component is followed by a packaging tail
//! (`/dir/movie.mp4/master.m3u8`, `…/v1/3.m4s`) is answered here, with the same confinement
//! and signature rules as the movie itself (the signature covers the movie's path), and
//! `OPTIONS` preflights are answered when `cors` is on. Everything else is left to the core.
//! It also holds what the bitrate-ladder hook (`ladder.rs`) shares with it ([`exchange`]:
//! query, confinement and signature first, then the packaged plan answered with its headers).

use super::path::{self, Target};
use super::Movies;
use super::{answer_plan, query, signed, Body, HttpRequest, Response};
use crate::config::Config;
use crate::media::Kind;
use crate::mp4::Movie;
use crate::package::{self, Clip, Options, Package, PackageRequest};
use crate::plan::Plan;
use crate::request::{BareUnit, Position, Request};
use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

/// Response headers a player's script may read.
const EXPOSED: &str = "Content-Length, Content-Range, Content-Type, Accept-Ranges, ETag, Last-Modified";

/// The CORS headers of every packaging answer.
pub(crate) fn cors_headers(resp: &mut Response) {
    resp.headers.push(("Access-Control-Allow-Origin", "*".into()));
    resp.headers.push(("Access-Control-Expose-Headers", EXPOSED.into()));
}

/// The answer to an `OPTIONS` preflight (any path), when `cors` is on.
pub fn preflight(cfg: &Config, req: &HttpRequest) -> Option<Response> {
    if req.method != "OPTIONS" || !cfg.cors {
        return None;
    }
    let headers = vec![
        ("Access-Control-Allow-Origin", "*".to_string()),
        ("Access-Control-Allow-Methods", "GET, HEAD, OPTIONS".into()),
        ("Access-Control-Allow-Headers", "Range, If-None-Match, If-Modified-Since, If-Range".into()),
        ("Access-Control-Max-Age", "86400".into()),
        ("Allow", "GET, HEAD, OPTIONS".into()),
        ("Content-Length", "0".into()),
    ];
    Some(Response { status: 204, headers, body: Body::Empty, log: None })
}

/// Splits the request target into the movie's target and a packaging request.
pub(crate) fn split(target: &Target) -> Option<(Target, PackageRequest)> {
    let is_mp4 = |name: &str| Kind::of(Path::new(name)) == Some(Kind::Mp4);
    split_with(target, |p| package::route::split(p, is_mp4))
}

/// Splits `target` with `at` (text → the part naming the file and what is asked below it),
/// keeping the target's form: how both hooks find their file (a movie, a ladder sidecar).
pub(super) fn split_with<R>(target: &Target, at: impl Fn(&str) -> Option<(&str, R)>) -> Option<(Target, R)> {
    match target {
        Target::Url(p) => at(p).map(|(m, r)| (Target::Url(m.to_string()), r)),
        Target::Decoded(p) => at(p).map(|(m, r)| (Target::Decoded(m.to_string()), r)),
        Target::Translated(p) => at(p.to_str()?).map(|(m, r)| (Target::Translated(m.into()), r)),
    }
}

/// The query suffix carried to every URL a playlist names: `start`, `end`, `expires` and
/// `sig` as given (re-encoded), nothing else.
pub(super) fn suffix(q: &query::Query) -> String {
    let enc = |v: &str| -> String {
        v.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'.' | b'-' | b'_' | b':' => (b as char).to_string(),
                _ => format!("%{b:02X}"),
            })
            .collect()
    };
    let pairs: Vec<String> = [("start", &q.start), ("end", &q.end), ("expires", &q.expires), ("sig", &q.sig)]
        .into_iter()
        .filter_map(|(k, v)| v.as_deref().map(|v| format!("{k}={}", enc(v))))
        .collect();
    if pairs.is_empty() {
        String::new()
    } else {
        format!("?{}", pairs.join("&"))
    }
}

/// Answers a packaging request, or `None` when `req` is not one (the core goes on).
/// `cache` is the long-running server's movie cache: the movie and its packages are kept in
/// the movie's entry there (read, never mapped), shared with progressive seeks.
pub fn respond(cfg: &Config, req: &HttpRequest, now: SystemTime, cache: Option<&Movies>) -> Option<Response> {
    exchange(cfg, req, now, split(&req.target), path::normalize, |q, rel, preq| {
        let opened = match path::open(cfg, rel) {
            Ok(o) if o.kind == Kind::Mp4 => o,
            Ok(o) => return Err(refusal(404, Some(format!("{}: not an MP4 movie", o.real.display())))),
            Err(e) => return Err(refusal(e.status(), Some(e.reason()))),
        };
        answer_movie(cfg, &preq, rel, q, opened, cache)
    })
}

/// A packaged answer before it becomes a response: its plan, the clip asked for, and a line
/// for the error log (tracks left out of a manifest).
pub(super) struct Packaged {
    pub plan: Plan,
    pub clip: Clip,
    pub log: Option<String>,
}

/// What both packaging hooks (a movie's HLS/DASH here, a bitrate ladder in `ladder.rs`)
/// share, around `answer` (which opens what the path names and plans the answer): the query
/// parsed, the path normalised by `normalize` and its signature checked before anything is
/// opened; then the plan answered with the packager's headers, and CORS when on. `None`
/// when `routed` is (the request is not this hook's).
pub(super) fn exchange<R>(
    cfg: &Config,
    req: &HttpRequest,
    now: SystemTime,
    routed: Option<(Target, R)>,
    normalize: fn(&Config, &Target) -> Result<path::RelPath, path::PathError>,
    answer: impl FnOnce(&query::Query, &path::RelPath, R) -> Result<Packaged, Box<Response>>,
) -> Option<Response> {
    let (target, asked) = routed?;
    let checked = checked(cfg, req, &target, now, normalize);
    let mut resp = match checked.and_then(|(q, rel)| answer(&q, &rel, asked)) {
        Ok(p) => reply(p, req),
        Err(r) => *r,
    };
    if cfg.cors {
        cors_headers(&mut resp);
    }
    Some(resp)
}

/// A refusal with `status` and `reason` (boxed: it travels as an error).
pub(super) fn refusal(status: u16, reason: Option<String>) -> Box<Response> {
    Box::new(Response::error(status, reason))
}

/// The query and normalised path of a packaging request whose signature (for the path the
/// file is named by) holds, or the refusal.
fn checked(
    cfg: &Config,
    req: &HttpRequest,
    target: &Target,
    now: SystemTime,
    normalize: fn(&Config, &Target) -> Result<path::RelPath, path::PathError>,
) -> Result<(query::Query, path::RelPath), Box<Response>> {
    let q = query::Query::parse(&req.query).map_err(|e| refusal(400, Some(e.to_string())))?;
    let rel = normalize(cfg, target).map_err(|e| refusal(e.status(), Some(e.reason())))?;
    if let Some(secret) = &cfg.secret {
        let now_secs = now.duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        let url_path = rel.url_path();
        if let Err(e) = signed::verify(secret, &url_path, q.expires.as_deref(), q.sig.as_deref(), now_secs) {
            return Err(refusal(403, Some(format!("{url_path}: {e}"))));
        }
    }
    Ok((q, rel))
}

/// The response to a packaged answer: the plan answered as any (ranges, validators, HEAD),
/// without `X-Content-Duration`, cacheable for a day (a manifest or segment URL names fixed
/// bytes of one file version).
fn reply(p: Packaged, req: &HttpRequest) -> Response {
    let request = Request {
        start: p.clip.start.map(Position::Seconds),
        end: p.clip.end.map(Position::Seconds),
        exact: false,
        force_co64: false,
    };
    let mut resp = answer_plan(p.plan, &request, req);
    resp.headers.retain(|(n, _)| *n != "X-Content-Duration");
    resp.headers.push(("Cache-Control", "public, max-age=86400".into()));
    if p.log.is_some() {
        resp.log = p.log;
    }
    resp
}

/// `start` and `end` of a packaging query, in seconds.
pub(super) fn clip_of(q: &query::Query) -> crate::Result<(Option<f64>, Option<f64>)> {
    let secs = |t: &Option<String>| -> crate::Result<Option<f64>> {
        match t.as_deref().map(|t| Position::parse(t, BareUnit::Seconds)).transpose()? {
            None => Ok(None),
            Some(Position::Seconds(s)) => Ok(Some(s)),
            Some(Position::Byte(_)) => Err(crate::Error::bad_request("positions of an MP4 are given in seconds")),
        }
    };
    Ok((secs(&q.start)?, secs(&q.end)?))
}

/// The opened movie and its package for `opened` (already confined): from `serve`'s movie
/// cache, in the movie's entry; built per request in the CGI, with the whole movie's index
/// kept in `index_cache`. A fragmented file is seen through sample tables made from its
/// fragments.
pub(super) fn packaged(
    cfg: &Config,
    opened: path::Opened,
    clip: Clip,
    options: &Options,
    cache: Option<&Movies>,
) -> crate::Result<(Arc<Movie>, Arc<Package>)> {
    if let Some(movies) = cache {
        // Shared by every viewer of the movie, progressive or packaged: the movie is opened
        // once and the segment index built once.
        let opts = crate::media::Options {
            max_moov: cfg.max_moov_bytes,
            ..crate::media::Options::for_kind(Kind::Mp4, &opened.real)
        };
        if movies.held_only {
            return movies
                .cache
                .package_held(&opened.source, clip, options, &opts)
                .unwrap_or_else(|| Err(movies.miss()));
        }
        return movies.cache.package(&opened.real, opened.source, clip, options, &opts);
    }
    let movie = Movie::open(opened.source)?;
    movie.check_moov_size(cfg.max_moov_bytes)?;
    let movie = package::fragmented::progressive(movie, cfg.index_cache.as_deref(), cfg.max_moov_bytes)?;
    let pkg = match &cfg.index_cache {
        // Only the whole movie's index is kept: one file per distinct clip would let
        // anyone fill the directory with made-up `start` values.
        Some(dir) if movie.root.size >= crate::mp4::MARKS_MIN_MOOV && clip == Clip::default() => {
            package::cache::load_or_build(&movie, clip, options, dir)?
        }
        _ => Package::build(&movie, clip, options)?,
    };
    Ok((Arc::new(movie), Arc::new(pkg)))
}

/// The packaging answer for an opened movie (a local file, or the stand-in of an object in
/// storage: `crate::storage`), after the path and signature checks.
#[cfg_attr(not(feature = "storage"), allow(dead_code))] // only the object store calls it
pub(crate) fn answer_opened(
    cfg: &Config,
    req: &HttpRequest,
    preq: &PackageRequest,
    rel: &path::RelPath,
    q: &query::Query,
    opened: path::Opened,
    cache: Option<&Movies>,
) -> Response {
    match answer_movie(cfg, preq, rel, q, opened, cache) {
        Ok(p) => reply(p, req),
        Err(r) => *r,
    }
}

/// [`answer_opened`] before it becomes a response.
fn answer_movie(
    cfg: &Config,
    preq: &PackageRequest,
    rel: &path::RelPath,
    q: &query::Query,
    opened: path::Opened,
    cache: Option<&Movies>,
) -> Result<Packaged, Box<Response>> {
    let (start, end) = clip_of(q).map_err(|e| refusal(400, Some(format!("{}: {e}", rel.url_path()))))?;
    let real = opened.real.display().to_string();
    let options = Options { target: cfg.segment_seconds };
    let clip = Clip { start, end };
    let query = suffix(q);
    // The answer, and the tracks left out of the manifests (logged with a manifest answer).
    let planned = packaged(cfg, opened, clip, &options, cache)
        .and_then(|(movie, pkg)| Ok((package::answer_with(&movie, &pkg, preq, &query)?, pkg.index.skipped.clone())));
    let (plan, skipped) = planned.map_err(|e| refusal(e.http_status(), Some(format!("{real}: {e}"))))?;
    let log = (matches!(preq, PackageRequest::Master | PackageRequest::Mpd) && !skipped.is_empty())
        .then(|| format!("{real}: left out of HLS/DASH: {}", skipped.join("; ")));
    Ok(Packaged { plan, clip, log })
}
