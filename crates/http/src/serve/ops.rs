//! The operator's endpoints of `serve`: `/healthz` (liveness: 200 `ok` while the process
//! answers), `/readyz` (readiness: 200 `ready` when the document root can be listed, else 503
//! with the reason) and `/metrics` (Prometheus text format 0.0.4, [`crate::metrics`]). The
//! paths are reserved, not configurable: no served file can have them (served files need a
//! media or image extension). `/metrics` is on the public listener unless `[metrics] listen`
//! gives it a listener of its own, which then answers these three paths and 404 to the rest.

use crate::config::Config;
use crate::http::{Body, HttpRequest, Response};
use crate::media::MovieCache;
use crate::metrics::METRICS;
use std::fmt::Write as _;

/// Which listener a connection came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// The HTTP or HTTPS listener for viewers.
    Public,
    /// The `[metrics] listen` listener.
    Metrics,
}

/// Whether `url_path` is answered here rather than by the media server: every path on the
/// metrics listener; `/healthz`, `/readyz`, and `/metrics` unless it has its own listener
/// (with metrics off, `/metrics` is reserved and answered 404).
pub fn is_reserved(role: Role, cfg: &Config, url_path: &str) -> bool {
    role == Role::Metrics
        || matches!(url_path, "/healthz" | "/readyz")
        || (url_path == "/metrics" && cfg.metrics.listen.is_none())
}

/// The answer to a reserved path ([`is_reserved`]), or `None` for another. Runs the
/// readiness check (a directory listing), so call it off the async threads.
pub fn answer(role: Role, cfg: &Config, req: &HttpRequest, movies: &MovieCache) -> Option<Response> {
    let path = match &req.target {
        crate::http::path::Target::Url(p) => p.as_str(),
        _ => return None,
    };
    if !is_reserved(role, cfg, path) {
        return None;
    }
    if !matches!(path, "/healthz" | "/readyz" | "/metrics") {
        return Some(Response::error(404, Some("the metrics listener serves /metrics, /healthz and /readyz".into())));
    }
    if req.method != "GET" && req.method != "HEAD" {
        let mut r = Response::error(405, Some(format!("method {:?} is not served (GET and HEAD are)", req.method)));
        r.headers.push(("Allow", "GET, HEAD".into()));
        return Some(r);
    }
    let r = match path {
        "/metrics" if !crate::metrics::enabled() => Response::error(
            404,
            Some("metrics are off in this server's configuration ([metrics] enabled = false)".into()),
        ),
        "/healthz" => text(200, "text/plain; charset=utf-8", "ok\n".into()),
        "/readyz" => match std::fs::read_dir(&cfg.document_root) {
            Ok(_) => text(200, "text/plain; charset=utf-8", "ready\n".into()),
            // The reason without the path: these answers may be public.
            Err(e) => {
                let why = format!("the document root cannot be read: {}", crate::error::plain_io(&e));
                let mut r = Response::error(503, Some(why));
                r.headers.push(("Retry-After", "5".into()));
                r
            }
        },
        _ => {
            let c = movies.stats();
            let caches = [
                ("plan", c.plan_hits, c.plan_misses),
                ("movie", c.movie_hits, c.movie_misses),
                ("segment_index", c.segment_index_hits, c.segment_index_misses),
            ];
            let mut body = METRICS.render(&caches);
            // The packages' kept segments live in memory files, outside serve's heap and RSS.
            let (segments, bytes) = movies.kept_segments();
            let _ = write!(
                body,
                "# HELP loomiere_kept_segments Media segments of small samples kept as memory copies.\n\
                 # TYPE loomiere_kept_segments gauge\nloomiere_kept_segments {segments}\n\
                 # HELP loomiere_kept_segment_bytes Sample bytes of the kept media segments (shared memory, not RSS).\n\
                 # TYPE loomiere_kept_segment_bytes gauge\nloomiere_kept_segment_bytes {bytes}\n"
            );
            text(200, "text/plain; version=0.0.4; charset=utf-8", body)
        }
    };
    let mut r = r;
    r.headers.push(("Cache-Control", "no-store".into()));
    if req.method == "HEAD" {
        r.body = Body::Empty;
    }
    Some(r)
}

fn text(status: u16, content_type: &str, body: String) -> Response {
    Response {
        status,
        headers: vec![("Content-Type", content_type.to_string()), ("Content-Length", body.len().to_string())],
        body: Body::Text(body),
        log: None,
    }
}
