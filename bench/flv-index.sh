#!/usr/bin/env bash
# flv-index.sh — builds a ~1 GB FLV (stream-copied concatenation of the generated short.mp4,
# H.264/AAC, ~500 × 60 s) and times `loomiere index` (release build) against yamdi and
# flvmeta on the same file, plus `index --check` and seek planning with and without an
# onMetaData index. Reports best-of-3 wall time and peak RSS (GNU time). loomiere fsyncs its
# output before the rename; yamdi and flvmeta do not. Kept out of the tests.
# Usage: bench/flv-index.sh [WORKDIR]    (COPIES=N changes the size; default 500 ≈ 1 GB)
#   WORKDIR defaults to target/bench-flv; needs ~4 GB free there.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd -P)
work=${1:-$root/target/bench-flv}
copies=${COPIES:-500}
media=${LOOMIERE_TEST_MEDIA:-$root/target/test-media}
mkdir -p "$work"
[[ -s $media/short.mp4 ]] || bash "$root/tests/make-media.sh" "$media" >/dev/null
for t in ffmpeg yamdi flvmeta /usr/bin/time; do command -v "$t" >/dev/null || { echo "$t missing" >&2; exit 1; }; done

big=$work/big.flv
if [[ ! -s $big || ${FORCE:-0} == 1 ]]; then
  echo "== building $big ($copies × short.mp4, stream copy)" >&2
  for _ in $(seq "$copies"); do echo "file '$media/short.mp4'"; done >"$work/concat.txt"
  ffmpeg -hide_banner -nostdin -v error -y -f concat -safe 0 -i "$work/concat.txt" -map 0 -c copy -f flv "$big"
fi

(cd "$root" && cargo build --release --quiet)
bin=$root/target/release/loomiere

# measure NAME CMD...: one warm-up run (page cache), then RUNS (default 3) timed runs; reports
# the best wall time and the largest peak RSS (the machine is shared: the minimum is the
# least disturbed run).
measure() {
  local name=$1; shift
  "$@" >/dev/null 2>&1 || true
  local best="" rss=0 secs kb
  for _ in $(seq "${RUNS:-3}"); do
    /usr/bin/time -f "%e %M" -o "$work/time.txt" "$@" >/dev/null 2>"$work/err.txt" || { echo "$name failed:" >&2; cat "$work/err.txt" >&2; }
    read -r secs kb <"$work/time.txt"
    if [[ -z $best ]] || (( $(echo "$secs < $best" | bc) )); then best=$secs; fi
    (( kb > rss )) && rss=$kb
  done
  printf '| %-44s | %8.2f s | %8.1f MB |\n' "$name" "$best" "$(echo "$rss / 1024" | bc -l)"
}

size=$(stat -c %s "$big")
tags=$("$bin" inspect --json "$big" | python3 -c 'import json,sys; j=json.load(sys.stdin); print(j["tags"]["total"], j["keyframes"]["count"], j["duration"])')
echo
echo "input: $(basename "$big"), $size bytes, tags/keyframes/duration: $tags"
echo "machine: $(nproc) cores, $(uname -r), $(date -u +%F)"
echo
echo "| command                                      |     wall |   peak RSS |"
echo "|----------------------------------------------|----------|------------|"
measure "loomiere index -o (release)" "$bin" index "$big" -o "$work/big.loomiere.flv"
measure "yamdi -i -o" yamdi -i "$big" -o "$work/big.yamdi.flv"
measure "flvmeta -U" flvmeta -U "$big" "$work/big.flvmeta.flv"
measure "loomiere index --check (indexed output)" "$bin" index --check "$work/big.loomiere.flv"
measure "loomiere inspect --json" "$bin" inspect --json "$big"
mid=$(echo "$(echo "$tags" | cut -d' ' -f3) / 2" | bc -l | cut -d. -f1)
measure "seek plan at ${mid}s, no index (tag walk)" "$bin" cut "$big" --start "$mid" --end "$((mid + 60))" --dry-run
measure "seek plan at ${mid}s, onMetaData index" "$bin" cut "$work/big.loomiere.flv" --start "$mid" --end "$((mid + 60))" --dry-run
echo
cmp -s <("$bin" inspect --json "$work/big.loomiere.flv" | python3 -c 'import json,sys; print(json.load(sys.stdin)["keyframes"]["count"])') \
       <("$bin" inspect --json "$big" | python3 -c 'import json,sys; print(json.load(sys.stdin)["keyframes"]["count"])') \
  && echo "keyframe counts agree between input and loomiere output"
rm -f "$work/big.loomiere.flv" "$work/big.yamdi.flv" "$work/big.flvmeta.flv"
