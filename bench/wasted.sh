#!/usr/bin/env bash
# wasted.sh — issue 11's wasted-bandwidth figure. The same viewers (same seed: the same seeks
# and the same watch times, drawn from `--watch retention` unless WATCH says otherwise) are
# loaded by `loomiere bench` against three servers on 127.0.0.1, ROUNDS times each,
# interleaved (the machine is shared and drifts):
#   serve-throttled   `loomiere serve`, throttle = $THROTTLE, burst_seconds = $BURST (default: the
#                     server's default)
#   serve-unthrottled `loomiere serve`, throttle = 0
#   nginx-mp4         nginx's mp4 module (bench/nginx-mp4.sh), unthrottled as it ships
# For each run: bytes the server sent (its access log, answers with status 200), minutes of
# media the viewers watched and bytes watched (the bench's report), and from them bytes sent
# per viewer-minute watched and the wasted share (sent − watched) / sent; the bench's own
# client-side wasted fraction (received, not watched, when the viewer left); stalls.
# Prints every run, then the medians per server and the ratio of wasted bytes
# (throttled / nginx; the issue's target is ≤ 0.3 with zero stalls).
#
# Usage: bench/wasted.sh
#   ROUNDS=3 DURATION=90 (s per run) VIEWERS=60 RAMP=10 WATCH=retention SEED=1
#   SEEK=random (or a start in seconds; 0 = whole-file answers, no start parameter)
#   THROTTLE=1.2 BURST= (burst_seconds)  LOOMIERE=PATH (default target/release/loomiere)
#   MEDIA=DIR FILE=NAME (default: target/bench-media/ten-minutes.mp4, made with ffmpeg when
#   missing: 600 s, 640×360, 1 Mbit/s constant-rate H.264 + 96 kbit/s AAC, moov first)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
bin=${LOOMIERE:-$here/target/release/loomiere}
media=${MEDIA:-$here/target/bench-media}
file=${FILE:-ten-minutes.mp4}
rounds=${ROUNDS:-3}
duration=${DURATION:-90}
viewers=${VIEWERS:-60}
ramp=${RAMP:-10}
watch=${WATCH:-retention}
seed=${SEED:-1}
seek=${SEEK:-random}
throttle=${THROTTLE:-1.2}
burst=${BURST:-}
[[ -x $bin ]] || { echo "no binary at $bin (cargo build --release, or set LOOMIERE)" >&2; exit 1; }
for tool in nginx curl python3; do
  command -v "$tool" >/dev/null || [[ -x /usr/sbin/$tool ]] || { echo "$tool is needed (scripts/deps.sh)" >&2; exit 1; }
done
mkdir -p "$media"
media=$(cd "$media" && pwd -P)
if [[ ! -s $media/$file ]]; then
  [[ $file == ten-minutes.mp4 ]] || { echo "no $media/$file" >&2; exit 1; }
  echo "making $media/$file (ffmpeg, about a minute)" >&2
  ffmpeg -loglevel error -y -f lavfi -i testsrc2=size=640x360:rate=25 -f lavfi -i sine=frequency=440:sample_rate=48000 \
    -t 600 -c:v libx264 -preset veryfast -b:v 1M -minrate 1M -maxrate 1M -bufsize 1M -x264-params nal-hrd=cbr \
    -g 50 -pix_fmt yuv420p -c:a aac -b:a 96k -movflags +faststart "$media/.$file.tmp.mp4"
  mv "$media/.$file.tmp.mp4" "$media/$file"
fi
nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)
tmp=$(mktemp -d /tmp/wasted.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$1/" && return 0; sleep 0.1; done; echo "port $1 never answered" >&2; exit 1; }

declare -A port log
for s in serve-throttled serve-unthrottled; do
  port[$s]=$(free_port)
  log[$s]=$tmp/$s.log
  t=$throttle
  [[ $s == serve-unthrottled ]] && t=0
  b=
  [[ -n $burst ]] && b="burst_seconds = $burst"
  printf 'document_root = "%s"\nthrottle = %s\n%s\nlog = "%s"\n[server]\nmax_connections = 20000\n' \
    "$media" "$t" "$b" "${log[$s]}" >"$tmp/$s.conf"
  "$bin" serve --listen "127.0.0.1:${port[$s]}" --config "$tmp/$s.conf" >"$tmp/$s.out" 2>&1 &
  pids+=($!)
done
port[nginx-mp4]=$(free_port)
log[nginx-mp4]=$tmp/nginx/logs/access.log
mkdir -p "$tmp/nginx/logs"
# shellcheck source=nginx-mp4.sh
. "$here/bench/nginx-mp4.sh"
nginx_mp4_conf "$tmp/nginx" "${port[nginx-mp4]}" "$media" "${log[nginx-mp4]}" >"$tmp/nginx.conf"
"$nginx_bin" -p "$tmp/nginx" -c "$tmp/nginx.conf" -e "$tmp/nginx/logs/error.log" >"$tmp/nginx.out" 2>&1 &
pids+=($!)
servers=(serve-throttled serve-unthrottled nginx-mp4)
for s in "${servers[@]}"; do wait_port "${port[$s]}"; done

seek_args=(--seek random)
[[ $seek == random ]] || seek_args=(--seek fixed --start "$seek")
printf '# wasted bandwidth: %s, %s viewers, %s s per run (ramp %s s), --watch %s, seek %s, seed %s, throttle %s, burst_seconds %s, %s rounds, %s, %s\n' \
  "$file" "$viewers" "$duration" "$ramp" "$watch" "$seek" "$seed" "$throttle" "${burst:-default}" "$rounds" "$(date -u +%FT%TZ)" \
  "$("$bin" --version)"
printf '%-5s %-17s %10s %10s %10s %12s %8s %9s %6s %6s\n' round server "sent MB" "watched" "min" \
  "MB/view-min" "wasted" "bench w." stalls errors
declare -A runs
for ((r = 1; r <= rounds; r++)); do
  for s in "${servers[@]}"; do
    before=$(wc -l <"${log[$s]}" 2>/dev/null || echo 0)
    "$bin" bench "http://127.0.0.1:${port[$s]}/$file" --viewers "$viewers" --duration "$duration" --ramp "$ramp" \
      "${seek_args[@]}" --watch "$watch" --seed "$seed" --max-error-rate 100 --json >"$tmp/r.json" 2>"$tmp/r.err" ||
      { cat "$tmp/r.err" >&2; exit 1; }
    # Connections cut at the end of the run are logged when the server notices the close.
    sleep 2
    sent=$(tail -n +"$((before + 1))" "${log[$s]}" | awk '$9 == 200 { s += $10 } END { print s + 0 }')
    line=$(python3 - "$tmp/r.json" "$sent" <<'PY'
import json, sys
r = json.load(open(sys.argv[1])); sent = int(sys.argv[2])
mins = r["watched_s"] / 60
wasted = max(sent - r["bytes_watched"], 0)
print(f'{sent/1e6:.1f} {r["bytes_watched"]/1e6:.1f} {mins:.1f} {sent/1e6/mins if mins else 0:.3f} '
      f'{wasted/sent if sent else 0:.3f} {r["wasted_fraction"]:.3f} {r["stalls"]} {r["errors"]["total"]} {wasted}')
PY
)
    read -r sent_mb watched_mb mins per_min frac bench_frac stalls errors wasted_bytes <<<"$line"
    printf '%-5s %-17s %10s %10s %10s %12s %8s %9s %6s %6s\n' "$r" "$s" "$sent_mb" "$watched_mb" "$mins" \
      "$per_min" "$frac" "$bench_frac" "$stalls" "$errors"
    runs[$s]+="$per_min $frac $bench_frac $stalls $wasted_bytes;"
  done
done
median() { tr ' ' '\n' | grep . | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
col() { tr ';' '\n' | grep . | awk -v c="$1" '{ print $c }' | tr '\n' ' '; }
printf '\nmedians over %s rounds\n%-17s %12s %8s %9s %6s %14s\n' "$rounds" server "MB/view-min" wasted "bench w." \
  stalls "wasted MB"
declare -A wasted_median
for s in "${servers[@]}"; do
  wasted_median[$s]=$(col 5 <<<"${runs[$s]}" | median)
  printf '%-17s %12s %8s %9s %6s %14s\n' "$s" "$(col 1 <<<"${runs[$s]}" | median)" \
    "$(col 2 <<<"${runs[$s]}" | median)" "$(col 3 <<<"${runs[$s]}" | median)" \
    "$(col 4 <<<"${runs[$s]}" | median)" "$(awk -v b="${wasted_median[$s]}" 'BEGIN { printf "%.1f", b / 1e6 }')"
done
awk -v t="${wasted_median[serve-throttled]}" -v n="${wasted_median[nginx-mp4]}" \
  'BEGIN { if (n > 0) printf "wasted bytes, throttled serve / nginx: %.2f (target <= 0.30)\n", t / n }'
