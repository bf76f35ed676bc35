#!/usr/bin/env bash
# make-seeds.sh — regenerates the fuzz seed corpus in fuzz/corpus/{mp4,fmp4,flv}: tiny (2 s, 32x32,
# a few KB) files covering the layouts the engine must parse: moov first and last, co64
# chunk offsets, fragmented MP4, audio only, two video tracks with chapters, H.264/AAC FLV
# with and without a keyframe index, Sorenson FLV. Deterministic (bit-exact flags, one x264
# thread; the chapters seed carries ffmpeg's version string). The seeds are committed; run
# this only to change them. Usage: fuzz/make-seeds.sh
set -euo pipefail
cd "$(dirname "$0")"
mp4=corpus/mp4
flv=corpus/flv
mkdir -p "$mp4" "$flv"
FF=(ffmpeg -hide_banner -nostdin -v error -y)
BITEXACT=(-fflags +bitexact -flags:v +bitexact -flags:a +bitexact -map_metadata -1 -map_chapters -1)
SRC=(-f lavfi -i "testsrc=size=32x32:rate=10:duration=2" -f lavfi -i "sine=frequency=440:sample_rate=8000:duration=2")
X264=(-c:v libx264 -threads 1 -preset veryfast -pix_fmt yuv420p -g 5 -keyint_min 5 -sc_threshold 0 -bf 2 -b:v 16k)
AAC=(-c:a aac -b:a 8k -ar 8000 -ac 1)

"${FF[@]}" "${SRC[@]}" "${X264[@]}" "${AAC[@]}" "${BITEXACT[@]}" -movflags +faststart "$mp4/faststart.mp4"
"${FF[@]}" -i "$mp4/faststart.mp4" -map 0 -c copy "${BITEXACT[@]}" "$mp4/moovend.mp4"
"${FF[@]}" -i "$mp4/faststart.mp4" -map 0 -c copy "${BITEXACT[@]}" -movflags frag_keyframe+empty_moov "$mp4/frag.mp4"
"${FF[@]}" -i "$mp4/faststart.mp4" -vn -c copy "${BITEXACT[@]}" "$mp4/audio.m4a"
"${FF[@]}" -i "$mp4/faststart.mp4" -an -c copy "${BITEXACT[@]}" "$mp4/video-only.mp4"

# Two video tracks whose keyframes do not line up (every 5 and 7 frames) and three chapters,
# written both as a QuickTime chapter track (text, tref/chap) and as Nero udta/chpl (without
# -fflags +bitexact, which leaves the chapter track out).
printf ';FFMETADATA1\n[CHAPTER]\nTIMEBASE=1/1000\nSTART=0\nEND=800\ntitle=a\n[CHAPTER]\nTIMEBASE=1/1000\nSTART=800\nEND=1500\ntitle=b\n[CHAPTER]\nTIMEBASE=1/1000\nSTART=1500\nEND=2000\ntitle=c\n' >"$mp4/.chapters.txt"
"${FF[@]}" -f lavfi -i "testsrc=size=32x32:rate=10:duration=2" -f lavfi -i "testsrc2=size=32x32:rate=10:duration=2" \
  -f ffmetadata -i "$mp4/.chapters.txt" -map 0:0 -map 1:0 -map_chapters 2 \
  -c:v libx264 -threads 1 -preset veryfast -pix_fmt yuv420p -g:v:0 5 -g:v:1 7 -sc_threshold 0 -bf 2 -b:v 16k \
  -flags:v +bitexact "$mp4/two-video-chapters.mp4"
rm -f "$mp4/.chapters.txt"
# co64: moovend.mp4 with its stco boxes rewritten as co64 (the moov is last, so offsets stay).
python3 - "$mp4/moovend.mp4" "$mp4/co64.mp4" <<'PY'
import struct, sys
data = open(sys.argv[1], 'rb').read()
CONTAINERS = {b'moov', b'trak', b'mdia', b'minf', b'stbl'}
def rewrite(buf):
    out, pos = b'', 0
    while pos + 8 <= len(buf):
        size, typ = struct.unpack('>I4s', buf[pos:pos + 8])
        body = buf[pos + 8:pos + size]
        if typ in CONTAINERS:
            body = rewrite(body)
        elif typ == b'stco':
            vf, n = struct.unpack('>II', body[:8])
            offs = struct.unpack('>%dI' % n, body[8:8 + 4 * n])
            body, typ = struct.pack('>II', vf, n) + struct.pack('>%dQ' % n, *offs), b'co64'
        out += struct.pack('>I4s', 8 + len(body), typ) + body
        pos += size
    return out
open(sys.argv[2], 'wb').write(rewrite(data))
PY

# fmp4: fragmented layouts (ffmpeg's frag_keyframe, default-base-is-moof, dash with sidx,
# CMAF with signed composition offsets, fragments not starting at keyframes, audio only).
fmp4=corpus/fmp4
mkdir -p "$fmp4"
cp "$mp4/frag.mp4" "$fmp4/keyframe.mp4"
"${FF[@]}" -i "$mp4/faststart.mp4" -map 0 -c copy "${BITEXACT[@]}" -movflags frag_keyframe+empty_moov+default_base_moof "$fmp4/basemoof.mp4"
"${FF[@]}" -i "$mp4/faststart.mp4" -map 0 -c copy "${BITEXACT[@]}" -movflags dash "$fmp4/dash.mp4"
"${FF[@]}" -i "$mp4/faststart.mp4" -map 0 -c copy "${BITEXACT[@]}" -f mp4 -movflags cmaf "$fmp4/cmaf.mp4"
"${FF[@]}" -i "$mp4/faststart.mp4" -map 0 -c copy "${BITEXACT[@]}" -frag_duration 300000 -movflags empty_moov "$fmp4/duration.mp4"
"${FF[@]}" -i "$mp4/faststart.mp4" -vn -c copy "${BITEXACT[@]}" -frag_duration 500000 -movflags empty_moov "$fmp4/audio.mp4"

"${FF[@]}" -i "$mp4/faststart.mp4" -map 0 -c copy "${BITEXACT[@]}" -f flv "$flv/h264.flv"
if command -v yamdi >/dev/null; then
  yamdi -i "$flv/h264.flv" -o "$flv/h264-keyframes.flv"
else
  "${FF[@]}" -i "$mp4/faststart.mp4" -map 0 -c copy "${BITEXACT[@]}" -flvflags add_keyframe_index -f flv "$flv/h264-keyframes.flv"
fi
"${FF[@]}" -f lavfi -i "testsrc=size=32x32:rate=10:duration=2" -c:v flv -g 5 -b:v 16k -an "${BITEXACT[@]}" -f flv "$flv/sorenson.flv"

ls -l "$mp4" "$flv"
