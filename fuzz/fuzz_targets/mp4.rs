//! Fuzz target `mp4`: arbitrary bytes as a .mp4 file, planned with a handful of requests and
//! read back in full (see `harness.rs`). Run with `scripts/fuzz.sh`.
#![no_main]

mod harness;

use libfuzzer_sys::fuzz_target;
use loomiere::media::Kind;

fuzz_target!(|data: &[u8]| {
    harness::exercise(Kind::Mp4, data);
});
