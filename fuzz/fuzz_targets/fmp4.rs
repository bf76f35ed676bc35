//! Fuzz target `fmp4`: arbitrary bytes as a fragmented .mp4 file (seeds: fuzz/corpus/fmp4),
//! planned with a handful of requests, inspected and defragmented, every planned byte read
//! back (see `harness.rs`). Run with `scripts/fuzz.sh`.
#![no_main]

mod harness;

use libfuzzer_sys::fuzz_target;
use loomiere::media::Kind;

fuzz_target!(|data: &[u8]| {
    harness::exercise(Kind::Mp4, data);
});
