#!/usr/bin/env bash
# scaling.sh — the numbers of docs/scaling.md, in one run, on the topology of
# scripts/cluster.sh (Varnish → two `loomiere serve` origins → SeaweedFS S3, all on loopback):
#   1. time to first byte (curl) of a seek into the 2-hour file from S3, and the storage
#      requests it cost (the origin's X-Storage-Requests header):
#        cold   — nothing cached (index cache empty, identity unknown),
#        warm   — another seek on the same origin (index on disk and in memory, ETag known),
#        second origin — another seek on the other origin (index on disk, shared; ETag not
#                  known there yet: one HEAD more),
#        local  — the same seek from `loomiere serve` on the local file;
#   2. a popular-title workload (`loomiere bench`, N viewers reading as fast as they can, taking
#      turns over four seeks of three titles) through Varnish: Varnish hit ratio, requests
#      that reached an origin, TTFB; and the same workload on `loomiere serve` of the local
#      files.
# Usage: bench/scaling.sh [LOOMIERE_BINARY] [MEDIA_DIR]   (VIEWERS=16 DURATION=10 by default)
# Default binary: target/release/loomiere if built, else target/debug/loomiere; default media:
# target/test-media (made by tests/make-media.sh when missing).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
bin=${1:-}
if [[ -z $bin ]]; then
  bin=$here/target/release/loomiere
  [[ -x $bin ]] || bin=$here/target/debug/loomiere
fi
media=${2:-${LOOMIERE_TEST_MEDIA:-$here/target/test-media}}
VIEWERS=${VIEWERS:-16}
DURATION=${DURATION:-10}
[[ -x $bin ]] || { echo "no binary at $bin (cargo build first)" >&2; exit 1; }
[[ -s $media/long.mp4 ]] || bash "$here/tests/make-media.sh" "$media" >/dev/null

work=$(mktemp -d "${TMPDIR:-/tmp}/loomiere-scaling.XXXXXX")
export LOOMIERE_CLUSTER=$work/cluster.state LOOMIERE_BIN=$bin LOOMIERE_TEST_MEDIA=$media
local_pid=
cleanup() {
  [[ -n $local_pid ]] && kill "$local_pid" 2>/dev/null || true
  bash "$here/scripts/cluster.sh" down >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
bash "$here/scripts/cluster.sh" up >"$work/up.txt"
state=$(cat "$LOOMIERE_CLUSTER")
V=$(cat "$state/varnish.url")
O1=http://127.0.0.1:$(cat "$state/origin1.port")
O2=http://127.0.0.1:$(cat "$state/origin2.port")
lport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$bin" serve --listen "127.0.0.1:$lport" "$media" >/dev/null 2>&1 &
local_pid=$!
L=http://127.0.0.1:$lport
for _ in $(seq 100); do curl -sf -o /dev/null -I "$L/short.mp4" && break; sleep 0.1; done

# TTFB in ms and storage requests of one GET.
probe() {
  local url=$1 out
  out=$(curl -s -o /dev/null -D "$work/h" -w '%{time_starttransfer}' "$url")
  local n
  n=$(tr -d '\r' <"$work/h" | awk -F': ' 'tolower($1)=="x-storage-requests"{print $2}')
  printf '%-40s %8.2f ms   storage requests: %s\n' "$2" "$(echo "$out * 1000" | bc -l)" "${n:--}"
}

echo "== 1. a seek into the 2-hour file (long.mp4, 4 MB moov) from S3 =="
probe "$O1/long.mp4?start=3600&end=3660" "cold (origin 1, nothing cached)"
probe "$O1/long.mp4?start=1800&end=1860" "warm (origin 1, another seek)"
probe "$O1/long.mp4?start=5400&end=5460" "warm (origin 1, a third seek)"
probe "$O2/long.mp4?start=2700&end=2760" "second origin (shared index on disk)"
probe "$L/long.mp4?start=3600&end=3660" "local file (loomiere serve)"
probe "$L/long.mp4?start=1800&end=1860" "local file, warm"

urls=("$V/long.mp4?start=600&end=660" "$V/long.mp4?start=3600&end=3660" "$V/short.mp4?start=3" "$V/moovend.mp4?start=5")
lurls=("${urls[@]/#$V/$L}")
before1=$(grep -c '"GET ' "$state/origin1.log" || true)
before2=$(grep -c '"GET ' "$state/origin2.log" || true)
varnishstat -n "$state/varnish" -1 -f MAIN.cache_hit -f MAIN.cache_miss >"$work/vs0" 2>/dev/null || true
echo
echo "== 2. popular titles: $VIEWERS viewers, ${DURATION} s, 4 seeks of 3 titles, read as fast as sent =="
echo "-- through Varnish (origins read S3)"
"$bin" bench "${urls[@]}" --viewers "$VIEWERS" --duration "$DURATION" --seek fixed --start 0 --fast --json >"$work/b1.json"
varnishstat -n "$state/varnish" -1 -f MAIN.cache_hit -f MAIN.cache_miss >"$work/vs1" 2>/dev/null || true
after1=$(grep -c '"GET ' "$state/origin1.log" || true)
after2=$(grep -c '"GET ' "$state/origin2.log" || true)
python3 - "$work/b1.json" "$work/vs0" "$work/vs1" $((after1 - before1 + after2 - before2)) <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
def stat(path):
    d = {}
    for line in open(path):
        p = line.split()
        if len(p) >= 2: d[p[0]] = int(p[1])
    return d
a, b = stat(sys.argv[2]), stat(sys.argv[3])
hit = b.get("MAIN.cache_hit", 0) - a.get("MAIN.cache_hit", 0)
miss = b.get("MAIN.cache_miss", 0) - a.get("MAIN.cache_miss", 0)
t = r["ttfb_ms"]
print(f"answers {r['responses']}, errors {r['errors']['total']}, {r['mbit_per_s']:.0f} Mbit/s")
print(f"TTFB p50 {t['p50']:.2f} ms, p90 {t['p90']:.2f} ms, p99 {t['p99']:.2f} ms")
print(f"Varnish hit ratio {hit}/{hit+miss} = {100*hit/max(1,hit+miss):.1f} %; requests that reached an origin: {sys.argv[4]}")
EOF
echo "-- the same on loomiere serve of the local files (no cache in front)"
"$bin" bench "${lurls[@]}" --viewers "$VIEWERS" --duration "$DURATION" --seek fixed --start 0 --fast --json >"$work/b2.json"
python3 - "$work/b2.json" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
t = r["ttfb_ms"]
print(f"answers {r['responses']}, errors {r['errors']['total']}, {r['mbit_per_s']:.0f} Mbit/s")
print(f"TTFB p50 {t['p50']:.2f} ms, p90 {t['p90']:.2f} ms, p99 {t['p99']:.2f} ms; every request reached the server")
EOF
