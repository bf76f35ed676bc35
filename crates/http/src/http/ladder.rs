//! The HTTP side of bitrate ladders (`crate::package::ladder`): `/path/title.ladder/master.m3u8`,
//! `/manifest.mpd` and each rendition's URLs below `r{n}/`. The sidecar is confined like any
//! served path and the signature covers its path (`/path/title.ladder`); each rendition it
//! names is a path below the sidecar's directory that goes through the same normalisation,
//! extension rule and confined open as a requested movie. Manifests of renditions whose
//! segment boundaries do not line up are refused with 409 and the reason.

use super::package::{clip_of, exchange, packaged, refusal, split_with, suffix, Packaged};
use super::path::{self, Target};
use super::Movies;
use super::{query, HttpRequest, Response};
use crate::config::Config;
use crate::media::Kind;
use crate::mp4::Movie;
use crate::package::ladder::{self, Ladder, LadderRequest};
use crate::package::{self, Clip, Options, Package};
use crate::plan::{Bytes, Piece, Plan};
use std::io::Read;
use std::sync::Arc;
use std::time::SystemTime;

/// Answers a request below a ladder sidecar, or `None` when `req` is not one.
/// `cache` is `serve`'s movie cache, where each rendition's movie and package are kept.
pub fn respond(cfg: &Config, req: &HttpRequest, now: SystemTime, cache: Option<&Movies>) -> Option<Response> {
    let routed = split_with(&req.target, ladder::split);
    if let (Some(movies), Some(_)) = (cache, &routed) {
        if movies.held_only {
            // The sidecar is read per request: not an answer from memory.
            return Some(Response::error(503, Some(movies.miss().to_string())));
        }
    }
    exchange(cfg, req, now, routed, path::normalize_sidecar, |q, rel, lreq| answer(cfg, q, rel, lreq, cache))
}

/// One rendition, opened and packaged.
struct Rendition {
    name: String,
    movie: Arc<Movie>,
    package: Arc<Package>,
}

/// The packaged answer below the sidecar `rel` (confined and signed).
fn answer(
    cfg: &Config,
    q: &query::Query,
    rel: &path::RelPath,
    lreq: LadderRequest,
    cache: Option<&Movies>,
) -> Result<Packaged, Box<Response>> {
    let url_path = rel.url_path();
    let (real, file) = match path::open_sidecar(cfg, rel) {
        Ok(o) => o,
        Err(e) => return Err(refusal(e.status(), Some(e.reason()))),
    };
    let shown = real.display().to_string();
    let sidecar_meta = file.metadata().ok();
    let mut text = String::new();
    let read = (&file).take(ladder::MAX_BYTES + 1).read_to_string(&mut text);
    let parsed = match read {
        Err(e) => Err(format!("cannot read it as UTF-8 text: {}", crate::error::plain_io(&e))),
        Ok(n) if n as u64 > ladder::MAX_BYTES => Err(format!("it is over {} bytes", ladder::MAX_BYTES)),
        Ok(_) => Ladder::parse(&text),
    };
    let lad = match parsed {
        Ok(l) => l,
        // The server's file is wrong: the client is told, as for a broken movie.
        Err(e) => return Err(refusal(500, Some(format!("{shown}: {e}")))),
    };
    let (start, end) = match clip_of(q) {
        Ok(c) => c,
        Err(e) => return Err(refusal(400, Some(format!("{url_path}: {e}")))),
    };
    let clip = Clip { start, end };
    let options = Options { target: cfg.segment_seconds };
    let query = suffix(q);
    let dir = &rel.components[..rel.components.len().saturating_sub(1)];
    // Rendition `n` (from 1): its path below the sidecar's directory, confined like a movie.
    // Refusals are (status, reason).
    let open = |n: usize| -> Result<Rendition, (u16, String)> {
        let name = &lad.renditions[n - 1];
        let joined: Vec<&str> = dir.iter().map(String::as_str).chain(name.split('/')).collect();
        let refuse = |status: u16, why: String| (status, format!("{shown}: {name}: {why}"));
        let rrel = path::normalize(cfg, &Target::Decoded(format!("/{}", joined.join("/"))))
            .map_err(|e| refuse(e.status(), e.reason()))?;
        let opened = path::open(cfg, &rrel).map_err(|e| refuse(e.status(), e.reason()))?;
        if opened.kind != Kind::Mp4 {
            return Err(refuse(415, "a rendition must be an MP4 movie".into()));
        }
        let (movie, package) =
            packaged(cfg, opened, clip, &options, cache).map_err(|e| refuse(e.http_status(), e.to_string()))?;
        Ok(Rendition { name: name.clone(), movie, package })
    };
    let (plan, log) = match lreq {
        LadderRequest::Master | LadderRequest::Mpd => {
            let mut all = Vec::with_capacity(lad.renditions.len());
            for n in 1..=lad.renditions.len() {
                match open(n) {
                    Ok(r) => all.push(r),
                    Err((status, why)) => return Err(refusal(status, Some(why))),
                }
            }
            let named: Vec<(&str, &Package)> = all.iter().map(|r| (r.name.as_str(), &*r.package)).collect();
            if let Err(why) = ladder::check_aligned(&named) {
                return Err(refusal(409, Some(format!("{shown}: {why}"))));
            }
            let packages: Vec<&Package> = all.iter().map(|r| &*r.package).collect();
            let parts = ladder::parts(&packages);
            let body = match lreq {
                LadderRequest::Master => package::hls::master_of(&parts, &query),
                _ => package::dash::mpd_of(&parts, &query),
            };
            // Validators that change when the sidecar or any rendition changes: no single
            // file's time and length fit, so the ETag is keyed on a digest of all of their
            // identities (in `source_len`) and no `Last-Modified` is sent (without a time, the
            // sink does not compare the plan's file with `source_len` either).
            let mut facts = Vec::new();
            let mut fact = |len: u64, modified: Option<SystemTime>, id: String| {
                let ns =
                    modified.and_then(|m| m.duration_since(std::time::UNIX_EPOCH).ok()).map_or(0, |d| d.as_nanos());
                facts.extend_from_slice(format!("{len}|{ns}|{id};").as_bytes());
            };
            if let Some(m) = &sidecar_meta {
                fact(m.len(), m.modified().ok(), text.clone());
            }
            for r in &all {
                fact(r.movie.src.len, r.movie.src.modified, format!("{:?}", r.movie.src.version));
            }
            let mut info = all[0].movie.src.info(lreq.content_type());
            info.header_len = body.len() as u64;
            info.modified = None;
            info.source_len = crate::mp4::marks::checksum(&facts);
            let skipped: Vec<String> = all
                .iter()
                .filter(|r| !r.package.index.skipped.is_empty())
                .map(|r| format!("{}: {}", r.name, r.package.index.skipped.join("; ")))
                .collect();
            let log = (!skipped.is_empty()).then(|| format!("{shown}: left out of HLS/DASH: {}", skipped.join("; ")));
            match Plan::new(all[0].movie.src.clone(), vec![Piece::Synth(Arc::new(Bytes(body.into_bytes())))], info) {
                Ok(p) => (p, log),
                Err(e) => return Err(refusal(e.http_status(), Some(format!("{shown}: {e}")))),
            }
        }
        LadderRequest::Rendition { n, req: preq } => {
            if n > lad.renditions.len() {
                return Err(refusal(404, Some(format!("{shown}: no rendition {n}"))));
            }
            let r = match open(n) {
                Ok(r) => r,
                Err((status, why)) => return Err(refusal(status, Some(why))),
            };
            match package::answer_with(&r.movie, &r.package, &preq, &query) {
                Ok(p) => (p, None),
                Err(e) => return Err(refusal(e.http_status(), Some(format!("{shown}: {}: {e}", r.name)))),
            }
        }
    };
    Ok(Packaged { plan, clip, log })
}
