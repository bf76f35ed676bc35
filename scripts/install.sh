#!/usr/bin/env bash
# install.sh — builds the loomiere binary that docs/performance.md measures and installs it:
# the release profile (fat LTO, one codegen unit, stripped), linked static and non-PIE
# (`-C target-feature=+crt-static -C relocation-model=static`, what `gcc -static` makes): no
# dynamic loader and no self-relocation at each exec, which a CGI process per request pays
# for (a plain `cargo build --release` makes a dynamic PIE binary whose CGI HEAD costs about
# 1.7× a static C no-op, against 1.12–1.2× for this one; docs/cgi.md, "Static binary").
# The build takes about a minute from cold on 2 cores (fat LTO); scripts/demo.sh uses a
# quicker profile for trying loomiere out.
# Usage: scripts/install.sh [PREFIX]          installs PREFIX/bin/loomiere (default /usr/local)
#        DESTDIR=/tmp/stage scripts/install.sh /usr   staged, for packaging
#        LOOMIERE_NO_INSTALL=1                 do not install missing Debian packages
set -euo pipefail
cd "$(dirname "$0")/.."
prefix=${1:-/usr/local}
[[ $prefix == /* ]] || prefix=$(pwd -P)/$prefix

[[ ${LOOMIERE_NO_INSTALL:-0} == 1 ]] || scripts/deps.sh install

target=$(rustc -vV | sed -n 's/^host: //p')
case $target in
  *-linux-gnu) ;;
  *) echo "install.sh: the static build is made for Linux with glibc; this host is $target" >&2; exit 1 ;;
esac

echo "== building loomiere (release profile, static non-PIE, $target)"
# --target keeps the flags away from build scripts and proc macros.
RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+crt-static -C relocation-model=static" \
  cargo build --release --target "$target" --bin loomiere
bin=${CARGO_TARGET_DIR:-target}/$target/release/loomiere

# What the numbers describe: an executable (not a shared object, as PIE is) without an
# interpreter (the dynamic loader).
if readelf -h "$bin" | grep -q 'Type:[[:space:]]*EXEC' && ! readelf -l "$bin" | grep -q INTERP; then
  :
else
  echo "install.sh: $bin is not a static non-PIE executable (RUSTFLAGS overridden?)" >&2
  exit 1
fi

dest=${DESTDIR:-}$prefix/bin/loomiere
install -D -m 0755 "$bin" "$dest"
echo "installed $dest ($(stat -c %s "$dest") bytes; $("$dest" --version))"
