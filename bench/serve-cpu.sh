#!/usr/bin/env bash
# serve-cpu.sh — CPU time and context switches of `loomiere serve` per request, for one or
# more builds side by side: the kernel's own accounting (`perf stat -e task-clock,
# context-switches -p PID`) over N sequential requests (curl, a new connection each) to a
# warmed server, so what is counted is only the server's work for cached answers.
#   Requests: the HLS init segment, the first and the middle video segment of long.mp4 (the
#   2-hour file), and N different segments never sent before ("unkept", after the middle).
#   ROUNDS rounds; builds interleaved (their order rotates each round); medians per build.
# Usage: bench/serve-cpu.sh BIN [BIN...]   N=300 ROUNDS=3 MEDIA=DIR (default target/test-media)
# Needs perf (linux-perf) with permission to count the server's events (root, or
# kernel.perf_event_paranoid <= 1 for a process of the same user).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
media=${MEDIA:-${LOOMIERE_TEST_MEDIA:-$here/target/test-media}}
n=${N:-300}
rounds=${ROUNDS:-3}
(($# > 0)) || { echo "usage: bench/serve-cpu.sh BIN [BIN...]" >&2; exit 2; }
for b in "$@"; do [[ -x $b ]] || { echo "no binary at $b" >&2; exit 1; }; done
for t in perf curl python3; do command -v $t >/dev/null || { echo "$t is needed" >&2; exit 1; }; done
[[ -s $media/long.mp4 ]] || { echo "no $media/long.mp4 (tests/make-media.sh)" >&2; exit 1; }
media=$(cd "$media" && pwd -P)
tmp=$(mktemp -d /tmp/serve-cpu.XXXXXX)
serve_pid=
cleanup() { [[ -n $serve_pid ]] && kill "$serve_pid" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
printf 'document_root = "%s"\nlog = "%s"\n' "$media" "$tmp/serve.log" >"$tmp/serve.conf"
printf '# serve CPU per request: %s requests x %s rounds, %s, load %s\n' "$n" "$rounds" "$(date -u +%FT%TZ)" \
  "$(cut -d' ' -f1-3 /proc/loadavg)"
: >"$tmp/rows"
# measure BIN KIND: one server, warmed, N requests of KIND under perf stat.
measure() {
  local bin=$1 kind=$2 port url i
  port=$(free_port)
  "$bin" serve --listen "127.0.0.1:$port" --config "$tmp/serve.conf" >"$tmp/serve.out" 2>&1 &
  serve_pid=$!
  for _ in $(seq 200); do curl -s -o /dev/null "http://127.0.0.1:$port/" && break; sleep 0.05; done
  case $kind in
    init) url=/long.mp4/v1/init.mp4 ;;
    first) url=/long.mp4/v1/1.m4s ;;
    middle) url=/long.mp4/v1/600.m4s ;;
    unkept) url= ;;
  esac
  curl -sf -o /dev/null "http://127.0.0.1:$port${url:-/long.mp4/v1/600.m4s}"
  perf stat -x, -e task-clock,context-switches -p "$serve_pid" -o "$tmp/stat" &
  local perf_pid=$!
  sleep 0.3
  for ((i = 1; i <= n; i++)); do
    curl -sf -o /dev/null "http://127.0.0.1:$port${url:-/long.mp4/v1/$((600 + i)).m4s}"
  done
  kill -INT "$perf_pid"
  wait "$perf_pid" || true
  kill "$serve_pid"
  wait "$serve_pid" 2>/dev/null || true
  serve_pid=
  awk -F, -v b="$bin" -v k="$kind" -v n="$n" '$3 == "task-clock" { cpu = $1 } $3 == "context-switches" { sw = $1 }
    END { printf "%s %s %.1f %.2f\n", b, k, cpu * 1000 / n, sw / n }' "$tmp/stat" >>"$tmp/rows"
}
bins=("$@")
for ((r = 0; r < rounds; r++)); do
  for kind in init first middle unkept; do
    for ((j = 0; j < ${#bins[@]}; j++)); do
      measure "${bins[$(((j + r) % ${#bins[@]}))]}" "$kind"
    done
  done
done
python3 - "$tmp/rows" "$@" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
print(f'{"build":40} {"request":8} {"CPU us/request":>15} {"switches/request":>17}')
for b in sys.argv[2:]:
    for k in ["init", "first", "middle", "unkept"]:
        v = [(float(c), float(s)) for (bb, kk, c, s) in rows if bb == b and kk == k]
        print(f'{b[-40:]:40} {k:8} {statistics.median(c for c, _ in v):>15.1f} {statistics.median(s for _, s in v):>17.2f}')
PY
