//! loomiere: HTTP pseudo-streaming for MP4 and FLV.
//!
//! A player asks for `/movie.mp4?start=30.5&end=90`; loomiere answers with a valid, playable
//! file that starts at the keyframe at or before 30.5 s, rewritten on the fly. The library
//! holds all the logic; the `loomiere` binary only parses arguments and prints.
//!
//! The flow: [`media::open`] turns (file, [`Request`]) into a [`Plan`] — synthesised bytes
//! (a new `moov`, an FLV header) followed by byte ranges of the source — whose total length
//! is known up front; a sink ([`sink`]) sends it zero-copy to a file, a pipe or a socket.

pub mod bench;
pub mod cgi;
pub mod config;
pub mod demo;
pub mod error;
pub mod fault;
pub mod flv;
pub mod fmp4;
pub mod http;
pub mod media;
pub mod mp4;
pub mod output;
pub mod plan;
pub mod request;
pub mod serve;
pub mod sink;
pub mod storage;
pub mod throttle;

pub use error::{Error, Result};
pub use media::Kind;
pub use plan::{Piece, Plan, PlanInfo, Synth};
pub use request::{BareUnit, Position, Request};
