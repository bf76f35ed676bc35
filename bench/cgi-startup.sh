#!/usr/bin/env bash
# cgi-startup.sh — what one CGI request costs loomiere, against the floor and against nginx.
#   1. fork+exec+exit of a static C no-op (gcc -static): the floor of any CGI program
#   2. loomiere --version
#   3. a CGI HEAD request, straight from the environment, for short.mp4?start=10 and
#      long.mp4?start=3600 (opening the file, reading the moov, planning, writing the head),
#      without and with `index_cache` (seek marks read from a file instead of table scans)
#   4. time to first byte through lighttpd + loomiere (CGI) vs nginx's mp4 module
#      (mp4_start_key_frame on) for the same two seeks, with curl
# Each of 1–3 is N spawns (posix_spawn + waitpid, timed with CLOCK_MONOTONIC by a small C
# harness); 4 is N curl fetches of each URL, taken in turn. Prints medians and 90th percentiles
# in microseconds, and for 1–3 the page faults per run (perf stat, when perf is installed and
# allowed).
# Usage: bench/cgi-startup.sh [LOOMIERE_BINARY] [MEDIA_DIR]     (N=500 by default; N=… to change)
#   ROUNDS=R: rows 1–3 run R times, interleaved, and report the medians of the rounds;
#   BEFORE=OTHER_BINARY: rows 2–3 also for that binary, interleaved (before/after tables).
# Default binary: the static release build (RUSTFLAGS='-C target-feature=+crt-static -C
# relocation-model=static' cargo build --release --target x86_64-unknown-linux-gnu: static and
# non-PIE like the C no-op; without `-C relocation-model=static` it is static-pie, ~30 µs
# slower to start, see docs/cgi.md); default media: target/test-media.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
bin=${1:-$here/target/x86_64-unknown-linux-gnu/release/loomiere}
media=${2:-$here/target/test-media}
N=${N:-500}
ROUNDS=${ROUNDS:-1}
before=${BEFORE:-}
[[ -x $bin ]] || { echo "no binary at $bin (build it first, see docs/cgi.md)" >&2; exit 1; }
[[ -s $media/long.mp4 ]] || bash "$here/tests/make-media.sh" "$media" >/dev/null
bin=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")
[[ -z $before ]] || before=$(cd "$(dirname "$before")" && pwd)/$(basename "$before")
media=$(cd "$media" && pwd -P)

work=$(mktemp -d /tmp/cgi-startup.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

# ---- the spawn harness and the no-op ------------------------------------------------------
cat >"$work/noop.c" <<'EOF'
int main(void) { return 0; }
EOF
gcc -O2 -static -o "$work/noop" "$work/noop.c"
gcc -O2 -o "$work/spawn" "$here/bench/spawn.c"

printf '# loomiere CGI start-up, N=%d, ROUNDS=%d, %s\n' "$N" "$ROUNDS" "$(date -u +%FT%TZ)"
printf '# binary: %s (%s bytes)\n' "$bin" "$(stat -c %s "$bin")"
[[ -z $before ]] || printf '# before: %s (%s bytes)\n' "$before" "$(stat -c %s "$before")"
printf '# cpu: %s\n' "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
printf '%-44s %8s %8s %8s\n' "what" "p50 µs" "p90 µs" "faults"

# The spawn rows, "label|binary|kind"; with BEFORE, that binary's rows come first.
rows=("static C no-op (fork+exec+exit)|$work/noop|plain")
bins=("$bin")
if [[ -n $before ]]; then bins=("$before" "$bin"); fi
for b in "${bins[@]}"; do
  tag=""
  [[ $b == "$bin" ]] || tag=" (before)"
  rows+=("loomiere --version$tag|$b|version" "CGI HEAD short.mp4?start=10$tag|$b|short"
    "CGI HEAD long.mp4?start=3600$tag|$b|long")
done
# With index_cache, the movie's seek marks come from a small file (written by the first
# request, made below before timing) instead of scans of the sample tables.
rows+=("CGI HEAD short.mp4?start=10, index_cache|$bin|short_marks"
  "CGI HEAD long.mp4?start=3600, index_cache|$bin|long_marks")
mkdir -p "$work/marks"
printf 'document_root = "%s"\nindex_cache = "%s"\n' "$media" "$work/marks" >"$work/marks.conf"
# on_row KIND BINARY WRAPPER…: runs WRAPPER… (the harness, or perf stat) on the row's command;
# the CGI rows run in exactly the CGI environment.
on_row() {
  local kind=$1 b=$2
  shift 2
  local cgi=(env -i GATEWAY_INTERFACE=CGI/1.1 REQUEST_METHOD=HEAD DOCUMENT_ROOT="$media")
  case $kind in
    plain) "$@" "$b" ;;
    version) "$@" "$b" --version ;;
    short) "${cgi[@]}" SCRIPT_NAME=/short.mp4 QUERY_STRING=start=10 "$@" "$b" ;;
    long) "${cgi[@]}" SCRIPT_NAME=/long.mp4 QUERY_STRING=start=3600 "$@" "$b" ;;
    short_marks) "${cgi[@]}" LOOMIERE_CONFIG="$work/marks.conf" SCRIPT_NAME=/short.mp4 QUERY_STRING=start=10 "$@" "$b" ;;
    long_marks) "${cgi[@]}" LOOMIERE_CONFIG="$work/marks.conf" SCRIPT_NAME=/long.mp4 QUERY_STRING=start=3600 "$@" "$b" ;;
  esac
}
on_row short_marks "$bin" "$work/spawn" 1 >/dev/null
on_row long_marks "$bin" "$work/spawn" 1 >/dev/null
# ROUNDS rounds, every row once per round (interleaved, so load drift on a shared machine
# hits every row alike); a row's figures are the medians of its rounds' p50 and p90.
declare -A p50s p90s
for ((r = 0; r < ROUNDS; r++)); do
  for i in "${!rows[@]}"; do
    IFS='|' read -r label b kind <<<"${rows[$i]}"
    read -r p50 p90 < <(on_row "$kind" "$b" "$work/spawn" "$N")
    p50s[$i]+="$p50 "
    p90s[$i]+="$p90 "
  done
done
median() { tr ' ' '\n' | grep . | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
perf=$(command -v perf || true)
for i in "${!rows[@]}"; do
  IFS='|' read -r label b kind <<<"${rows[$i]}"
  faults=""
  if [[ -n $perf ]]; then  # the mean page faults of 50 runs
    faults=$(on_row "$kind" "$b" "$perf" stat -x, -r 50 -e page-faults 2>&1 >/dev/null |
      awk -F, '/page-faults/ { printf "%.0f", $1 }')
  fi
  printf '%-44s %8s %8s %8s\n' "$label" "$(median <<<"${p50s[$i]}")" "$(median <<<"${p90s[$i]}")" "${faults:--}"
done

# ---- time to first byte: lighttpd + loomiere vs nginx mp4 ----------------------------------
# Both servers run at once and the four URLs are fetched in turn, N times (interleaved, so
# load drift on a shared machine hits every row alike).
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
N=$(( N > 200 ? 200 : N ))  # curl runs are slower; 200 is plenty
urls=() labels=()
if command -v lighttpd >/dev/null; then
  port=$(free_port)
  mkdir -p "$work/lighttpd"
  printf 'document_root = "%s"\nindex_cache = "%s"\n' "$media" "$work/marks" >"$work/lighttpd/stream.conf"
  sed -e "s|@PORT@|$port|g" -e "s|@ROOT@|$media|g" -e "s|@RUN@|$work/lighttpd|g" \
      -e "s|@CONFIG@|$work/lighttpd/stream.conf|g" -e "s|@LOOMIERE@|$bin|g" \
      "$here/cgi/lighttpd.conf" >"$work/lighttpd/lighttpd.conf"
  lighttpd -D -f "$work/lighttpd/lighttpd.conf" & pids+=($!)
  labels+=("TTFB lighttpd+loomiere short.mp4?start=10" "TTFB lighttpd+loomiere long.mp4?start=3600")
  urls+=("http://127.0.0.1:$port/short.mp4?start=10" "http://127.0.0.1:$port/long.mp4?start=3600")
else
  echo "lighttpd not installed: skipped"
fi
if command -v nginx >/dev/null; then
  port=$(free_port)
  mkdir -p "$work/nginx"
  mkdir -p "$work/nginx/logs"
  # shellcheck source=nginx-mp4.sh
  . "$here/bench/nginx-mp4.sh"
  nginx_mp4_conf "$work/nginx" "$port" "$media" off 1 off >"$work/nginx/nginx.conf"
  nginx -c "$work/nginx/nginx.conf" -p "$work/nginx" & pids+=($!)
  labels+=("TTFB nginx mp4 short.mp4?start=10" "TTFB nginx mp4 long.mp4?start=3600")
  urls+=("http://127.0.0.1:$port/short.mp4?start=10" "http://127.0.0.1:$port/long.mp4?start=3600")
else
  echo "nginx not installed: skipped"
fi
sleep 0.5
for u in "${urls[@]}"; do curl -s -o /dev/null "$u"; done  # warm-up; the CGI writes its marks file
for ((k = 0; k < N; k++)); do
  for i in "${!urls[@]}"; do
    curl -s -o /dev/null -w '%{time_starttransfer}\n' "${urls[$i]}" >>"$work/ttfb.$i"
  done
done
for i in "${!urls[@]}"; do
  printf '%-44s %s\n' "${labels[$i]}" "$(sort -n "$work/ttfb.$i" |
    awk '{ v[NR] = $1 * 1e6 } END { printf "%8.0f %8.0f", v[int(NR / 2) + 1], v[int(NR * 9 / 10)] }')"
done
