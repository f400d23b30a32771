#!/bin/sh
# segment_vtest.sh - `ams segment` with the selfie student and the RVM teacher on real frames
# of vtest.avi (the project's premise: the student misses pedestrians the teacher finds):
#  - PNG of a video frame: decodes (ffprobe) at the requested 256x192; on frames 0 and 40 s
#    RVM labels more person pixels than selfie (selfie misses a pedestrian there);
#  - the PNG equals the input frame where nothing is drawn and is redder where the mask is;
#  - image input (a PNG and a JPEG frame cut by the ffmpeg CLI) -> PNG of the image's size;
#  - video -> mp4: ffprobe shows h264, 256x192, and the right frame count (every frame of
#    1 s, and 4 fps sampling with rvm);
#  - bad input: one line, non-zero exit, no output file.
# Skips, saying why, only when the models or the video are not cached and cannot be fetched.
# Env: AMS_BIN, AMS_SOURCE_DIR, AMS_BINARY_DIR (set by CTest).
set -eu

src="${AMS_SOURCE_DIR:-$(cd "$(dirname "$0")/.." && pwd)}"
ams="${AMS_BIN:-$src/build/ams}"
py=/usr/bin/python3 # Debian's, with numpy
work=$(mktemp -d "${AMS_BINARY_DIR:-/tmp}/segment_vtest.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM
fail() { echo "segment_vtest: FAIL: $*" >&2; exit 1; }
[ -x "$ams" ] || fail "no ams binary at $ams (set AMS_BIN)"
for t in ffmpeg ffprobe "$py"; do command -v "$t" >/dev/null 2>&1 || fail "$t not found (HINT: run tools/setup)"; done

if ! "$src/tools/fetch-models" >"$work/fm.out" 2>"$work/fm.err" ||
   ! video=$("$src/tools/fetch-videos" 2>"$work/fv.err" | tail -n 1) || [ ! -f "$video" ]; then
  root="${AMS_CACHE:-${HOME:-/tmp}/.cache/ams}"
  if [ ! -f "$root/models/rvm.json" ] || [ ! -f "$root/videos/vtest.avi" ]; then
    echo "segment_vtest: SKIP: models/vtest.avi are not cached and cannot be fetched: $(cat "$work/fm.err" "$work/fv.err")"
    exit 0
  fi
  fail "tools/fetch-models or fetch-videos failed with a cache present: $(cat "$work/fm.err" "$work/fv.err")"
fi

probe() { # FILE -> "codec width height frames"
  ffprobe -v error -select_streams v:0 -count_frames -show_entries \
    stream=codec_name,width,height,nb_read_frames -of csv=p=0 "$1" | tr ',' ' '
}
frac() { sed -n 's/.*"fraction_1": \([0-9.]*\).*/\1/p' "$1"; }

# PNG of one video frame: sizes, and rvm finds more person pixels than selfie
for t in 0 40; do
  for m in selfie rvm; do
    "$ams" segment --threads 1 --model $m --input "$video" --time $t --width 256 --height 192 \
      --output "$work/$m$t.png" >"$work/$m$t.json" 2>"$work/err" || fail "$m t=$t: $(cat "$work/err")"
    [ "$(probe "$work/$m$t.png")" = "png 256 192 1" ] || fail "$m$t.png: $(probe "$work/$m$t.png")"
  done
  s=$(frac "$work/selfie$t.json") r=$(frac "$work/rvm$t.json")
  echo "segment_vtest: t=$t s: person fraction selfie $s, rvm $r"
  awk -v s="$s" -v r="$r" 'BEGIN { exit !(r > 1.2 * s && s > 0) }' ||
    fail "t=$t: rvm ($r) does not find clearly more person pixels than selfie ($s)"
done

# the blend, exactly: a 256x192 PNG input is used as is (no scaling), so the output equals it
# where nothing is drawn and is round(0.5 * frame + 0.5 * (255, 40, 40)) (the binary palette) on exactly the mask's pixels
# (their count comes from the JSON's fraction_1)
ffmpeg -loglevel error -y -i "$video" -vf "select=eq(n\,0),scale=256:192:flags=area" -frames:v 1 "$work/f0.png"
"$ams" segment --threads 1 --model rvm --input "$work/f0.png" --output "$work/o0.png" >"$work/o0.json" 2>"$work/err" ||
  fail "rvm on f0.png: $(cat "$work/err")"
ffmpeg -loglevel error -y -i "$work/f0.png" -f rawvideo -pix_fmt rgb24 "$work/f0.rgb"
ffmpeg -loglevel error -y -i "$work/o0.png" -f rawvideo -pix_fmt rgb24 "$work/o0.rgb"
"$py" - "$work/f0.rgb" "$work/o0.rgb" "$(frac "$work/o0.json")" <<'PYEOF' || fail "o0.png is not the frame with a red mask"
import sys
import numpy as np
f = np.fromfile(sys.argv[1], np.uint8).reshape(192, 256, 3).astype(int)
o = np.fromfile(sys.argv[2], np.uint8).reshape(192, 256, 3).astype(int)
changed = (o != f).any(axis=2)
blend = np.floor(0.5 * f + 0.5 * np.array([255, 40, 40]) + 0.5).astype(int)
exact = (np.abs(o - blend) <= 1).all(axis=2)
n = float(sys.argv[3]) * 256 * 192
print('segment_vtest: blend: mask pixels %.0f, changed %d, blended %d' % (n, changed.sum(), (changed & exact).sum()))
sys.exit(0 if n > 100 and abs(changed.sum() - n) <= 3 and (exact | ~changed).all() else 1)
PYEOF

# image input: PNG and JPEG
ffmpeg -loglevel error -y -i "$video" -vf "select=eq(n\,100)" -frames:v 1 "$work/frame.png"
ffmpeg -loglevel error -y -i "$video" -vf "select=eq(n\,100)" -frames:v 1 "$work/frame.jpg"
for ext in png jpg; do
  "$ams" segment --threads 1 --model selfie --input "$work/frame.$ext" --output "$work/img_$ext.png" >"$work/j" 2>"$work/err" ||
    fail "image $ext: $(cat "$work/err")"
  [ "$(probe "$work/img_$ext.png")" = "png 512 384 1" ] || fail "img_$ext.png: $(probe "$work/img_$ext.png")"
done

# video -> mp4: every frame of 1 s (10 frames), and rvm at 4 fps for 1 s (4 frames)
"$ams" segment --threads 1 --model selfie --input "$video" --start 2 --seconds 1 --width 256 --height 192 \
  --output "$work/selfie.mp4" >"$work/j" 2>"$work/err" || fail "selfie mp4: $(cat "$work/err")"
[ "$(probe "$work/selfie.mp4")" = "h264 256 192 10" ] || fail "selfie.mp4: $(probe "$work/selfie.mp4")"
"$ams" segment --threads 1 --model rvm --input "$video" --fps 4 --seconds 1 --width 256 --height 192 \
  --output "$work/rvm.mp4" >"$work/j" 2>"$work/err" || fail "rvm mp4: $(cat "$work/err")"
[ "$(probe "$work/rvm.mp4")" = "h264 256 192 4" ] || fail "rvm.mp4: $(probe "$work/rvm.mp4")"

expect_fail() { # WHAT MESSAGE-PART OUTPUT ARGS...
  what=$1 part=$2 out=$3
  shift 3
  if "$ams" segment --output "$out" "$@" >"$work/out" 2>"$work/err"; then fail "$what: exit 0"; fi
  grep -q -- "$part" "$work/err" || fail "$what: expected '$part' in: $(cat "$work/err")"
  [ "$(wc -l <"$work/err")" -le 2 ] || fail "$what: more than an error + HINT line: $(cat "$work/err")"
  [ ! -e "$out" ] || fail "$what: left $out behind"
}
expect_fail "missing input" "none.png" "$work/x.png" --model selfie --input "$work/none.png"
expect_fail "missing input, mp4" "none.avi" "$work/x.mp4" --model selfie --input "$work/none.avi" --width 64 --height 64
expect_fail "unknown model" "cannot open" "$work/x.png" --model "$work/nope.json" --input "$work/frame.png"
expect_fail "bad output" ".png or .mp4" "$work/x.gif" --model selfie --input "$work/frame.png"
expect_fail "time past the end" "no frame" "$work/x.png" --model selfie --input "$video" --time 500 --width 64 --height 48
"$ams" segment --help | grep -q "threshold" || fail "--help"
echo "segment_vtest: ok"
