#!/usr/bin/env bash
# compare-servers.sh — issue 5: `loomiere serve` against lighttpd running loomiere as a CGI
# program (a process per request) and against nginx's mp4 module, on one machine, over loopback,
# loaded by `loomiere bench`.
#
# Servers (all on 127.0.0.1, free ports, started here and stopped by PID at the end):
#   serve     `loomiere serve --config stream.conf` ([server] max_connections = 20000; default
#             runtime: one worker thread per CPU)
#   lighttpd  Debian's lighttpd, `cgi.assign` straight at the loomiere binary (cgi/lighttpd.conf:
#             `server.stream-response-body = 2`), server.max-fds 20000
#   nginx     Debian's nginx, `worker_processes auto`, `mp4; mp4_start_key_frame on;`,
#             `open_file_cache`, worker_connections / worker_rlimit_nofile 20000, sendfile on
# serve and the CGI read the same stream.conf, rewritten between phases (it is re-read on
# every request): `throttle = 0` for phases 1-2, `throttle = 1.2` (burst_seconds = 10) for 3;
# `index_cache` is set, so the CGI processes read each movie's seek marks from a file (serve
# keeps them in memory).
#
# Phases (each server in turn; raw JSON from `loomiere bench --json` kept in $OUT):
#   1. time to first byte, long.mp4?start=3600 (2 h, 4 MB moov), --fast: 1 viewer and 20 viewers
#   2. requests/s, short.mp4?start=30, 100 connections, --fast
#   3. paced viewers (playback rate, 4 s read-ahead) of long.mp4?start=3600: $LEVELS viewers for
#      serve, $CGI_LEVELS for lighttpd+CGI, $NGINX_LEVELS for nginx. nginx sends no
#      X-Content-Duration, so its
#      viewers get --bitrate = serve's Content-Length / X-Content-Duration for the same URL.
# Memory: a sampler reads /proc every 0.5 s for the server's whole process tree (nginx master +
# workers; lighttpd + every CGI child) and keeps the peak of the summed RSS and PSS (PSS shares
# the pages the processes have in common, e.g. the binary's text, among them), and the CPU time
# (user+sys, reaped children included) used during the run.
# Safety: nginx's mp4 module keeps each request's rebuilt index in memory until the response
# ends; a paced level whose projection (from the previous level) exceeds $NGINX_BUDGET_MIB is
# skipped, and every nginx process runs under RLIMIT_AS = $NGINX_BUDGET_MIB (allocation failures
# become errors in the report instead of an OOM-killed machine).
#
# Usage: bench/compare-servers.sh        (about 10-12 minutes)
#   LOOMIERE=PATH   binary (default: the static release build,
#                   target/x86_64-unknown-linux-gnu/release/loomiere)
#   MEDIA=DIR       test media (default target/test-media, made by tests/make-media.sh)
#   OUT=DIR         where the raw results go (default target/compare-servers)
#   DURATION=S      seconds per phase-1/2 run (default 15); PACED=S per paced run (default 30)
#   LEVELS="1000 5000 10000" (serve)  CGI_LEVELS="100 500 1000"  NGINX_LEVELS="1000 3000 5000 10000"
#   NGINX_BUDGET_MIB=6144
# Prints markdown tables (for docs/performance.md) on stdout; progress on stderr.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd -P)
bin=${LOOMIERE:-$root/target/x86_64-unknown-linux-gnu/release/loomiere}
media=${MEDIA:-$root/target/test-media}
out=${OUT:-$root/target/compare-servers}
duration=${DURATION:-15}
paced=${PACED:-30}
levels=${LEVELS:-1000 5000 10000}
cgi_levels=${CGI_LEVELS:-100 500 1000}
nginx_levels=${NGINX_LEVELS:-1000 3000 5000 10000}
budget_mib=${NGINX_BUDGET_MIB:-6144}

for t in curl python3 prlimit; do command -v $t >/dev/null || { echo "$t missing" >&2; exit 1; }; done
nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)
lighttpd_bin=$(command -v lighttpd || echo /usr/sbin/lighttpd)
[[ -x $nginx_bin && -x $lighttpd_bin ]] || { echo "nginx and lighttpd are needed" >&2; exit 1; }
[[ -x $bin ]] || { echo "no binary at $bin: RUSTFLAGS='-C target-feature=+crt-static -C relocation-model=static' cargo build --release --target x86_64-unknown-linux-gnu" >&2; exit 1; }
bin=$(cd "$(dirname "$bin")" && pwd -P)/$(basename "$bin")
if [[ ! -s $media/long.mp4 ]]; then
  mkdir -p "$media"
  bash tests/make-media.sh "$media" >/dev/null
fi
media=$(cd "$media" && pwd -P)
mkdir -p "$out"
rm -f "$out"/*.json
cat "$media/long.mp4" "$media/short.mp4" >/dev/null # page cache

tmp=$(mktemp -d /tmp/compare-servers.XXXXXX)
serve_pid= lighttpd_pid= nginx_pid= sampler_pid=
say() { echo "== $(date -u +%T) $*" >&2; }

# ---- stopping everything by PID -----------------------------------------------------------------
children_of() { pgrep -P "$1" || true; } # PIDs whose parent is $1
stop_pid() { # stop_pid PID [children too]
  local pid=$1 kids=
  [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null || return 0
  [[ ${2:-} == tree ]] && kids=$(children_of "$pid")
  kill "$pid" 2>/dev/null || true
  for k in $kids; do kill "$k" 2>/dev/null || true; done
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
  for k in $kids; do kill -KILL "$k" 2>/dev/null || true; done
  wait "$pid" 2>/dev/null || true
}
cleanup() {
  [[ -n $sampler_pid ]] && kill "$sampler_pid" 2>/dev/null
  stop_pid "$serve_pid"
  stop_pid "$lighttpd_pid" tree
  stop_pid "$nginx_pid"
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_port() { # wait_port PORT PID NAME
  for _ in $(seq 100); do
    curl -s -o /dev/null "http://127.0.0.1:$1/" && return 0
    kill -0 "$2" 2>/dev/null || { echo "$3 exited at start:" >&2; cat "$tmp/$3".* >&2 2>/dev/null; exit 1; }
    sleep 0.1
  done
  echo "$3 does not answer on port $1" >&2; exit 1
}

# ---- the shared loomiere configuration ----------------------------------------------------------
write_conf() { # write_conf THROTTLE
  cat >"$tmp/stream.conf.tmp" <<CONF
document_root = "$media"
throttle = $1
burst_seconds = 10
log = "$tmp/loomiere.log"
index_cache = "$tmp/marks"
[server]
max_connections = 20000
CONF
  mv "$tmp/stream.conf.tmp" "$tmp/stream.conf"
}
mkdir -p "$tmp/marks"
write_conf 0

# ---- serve --------------------------------------------------------------------------------------
port_serve=$(free_port)
"$bin" serve --listen "127.0.0.1:$port_serve" --config "$tmp/stream.conf" >"$tmp/serve.out" 2>"$tmp/serve.err" &
serve_pid=$!
wait_port "$port_serve" "$serve_pid" serve

# ---- lighttpd + loomiere as CGI -----------------------------------------------------------------
port_lighttpd=$(free_port)
mkdir -p "$tmp/lighttpd"
sed -e "s|@ROOT@|$media|g" -e "s|@PORT@|$port_lighttpd|g" -e "s|@RUN@|$tmp/lighttpd|g" \
  -e "s|@CONFIG@|$tmp/stream.conf|g" -e "s|@LOOMIERE@|$bin|g" cgi/lighttpd.conf >"$tmp/lighttpd.conf"
cat >>"$tmp/lighttpd.conf" <<CONF
server.max-fds = 20000
server.max-connections = 6000
server.listen-backlog = 4096
CONF
"$lighttpd_bin" -D -f "$tmp/lighttpd.conf" >"$tmp/lighttpd.out" 2>&1 &
lighttpd_pid=$!
wait_port "$port_lighttpd" "$lighttpd_pid" lighttpd

# ---- nginx mp4 ----------------------------------------------------------------------------------
port_nginx=$(free_port)
mkdir -p "$tmp/nginx/logs"
# shellcheck source=nginx-mp4.sh
. bench/nginx-mp4.sh
nginx_mp4_conf "$tmp/nginx" "$port_nginx" "$media" off >"$tmp/nginx.conf"
prlimit --as=$((budget_mib * 1024 * 1024)) -- \
  "$nginx_bin" -p "$tmp/nginx" -c "$tmp/nginx.conf" -e "$tmp/nginx/logs/error.log" >"$tmp/nginx.out" 2>&1 &
nginx_pid=$!
wait_port "$port_nginx" "$nginx_pid" nginx

declare -A pid_of=([serve]=$serve_pid [lighttpd]=$lighttpd_pid [nginx]=$nginx_pid)
declare -A port_of=([serve]=$port_serve [lighttpd]=$port_lighttpd [nginx]=$port_nginx)

# ---- the sampler --------------------------------------------------------------------------------
cat >"$tmp/sampler.py" <<'PY'
# sampler.py ROOT_PID OUT.json STOP_FILE: peak RSS/PSS of ROOT_PID's process tree, CPU used.
import json, os, sys, time
root, out, stop = int(sys.argv[1]), sys.argv[2], sys.argv[3]
tick = os.sysconf("SC_CLK_TCK")
def tree():
    parent = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                s = open(f"/proc/{d}/stat").read()
            except OSError:
                continue
            parent[int(d)] = int(s.rsplit(")", 1)[1].split()[1])
    kids, todo = [], [root]
    while todo:
        p = todo.pop()
        kids.append(p)
        todo.extend(c for c, pp in parent.items() if pp == p)
    return kids
def field(path, name):
    try:
        for line in open(path):
            if line.startswith(name):
                return int(line.split()[1])
    except OSError:
        pass
    return 0
def cpu(pids):
    total = 0
    for p in pids:
        try:
            f = open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(f[11]) + int(f[12])  # utime stime
        if p == root:
            total += int(f[13]) + int(f[14])  # reaped children
    return total / tick
peak = {"rss_kib": 0, "pss_kib": 0, "procs": 0, "child_rss_kib": 0}
first = None
cpu0 = cpu(tree())
while True:
    pids = tree()
    rss = {p: field(f"/proc/{p}/status", "VmRSS:") for p in pids}
    pss = sum(field(f"/proc/{p}/smaps_rollup", "Pss:") for p in pids)
    if first is None:
        first = {"rss_kib": sum(rss.values()), "pss_kib": pss}
    peak["rss_kib"] = max(peak["rss_kib"], sum(rss.values()))
    peak["pss_kib"] = max(peak["pss_kib"], pss)
    peak["procs"] = max(peak["procs"], len(pids))
    peak["child_rss_kib"] = max([peak["child_rss_kib"]] + [v for p, v in rss.items() if p != root])
    if os.path.exists(stop):
        break
    time.sleep(0.5)
json.dump({"before": first, "peak": peak, "cpu_s": round(cpu(tree()) - cpu0, 2)}, open(out, "w"))
PY

settle() { # wait until the server tree is back to its idle process count (CGI children gone)
  local name=$1 idle=$2
  for _ in $(seq 60); do
    [[ $(children_of "${pid_of[$name]}" | wc -l) -le $idle ]] && break
    sleep 0.5
  done
  sleep 2
}
declare -A idle_kids
for s in serve lighttpd nginx; do idle_kids[$s]=$(children_of "${pid_of[$s]}" | wc -l); done

run() { # run LABEL SERVER PATH BENCH-ARGS...
  local label=$1 name=$2 path=$3; shift 3
  settle "$name" "${idle_kids[$name]}"
  rm -f "$tmp/stop"
  python3 "$tmp/sampler.py" "${pid_of[$name]}" "$out/$label.mem.json" "$tmp/stop" &
  sampler_pid=$!
  sleep 0.6
  say "$label: bench $* (load $(cut -d' ' -f1-3 /proc/loadavg))"
  echo "$(cut -d' ' -f1-3 /proc/loadavg)" >"$out/$label.load"
  if ! "$bin" bench "http://127.0.0.1:${port_of[$name]}$path" --json "$@" >"$out/$label.json" 2>"$tmp/$label.err"; then
    echo "bench failed for $label: $(head -c 400 "$tmp/$label.err")" >&2
    echo '{"failed": true}' >"$out/$label.json"
  fi
  touch "$tmp/stop"
  wait "$sampler_pid" 2>/dev/null || true
  sampler_pid=
}

# Warm-up: one request per server and URL (caches, nginx's open_file_cache, serve's movie cache).
for s in serve lighttpd nginx; do
  for u in "/long.mp4?start=3600" "/short.mp4?start=30"; do
    code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:${port_of[$s]}$u")
    [[ $code == 200 ]] || { echo "$s answered $code for $u" >&2; exit 1; }
  done
done
head=$(curl -sI "http://127.0.0.1:$port_serve/long.mp4?start=3600")
length=$(tr -d '\r' <<<"$head" | awk -F': ' 'tolower($1) == "content-length" { print $2 }')
seconds=$(tr -d '\r' <<<"$head" | awk -F': ' 'tolower($1) == "x-content-duration" { print $2 }')
kbps=$(python3 -c "print(round($length * 8 / $seconds / 1000, 3))")
echo "$length $seconds $kbps" >"$out/long-rate.txt"

# ---- phase 1: time to first byte --------------------------------------------------------------
for s in serve lighttpd nginx; do
  run "ttfb1-$s" "$s" "/long.mp4" --viewers 1 --fast --duration "$duration" --seek fixed --start 3600
done
for s in serve lighttpd nginx; do
  run "ttfb20-$s" "$s" "/long.mp4" --viewers 20 --fast --duration "$duration" --seek fixed --start 3600
done

# ---- phase 2: requests/s ----------------------------------------------------------------------
for s in serve lighttpd nginx; do
  run "rps-$s" "$s" "/short.mp4" --viewers 100 --fast --duration "$duration" --seek fixed --start 30
done

# ---- phase 3: paced viewers -------------------------------------------------------------------
write_conf 1.2
ramp=$((paced / 2))
for n in $levels; do
  run "paced-serve-$n" serve "/long.mp4" --viewers "$n" --duration "$paced" --ramp "$ramp" --seek fixed --start 3600
done
for n in $cgi_levels; do
  run "paced-lighttpd-$n" lighttpd "/long.mp4" --viewers "$n" --duration "$paced" --ramp "$ramp" --seek fixed --start 3600
done
prev_n= prev_kib=
for n in $nginx_levels; do
  if [[ -n $prev_n ]]; then
    projected=$(python3 -c "print(int($prev_kib / $prev_n * $n / 1024))")
    if ((projected > budget_mib)); then
      say "paced-nginx-$n skipped: projected $projected MiB > budget $budget_mib MiB"
      echo "{\"skipped\": true, \"projected_mib\": $projected}" >"$out/paced-nginx-$n.json"
      continue
    fi
  fi
  run "paced-nginx-$n" nginx "/long.mp4" --viewers "$n" --duration "$paced" --ramp "$ramp" --seek fixed --start 3600 --bitrate "$kbps"
  prev_n=$n
  prev_kib=$(python3 -c "import json; print(json.load(open('$out/paced-nginx-$n.mem.json'))['peak']['rss_kib'])")
done
grep -c 'alloc\|failed\|too many' "$tmp/nginx/logs/error.log" >"$out/nginx-errors.count" 2>/dev/null || true
tail -20 "$tmp/nginx/logs/error.log" >"$out/nginx-error.log" 2>/dev/null || true
tail -20 "$tmp/lighttpd/lighttpd-error.log" >"$out/lighttpd-error.log" 2>/dev/null || true
grep -v '" 200 ' "$tmp/loomiere.log" | tail -20 >"$out/loomiere-not-200.log" 2>/dev/null || true

# ---- report -----------------------------------------------------------------------------------
python3 - "$out" "$levels" "$cgi_levels" "$nginx_levels" <<'PY'
import json, os, sys
out, levels, cgi_levels, nginx_levels = sys.argv[1], sys.argv[2].split(), sys.argv[3].split(), sys.argv[4].split()
def get(label):
    try:
        b = json.load(open(f"{out}/{label}.json"))
    except (OSError, ValueError):
        b = {"failed": True}
    try:
        m = json.load(open(f"{out}/{label}.mem.json"))
    except (OSError, ValueError):
        m = None
    try:
        la = open(f"{out}/{label}.load").read().strip()
    except OSError:
        la = "?"
    return b, m, la
def mib(kib): return f"{kib / 1024:,.1f}"
def ms(v): return f"{v:,.2f}" if v < 100 else f"{v:,.0f}"
def errs(b):
    e = b["errors"]
    parts = [f"{k} {v}" for k, v in e.items() if k not in ("status", "total") and v]
    parts += [f"HTTP {k}: {v}" for k, v in e.get("status", {}).items()]
    return ", ".join(parts) if parts else "0"
servers = {"serve": "loomiere serve", "lighttpd": "lighttpd + loomiere CGI", "nginx": "nginx mp4"}
length, seconds, kbps = open(f"{out}/long-rate.txt").read().split()

print("### Time to first byte: long.mp4?start=3600 (throttle off, --fast)\n")
print("| server | viewers | responses | TTFB p50 (ms) | p90 | p99 | errors | server peak RSS (MiB) | load avg |")
print("| --- | ---: | ---: | ---: | ---: | ---: | --- | ---: | --- |")
for v in ("1", "20"):
    for s, name in servers.items():
        b, m, la = get(f"ttfb{v}-{s}")
        if b.get("failed"):
            print(f"| {name} | {v} | failed | | | | | | {la} |"); continue
        t = b["ttfb_ms"]
        print(f"| {name} | {v} | {b['responses']:,} | {ms(t['p50'])} | {ms(t['p90'])} | {ms(t['p99'])} | {errs(b)} | {mib(m['peak']['rss_kib']) if m else '?'} | {la} |")

print("\n### Requests/s: short.mp4?start=30, 100 connections, --fast (throttle off)\n")
print("| server | responses/s | Mbit/s | TTFB p50 / p90 (ms) | errors | server CPU (s) | server peak RSS (MiB) / PSS | load avg |")
print("| --- | ---: | ---: | --- | --- | ---: | --- | --- |")
for s, name in servers.items():
    b, m, la = get(f"rps-{s}")
    if b.get("failed"):
        print(f"| {name} | failed | | | | | | {la} |"); continue
    t = b["ttfb_ms"]
    mem = f"{mib(m['peak']['rss_kib'])} / {mib(m['peak']['pss_kib'])}" if m else "?"
    print(f"| {name} | {b['requests_per_s']:,.0f} | {b['mbit_per_s']:,.0f} | {ms(t['p50'])} / {ms(t['p90'])} | {errs(b)} | {m['cpu_s'] if m else '?'} | {mem} | {la} |")

print(f"\n### Paced viewers: long.mp4?start=3600 at playback rate ({kbps} kbit/s = {length} B / {seconds} s; serve and CGI: throttle = 1.2, burst 10 s)\n")
print("| server | viewers | peak streams | errors | stalls (s) | TTFB p50 / p99 / max (ms) | server peak RSS (MiB) | peak PSS (MiB) | RSS growth per viewer (KiB) | processes | server CPU (s) | load avg |")
print("| --- | ---: | ---: | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | --- |")
rows = [("serve", n) for n in levels] + [("lighttpd", n) for n in cgi_levels] + [("nginx", n) for n in nginx_levels]
for s, n in rows:
    name = servers[s]
    b, m, la = get(f"paced-{s}-{n}")
    if b.get("skipped"):
        print(f"| {name} | {n} | skipped: projected {b['projected_mib']:,} MiB over the budget | | | | | | | | | |"); continue
    if b.get("failed"):
        print(f"| {name} | {n} | bench failed | | | | | | | | | {la} |"); continue
    t = b["ttfb_ms"]
    per = (m["peak"]["rss_kib"] - m["before"]["rss_kib"]) / int(n) if m else 0
    print(f"| {name} | {int(n):,} | {b['peak_streams']:,} | {errs(b)} | {b['stalls']} ({b['stall_s']:.1f}) | {ms(t['p50'])} / {ms(t['p99'])} / {ms(t['max'])} | "
          f"{mib(m['peak']['rss_kib'])} | {mib(m['peak']['pss_kib'])} | {per:,.1f} | {m['peak']['procs']} | {m['cpu_s']} | {la} |")
print(f"\nIdle RSS before the paced runs: " + ", ".join(
    f"{servers[s]} {mib(get(f'paced-{s}-{n}')[1]['before']['rss_kib'])} MiB"
    for s, n in (("serve", levels[0]), ("lighttpd", cgi_levels[0]), ("nginx", nginx_levels[0])) if get(f'paced-{s}-{n}')[1]))
PY
echo
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), open files: soft $(ulimit -Sn) / hard $(ulimit -Hn), $(date -u +%FT%TZ)"
echo "nginx $("$nginx_bin" -v 2>&1 | sed 's/.*nginx\///'), $("$lighttpd_bin" -v 2>&1 | head -1 | cut -d' ' -f1), loomiere $("$bin" --version | awk '{ print $2 }') ($(stat -c %s "$bin") bytes, $bin)"
echo "raw results: $out"
