//! Faststart (`loomiere index FILE.mp4`): moves `moov` in front of the media data so a
//! player can start before the whole file has arrived. It is the plan for `start=0` — the
//! same rewrite as a seek, which shifts every chunk offset and promotes `stco` to `co64`
//! when needed — returned as a plan ([`index`]) that the caller writes atomically (like
//! `flv::index`). A file already in faststart order is left untouched. A fragmented MP4 is
//! defragmented instead (`crate::fmp4::defrag`).

use super::Movie;
use crate::container::Options;
use crate::plan::Plan;
use crate::request::{Position, Request};
use crate::source::Source;
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

/// The faststart rewrite of a movie: a plan to write, atomically, over the file or to another.
pub struct Rewrite {
    /// The output: the plan for `start=0` (or the defragmented movie).
    pub plan: Plan,
    /// The file is already in faststart order: written only to another file.
    pub already_faststart: bool,
    /// The source was fragmented and the plan defragments it.
    pub defragmented: bool,
}

/// The faststart rewrite of `src` (see the module comment); `opts` are the opening options.
pub fn index(src: Source, opts: &Options, _progress: &mut dyn FnMut(u64)) -> Result<Rewrite> {
    let movie = Movie::open_for(src, opts)?;
    if movie.fragmented {
        use crate::fmp4::{defrag, index};
        let index = index::build(&movie.src, &movie)?;
        let plan = defrag::plan(&movie, &index, &defrag::whole(&index), "video/mp4")?;
        return Ok(Rewrite { plan, already_faststart: false, defragmented: true });
    }
    let req = Request { start: Some(Position::Seconds(0.0)), ..Request::default() };
    let plan = movie.plan(&req, "video/mp4")?;
    Ok(Rewrite { plan, already_faststart: is_faststart(&movie), defragmented: false })
}

/// Rewrites `input` with `moov` first, into `output` (or in place when `None`; see
/// [`crate::output::write`] for the kinds of output).
pub fn faststart(input: &Path, output: Option<&Path>, progress: impl FnMut(u64)) -> Result<Faststart> {
    let rewrite = index(Source::open(input)?, &Options::default(), &mut |_| {})?;
    if rewrite.already_faststart && output.is_none() {
        return Ok(Faststart::AlreadyFaststart);
    }
    let n = crate::output::write(&rewrite.plan, output.unwrap_or(input), progress)?;
    Ok(if rewrite.defragmented { Faststart::Defragmented(n) } else { Faststart::Rewritten(n) })
}
