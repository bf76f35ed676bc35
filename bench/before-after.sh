#!/usr/bin/env bash
# before-after.sh — two builds of `loomiere serve` (e.g. before and after a change) measured in
# ONE run, interleaved, so the machine's drift falls on both alike:
#   1. time to first byte of the 2-hour seek (long.mp4?start=3600, 4 MB moov), 1 viewer reading
#      as fast as it can (`throttle = 0`), $ROUNDS rounds of $DURATION s per build;
#   2. $VIEWERS paced viewers of the same seek (playback rate, `throttle = 1.2`,
#      `burst_seconds = 10`, started over $PACED/2 s, each run $PACED s), $PACED_ROUNDS rounds per
#      build, with the server's peak RSS (VmRSS sampled every 0.5 s).
# The order alternates each round (before first in odd rounds, after first in even ones). Both
# servers run on 127.0.0.1 with the same configuration (`index_cache` set, as
# compare-servers.sh does) and are stopped by PID; the load generator is AFTER's `bench` for
# both. The CGI HEAD start-up is measured by bench/cgi-startup.sh (`BEFORE=`, `ROUNDS=`).
# Usage: BEFORE=BIN [AFTER=BIN] bench/before-after.sh   (AFTER defaults to the static release
#   build, target/x86_64-unknown-linux-gnu/release/loomiere)
#   MEDIA=DIR (default target/test-media)  ROUNDS=7 DURATION=8  VIEWERS=10000 PACED=30 PACED_ROUNDS=2
# Prints every run and the medians, with before/after ratios and the load average.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
after=${AFTER:-$here/target/x86_64-unknown-linux-gnu/release/loomiere}
before=${BEFORE:?BEFORE=path of the other build}
media=${MEDIA:-$here/target/test-media}
rounds=${ROUNDS:-7}
duration=${DURATION:-8}
viewers=${VIEWERS:-10000}
paced=${PACED:-30}
paced_rounds=${PACED_ROUNDS:-2}
for b in "$before" "$after"; do [[ -x $b ]] || { echo "no binary at $b" >&2; exit 1; }; done
for t in curl python3; do command -v $t >/dev/null || { echo "$t missing" >&2; exit 1; }; done
[[ -s $media/long.mp4 ]] || bash "$here/tests/make-media.sh" "$media" >/dev/null
media=$(cd "$media" && pwd -P)
tmp=$(mktemp -d /tmp/before-after.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$1/" && return 0; sleep 0.1; done; echo "port $1 never answered" >&2; exit 1; }

write_conf() { # write_conf THROTTLE
  printf 'document_root = "%s"\nthrottle = %s\nburst_seconds = 10\nlog = "%s/loomiere.log"\nindex_cache = "%s/marks"\n[server]\nmax_connections = 20000\n' \
    "$media" "$1" "$tmp" "$tmp" >"$tmp/stream.conf.tmp"
  mv "$tmp/stream.conf.tmp" "$tmp/stream.conf"
}
mkdir -p "$tmp/marks"
write_conf 0

declare -A port pid
for b in before after; do
  bin=$before
  [[ $b == after ]] && bin=$after
  port[$b]=$(free_port)
  "$bin" serve --listen "127.0.0.1:${port[$b]}" --config "$tmp/stream.conf" >"$tmp/$b.out" 2>&1 &
  pid[$b]=$!
  pids+=("${pid[$b]}")
  wait_port "${port[$b]}"
  code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:${port[$b]}/long.mp4?start=3600")
  [[ $code == 200 ]] || { echo "$b answered $code" >&2; exit 1; }
done

order() { (($1 % 2)) && echo "before after" || echo "after before"; }
load() { cut -d' ' -f1-3 /proc/loadavg; }

# ---- 1. time to first byte ----------------------------------------------------------------------
echo "# 1. TTFB, long.mp4?start=3600, 1 viewer, --fast, $duration s per run, $rounds rounds, $(date -u +%FT%TZ)"
for ((r = 1; r <= rounds; r++)); do
  for b in $(order "$r"); do
    l=$(load)
    "$after" bench "http://127.0.0.1:${port[$b]}/long.mp4" --viewers 1 --fast --duration "$duration" \
      --seek fixed --start 3600 --json >"$tmp/ttfb-$b-$r.json" 2>"$tmp/err"
    python3 - "$tmp/ttfb-$b-$r.json" "$r" "$b" "$l" <<'PY'
import json, sys
j = json.load(open(sys.argv[1])); t = j["ttfb_ms"]
print(f"round {sys.argv[2]} {sys.argv[3]:6} responses {j['responses']:6} errors {j['errors']['total']} ttfb p50 {t['p50']:.3f} p90 {t['p90']:.3f} p99 {t['p99']:.3f} ms  (load {sys.argv[4]})")
PY
  done
done

# ---- 2. paced viewers ---------------------------------------------------------------------------
write_conf 1.2
sleep 1
cat >"$tmp/rss.py" <<'PY'
# rss.py PID OUT STOP: the peak VmRSS (KiB) of PID while STOP does not exist, and the first one.
import os, sys, time
pid, out, stop = sys.argv[1], sys.argv[2], sys.argv[3]
def rss():
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0
first = peak = rss()
while not os.path.exists(stop):
    peak = max(peak, rss())
    time.sleep(0.5)
open(out, "w").write(f"{first} {max(peak, rss())}\n")
PY
echo "# 2. $viewers paced viewers, long.mp4?start=3600, throttle 1.2, burst 10 s, $paced s, ramp $((paced / 2)) s, $paced_rounds rounds"
for ((r = 1; r <= paced_rounds; r++)); do
  for b in $(order "$r"); do
    sleep 3
    rm -f "$tmp/stop"
    python3 "$tmp/rss.py" "${pid[$b]}" "$tmp/rss-$b-$r" "$tmp/stop" &
    sampler=$!
    l=$(load)
    "$after" bench "http://127.0.0.1:${port[$b]}/long.mp4" --viewers "$viewers" --duration "$paced" \
      --ramp $((paced / 2)) --seek fixed --start 3600 --json >"$tmp/paced-$b-$r.json" 2>"$tmp/err" ||
      echo "bench failed: $(head -c 300 "$tmp/err")" >&2
    touch "$tmp/stop"
    wait "$sampler"
    python3 - "$tmp/paced-$b-$r.json" "$tmp/rss-$b-$r" "$r" "$b" "$l" <<'PY'
import json, sys
j = json.load(open(sys.argv[1])); t = j["ttfb_ms"]
first, peak = map(int, open(sys.argv[2]).read().split())
print(f"round {sys.argv[3]} {sys.argv[4]:6} peak streams {j['peak_streams']} errors {j['errors']['total']} stalls {j['stalls']} "
      f"ttfb p50 {t['p50']:.2f} p99 {t['p99']:.2f} max {t['max']:.2f} ms  RSS {first / 1024:.1f} -> {peak / 1024:.1f} MiB  (load {sys.argv[5]})")
PY
  done
done

# ---- medians ------------------------------------------------------------------------------------
python3 - "$tmp" "$rounds" "$paced_rounds" <<'PY'
import json, statistics as st, sys
tmp, rounds, prounds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
def ttfb(b, k):
    return [json.load(open(f"{tmp}/ttfb-{b}-{r}.json"))["ttfb_ms"][k] for r in range(1, rounds + 1)]
print("# medians (before / after = ratio; spread = min..max of the rounds)")
for k in ("p50", "p90"):
    b, a = ttfb("before", k), ttfb("after", k)
    print(f"TTFB {k}: before {st.median(b):.3f} ms ({min(b):.3f}..{max(b):.3f}), after {st.median(a):.3f} ms ({min(a):.3f}..{max(a):.3f}), after/before {st.median(a) / st.median(b):.2f}")
for name in ("before", "after"):
    peaks = [int(open(f"{tmp}/rss-{name}-{r}").read().split()[1]) / 1024 for r in range(1, prounds + 1)]
    runs = [json.load(open(f"{tmp}/paced-{name}-{r}.json")) for r in range(1, prounds + 1)]
    print(f"paced {name}: peak streams {[j['peak_streams'] for j in runs]}, stalls {[j['stalls'] for j in runs]}, "
          f"errors {[j['errors']['total'] for j in runs]}, TTFB p50 {[round(j['ttfb_ms']['p50'], 2) for j in runs]} ms, "
          f"peak RSS {[round(p, 1) for p in peaks]} MiB")
PY
echo "machine: $(nproc) cores, load $(load), $(date -u +%FT%TZ)"
