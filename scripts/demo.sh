#!/usr/bin/env bash
# demo.sh — loomiere's main job on a built-in default, for a fresh Debian 12 machine:
# installs what is missing (ffmpeg), builds loomiere (release), makes a small sample
# directory (demo-media/: a 30 s H.264/AAC MP4 with a keyframe every 2 s, the same in FLV,
# and a still JPEG), then runs `loomiere inspect` on the MP4 and `loomiere cut` from 10.5 s
# to 20 s, and shows what ffprobe makes of the clip.
# Meant to change as loomiere grows (e.g. into `loomiere serve demo-media`): the media step
# and the "run" step are separate functions.
# Usage: scripts/demo.sh [DIR]      (DIR defaults to ./demo-media; PROFILE=dev for a debug build)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd -P)
dir=${1:-$root/demo-media}
profile=${PROFILE:-release}

[[ ${LOOMIERE_NO_INSTALL:-0} == 1 ]] || scripts/deps.sh demo

echo "== building loomiere ($profile)"
cargo build --profile "$profile" --bin loomiere
bin=$root/target/$([[ $profile == dev ]] && echo debug || echo "$profile")/loomiere

make_media() {
  mkdir -p "$dir"
  local ff=(ffmpeg -hide_banner -nostdin -v error -y)
  if [[ ! -s $dir/sample.mp4 ]]; then
    echo "== making $dir/sample.mp4 (30 s, 320x240, H.264 + AAC)"
    "${ff[@]}" -f lavfi -i "testsrc=size=320x240:rate=25:duration=30" \
      -f lavfi -i "sine=frequency=440:beep_factor=4:sample_rate=44100:duration=30" \
      -c:v libx264 -preset veryfast -pix_fmt yuv420p -g 50 -keyint_min 50 -sc_threshold 0 -b:v 300k \
      -c:a aac -b:a 64k -movflags +faststart "$dir/sample.mp4"
  fi
  [[ -s $dir/sample.flv ]] || "${ff[@]}" -i "$dir/sample.mp4" -map 0 -c copy -f flv "$dir/sample.flv"
  [[ -s $dir/still.jpg ]] || "${ff[@]}" -f lavfi -i "testsrc=size=320x240:rate=1:duration=1" -frames:v 1 "$dir/still.jpg"
}

failed=0
run() {
  echo
  echo "\$ loomiere ${*//$dir\//}"
  local status=0
  "$bin" "$@" || status=$?
  if ((status)); then
    echo "(this step failed with exit status $status)"
    failed=1
  fi
}

demo() {
  local clip=$dir/clip-10.5-20.mp4
  run inspect "$dir/sample.mp4"
  run cut "$dir/sample.mp4" --start 10.5 --end 20 --dry-run
  run cut "$dir/sample.mp4" --start 10.5 --end 20 -o "$clip"
  if [[ -s $clip ]]; then
    echo
    echo "ffprobe on the clip:"
    ffprobe -v error -show_entries format=duration:stream=codec_name,codec_type -of compact=p=0 "$clip"
  fi
}

make_media
demo
exit $failed
