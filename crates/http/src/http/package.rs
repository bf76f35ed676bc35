//! The HTTP side of HLS/DASH packaging, kept to one entry ([`respond`]) that the core calls
//! before its own path handling: a path whose MP4 component is followed by a packaging tail
//! (`/dir/movie.mp4/master.m3u8`, `…/v1/3.m4s`) is answered here, with the same confinement
//! and signature rules as the movie itself (the signature covers the movie's path), and
//! `OPTIONS` preflights are answered when `cors` is on. Everything else is left to the core.

use super::path::{self, Target};
use super::{answer_plan, query, signed, Body, HttpRequest, Response};
use crate::config::Config;
use crate::media::{Kind, MovieCache};
use crate::mp4::Movie;
use crate::package::{self, Clip, Options, Package, PackageRequest};
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
    match target {
        Target::Url(p) => package::route::split(p, is_mp4).map(|(m, r)| (Target::Url(m.to_string()), r)),
        Target::Decoded(p) => package::route::split(p, is_mp4).map(|(m, r)| (Target::Decoded(m.to_string()), r)),
        Target::Translated(p) => {
            let text = p.to_str()?;
            package::route::split(text, is_mp4).map(|(m, r)| (Target::Translated(m.into()), r))
        }
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
pub fn respond(cfg: &Config, req: &HttpRequest, now: SystemTime, cache: Option<&MovieCache>) -> Option<Response> {
    let (target, preq) = split(&req.target)?;
    let mut resp = respond_to(cfg, req, &target, &preq, now, cache);
    if cfg.cors {
        cors_headers(&mut resp);
    }
    Some(resp)
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
    cache: Option<&MovieCache>,
) -> crate::Result<(Arc<Movie>, Arc<Package>)> {
    if let Some(cache) = cache {
        // Shared by every viewer of the movie, progressive or packaged: the movie is opened
        // once and the segment index built once.
        let opts = crate::media::Options {
            max_moov: cfg.max_moov_bytes,
            ..crate::media::Options::for_kind(Kind::Mp4, &opened.real)
        };
        return cache.package(&opened.real, opened.source, clip, options, &opts);
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

fn respond_to(
    cfg: &Config,
    req: &HttpRequest,
    target: &Target,
    preq: &PackageRequest,
    now: SystemTime,
    cache: Option<&MovieCache>,
) -> Response {
    let q = match query::Query::parse(&req.query) {
        Ok(q) => q,
        Err(e) => return Response::error(400, Some(e.to_string())),
    };
    let rel = match path::normalize(cfg, target) {
        Ok(r) => r,
        Err(e) => return Response::error(e.status(), Some(e.reason())),
    };
    if let Some(secret) = &cfg.secret {
        let now_secs = now.duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        if let Err(e) = signed::verify(secret, &rel.url_path(), q.expires.as_deref(), q.sig.as_deref(), now_secs) {
            return Response::error(403, Some(format!("{}: {e}", rel.url_path())));
        }
    }
    let opened = match path::open(cfg, &rel) {
        Ok(o) if o.kind == Kind::Mp4 => o,
        Ok(o) => return Response::error(404, Some(format!("{}: not an MP4 movie", o.real.display()))),
        Err(e) => return Response::error(e.status(), Some(e.reason())),
    };
    answer_opened(cfg, req, preq, &rel, &q, opened, cache)
}

/// The packaging answer for an opened movie (a local file, or the stand-in of an object in
/// storage: `crate::storage`), after the path and signature checks.
pub(crate) fn answer_opened(
    cfg: &Config,
    req: &HttpRequest,
    preq: &PackageRequest,
    rel: &path::RelPath,
    q: &query::Query,
    opened: path::Opened,
    cache: Option<&MovieCache>,
) -> Response {
    let (start, end) = match clip_of(q) {
        Ok(c) => c,
        Err(e) => return Response::error(400, Some(format!("{}: {e}", rel.url_path()))),
    };
    let real = opened.real.display().to_string();
    let options = Options { target: cfg.segment_seconds };
    let clip = Clip { start, end };
    let query = suffix(q);
    // The answer, and the tracks left out of the manifests (logged with a manifest answer).
    let planned = packaged(cfg, opened, clip, &options, cache)
        .and_then(|(movie, pkg)| Ok((package::answer_with(&movie, &pkg, preq, &query)?, pkg.index.skipped.clone())));
    let (plan, skipped) = match planned {
        Ok(p) => p,
        Err(e) => return Response::error(e.http_status(), Some(format!("{real}: {e}"))),
    };
    let request = Request {
        start: start.map(Position::Seconds),
        end: end.map(Position::Seconds),
        exact: false,
        force_co64: false,
    };
    let mut resp = answer_plan(plan, &request, req);
    resp.headers.retain(|(n, _)| *n != "X-Content-Duration");
    resp.headers.push(("Cache-Control", "public, max-age=86400".into()));
    if matches!(preq, PackageRequest::Master | PackageRequest::Mpd) && !skipped.is_empty() {
        resp.log = Some(format!("{real}: left out of HLS/DASH: {}", skipped.join("; ")));
    }
    resp
}
