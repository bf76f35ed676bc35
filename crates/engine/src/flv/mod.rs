//! FLV (Flash video): seek and rewrite for pseudo-streaming (`seek`), `onMetaData` keyframe
//! indexing like yamdi/flvmeta (`index`), and the inspection report (`inspect`). Files are
//! read with `pread` through a small window (`tags`), never whole, so a 1 GB file is walked
//! in bounded memory; script data goes through an own bounded AMF0 codec (`amf0`).

pub mod amf0;
pub mod dims;
pub mod index;
pub mod inspect;
pub mod scan;
pub mod seek;
pub mod tags;

pub use seek::plan;

use crate::container::{Container, Description, Options};
use crate::plan::Plan;
use crate::request::Request;
use crate::source::Source;
use crate::Result;

/// An FLV medium as a [`Container`]: nothing is read at open; each plan walks what it needs.
pub struct FlvFile {
    pub src: Source,
}

impl FlvFile {
    /// The registry's `open`.
    pub fn open_container(src: Source, _: &Options) -> Result<Box<dyn Container>> {
        Ok(Box::new(FlvFile { src }))
    }
}

impl Container for FlvFile {
    fn source(&self) -> &Source {
        &self.src
    }

    fn describe(&self) -> Result<Description> {
        let header = tags::Reader::new(&self.src, self.src.len).header()?;
        let tracks = usize::from(header.has_audio) + usize::from(header.has_video);
        Ok(Description { duration: seek::whole_facts(&self.src).0, tracks })
    }

    fn plan(&self, req: &Request, opts: &Options) -> Result<Plan> {
        seek::plan(self.src.clone(), req, opts.content_type)
    }
}
