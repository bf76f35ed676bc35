#!/usr/bin/env bash
# fmp4-ttfb.sh — issue 15's figure: time to first byte of a seek into a 2-hour fragmented MP4
# against the same seek in the progressive copy of the file.
#
# long-frag.mp4 is made from long.mp4 (tests/make-media.sh) by
# `ffmpeg -c copy -movflags frag_keyframe+empty_moov` (one fragment per keyframe). For each
# round and each file (interleaved), a FRESH `loomiere serve` answers `FILE?start=SEEK` once
# (first request: the file opened, the fragment index or the moov's sample tables read) and
# then 3 times more (cached: the index in memory). curl, a new connection per request,
# bodies read to the end (time to first byte and total time; an answer is the rest of the
# file, so TOTAL says how much there was). Medians over the rounds, and fMP4 / progressive.
#
# Usage: bench/fmp4-ttfb.sh
#   ROUNDS=7 SEEK=3600 (s)  MEDIA=DIR (default $LOOMIERE_TEST_MEDIA or target/test-media)
#   WORK=DIR (default target/bench-media: long-frag.mp4 is kept there)
#   LOOMIERE=PATH (default target/release/loomiere)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
bin=${LOOMIERE:-$here/target/release/loomiere}
media=${MEDIA:-${LOOMIERE_TEST_MEDIA:-$here/target/test-media}}
work=${WORK:-$here/target/bench-media}
rounds=${ROUNDS:-7}
seek=${SEEK:-3600}
[[ -x $bin ]] || { echo "no binary at $bin (cargo build --release, or set LOOMIERE)" >&2; exit 1; }
[[ -s $media/long.mp4 ]] || { echo "no $media/long.mp4 (tests/make-media.sh)" >&2; exit 1; }
for tool in curl python3 ffmpeg; do
  command -v "$tool" >/dev/null || { echo "$tool is needed (scripts/deps.sh)" >&2; exit 1; }
done
mkdir -p "$work"
work=$(cd "$work" && pwd -P)
if [[ ! -s $work/long-frag.mp4 || $work/long-frag.mp4 -ot $media/long.mp4 ]]; then
  ffmpeg -loglevel error -y -i "$media/long.mp4" -map 0 -c copy -movflags frag_keyframe+empty_moov \
    "$work/.long-frag.tmp.mp4"
  mv "$work/.long-frag.tmp.mp4" "$work/long-frag.mp4"
fi
[[ -s $work/long.mp4 && ! $work/long.mp4 -ot $media/long.mp4 ]] || cp "$media/long.mp4" "$work/long.mp4"
tmp=$(mktemp -d /tmp/fmp4-ttfb.XXXXXX)
serve_pid=
cleanup() {
  [[ -n $serve_pid ]] && kill "$serve_pid" 2>/dev/null
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 200); do curl -s -o /dev/null "http://127.0.0.1:$1/" && return 0; sleep 0.05; done; echo "port $1 never answered" >&2; exit 1; }
printf 'document_root = "%s"\nlog = "%s"\n' "$work" "$tmp/serve.log" >"$tmp/serve.conf"

printf '# fMP4 seek TTFB: start=%s into long-frag.mp4 (%s bytes) and long.mp4 (%s bytes), %s rounds, %s, %s, commit %s, load %s\n' \
  "$seek" "$(stat -c %s "$work/long-frag.mp4")" "$(stat -c %s "$work/long.mp4")" "$rounds" "$(date -u +%FT%TZ)" \
  "$("$bin" --version)" "$(git -C "$here" rev-parse --short HEAD 2>/dev/null || echo ?)" "$(cut -d' ' -f1-3 /proc/loadavg)"
samples=$tmp/samples
: >"$samples"
for ((r = 1; r <= rounds; r++)); do
  for f in long-frag.mp4 long.mp4; do
    port=$(free_port)
    "$bin" serve --listen "127.0.0.1:$port" --config "$tmp/serve.conf" >"$tmp/serve.out" 2>&1 &
    serve_pid=$!
    wait_port "$port"
    for i in 0 1 2 3; do
      read -r code ttfb total size <<<"$(curl -s -o /dev/null -w '%{http_code} %{time_starttransfer} %{time_total} %{size_download}\n' \
        "http://127.0.0.1:$port/$f?start=$seek")"
      [[ $code == 200 ]] || { echo "$f?start=$seek: HTTP $code" >&2; exit 1; }
      kind=cached
      ((i == 0)) && kind=first
      echo "$f $kind $ttfb $total $size" >>"$samples"
    done
    kill "$serve_pid" 2>/dev/null || true
    wait "$serve_pid" 2>/dev/null || true
    serve_pid=
  done
done
python3 - "$samples" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
med = {}
print("medians, ms: time to first byte / total (samples, answer bytes)")
for f in ["long-frag.mp4", "long.mp4"]:
    for k in ["first", "cached"]:
        v = [r for r in rows if r[0] == f and r[1] == k]
        t = statistics.median(float(r[2]) * 1000 for r in v)
        tt = statistics.median(float(r[3]) * 1000 for r in v)
        med[f, k] = t
        print(f"{f:14} {k:7} {t:9.3f} / {tt:9.3f} ({len(v)}, {v[0][4]} bytes)")
for k in ["first", "cached"]:
    print(f"fMP4 / progressive, {k}: {med['long-frag.mp4', k] / med['long.mp4', k]:.2f}x")
print(f"fMP4 cached / first: {med['long-frag.mp4', 'cached'] / med['long-frag.mp4', 'first']:.2f}x")
PY
