//! Fragmented MP4 (`moov` with `mvex`, then `moof` + `mdat` pairs; ffmpeg's `frag_keyframe`,
//! `dash`, CMAF) as input: the engine's fMP4 half. It reuses the MP4 engine's box walker and
//! `moov` reading (`mp4::Movie`, opened as for any MP4; `Movie::plan` hands a fragmented movie
//! over to [`plan`]) and adds what fragments need.
//!
//! Module map: `boxes` (`trex`, `tfhd`, `tfdt`, `trun`, `mehd`), `index` (the fragment index,
//! with `sidx`/`mfra` checked against it), `cache` (its file form for the CGI's `index_cache`), `moov` (the rewritten moov of a seek, and box
//! writing helpers), `seek` (request → plan), `defrag` (`index`: a progressive faststart MP4
//! built from the fragments), `inspect` (the fragments table).

pub mod boxes;
pub mod cache;
pub mod defrag;
pub mod index;
pub mod inspect;
pub mod moov;
pub mod seek;

pub use index::FragmentIndex;

use crate::mp4::Movie;
use crate::plan::Plan;
use crate::request::Request;
use crate::Result;
use std::sync::Arc;

/// The plan for `req` on a fragmented movie: with its fragment index when it has one (a
/// movie kept by `serve`), else the index is built for this request.
pub fn plan(movie: &Movie, req: &Request, content_type: &'static str) -> Result<Plan> {
    let index = match movie.fragments() {
        Some(i) => i.clone(),
        None => Arc::new(index::build(&movie.src, movie)?),
    };
    seek::plan(movie, &index, req, content_type)
}

/// Files at least this long keep their gathered moofs in `index_cache` (smaller ones are
/// walked faster than a cache file is opened and checked).
pub const CACHE_MIN_FILE: u64 = 4 << 20;

/// The fragment index of `movie`, from the cache file in `dir` when there is a valid one,
/// else built from the movie (and stored in `dir` for the next process when the file is
/// large enough and `dir` is writable). A cache file that fails the checks of the format is
/// ignored and the movie read instead, so its errors name offsets in the movie.
pub fn cached_index(movie: &Movie, dir: &std::path::Path) -> Result<FragmentIndex> {
    let key = movie.key();
    if let Some(g) = cache::load(dir, &key) {
        if let Ok(index) = index::parse(movie, g) {
            return Ok(index);
        }
    }
    let g = index::gather(&movie.src)?;
    if movie.src.len >= CACHE_MIN_FILE {
        use rustix::fs::{accessat, Access, AtFlags, CWD};
        if accessat(CWD, dir, Access::WRITE_OK, AtFlags::EACCESS).is_ok() {
            let _ = cache::store(dir, &key, &g);
        }
    }
    index::parse(movie, g)
}
