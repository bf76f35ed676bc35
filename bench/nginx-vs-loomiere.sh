#!/usr/bin/env bash
# nginx-vs-loomiere.sh — MP4 seek in the 2-hour test file (long.mp4: 180 000 video + ~155 000
# audio samples, a 4 MB moov), one hour in: nginx's mp4 module against `loomiere cut`.
#   nginx     Debian's package, its own config in a temp dir (127.0.0.1, a free port, `mp4;`,
#             `mp4_start_key_frame on;`, run as the current user, pid file, stopped at the end).
#             curl -w %{time_starttransfer} / %{time_total} for GET /long.mp4?start=3600, N
#             times, median; the worker's peak RSS (VmHWM) afterwards.
#   loomiere  release build; /usr/bin/time -f '%e %M' (peak RSS KiB; wall time read with the
#             shell's microsecond clock around the same run, as %e has 10 ms steps) of
#             `cut long.mp4 --start 3600 --dry-run` (planning: what a server does before its
#             first byte) and of the full cut to a temp file, N times, median.
# Prints a markdown table (for docs/performance.md). Needs nginx, curl, time (package `time`),
# python3, ffmpeg (to make the media once).
# Usage: bench/nginx-vs-loomiere.sh [N]    (default N=15)
#        MEDIA=DIR   media directory (default target/test-media, made by tests/make-media.sh)
#        LOOMIERE=PATH   binary to measure (default: cargo build --release, target/release/loomiere)
#        START=3600  seek position in seconds
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd -P)
n=${1:-15}
start=${START:-3600}
media=${MEDIA:-$root/target/test-media}

for t in nginx curl python3; do command -v $t >/dev/null || [[ -x /usr/sbin/$t ]] || { echo "$t missing" >&2; exit 1; }; done
[[ -x /usr/bin/time ]] || { echo "/usr/bin/time missing: apt-get install time" >&2; exit 1; }
nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)

if [[ ! -s $media/long.mp4 ]]; then
  echo "== making test media in $media" >&2
  mkdir -p "$media"
  flock "$media/.lock" bash tests/make-media.sh "$media" >/dev/null
fi
media=$(cd "$media" && pwd -P)

if [[ -z ${LOOMIERE:-} ]]; then
  echo "== cargo build --release" >&2
  cargo build --release --bin loomiere >&2
  LOOMIERE=$root/target/release/loomiere
fi

# Warm the page cache so that both sides read the file from memory.
cat "$media/long.mp4" >/dev/null

tmp=$(mktemp -d /tmp/loomiere-bench.XXXXXX)
nginx_pid=
cleanup() {
  if [[ -n $nginx_pid ]] && kill -0 "$nginx_pid" 2>/dev/null; then
    kill "$nginx_pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$nginx_pid" 2>/dev/null || break; sleep 0.1; done
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT

median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "n/a"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# ---- nginx ------------------------------------------------------------------------------------
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
# shellcheck source=nginx-mp4.sh
. bench/nginx-mp4.sh
mkdir -p "$tmp/logs"
nginx_mp4_conf "$tmp" "$port" "$media" off 1 on >"$tmp/nginx.conf"
"$nginx_bin" -p "$tmp" -c "$tmp/nginx.conf" -e "$tmp/logs/error.log"
for _ in $(seq 50); do [[ -s $tmp/nginx.pid ]] && break; sleep 0.1; done
nginx_pid=$(cat "$tmp/nginx.pid")
url="http://127.0.0.1:$port/long.mp4?start=$start"
for _ in $(seq 50); do curl -s -o /dev/null "http://127.0.0.1:$port/" && break; sleep 0.1; done

status=$(curl -s -o "$tmp/nginx.mp4" -w '%{http_code}' "$url")
[[ $status == 200 ]] || { echo "nginx answered $status for $url" >&2; cat "$tmp/logs/error.log" >&2; exit 1; }
nginx_bytes=$(stat -c %s "$tmp/nginx.mp4")
: >"$tmp/ttfb"; : >"$tmp/total"
for _ in $(seq "$n"); do
  curl -s -o /dev/null -w '%{time_starttransfer} %{time_total}\n' "$url" >"$tmp/one"
  read -r ttfb total <"$tmp/one"
  echo "$ttfb" >>"$tmp/ttfb"; echo "$total" >>"$tmp/total"
done
worker=$(pgrep -P "$nginx_pid" | head -1 || true)
nginx_rss=n/a
[[ -n $worker ]] && nginx_rss=$(awk '/^VmHWM/ { print $2 }' "/proc/$worker/status" 2>/dev/null || echo n/a)
nginx_ttfb=$(median <"$tmp/ttfb")
nginx_total=$(median <"$tmp/total")

# ---- loomiere -----------------------------------------------------------------------------------
measure() { # measure NAME ARGS... -> median wall, median peak RSS of N runs
  local name=$1; shift
  : >"$tmp/$name.wall"; : >"$tmp/$name.rss"
  for _ in $(seq "$n"); do
    local t0=$EPOCHREALTIME
    if ! /usr/bin/time -o "$tmp/$name.time" -f '%e %M' "$LOOMIERE" "$@" >"$tmp/$name.out" 2>"$tmp/$name.err"; then
      echo "loomiere $* failed: $(head -c 300 "$tmp/$name.err")" >&2
      echo "failed failed" >"$tmp/$name.time"
    fi
    local t1=$EPOCHREALTIME wall rss
    read -r wall rss <"$tmp/$name.time"
    # %e has 10 ms resolution; the shell's clock around the same run gives microseconds.
    [[ $wall == failed ]] || wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.5f", b - a }')
    echo "$wall" >>"$tmp/$name.wall"; echo "$rss" >>"$tmp/$name.rss"
    # --dry-run also reports the engine's own time (open, map moov, plan), in ms.
    sed -n 's/^planned in: *\([0-9.]*\) ms$/\1/p' "$tmp/$name.out" | awk '{ printf "%.6f\n", $1 / 1000 }' >>"$tmp/$name.engine"
  done
}
measure plan cut "$media/long.mp4" --start "$start" --dry-run
measure cut cut "$media/long.mp4" --start "$start" -o "$tmp/loomiere.mp4"
cut_bytes=$(stat -c %s "$tmp/loomiere.mp4" 2>/dev/null || echo n/a)
ok_median() { { grep -v failed "$1" || true; } | median; }
plan_wall=$(ok_median "$tmp/plan.wall"); plan_rss=$(ok_median "$tmp/plan.rss")
plan_engine=$(median <"$tmp/plan.engine")
version_wall=n/a
measure version --version
version_wall=$(ok_median "$tmp/version.wall"); version_rss=$(ok_median "$tmp/version.rss")
cut_wall=$(ok_median "$tmp/cut.wall"); cut_rss=$(ok_median "$tmp/cut.rss")

# Whole-process time without /usr/bin/time's own fork+exec: bench/spawn.c (posix_spawn +
# waitpid, CLOCK_MONOTONIC) runs `cut --dry-run` 10×N times; its median, in seconds.
spawn_wall=n/a
if command -v gcc >/dev/null; then
  gcc -O2 -o "$tmp/spawn" bench/spawn.c &&
    spawn_wall=$("$tmp/spawn" $((10 * n)) "$LOOMIERE" cut "$media/long.mp4" --start "$start" --dry-run |
      awk '{ printf "%.6f", $1 / 1e6 }' || echo n/a)
fi

# ---- report -----------------------------------------------------------------------------------
echo
echo "MP4 seek to ${start} s in long.mp4 ($(stat -c %s "$media/long.mp4") bytes), median of $n runs, $(nproc) cores, $(date -u +%F)"
echo "nginx $("$nginx_bin" -v 2>&1 | sed 's/.*nginx\///'), loomiere $("$LOOMIERE" --version 2>/dev/null | awk '{ print $2 }')"
echo
echo "| what | time (s) | peak RSS (KiB) | output bytes |"
echo "| --- | ---: | ---: | ---: |"
echo "| nginx mp4: time to first byte | $nginx_ttfb | $nginx_rss (worker) | $nginx_bytes |"
echo "| nginx mp4: whole response over loopback | $nginx_total | | $nginx_bytes |"
echo "| loomiere engine, in-process: open + map moov + plan | $plan_engine | | |"
echo "| loomiere cut --dry-run, whole process under /usr/bin/time (plan only) | $plan_wall | $plan_rss | |"
echo "| loomiere cut --dry-run, whole process (fork+exec+exit, spawn harness) | $spawn_wall | | |"
echo "| loomiere --version, whole process (start-up alone) | $version_wall | $version_rss | |"
echo "| loomiere cut to a file | $cut_wall | $cut_rss | $cut_bytes |"
