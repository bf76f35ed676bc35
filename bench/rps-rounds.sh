#!/usr/bin/env bash
# rps-rounds.sh — issue 5's requests/s comparison, made robust to a shared machine's drift:
# `loomiere serve` and nginx's mp4 module (both on 127.0.0.1, both writing an access-log line
# per request, nginx with open_file_cache and sendfile) are loaded in turn by `loomiere bench`
# with 100 connections fetching short.mp4?start=30 as fast as they can, ROUNDS times each,
# interleaved; prints every round (responses/s and time to first byte) and the medians.
# Usage: bench/rps-rounds.sh        ROUNDS=5 DURATION=8 (seconds per run)
#   LOOMIERE=PATH (default: the static release build), MEDIA=DIR (default target/test-media)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
bin=${LOOMIERE:-$here/target/x86_64-unknown-linux-gnu/release/loomiere}
media=${MEDIA:-$here/target/test-media}
rounds=${ROUNDS:-5}
duration=${DURATION:-8}
[[ -x $bin ]] || { echo "no binary at $bin (see docs/cgi.md, static binary)" >&2; exit 1; }
[[ -s $media/short.mp4 ]] || bash "$here/tests/make-media.sh" "$media" >/dev/null
media=$(cd "$media" && pwd -P)
nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)
tmp=$(mktemp -d /tmp/rps-rounds.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$1/" && return 0; sleep 0.1; done; echo "port $1 never answered" >&2; exit 1; }

port_serve=$(free_port)
printf 'document_root = "%s"\nthrottle = 0\nlog = "%s/loomiere.log"\n[server]\nmax_connections = 20000\n' \
  "$media" "$tmp" >"$tmp/stream.conf"
"$bin" serve --listen "127.0.0.1:$port_serve" --config "$tmp/stream.conf" >"$tmp/serve.out" 2>&1 &
pids+=($!)
port_nginx=$(free_port)
mkdir -p "$tmp/nginx/logs"
# shellcheck source=nginx-mp4.sh
. "$here/bench/nginx-mp4.sh"
nginx_mp4_conf "$tmp/nginx" "$port_nginx" "$media" "$tmp/nginx/logs/access.log" >"$tmp/nginx.conf"
"$nginx_bin" -p "$tmp/nginx" -c "$tmp/nginx.conf" -e "$tmp/nginx/logs/error.log" >"$tmp/nginx.out" 2>&1 &
pids+=($!)
wait_port "$port_serve"
wait_port "$port_nginx"

declare -A got=([serve]="" [nginx]="") ttfb=([serve]="" [nginx]="")
printf '# requests/s, short.mp4?start=30, 100 connections, %s s per run, %s rounds, %s\n' \
  "$duration" "$rounds" "$(date -u +%FT%TZ)"
printf '%-6s %-8s %s\n' round server "responses/s, errors, time to first byte p50 / p90 ms"
for ((r = 1; r <= rounds; r++)); do
  for s in serve nginx; do
    port=$port_serve
    [[ $s == nginx ]] && port=$port_nginx
    "$bin" bench "http://127.0.0.1:$port/short.mp4" --viewers 100 --fast --duration "$duration" \
      --seek fixed --start 30 --json >"$tmp/r.json" 2>/dev/null
    v=$(python3 -c "import json; b = json.load(open('$tmp/r.json')); t = b['ttfb_ms']; print(round(b['requests_per_s']), 'errors', b['errors']['total'], 'ttfb', t['p50'], '/', t['p90'])")
    printf '%-6s %-8s %s\n' "$r" "$s" "$v"
    got[$s]+="${v%% *} "
    t=${v#*ttfb }
    ttfb[$s]+="${t%% *} "
  done
done
median() { tr ' ' '\n' | grep . | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
printf 'median serve %s, nginx %s responses/s\n' "$(median <<<"${got[serve]}")" "$(median <<<"${got[nginx]}")"
printf 'median time to first byte p50: serve %s ms, nginx %s ms\n' "$(median <<<"${ttfb[serve]}")" "$(median <<<"${ttfb[nginx]}")"
