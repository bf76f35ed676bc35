#!/usr/bin/env bash
# test.sh — loomiere's whole check, the one command the README and CI (.ci/run) run:
#   1. installs missing Debian packages the tests use (scripts/deps.sh test; skip with
#      LOOMIERE_NO_INSTALL=1),
#   2. cargo fmt --check, and cargo clippy --all-targets -D warnings,
#   3. a short, bounded fuzz smoke run of each cargo-fuzz target when cargo-fuzz is installed
#      (FUZZ_SECONDS per target, default 20; FUZZ_SECONDS=0 skips it),
#   4. cargo test (unit tests, the integration tests that decode loomiere's output with
#      ffmpeg, and tests/hostile.rs, the stable-toolchain mutation test).
# The test media are generated once per target directory by tests/make-media.sh (~25 s CPU).
# Usage: scripts/test.sh [extra cargo test arguments]
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==== %s\n' "$*"; }

if [[ ${LOOMIERE_NO_INSTALL:-0} != 1 ]]; then
  step "dependencies"
  scripts/deps.sh test
fi

step "cargo fmt --check"
cargo fmt --check
if [[ -f fuzz/Cargo.toml ]]; then
  cargo fmt --check --manifest-path fuzz/Cargo.toml
fi

step "cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets -- -D warnings

fuzz_seconds=${FUZZ_SECONDS:-20}
if [[ $fuzz_seconds != 0 ]]; then
  if cargo fuzz --version >/dev/null 2>&1; then
    step "fuzz smoke run (${fuzz_seconds} s per target)"
    scripts/fuzz.sh "$fuzz_seconds"
  else
    step "fuzz smoke run skipped: cargo-fuzz is not installed (cargo install cargo-fuzz)"
  fi
fi

step "cargo test"
cargo test --no-fail-fast "$@"
