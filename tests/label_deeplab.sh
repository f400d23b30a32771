#!/bin/sh
# label_deeplab.sh - `ams label` with a DeepLabV3-MNV2 teacher (the test fixture's 19-class
# weights) on real frames of vtest.avi: 19 classes, and every plane is the argmax of the logits
# `ams infer --arch` computes on the same frames (two frames of vtest.avi cut by the ffmpeg CLI
# into a folder of 128x96 PNGs, read by `ams label` as an image sequence at 1 fps, losslessly and
# unscaled): identical planes, stamped 0 and 1 s.
# Skips, saying why, only when the video is not cached and cannot be fetched.
# Env: AMS_BIN, AMS_SOURCE_DIR, AMS_BINARY_DIR (set by CTest).
set -eu

src="${AMS_SOURCE_DIR:-$(cd "$(dirname "$0")/.." && pwd)}"
ams="${AMS_BIN:-$src/build/ams}"
py=/usr/bin/python3 # Debian's, with numpy
work=$(mktemp -d "${AMS_BINARY_DIR:-/tmp}/label_deeplab.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM
fail() { echo "label_deeplab: FAIL: $*" >&2; exit 1; }
[ -x "$ams" ] || fail "no ams binary at $ams (set AMS_BIN)"
for t in ffmpeg zstd "$py"; do command -v "$t" >/dev/null 2>&1 || fail "$t not found (HINT: run tools/setup)"; done
if ! video=$("$src/tools/fetch-videos" 2>"$work/fv.err" | tail -n 1) || [ ! -f "$video" ]; then
  root="${AMS_CACHE:-${HOME:-/tmp}/.cache/ams}"
  [ -f "$root/videos/vtest.avi" ] && fail "tools/fetch-videos failed with a cache present: $(cat "$work/fv.err")"
  echo "label_deeplab: SKIP: vtest.avi is not cached and cannot be fetched: $(cat "$work/fv.err")"
  exit 0
fi
weights="$src/tests/data/deeplab/os16-1x33x46-c19/weights.safetensors"
dl="--weights $weights --classes 19 --os 16 --threads 1"

mkdir "$work/seq"
for k in 0 1; do
  ffmpeg -loglevel error -y -i "$video" -vf "select=eq(n\,$((k * 10))),scale=128:96:flags=area" \
    -frames:v 1 "$work/seq/f$k.png" || fail "ffmpeg frame $k"
  ffmpeg -loglevel error -y -i "$work/seq/f$k.png" -f rawvideo -pix_fmt rgb24 "$work/f$k.rgb"
done
# shellcheck disable=SC2086
"$ams" label --teacher deeplabv3-mnv2 $dl --video "$work/seq" --image-fps 1 --width 128 --height 96 \
  --output "$work/d.labels" >"$work/d.json" 2>"$work/d.err" || fail "label: $(cat "$work/d.err")"
grep -q '"frames": 2, "new": 2, "resumed": 0, "width": 128, "height": 96, "classes": 19' "$work/d.json" ||
  fail "JSON: $(cat "$work/d.json")"
for k in 0 1; do
  "$py" -c "import numpy as np, sys; np.save(sys.argv[2], np.fromfile(sys.argv[1], np.uint8)
.reshape(1, 96, 128, 3).astype(np.float32))" "$work/f$k.rgb" "$work/f$k.npy"
  # shellcheck disable=SC2086
  "$ams" infer --arch deeplabv3-mnv2 $dl --input "$work/f$k.npy" --output "$work/y$k.npy" \
    2>"$work/i.err" || fail "infer: $(cat "$work/i.err")"
done
"$py" - "$work/d.labels" "$work/y0.npy" "$work/y1.npy" <<'PYEOF' || fail "labels are not the argmax of the logits"
import struct, subprocess, sys
import numpy as np
b = open(sys.argv[1], 'rb').read()
ver, hsize, w, h, classes, mlen = struct.unpack_from('<6I', b, 8)
assert (b[:8], ver, w, h, classes) == (b'AMSLABEL', 1, 128, 96, 19)
off, k = hsize, 0
while off < len(b):
    size, pts = struct.unpack_from('<Id', b, off + 4)
    plane = np.frombuffer(subprocess.run(['zstd', '-d', '-c'], input=b[off + 20:off + 20 + size],
                          capture_output=True, check=True).stdout, np.uint8).reshape(96, 128)
    ref = np.load(sys.argv[2 + k])[0].argmax(axis=2)
    agree = float((plane == ref).mean())
    print('label_deeplab: frame', k, 'pts', pts, 'agree %.4f' % agree, 'classes', len(np.unique(ref)))
    assert abs(pts - k) < 1e-6 and agree >= 0.999 and len(np.unique(ref)) > 1
    off += 20 + size
    k += 1
assert k == 2
PYEOF
# shellcheck disable=SC2086
if "$ams" label --teacher deeplabv3-mnv2 --video "$video" --output "$work/x.labels" 2>"$work/err"; then
  fail "no --weights: exit 0"
fi
grep -q "needs --weights" "$work/err" || fail "no --weights: $(cat "$work/err")"
echo "label_deeplab: ok"
