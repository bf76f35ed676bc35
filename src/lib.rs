//! loomiere: HTTP pseudo-streaming for MP4 and FLV.
//!
//! A player asks for `/movie.mp4?start=30.5&end=90`; loomiere answers with a valid, playable
//! file that starts at the keyframe at or before 30.5 s, rewritten on the fly. The logic is in
//! three crates, re-exported here under one name: `loomiere-engine` (source → container →
//! plan → sink: [`media::plan`], [`container`], [`sink`], and the HLS/DASH packager
//! [`package`]), `loomiere-http` (the HTTP exchange core, CGI, inetd, `serve`, configuration,
//! throttle) and `loomiere-bench` (the load generator, as [`bench`]). The `loomiere` binary
//! only parses arguments and prints.

pub use loomiere_bench as bench;
pub use loomiere_engine::*;
pub use loomiere_http::{cgi, config, demo, http, serve, throttle};
