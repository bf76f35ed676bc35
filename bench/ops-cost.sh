#!/usr/bin/env bash
# ops-cost.sh — issue 17's costs, on ONE binary, interleaved to be robust to a shared
# machine's drift:
#  1. requests/s and time to first byte with metrics on and off: three `serve` processes of
#     the same binary and configuration — `on` and `on2` (metrics on, the default) and `off`
#     (`[metrics] enabled = false`) — loaded in turn by `loomiere bench` (100 connections,
#     short.mp4?start=30 as fast as they can), ROUNDS times, the order rotating each round.
#     off / on is the cost of metrics; on2 / on (the A/A pair) is the noise.
#  2. TLS against plain HTTP with curl (CURLS=0 skips it): PARALLEL curls each fetching
#     long.mp4?start=600 COUNT times from the `on` server over http:// and https://, MB/s.
#     The 10,000-viewer comparison is bench/tls-viewers.sh.
# Usage: LOOMIERE=target/release/loomiere bench/ops-cost.sh
#   LOOMIERE=PATH (default: the static release build), MEDIA=DIR (default target/test-media),
#   ROUNDS=7 DURATION=8 PARALLEL=8 COUNT=20 CURLS=1, TMPDIR (certificates, configs, logs)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
bin=${LOOMIERE:-$here/target/x86_64-unknown-linux-gnu/release/loomiere}
media=${MEDIA:-$here/target/test-media}
rounds=${ROUNDS:-7}
duration=${DURATION:-8}
parallel=${PARALLEL:-8}
count=${COUNT:-20}
curls=${CURLS:-1}
[[ -x $bin ]] || { echo "no binary at $bin" >&2; exit 1; }
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
declare -A port
for s in on on2 off; do port[$s]=$(free_port); done
port_tls=$(free_port)
conf on "[tls]
listen = \"127.0.0.1:$port_tls\"
certificate = \"$tmp/cert.pem\"
key = \"$tmp/key.pem\"
"
conf on2 ""
conf off "[metrics]
enabled = false
"
for s in on on2 off; do
  "$bin" serve --listen "127.0.0.1:${port[$s]}" --config "$tmp/$s.conf" >"$tmp/$s.out" 2>&1 &
  pids+=($!)
done
for s in on on2 off; do wait_port "${port[$s]}"; done
[[ $(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:${port[off]}/metrics") == 404 ]] ||
  { echo "the metrics-off server answers /metrics" >&2; exit 1; }

median() { tr ' ' '\n' | grep . | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
declare -A rps=([on]="" [on2]="" [off]="") ttfb=([on]="" [on2]="" [off]="")
printf '# 1. requests/s, short.mp4?start=30, 100 connections, %s s per run, %s rounds, %s, load %s\n' \
  "$duration" "$rounds" "$(date -u +%FT%TZ)" "$(cut -d' ' -f1-3 /proc/loadavg)"
orders=("on off on2" "off on2 on" "on2 on off")
for ((r = 1; r <= rounds; r++)); do
  for s in ${orders[$(((r - 1) % 3))]}; do
    "$bin" bench "http://127.0.0.1:${port[$s]}/short.mp4" --viewers 100 --fast --duration "$duration" \
      --seek fixed --start 30 --json >"$tmp/r.json" 2>/dev/null
    read -r v p50 p90 errs < <(python3 -c "import json; b = json.load(open('$tmp/r.json')); t = b['ttfb_ms']; print(round(b['requests_per_s']), t['p50'], t['p90'], b['errors']['total'])")
    printf '%-3s %-4s %6s responses/s  ttfb p50 %s / p90 %s ms  errors %s\n' "$r" "$s" "$v" "$p50" "$p90" "$errs"
    rps[$s]+="$v "
    ttfb[$s]+="$p50 "
  done
done
ratio() { python3 -c "print(f'{$1 / $2:.3f}' if $2 else '-')"; }
m_on=$(median <<<"${rps[on]}") m_on2=$(median <<<"${rps[on2]}") m_off=$(median <<<"${rps[off]}")
t_on=$(median <<<"${ttfb[on]}") t_on2=$(median <<<"${ttfb[on2]}") t_off=$(median <<<"${ttfb[off]}")
printf 'median responses/s: on %s, off %s, on2 %s; off / on %s, on2 / on (A/A) %s\n' \
  "$m_on" "$m_off" "$m_on2" "$(ratio "$m_off" "$m_on")" "$(ratio "$m_on2" "$m_on")"
printf 'median TTFB p50 ms: on %s, off %s, on2 %s; off / on %s, on2 / on (A/A) %s\n' \
  "$t_on" "$t_off" "$t_on2" "$(ratio "$t_off" "$t_on")" "$(ratio "$t_on2" "$t_on")"
printf 'load at the end: %s\n' "$(cut -d' ' -f1-3 /proc/loadavg)"
((curls)) || exit 0

printf '# 2. throughput, %s curls x %s fetches of long.mp4?start=600, rounds interleaved\n' "$parallel" "$count"
declare -A mbs=([http]="" [https]="")
for ((r = 1; r <= rounds; r++)); do
  for s in http https; do
    url="http://127.0.0.1:${port[on]}/long.mp4?start=600"
    [[ $s == https ]] && url="https://127.0.0.1:$port_tls/long.mp4?start=600"
    start=$(date +%s.%N)
    jobs_=()
    for ((p = 0; p < parallel; p++)); do
      (for ((i = 0; i < count; i++)); do
         curl -s --cacert "$tmp/cert.pem" -o /dev/null -w '%{size_download}\n' "$url"
       done >"$tmp/sizes.$p") &
      jobs_+=($!)
    done
    wait "${jobs_[@]}"
    end=$(date +%s.%N)
    v=$(cat "$tmp"/sizes.* | awk -v s="$start" -v e="$end" '{ t += $1 } END { printf "%.0f", t / (e - s) / 1e6 }')
    printf '%-3s %-6s %s MB/s\n' "$r" "$s" "$v"
    mbs[$s]+="$v "
  done
done
printf 'median http %s MB/s, https %s MB/s\n' "$(median <<<"${mbs[http]}")" "$(median <<<"${mbs[https]}")"
