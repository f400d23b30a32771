#!/bin/sh
# parity_tfjs.sh - the TF.js importer against an independent runtime: the pure-JS
# TF.js (npm @tensorflow/tfjs, CPU backend) runs the same real models on the same
# real frame (vtest.avi, else a synthetic frame) as `ams infer --model`.
#   selfie (student), 256x256 (its export size): max abs error on probabilities <= 1e-4
#   rvm (teacher) pha, 144x192, downsample_ratio=1: max abs error <= 1e-3
#   rvm pha, 288x384, downsample_ratio=0.5 (the guided-filter refiner, its RealDiv
#   mapped onto the engine's broadcasting divide): max abs error <= 1e-3
# Models and TF.js come from tools/fetch-models (cached). The test skips, saying why,
# only when they are not cached AND cannot be fetched (offline); any other failure fails.
# Env: AMS_BIN (the ams binary), AMS_SOURCE_DIR, AMS_BINARY_DIR (set by CTest).
set -eu

src="${AMS_SOURCE_DIR:-$(cd "$(dirname "$0")/.." && pwd)}"
ams="${AMS_BIN:-$src/build/ams}"
work=$(mktemp -d "${AMS_BINARY_DIR:-/tmp}/parity_tfjs.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM

fail() { echo "parity_tfjs: FAIL: $*" >&2; exit 1; }

[ -x "$ams" ] || fail "no ams binary at $ams (set AMS_BIN)"
command -v node >/dev/null 2>&1 || fail "node not found (HINT: run tools/setup)"

# Models + TF.js runtime (network only when the cache lacks them).
if ! "$src/tools/fetch-models" --tfjs >"$work/fetch.out" 2>"$work/fetch.err"; then
  root="${AMS_CACHE:-${HOME:-/tmp}/.cache/ams}"
  if [ ! -f "$root/models/selfie.json" ] || [ ! -d "$root/tfjs/node_modules/@tensorflow/tfjs" ]; then
    echo "parity_tfjs: SKIP: models/TF.js are not cached and cannot be fetched: $(cat "$work/fetch.err")"
    exit 0
  fi
  fail "tools/fetch-models failed with a cache present: $(cat "$work/fetch.err")"
fi
selfie=$(awk '$1 == "selfie" {print $2}' "$work/fetch.out")
rvm=$(awk '$1 == "rvm" {print $2}' "$work/fetch.out")
tfjs=$(awk '$1 == "tfjs" {print $2}' "$work/fetch.out")
[ -f "$selfie" ] && [ -f "$rvm" ] && [ -d "$tfjs" ] || fail "fetch-models printed no paths"

# A real frame of vtest.avi (frame 100: pedestrians), else a synthetic one.
frame() { # W H OUT.npy
  video=""
  if [ -x "$src/tools/fetch-videos" ] && command -v ffmpeg >/dev/null 2>&1; then
    video=$("$src/tools/fetch-videos" 2>/dev/null | tail -n 1) || video=""
  fi
  if [ -n "$video" ] && [ -f "$video" ] &&
     ffmpeg -loglevel error -y -i "$video" -vf "select=eq(n\,100),scale=$1:$2" -frames:v 1 \
       -f rawvideo -pix_fmt rgb24 "$work/frame.rgb" 2>"$work/ffmpeg.err"; then
    node "$src/tools/tfjs/npy_tool.js" rgb2npy "$work/frame.rgb" "$1" "$2" "$3"
    echo "parity_tfjs: frame 100 of $video at $1x$2"
  else
    node "$src/tools/tfjs/npy_tool.js" synth "$1" "$2" "$3"
    echo "parity_tfjs: no video (tools/fetch-videos or ffmpeg failed): a synthetic $1x$2 frame"
  fi
}

check() { # NAME MODEL W H TOL MINMAX OUTPUT-NAME FEEDS...  (MINMAX: the reference
  # output's largest value must reach it, so that the frame shows a person at all)
  name=$1 model=$2 w=$3 h=$4 tol=$5 minmax=$6 oname=$7
  shift 7
  frame "$w" "$h" "$work/$name.x.npy"
  feeds_ams="" feeds_js=""
  for f in "$@"; do feeds_ams="$feeds_ams --feed $f"; feeds_js="$feeds_js --feed $f"; done
  # shellcheck disable=SC2086
  "$ams" infer --model "$model" --input "$work/$name.x.npy" --output "$work/$name.ams.npy" \
    --output-name "$oname" $feeds_ams 2>"$work/$name.ams.err" ||
    fail "ams infer --model $name: $(cat "$work/$name.ams.err")"
  # shellcheck disable=SC2086
  node "$src/tools/tfjs/run_tfjs.js" --tfjs "$tfjs" --model "$model" --input "$work/$name.x.npy" \
    --output "$work/$name.tfjs.npy" --output-name "$oname" $feeds_js >"$work/$name.js.out" \
    2>"$work/$name.js.err" || fail "run_tfjs.js $name: $(tail -n 3 "$work/$name.js.err")"
  if ! node "$src/tools/tfjs/npy_tool.js" diff "$work/$name.ams.npy" "$work/$name.tfjs.npy" "$tol" "$minmax" \
      >"$work/$name.diff" 2>&1; then
    fail "$name: $(cat "$work/$name.diff")"
  fi
  echo "parity_tfjs: $name $(cat "$work/$name.diff"); $(cat "$work/$name.ams.err");" \
       "tfjs $(awk '$1 == "ms_per_run" {print $2}' "$work/$name.js.out") ms"
}

check selfie "$selfie" 256 256 1e-4 0 activation_10
check rvm "$rvm" 192 144 1e-3 0.5 pha r1i=0 r2i=0 r3i=0 r4i=0 downsample_ratio=1
# at 0.5 the base network sees 192x144: below that the pedestrians vanish (pha = 0)
check rvm05 "$rvm" 384 288 1e-3 0.5 pha r1i=0 r2i=0 r3i=0 r4i=0 downsample_ratio=0.5
echo "parity_tfjs: ok"
