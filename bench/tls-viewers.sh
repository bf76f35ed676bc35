#!/usr/bin/env bash
# tls-viewers.sh — issue 17's TLS figure: the 10,000-viewer run of docs/performance.md §3 over
# http:// and over https:// from the same `serve`, interleaved. Each run gets a fresh `serve`
# with an HTTP and an HTTPS listener side by side (a CA and a 127.0.0.1 certificate made here
# with openssl; throttle = 1.2, burst_seconds = 10, as compare-servers.sh's paced phase), loaded
# by `loomiere bench` with VIEWERS paced viewers of long.mp4?start=3600 (playback rate,
# DURATION s, viewers started over RAMP s) on one of the two listeners, the bench trusting the
# CA with --cacert. Per run: viewers held (peak streams), errors, stalls, TTFB p50/p99, TLS
# handshake p50/p99, throughput, serve's peak RSS and CPU seconds (sampled from /proc every
# 0.25 s) and the bench's CPU seconds (/usr/bin/time). Rounds alternate which scheme goes first.
# Usage: LOOMIERE=target/release/loomiere bench/tls-viewers.sh
#   LOOMIERE=PATH (default: the static release build), MEDIA=DIR (default target/test-media),
#   ROUNDS=2 VIEWERS=10000 DURATION=30 RAMP=15, OUT=DIR (raw JSON kept there; default a temp
#   directory, removed), TMPDIR (certificates, configs, logs; default /tmp)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
bin=${LOOMIERE:-$here/target/x86_64-unknown-linux-gnu/release/loomiere}
media=${MEDIA:-$here/target/test-media}
rounds=${ROUNDS:-2}
viewers=${VIEWERS:-10000}
duration=${DURATION:-30}
ramp=${RAMP:-15}
[[ -x $bin ]] || { echo "no binary at $bin (cargo build --release, then LOOMIERE=target/release/loomiere)" >&2; exit 1; }
for tool in openssl curl python3 /usr/bin/time; do
  command -v "$tool" >/dev/null || { echo "$tool is needed (scripts/deps.sh)" >&2; exit 1; }
done
[[ -s $media/long.mp4 ]] || bash "$here/tests/make-media.sh" "$media" >/dev/null
media=$(cd "$media" && pwd -P)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/tls-viewers.XXXXXX")
out=${OUT:-$tmp/out}
mkdir -p "$out"
serve_pid=
cleanup() {
  [[ -n $serve_pid ]] && kill "$serve_pid" 2>/dev/null && wait "$serve_pid" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# A CA and a certificate for 127.0.0.1 signed by it (rustls does not take a self-signed
# CA certificate as the server's own).
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj "/CN=loomiere bench CA" \
  -keyout "$tmp/ca.key" -out "$tmp/ca.pem" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=127.0.0.1 \
  -keyout "$tmp/key.pem" -out "$tmp/csr.pem" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n' >"$tmp/ext.cnf"
openssl x509 -req -days 2 -in "$tmp/csr.pem" -CA "$tmp/ca.pem" -CAkey "$tmp/ca.key" -CAcreateserial \
  -extfile "$tmp/ext.cnf" -out "$tmp/cert.pem" 2>/dev/null

port_http=$(free_port) port_https=$(free_port)
cat >"$tmp/serve.conf" <<CONF
document_root = "$media"
throttle = 1.2
burst_seconds = 10
log = "$tmp/serve.log"
index_cache = "$tmp/marks"
[server]
max_connections = 20000
[tls]
listen = "127.0.0.1:$port_https"
certificate = "$tmp/cert.pem"
key = "$tmp/key.pem"
CONF
mkdir -p "$tmp/marks"

# sampler ROOT_PID OUT.json STOP_FILE: serve's peak RSS and the CPU seconds it used.
cat >"$tmp/sampler.py" <<'PY'
import json, os, sys, time
pid, out, stop = int(sys.argv[1]), sys.argv[2], sys.argv[3]
tick = os.sysconf("SC_CLK_TCK")
def cpu():
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / tick
def rss():
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0
c0, before = cpu(), rss()
peak = before
while not os.path.exists(stop):
    try:
        peak = max(peak, rss())
        c1 = cpu()
    except OSError:
        break
    time.sleep(0.25)
json.dump({"before_kib": before, "peak_kib": peak, "cpu_s": round(c1 - c0, 2)}, open(out, "w"))
PY

run() { # run LABEL SCHEME
  local label=$1 scheme=$2 port=$port_http
  [[ $scheme == https ]] && port=$port_https
  "$bin" serve --listen "127.0.0.1:$port_http" --config "$tmp/serve.conf" >"$tmp/serve.out" 2>"$tmp/serve.err" &
  serve_pid=$!
  for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$port_http/healthz" && break; sleep 0.1; done
  rm -f "$tmp/stop"
  python3 "$tmp/sampler.py" "$serve_pid" "$out/$label.mem.json" "$tmp/stop" &
  local sampler=$!
  echo "$label: $(date -u +%T), load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
  /usr/bin/time -f '%U %S' -o "$out/$label.time" "$bin" bench "$scheme://127.0.0.1:$port/long.mp4" --cacert "$tmp/ca.pem" --viewers "$viewers" \
    --duration "$duration" --ramp "$ramp" --seek fixed --start 3600 --max-error-rate 100 --json \
    >"$out/$label.json" 2>"$out/$label.err" || echo "$label: bench exited non-zero: $(tail -c 300 "$out/$label.err")" >&2
  touch "$tmp/stop"
  wait "$sampler"
  kill "$serve_pid" && wait "$serve_pid" 2>/dev/null || true
  serve_pid=
  cut -d' ' -f1-3 /proc/loadavg >"$out/$label.load"
}

echo "# $(date -u +%FT%TZ), $(nproc) cores, loomiere $("$bin" --version | awk '{ print $2 }') ($bin)," \
  "load $(cut -d' ' -f1-3 /proc/loadavg)"
for ((r = 1; r <= rounds; r++)); do
  if ((r % 2)); then order="http https"; else order="https http"; fi
  for s in $order; do run "$s-$r" "$s"; done
done

python3 - "$out" "$rounds" "$viewers" <<'PY'
import json, statistics, sys
out, rounds, viewers = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
print(f"| run | viewers held | errors | stalls | TTFB p50 / p99 (ms) | TLS handshake p50 / p99 (ms) | Mbit/s | serve peak RSS (MiB) | serve CPU (s) | bench CPU (s) | bench peak RSS (MiB) | load after |")
print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
med = {"http": [], "https": []}
for r in range(1, rounds + 1):
    for s in ("http", "https"):
        label = f"{s}-{r}"
        try:
            b = json.load(open(f"{out}/{label}.json"))
        except (OSError, ValueError):
            print(f"| {label} | bench failed | | | | | | | | | | |")
            continue
        m = json.load(open(f"{out}/{label}.mem.json"))
        load = open(f"{out}/{label}.load").read().strip()
        try:
            bench_cpu = f"{sum(float(x) for x in open(f'{out}/{label}.time').read().split()[-2:]):.1f}"
        except (OSError, ValueError):
            bench_cpu = "?"
        t, h = b["ttfb_ms"], b.get("tls_handshake_ms")
        hs = f"{h['p50']:.1f} / {h['p99']:.1f}" if h else "–"
        e = b["errors"]
        errs = ", ".join(f"{k} {v}" for k, v in e.items() if k not in ("status", "total") and v)
        errs = f"{e['total']} ({errs})" if errs else str(e["total"])
        print(f"| {label} | {b['peak_streams']:,} | {errs} | {b['stalls']} | {t['p50']:.1f} / {t['p99']:.1f} | {hs} | "
              f"{b['mbit_per_s']:.1f} | {m['peak_kib'] / 1024:.1f} | {m['cpu_s']} | {bench_cpu} | {(b.get('peak_rss_kib') or 0) / 1024:.0f} | {load} |")
        med[s].append((b["peak_streams"], m["peak_kib"] / 1024, m["cpu_s"], t["p50"], t["p99"], b["mbit_per_s"]))
names = ["viewers held", "peak RSS MiB", "CPU s", "TTFB p50 ms", "TTFB p99 ms", "Mbit/s"]
if med["http"] and med["https"]:
    print()
    for i, n in enumerate(names):
        a = statistics.median(x[i] for x in med["http"])
        b = statistics.median(x[i] for x in med["https"])
        ratio = f"{b / a:.2f}" if a else "–"
        print(f"median {n}: http {a:.2f}, https {b:.2f}, https / http {ratio}")
PY
