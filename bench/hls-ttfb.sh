#!/usr/bin/env bash
# hls-ttfb.sh — issue 14's HLS figures for the 2-hour file (long.mp4 of tests/make-media.sh).
#
# 1. Time to first byte and total time (curl, a new connection per request) of the master
#    playlist, the video media playlist, the init segment, the first and the middle segment:
#      serve-first   `loomiere serve`, a FRESH process for each request kind, so the request
#                    is the first one (the movie opened, its segment index built)
#      serve-cached  the same process, the same URL again (index in memory), 3 times
#      nginx-static  nginx serving the same video track pre-packaged from disk by
#                    `ffmpeg -c copy -f hls -hls_segment_type fmp4 -hls_time 6` (the floor:
#                    no packaging work at all), 4 times
#    Kind "unkept": a media segment the process has not sent before (a different one for
#    every request, around the middle), so its samples are gathered now: what a viewer
#    pays for a segment no one asked for yet (`serve` keeps a segment of small samples
#    once made; nginx's numbers are for the same segment numbers).
#    ROUNDS rounds, the three interleaved per request kind; medians over all rounds; ratios
#    against the floor and middle/first (issue 14's targets: a segment ≤ 1.5× the floor, the
#    middle segment ≤ 1.2× the first).
# 2. Memory per viewer: a fresh serve (throttle = 1.2, burst_seconds = 10, as section 3 of
#    docs/performance.md), warmed with one request; `loomiere bench` holds MEM_VIEWERS
#    viewers of the HLS master playlist (random start segments), then, on another fresh
#    serve, of the progressive `long.mp4` (random seeks); serve's RSS is sampled every 0.5 s;
#    reported: peak RSS, growth over the warmed server, per viewer; and the growth of the
#    machine's shared memory (/proc/meminfo Shmem, sampled alike), where serve's kept
#    segments live (memory files, not in its RSS).
#
# Usage: bench/hls-ttfb.sh
#   ROUNDS=5 MEM_VIEWERS=1000 MEM_DURATION=40 (s) MEM_RAMP=15 (s)
#   MEDIA=DIR (default $LOOMIERE_TEST_MEDIA or target/test-media; needs long.mp4)
#   LOOMIERE=PATH (default target/release/loomiere)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
bin=${LOOMIERE:-$here/target/release/loomiere}
media=${MEDIA:-${LOOMIERE_TEST_MEDIA:-$here/target/test-media}}
rounds=${ROUNDS:-5}
mem_viewers=${MEM_VIEWERS:-1000}
mem_duration=${MEM_DURATION:-40}
mem_ramp=${MEM_RAMP:-15}
[[ -x $bin ]] || { echo "no binary at $bin (cargo build --release, or set LOOMIERE)" >&2; exit 1; }
[[ -s $media/long.mp4 ]] || { echo "no $media/long.mp4 (tests/make-media.sh)" >&2; exit 1; }
for tool in nginx curl python3 ffmpeg; do
  command -v "$tool" >/dev/null || [[ -x /usr/sbin/$tool ]] || { echo "$tool is needed (scripts/deps.sh)" >&2; exit 1; }
done
media=$(cd "$media" && pwd -P)
nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)
tmp=$(mktemp -d /tmp/hls-ttfb.XXXXXX)
pids=()
serve_pid=
cleanup() {
  [[ -n $serve_pid ]] && kill "$serve_pid" 2>/dev/null
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 200); do curl -s -o /dev/null "http://127.0.0.1:$1/" && return 0; sleep 0.05; done; echo "port $1 never answered" >&2; exit 1; }

# The floor: the video track packaged once by ffmpeg, served as static files by nginx.
pkg=$tmp/pkg/long
mkdir -p "$pkg"
ffmpeg -loglevel error -y -i "$media/long.mp4" -map 0:v:0 -c copy -f hls -hls_segment_type fmp4 -hls_time 6 \
  -hls_playlist_type vod -hls_fmp4_init_filename init.mp4 -start_number 1 -hls_segment_filename "$pkg/%d.m4s" \
  -master_pl_name master.m3u8 "$pkg/index.m3u8"
nginx_port=$(free_port)
user_line=
[[ $(id -u) == 0 ]] && user_line="user $(id -un) $(id -gn);"
mkdir -p "$tmp/nginx/logs"
cat >"$tmp/nginx.conf" <<CONF
$user_line
worker_processes 1;
daemon off;
pid $tmp/nginx/nginx.pid;
error_log $tmp/nginx/logs/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  sendfile on;
  open_file_cache max=1000 inactive=60s;
  types { application/vnd.apple.mpegurl m3u8; video/mp4 mp4 m4s; }
  client_body_temp_path $tmp/nginx/body;
  proxy_temp_path $tmp/nginx/proxy;
  fastcgi_temp_path $tmp/nginx/fastcgi;
  uwsgi_temp_path $tmp/nginx/uwsgi;
  scgi_temp_path $tmp/nginx/scgi;
  server { listen 127.0.0.1:$nginx_port; root $tmp/pkg; }
}
CONF
"$nginx_bin" -p "$tmp/nginx" -c "$tmp/nginx.conf" -e "$tmp/nginx/logs/error.log" >"$tmp/nginx.out" 2>&1 &
pids+=($!)
wait_port "$nginx_port"

# serve_start CONFIG: a fresh serve on a new port (sets serve_pid, serve_port).
serve_start() {
  serve_port=$(free_port)
  "$bin" serve --listen "127.0.0.1:$serve_port" --config "$1" >"$tmp/serve.out" 2>&1 &
  serve_pid=$!
  wait_port "$serve_port"
}
serve_stop() { kill "$serve_pid" 2>/dev/null || true; wait "$serve_pid" 2>/dev/null || true; serve_pid=; }
printf 'document_root = "%s"\nlog = "%s"\n' "$media" "$tmp/serve.log" >"$tmp/plain.conf"

# Segment numbers: first and middle of each server's own media playlist.
serve_start "$tmp/plain.conf"
serve_segments=$(curl -s "http://127.0.0.1:$serve_port/long.mp4/v1/index.m3u8" | grep -c '\.m4s$')
serve_stop
nginx_segments=$(grep -c '\.m4s$' "$pkg/index.m3u8")
serve_mid=$((serve_segments / 2))
nginx_mid=$((nginx_segments / 2))
declare -A serve_path=([master]=/long.mp4/master.m3u8 [media]=/long.mp4/v1/index.m3u8 [init]=/long.mp4/v1/init.mp4
  [first]=/long.mp4/v1/1.m4s [middle]=/long.mp4/v1/$serve_mid.m4s [unkept]=/long.mp4/v1/$serve_mid.m4s)
declare -A nginx_path=([master]=/long/master.m3u8 [media]=/long/index.m3u8 [init]=/long/init.mp4
  [first]=/long/1.m4s [middle]=/long/$nginx_mid.m4s [unkept]=/long/$nginx_mid.m4s)
kinds=(master media init first middle unkept)
unkept=$serve_mid

load=$(cut -d' ' -f1-3 /proc/loadavg)
printf '# HLS TTFB, long.mp4 (2 h): %s rounds, %s, %s, commit %s, load %s\n' "$rounds" "$(date -u +%FT%TZ)" \
  "$("$bin" --version)" "$(git -C "$here" rev-parse --short HEAD 2>/dev/null || echo ?)" "$load"
printf '# segments: serve %s (middle %s), ffmpeg %s (middle %s)\n' "$serve_segments" "$serve_mid" "$nginx_segments" "$nginx_mid"
for k in first middle; do
  s=$(curl -s -o /dev/null -w '%{size_download}' "http://127.0.0.1:$nginx_port${nginx_path[$k]}")
  printf '# %s segment: nginx %s bytes' "$k" "$s"
  serve_start "$tmp/plain.conf"
  printf ', serve %s bytes\n' "$(curl -s -o /dev/null -w '%{size_download}' "http://127.0.0.1:$serve_port${serve_path[$k]}")"
  serve_stop
done
get() { curl -s -o /dev/null -w '%{http_code} %{time_starttransfer} %{time_total}\n' "$1"; }
samples=$tmp/samples
: >"$samples"
# record SERVER KIND URL: one request; fails the run on anything but 200.
record() {
  local code ttfb total
  read -r code ttfb total <<<"$(get "$3")"
  [[ $code == 200 ]] || { echo "$3: HTTP $code" >&2; exit 1; }
  echo "$1 $2 $ttfb $total" >>"$samples"
}
for ((r = 1; r <= rounds; r++)); do
  for k in "${kinds[@]}"; do
    serve_start "$tmp/plain.conf"
    record serve-first "$k" "http://127.0.0.1:$serve_port${serve_path[$k]}"
    for _ in 1 2 3; do
      if [[ $k == unkept ]]; then
        unkept=$((unkept + 1))
        serve_path[unkept]=/long.mp4/v1/$unkept.m4s
        nginx_path[unkept]=/long/$unkept.m4s
      fi
      record serve-cached "$k" "http://127.0.0.1:$serve_port${serve_path[$k]}"
    done
    serve_stop
    for _ in 1 2 3 4; do record nginx-static "$k" "http://127.0.0.1:$nginx_port${nginx_path[$k]}"; done
  done
done
python3 - "$samples" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
kinds = ["master", "media", "init", "first", "middle", "unkept"]
servers = ["serve-first", "serve-cached", "nginx-static"]
med = {}
for s in servers:
    for k in kinds:
        v = [(float(t) * 1000, float(tt) * 1000) for (srv, kind, t, tt) in rows if srv == s and kind == k]
        med[s, k] = (statistics.median(x for x, _ in v), statistics.median(y for _, y in v), len(v))
print("\nmedians, ms: time to first byte / total (samples)")
print(f'{"request":8} ' + " ".join(f"{s:>24}" for s in servers) + f' {"first/floor":>12} {"cached/floor":>13}')
for k in kinds:
    cells = " ".join(f"{med[s,k][0]:>10.3f} / {med[s,k][1]:>7.3f} ({med[s,k][2]:>2})" for s in servers)
    floor = med["nginx-static", k][0]
    print(f"{k:8} {cells} {med['serve-first',k][0]/floor:>11.2f}x {med['serve-cached',k][0]/floor:>12.2f}x")
for s in ["serve-first", "serve-cached", "nginx-static"]:
    print(f"middle / first segment TTFB, {s}: {med[s,'middle'][0]/med[s,'first'][0]:.2f}x")
PY

# Memory per viewer: HLS, then progressive, each on a fresh throttled serve.
printf 'document_root = "%s"\nthrottle = 1.2\nburst_seconds = 10\nlog = "%s"\n[server]\nmax_connections = 20000\n' \
  "$media" "$tmp/mem.log" >"$tmp/mem.conf"
rss() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }
shm() { awk '/^Shmem:/ { print $2 }' /proc/meminfo; }
printf '\nmemory: %s viewers, %s s (ramp %s s), serve throttle = 1.2, burst_seconds = 10\n' "$mem_viewers" "$mem_duration" "$mem_ramp"
printf '%-12s %12s %12s %12s %10s %10s %7s %7s %9s %11s\n' target "warm KiB" "peak KiB" "KiB/viewer" "growth/v" \
  "peak held" stalls errors segments "shmem+ KiB"
for what in hls progressive; do
  serve_start "$tmp/mem.conf"
  if [[ $what == hls ]]; then
    url=http://127.0.0.1:$serve_port/long.mp4/master.m3u8
    curl -s -o /dev/null "$url"
    curl -s -o /dev/null "http://127.0.0.1:$serve_port/long.mp4/v1/index.m3u8"
  else
    url=http://127.0.0.1:$serve_port/long.mp4
    curl -s -o /dev/null "$url?start=3600" --max-time 1 || true
  fi
  sleep 0.5
  warm=$(rss "$serve_pid")
  warm_shm=$(shm)
  peak_shm=$warm_shm
  "$bin" bench "$url" --viewers "$mem_viewers" --duration "$mem_duration" --ramp "$mem_ramp" --seek random \
    --max-error-rate 100 --json >"$tmp/mem.json" 2>"$tmp/mem.err" &
  bench_pid=$!
  peak=$warm
  while kill -0 "$bench_pid" 2>/dev/null; do
    now=$(rss "$serve_pid")
    ((now > peak)) && peak=$now
    now=$(shm)
    ((now > peak_shm)) && peak_shm=$now
    sleep 0.5
  done
  wait "$bench_pid" || { cat "$tmp/mem.err" >&2; exit 1; }
  serve_stop
  python3 - "$tmp/mem.json" "$what" "$warm" "$peak" "$mem_viewers" "$((peak_shm - warm_shm))" <<'PY'
import json, sys
r = json.load(open(sys.argv[1])); warm, peak, n = int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
shm = int(sys.argv[6])
segs = r.get("abr", {}).get("segments", "-")
print(f'{sys.argv[2]:12} {warm:>12} {peak:>12} {peak/n:>12.1f} {(peak-warm)/n:>10.1f} {r["peak_streams"]:>10} '
      f'{r["stalls"]:>7} {r["errors"]["total"]:>7} {segs:>9} {shm:>11}')
if "abr" in r:
    a = r["abr"]
    print("  HLS viewers: TTFB p50/p99 ms playlist %.2f/%.2f init %.2f/%.2f segment %.2f/%.2f; segment download p50/p99 %.2f/%.2f ms"
          % (a["ttfb_playlist_ms"]["p50"], a["ttfb_playlist_ms"]["p99"], a["ttfb_init_ms"]["p50"], a["ttfb_init_ms"]["p99"],
             a["ttfb_segment_ms"]["p50"], a["ttfb_segment_ms"]["p99"], a["segment_download_ms"]["p50"], a["segment_download_ms"]["p99"]))
PY
done
