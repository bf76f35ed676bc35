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
