//! Fragmented MP4 (fMP4, CMAF) sources for the packager: the movie is seen as a progressive
//! one whose sample tables are made in memory from the fragment index (chunk offsets are the
//! samples' places in the source file, one chunk per `trun`), so the segmenter, the init
//! segments and the manifests work on it unchanged and media segments stay plans of source
//! ranges (zero-copy). Segments are re-cut at the reference track's keyframes, like any MP4.

use crate::mp4::Movie;
use crate::{Error, Result};
use std::path::Path;
use std::sync::Arc;

/// The fewest bytes of made tables per sample (`stsz` and a worst-case `stts` run).
const BYTES_PER_SAMPLE: u64 = 12;

/// `movie` itself when it is not fragmented; else the same file described by a progressive
/// moov built from its fragments. The fragment index is the movie's own (`serve`), else read
/// from or stored in `index_cache` (the CGI), else built here. The made moov counts against
/// `max_moov` like a real one.
pub fn progressive(movie: Movie, index_cache: Option<&Path>, max_moov: u64) -> Result<Movie> {
    if !movie.fragmented {
        return Ok(movie);
    }
    made_tables(&movie, index_cache, max_moov)
}

/// The progressive view of the fragmented `movie` (see [`progressive`]), made without taking
/// it: `serve`'s movie cache keeps both, the opened movie for progressive seeks and this view
/// for the packager.
pub fn made_tables(movie: &Movie, index_cache: Option<&Path>, max_moov: u64) -> Result<Movie> {
    let index = match (movie.fragments(), index_cache) {
        (Some(i), _) => i.clone(),
        (None, Some(dir)) => Arc::new(crate::fmp4::cached_index(movie, dir)?),
        (None, None) => Arc::new(crate::fmp4::index::build(&movie.src, movie)?),
    };
    if index.fragments.is_empty() {
        return Err(Error::bad_request("this fragmented MP4 has no fragments: there is nothing to package"));
    }
    // Refused before anything is built: the tables take at least this much (a size and a
    // time entry per sample), in memory about twice that.
    let least = index.samples.saturating_mul(BYTES_PER_SAMPLE);
    if least > max_moov {
        return Err(Error::OverLimit(format!(
            "this fragmented MP4 has {} samples: their tables would take over max_moov_bytes {max_moov}",
            index.samples
        )));
    }
    let moov = crate::fmp4::defrag::in_place_moov(movie, &index)?;
    if moov.len() as u64 > max_moov {
        return Err(Error::OverLimit(format!(
            "the sample tables of this fragmented MP4 would take {} bytes, over max_moov_bytes {max_moov}",
            moov.len()
        )));
    }
    movie.with_moov(moov)
}
