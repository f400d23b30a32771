#!/bin/sh
# sim_deeplab_cli.sh - `ams sim --student deeplabv3-mnv2`: a DeepLab pair end to end on a
# 4 s synthetic clip (ffmpeg's testsrc2 at 64x48): `ams label` with a DeepLabV3-MNV2 teacher
# (the committed 19-class fixture weights, shown the frames at 128x96), then the sim with the
# same weights as the student at 64x48 and a class subset: it runs, updates arrive, the
# summary holds the subset and a finite mIoU. Then the bad input: missing or unreadable
# weights, weights of another model, --classes that differ from the labels', bad subsets,
# DeepLab flags with a TF.js student: each a clear message and a non-zero exit, no crash.
# Env: AMS_BIN, AMS_SOURCE_DIR, AMS_BINARY_DIR (set by CTest).
set -eu

src="${AMS_SOURCE_DIR:-$(cd "$(dirname "$0")/.." && pwd)}"
ams="${AMS_BIN:-$src/build/ams}"
py=/usr/bin/python3 # Debian's
work=$(mktemp -d "${AMS_BINARY_DIR:-/tmp}/sim_deeplab_cli.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM
fail() { echo "sim_deeplab_cli: FAIL: $*" >&2; exit 1; }
[ -x "$ams" ] || fail "no ams binary at $ams (set AMS_BIN)"
for t in ffmpeg "$py"; do command -v "$t" >/dev/null 2>&1 || fail "$t not found (HINT: run tools/setup)"; done
fx="$src/tests/data/deeplab/os16-1x33x46-c19"
weights="$fx/weights.safetensors"

ffmpeg -loglevel error -y -f lavfi -i testsrc2=size=64x48:rate=10 -t 4 -pix_fmt yuv420p \
  "$work/clip.mp4" || fail "ffmpeg clip"
"$ams" label --teacher deeplabv3-mnv2 --weights "$weights" --classes 19 --os 16 --threads 1 \
  --video "$work/clip.mp4" --fps 2 --width 64 --height 48 --teacher-width 128 --teacher-height 96 \
  --output "$work/c.labels" >"$work/label.json" 2>"$work/label.err" || fail "label: $(cat "$work/label.err")"
grep -q '"frames": 8, .*"classes": 19' "$work/label.json" || fail "label JSON: $(cat "$work/label.json")"

common="--video $work/clip.mp4 --labels $work/c.labels --width 64 --height 48 --send-period 1
 --first-send 1 --train-period 1 --first-train 1 --iters 2 --batch 1 --compute-s 0.1
 --uplink-kbps 0 --downlink-kbps 0 --threads 1 --no-video"
dl="--student deeplabv3-mnv2 --weights $weights --classes 19"

# the pair runs: ams mode over the subset {4, 7, 18} (the classes testsrc2 gets here)
# shellcheck disable=SC2086
"$ams" sim $common $dl --os 16 --subset 4,7,18 --mode ams --out "$work/ams" >"$work/ams.out" \
  2>"$work/ams.err" || fail "sim ams: $(cat "$work/ams.err")"
tail -n 1 "$work/ams.out" | grep -q '"mode": "ams"' || fail "last line: $(tail -n 1 "$work/ams.out")"
"$py" - "$work/ams/summary.json" <<'EOF' || fail "summary checks"
import json, sys
s = json.load(open(sys.argv[1]))
assert s["config"]["subset"] == [4, 7, 18], s["config"]
assert s["updates"] >= 1 and s["rejected"] == 0, s
assert s["miou"] is not None and 0 <= s["miou"] <= 1, s
assert all(p["loss_first"] is not None for p in s["phases"]), s["phases"]
print("sim_deeplab_cli: ams over {4,7,18}: mIoU %.4f, %d updates, %d phases" %
      (s["miou"], s["updates"], s["train_phases"]))
EOF

# bad input: expect a non-zero exit (not a crash) and the message
bad() { # bad NAME PATTERN ARGS...
  name=$1 pat=$2
  shift 2
  rc=0
  "$ams" sim "$@" --mode pretrained --out "$work/bad" >"$work/bad.out" 2>"$work/bad.err" || rc=$?
  [ "$rc" -ne 0 ] || fail "$name: exit 0"
  [ "$rc" -lt 128 ] || fail "$name: crashed (exit $rc): $(cat "$work/bad.err")"
  grep -q -- "$pat" "$work/bad.err" || fail "$name: message: $(cat "$work/bad.err")"
}
# shellcheck disable=SC2086
{
bad "no weights" "needs --weights" $common --student deeplabv3-mnv2 --classes 19
bad "no classes" "needs --classes" $common --student deeplabv3-mnv2 --weights "$weights"
bad "missing weights" "cannot read the weights" $common --student deeplabv3-mnv2 \
  --weights "$work/none.safetensors" --classes 19
bad "other model's weights" "must hold exactly the tensors" $common --student deeplabv3-mnv2 \
  --weights "$fx/grads.safetensors" --classes 19
bad "classes vs labels" "hold 19 classes, the student has --classes 18" $common \
  --student deeplabv3-mnv2 --weights "$weights" --classes 18
bad "subset out of range" "--subset '3,19'" $common $dl --subset 3,19
bad "subset twice" "--subset '4,4'" $common $dl --subset 4,4
bad "subset not numbers" "--subset 'road'" $common $dl --subset road
bad "subset trailing comma" "--subset '4,'" $common $dl --subset 4,
bad "subset empty" "--subset ''" $common $dl --subset ''
bad "bad os" "--os must be 8 or 16" $common $dl --os 12
bad "deeplab flags, tfjs student" "are for --student deeplabv3-mnv2" $common --student selfie \
  --weights "$weights"
bad "xception student" "is a teacher" $common --student deeplabv3plus-xception65 \
  --weights "$weights" --classes 19
bad "subset, tfjs student" "are for --student deeplabv3-mnv2" $common --student selfie --subset 1
}
"$ams" sim --help | grep -q -- "--subset c1,c2" || fail "--help does not document --subset"
echo "sim_deeplab_cli: ok"
