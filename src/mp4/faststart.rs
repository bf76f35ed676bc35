//! Faststart (`loomiere index FILE.mp4`): moves `moov` in front of the media data so a
//! player can start before the whole file has arrived. It is the plan for `start=0` — the
//! same rewrite as a seek, which shifts every chunk offset and promotes `stco` to `co64`
//! when needed — written atomically. A file already in faststart order is left untouched.
//! A fragmented MP4 is defragmented instead (`crate::fmp4::defrag`), atomically too.

use super::Movie;
use crate::media::Source;
use crate::request::{Position, Request};
use crate::Result;
use std::path::Path;

/// What `faststart` did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Faststart {
    /// `moov` already came before `mdat`: nothing was written.
    AlreadyFaststart,
    /// The file was rewritten with `moov` first; this many bytes were written.
    Rewritten(u64),
    /// A fragmented file was defragmented into a progressive faststart one of this many bytes.
    Defragmented(u64),
}

/// True when the file's `moov` comes before its first `mdat` (and it is not fragmented).
pub fn is_faststart(movie: &Movie) -> bool {
    if movie.fragmented {
        return false;
    }
    match (movie.top.moov, movie.top.mdat) {
        (Some(moov), Some(mdat)) => moov.offset < mdat.offset,
        _ => true,
    }
}

/// Rewrites `input` with `moov` first, into `output` (or in place when `None`; see
/// [`crate::output::write`] for the kinds of output).
pub fn faststart(input: &Path, output: Option<&Path>, progress: impl FnMut(u64)) -> Result<Faststart> {
    let movie = Movie::open(Source::open(input)?)?;
    if movie.fragmented {
        use crate::fmp4::{defrag, index};
        let index = index::build(&movie.src, &movie)?;
        let plan = defrag::plan(&movie, &index, &defrag::whole(&index), "video/mp4")?;
        let n = crate::output::write(&plan, output.unwrap_or(input), progress)?;
        return Ok(Faststart::Defragmented(n));
    }
    if is_faststart(&movie) && output.is_none() {
        return Ok(Faststart::AlreadyFaststart);
    }
    let req = Request { start: Some(Position::Seconds(0.0)), ..Request::default() };
    let plan = movie.plan(&req, "video/mp4")?;
    let n = crate::output::write(&plan, output.unwrap_or(input), progress)?;
    Ok(Faststart::Rewritten(n))
}
