#!/usr/bin/env bash
# test.sh — loomiere's whole check, the one command the README and CI (.ci/run) run:
#   1. installs missing Debian packages the tests use (scripts/deps.sh test; skip with
#      LOOMIERE_NO_INSTALL=1),
#   2. cargo fmt --check, and cargo clippy --all-targets -D warnings,
#   3. a short, bounded fuzz smoke run of each cargo-fuzz target (FUZZ_SECONDS per target,
#      default 20; FUZZ_SECONDS=0 skips it),
#   4. cargo test (unit tests, the integration tests that decode loomiere's output with
#      ffmpeg, and tests/hostile.rs, the stable-toolchain mutation test).
# LOOMIERE_REQUIRE_ALL=1 is exported unless already set to 0: then a test whose tool (a web
# server, chromium, flvmeta, …) is missing fails instead of printing SKIPPED, and a missing
# cargo-fuzz fails step 3. LOOMIERE_REQUIRE_ALL=0 scripts/test.sh allows the skips.
# The test media are generated once per target directory by tests/make-media.sh (~25 s CPU).
# Usage: scripts/test.sh [extra cargo test arguments]
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==== %s\n' "$*"; }

if [[ ${LOOMIERE_REQUIRE_ALL:-} != 0 ]]; then
  export LOOMIERE_REQUIRE_ALL=1
fi

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
  elif [[ $LOOMIERE_REQUIRE_ALL == 1 ]]; then
    step "fuzz smoke run FAILED: cargo-fuzz is not installed (cargo install cargo-fuzz), and LOOMIERE_REQUIRE_ALL=1"
    exit 1
  else
    step "fuzz smoke run SKIPPED: cargo-fuzz is not installed (cargo install cargo-fuzz)"
  fi
fi

step "cargo test"
cargo test --no-fail-fast "$@"
