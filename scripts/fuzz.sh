#!/usr/bin/env bash
# fuzz.sh — runs loomiere's cargo-fuzz targets (fuzz/: mp4, fmp4, flv, http) for a bounded time each.
# Seeds come from fuzz/corpus/<target> (committed, read-only here); what libFuzzer learns goes
# to fuzz/work/<target> (ignored by git); crashes land in fuzz/artifacts/<target>.
# libFuzzer dictionaries: fuzz/<target>.dict (box types, AMF names, awkward sizes).
# Any single input running longer than 10 s counts as a hang (libFuzzer -timeout).
# Needs cargo-fuzz (`cargo install cargo-fuzz`); RUSTC_BOOTSTRAP=1 lets it use the stable
# toolchain's nightly-only flags.
# Usage: scripts/fuzz.sh [SECONDS] [TARGET...]   (default 600 s per target, all targets)
#        FUZZ_SEED=N picks libFuzzer's seed (default 1, so a run is repeatable).
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-600}
shift || true
targets=("$@")
((${#targets[@]})) || targets=(mp4 fmp4 flv http)
[[ $seconds =~ ^[0-9]+$ ]] || { echo "usage: $0 [SECONDS] [TARGET...]" >&2; exit 2; }
cargo fuzz --version >/dev/null 2>&1 || { echo "cargo-fuzz missing: cargo install cargo-fuzz" >&2; exit 1; }

export RUSTC_BOOTSTRAP=1
for t in "${targets[@]}"; do
  mkdir -p "fuzz/work/$t"
  echo "== fuzzing $t for ${seconds} s"
  cargo fuzz run "$t" "fuzz/work/$t" "fuzz/corpus/$t" -- \
    -max_total_time="$seconds" -seed="${FUZZ_SEED:-1}" -timeout=10 -max_len=65536 -len_control=0 -rss_limit_mb=2048 \
    -print_final_stats=1 -dict="fuzz/$t.dict"
done
