#!/usr/bin/env bash
# ops-cost.sh — issue 17's costs, interleaved to be robust to a shared machine's drift:
#  1. requests/s and time to first byte with and without metrics: BASELINE (a build of the
#     commit before metrics, e.g. `git worktree add /tmp/base <commit>` and the same build
#     there) against LOOMIERE, both `serve` with the same config, loaded in turn by
#     `loomiere bench` (100 connections, short.mp4?start=30 as fast as they can), ROUNDS times;
#  2. TLS against plain HTTP: PARALLEL curls each fetching long.mp4?start=600 COUNT times from
#     the same LOOMIERE over http:// and https:// (certificate made here with openssl), MB/s.
# Usage: BASELINE=/tmp/base/target/.../loomiere bench/ops-cost.sh
#   LOOMIERE=PATH (default: the static release build), MEDIA=DIR (default target/test-media),
#   ROUNDS=5 DURATION=8 PARALLEL=8 COUNT=20, TMPDIR (certificate, configs, logs; default /tmp)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
bin=${LOOMIERE:-$here/target/x86_64-unknown-linux-gnu/release/loomiere}
base=${BASELINE:?set BASELINE to a loomiere binary built without metrics}
media=${MEDIA:-$here/target/test-media}
rounds=${ROUNDS:-5}
duration=${DURATION:-8}
parallel=${PARALLEL:-8}
count=${COUNT:-20}
for b in "$bin" "$base"; do [[ -x $b ]] || { echo "no binary at $b" >&2; exit 1; }; done
[[ -s $media/long.mp4 ]] || bash "$here/tests/make-media.sh" "$media" >/dev/null
media=$(cd "$media" && pwd -P)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/ops-cost.XXXXXX")
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$1/healthz" && return 0; sleep 0.1; done; echo "port $1 never answered" >&2; exit 1; }

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=127.0.0.1 \
  -addext subjectAltName=IP:127.0.0.1 -keyout "$tmp/key.pem" -out "$tmp/cert.pem" 2>/dev/null
conf() { # $1: name, $2: extra TOML
  printf 'document_root = "%s"\nthrottle = 0\nlog = "%s/%s.log"\n[server]\nmax_connections = 20000\n%s' \
    "$media" "$tmp" "$1" "$2" >"$tmp/$1.conf"
}
port_new=$(free_port) port_base=$(free_port) port_tls=$(free_port)
conf new "[tls]
listen = \"127.0.0.1:$port_tls\"
certificate = \"$tmp/cert.pem\"
key = \"$tmp/key.pem\"
"
conf base ""
"$bin" serve --listen "127.0.0.1:$port_new" --config "$tmp/new.conf" >"$tmp/new.out" 2>&1 &
pids+=($!)
"$base" serve --listen "127.0.0.1:$port_base" --config "$tmp/base.conf" >"$tmp/base.out" 2>&1 &
pids+=($!)
wait_port "$port_new"
for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$port_base/short.mp4" && break; sleep 0.1; done

median() { tr ' ' '\n' | grep . | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
declare -A got=([metrics]="" [without]="")
printf '# 1. requests/s, short.mp4?start=30, 100 connections, %s s per run, %s rounds, %s\n' \
  "$duration" "$rounds" "$(date -u +%FT%TZ)"
for ((r = 1; r <= rounds; r++)); do
  for s in metrics without; do
    port=$port_new
    [[ $s == without ]] && port=$port_base
    "$bin" bench "http://127.0.0.1:$port/short.mp4" --viewers 100 --fast --duration "$duration" \
      --seek fixed --start 30 --json >"$tmp/r.json" 2>/dev/null
    v=$(python3 -c "import json; b = json.load(open('$tmp/r.json')); t = b['ttfb_ms']; print(round(b['requests_per_s']), 'errors', b['errors']['total'], 'ttfb', t['p50'], '/', t['p90'])")
    printf '%-3s %-8s %s\n' "$r" "$s" "$v"
    got[$s]+="${v%% *} "
  done
done
printf 'median with metrics %s, without %s responses/s\n' "$(median <<<"${got[metrics]}")" "$(median <<<"${got[without]}")"

printf '# 2. throughput, %s curls x %s fetches of long.mp4?start=600, rounds interleaved\n' "$parallel" "$count"
declare -A mbs=([http]="" [https]="")
for ((r = 1; r <= rounds; r++)); do
  for s in http https; do
    url="http://127.0.0.1:$port_new/long.mp4?start=600"
    [[ $s == https ]] && url="https://127.0.0.1:$port_tls/long.mp4?start=600"
    start=$(date +%s.%N)
    curls=()
    for ((p = 0; p < parallel; p++)); do
      (for ((i = 0; i < count; i++)); do
         curl -s --cacert "$tmp/cert.pem" -o /dev/null -w '%{size_download}\n' "$url"
       done >"$tmp/sizes.$p") &
      curls+=($!)
    done
    wait "${curls[@]}"
    end=$(date +%s.%N)
    v=$(cat "$tmp"/sizes.* | awk -v s="$start" -v e="$end" '{ t += $1 } END { printf "%.0f", t / (e - s) / 1e6 }')
    printf '%-3s %-6s %s MB/s\n' "$r" "$s" "$v"
    mbs[$s]+="$v "
  done
done
printf 'median http %s MB/s, https %s MB/s\n' "$(median <<<"${mbs[http]}")" "$(median <<<"${mbs[https]}")"
