//! loomiere's engine: source → container → plan → sink, with no HTTP and no async runtime.
//!
//! A [`Source`] is the bytes of one medium (a local file today; anything read at offsets
//! tomorrow). A [`Container`] (MP4 with fragmented MP4, FLV, images; one registry of kinds
//! in [`container`]) opens it and plans a [`Request`] into a [`Plan`]: synthesised bytes (a
//! new `moov`, an FLV header) and byte ranges of the source, total length known up front.
//! [`media::plan`] is the one planning entry (with [`media::MovieCache`] as its in-memory
//! layer); [`sink`] sends a plan to a file, pipe or socket, zero-copy from a local file, paced or
//! not, and writes one to an output path atomically ([`output`], i.e. `sink::file`).
//!
//! `unsafe` is denied except in three modules that say why: [`fault`] (the SIGBUS handler of
//! one-shot processes), [`mp4`] (mapping a moov) and [`sink`] (its `file` part: signal-safe
//! clean-up of a temporary file).

pub mod container;
pub mod error;
#[allow(unsafe_code)]
pub mod fault;
pub mod flv;
pub mod fmp4;
pub mod media;
#[allow(unsafe_code)]
pub mod mp4;
pub mod package;
pub mod plan;
pub mod request;
pub mod sink;
pub use sink::file as output;
pub mod source;

pub use container::{Container, Kind};
pub use error::{Error, Result};
pub use plan::{Piece, Plan, PlanInfo, Synth};
pub use request::{BareUnit, Position, Request};
pub use source::Source;
