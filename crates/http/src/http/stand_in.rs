//! Answers for media that is not a file under the document root: an object in storage
//! (`crate::storage`), planned on a local stand-in for it (a shadow file of the object's boxes).
//! The same checks, in the same order, as [`super::respond`] — method, query, path
//! confinement, signature — then planning and the answer exactly as for a local file, with the
//! object's own validators.

use super::{answer_plan, path, query, signed, Body, HttpRequest, Response};
use crate::config::Config;
use crate::request::Request;
use std::time::SystemTime;

/// The checks every request passes before any file or object is touched, in this order:
/// method, query, path confinement (extension included), signature. Returns the normalised
/// path and the query, or the refusal.
pub fn check_request(
    cfg: &Config,
    req: &HttpRequest,
    now: SystemTime,
) -> Result<(path::RelPath, query::Query), Box<Response>> {
    if req.method != "GET" && req.method != "HEAD" {
        let mut r = Response::error(405, Some(format!("method {:?} is not served (GET and HEAD are)", req.method)));
        r.headers.push(("Allow", "GET, HEAD".into()));
        return Err(Box::new(r));
    }
    let q = query::Query::parse(&req.query).map_err(|e| Box::new(Response::error(400, Some(e.to_string()))))?;
    let rel = path::normalize(cfg, &req.target).map_err(|e| Box::new(Response::error(e.status(), Some(e.reason()))))?;
    let url = rel.url_path();
    if let Some(secret) = &cfg.secret {
        let now_secs = now.duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        if let Err(e) = signed::verify(secret, &url, q.expires.as_deref(), q.sig.as_deref(), now_secs) {
            return Err(Box::new(Response::refused(403, &url, &e.to_string())));
        }
    }
    Ok((rel, q))
}

/// Answers `req` (already checked) on `opened`, the stand-in for the medium at `url` (its
/// source carries the medium's own length, modification time and version, which the
/// validators come from), planned through `cache` (the movie cache of `serve`). HEAD bodies
/// are stripped; `Cache-Control` added as for every answer.
pub fn answer_source(
    cfg: &Config,
    req: &HttpRequest,
    url: &str,
    opened: path::Opened,
    request: &Request,
    cache: &crate::media::MovieCache,
) -> Response {
    let opts = crate::media::Options {
        max_moov: cfg.max_moov_bytes,
        ..crate::media::Options::for_kind(opened.kind, &opened.real)
    };
    let mut resp = match cache.plan(&opened.real, opened.source, request, &opts) {
        // Engine errors speak of the file's contents, never of its place on the server.
        Err(e) => Response::refused(e.http_status(), url, &e.to_string()),
        Ok(plan) => answer_plan(plan, request, req),
    };
    crate::storage::add_cache_headers(cfg, &mut resp);
    if req.method == "HEAD" {
        resp.body = Body::Empty;
    }
    resp
}
