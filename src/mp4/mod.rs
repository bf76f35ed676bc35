//! MP4 (ISO base media) seek and rewrite. This module is the engine's MP4 half: it reads only
//! `ftyp`, `moov` and the position of the media data, and turns a request into a plan whose
//! synthesised part is a new `moov` emitted table by table from the source's.

use crate::media::Source;
use crate::plan::Plan;
use crate::request::Request;
use crate::Result;

/// The plan for `req` over an MP4 source.
pub fn plan(src: Source, _req: &Request, content_type: &'static str) -> Result<Plan> {
    // Placeholder until the seek engine lands: the whole file.
    let info = src.info(content_type);
    Plan::whole_file(src.file, src.len, info)
}
