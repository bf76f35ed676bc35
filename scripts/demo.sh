#!/usr/bin/env bash
# demo.sh — loomiere's main job on a built-in default, for a fresh Debian 12 machine:
# installs what is missing (ffmpeg), builds loomiere (the quick `demo` profile: no fat LTO, about
# half a minute from cold on 2 cores; binary in target/demo/loomiere), makes sample media in
# demo-media/ with `loomiere demo` (a 60 s H.264/AAC MP4 and its FLV twin, a poster JPEG),
# then runs `loomiere serve` on it: open the printed address (http://127.0.0.1:8080/) in a
# browser, pick a start time and watch the seeked video. Ctrl-C stops the server.
# Usage: scripts/demo.sh [--cut]   (--cut: instead of serving, show inspect and cut on the sample)
#        LISTEN=ADDR (default 127.0.0.1:8080), PROFILE=dev for a debug build, PROFILE=release for
#        the fully optimised one (minutes; scripts/install.sh builds and installs the fast binary)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd -P)
profile=${PROFILE:-demo}

[[ ${LOOMIERE_NO_INSTALL:-0} == 1 ]] || scripts/deps.sh demo

echo "== building loomiere ($profile)"
# The demo serves local files: the `storage` feature (object storage through object_store,
# whose TLS stack builds a C crypto library) is left out, so the first build stays short.
cargo build --profile "$profile" --bin loomiere --no-default-features
bin=$root/target/$([[ $profile == dev ]] && echo debug || echo "$profile")/loomiere

echo "== sample media in demo-media/"
"$bin" demo "$root/demo-media"

if [[ ${1:-} == --cut ]]; then
  clip=$root/demo-media/clip-10.5-20.mp4
  (set -x; "$bin" inspect "$root/demo-media/sample.mp4")
  (set -x; "$bin" cut "$root/demo-media/sample.mp4" --start 10.5 --end 20 --dry-run)
  (set -x; "$bin" cut "$root/demo-media/sample.mp4" --start 10.5 --end 20 -o "$clip")
  ffprobe -v error -show_entries format=duration:stream=codec_name,codec_type -of compact=p=0 "$clip"
  exit 0
fi

echo "== serving demo-media/ (Ctrl-C to stop)"
exec "$bin" serve "$root/demo-media" --listen "${LISTEN:-127.0.0.1:8080}"
