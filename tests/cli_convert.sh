#!/bin/sh
# cli_convert.sh - `ams convert` end to end.
#  1. TF checkpoints: tools/ref/write_tf_bundle.py writes, byte by byte, a 2-shard bundle
#     of a DeepLab-MNV2 variable set (random weights, some stored float16, with
#     /Momentum and /ExponentialMovingAverage slots and an int64 global_step) and the
#     same weights directly as safetensors. `ams convert --arch deeplabv3-mnv2` and
#     `ams infer --weights` on it must give logits bit-identical to the direct file;
#     a wrong --classes, a flipped data byte and a truncated index fail cleanly.
#  2. TF.js: `ams convert selfie|rvm OUT.safetensors` then `ams infer --model OUT` gives
#     outputs bit-identical to the model.json (rvm at downsample_ratio 1 and 0.5).
#     Skips (saying so) only when the models are not cached and cannot be fetched.
# Env: AMS_BIN, AMS_SOURCE_DIR, AMS_BINARY_DIR (set by CTest).
set -eu

src="${AMS_SOURCE_DIR:-$(cd "$(dirname "$0")/.." && pwd)}"
ams="${AMS_BIN:-$src/build/ams}"
py=/usr/bin/python3
work=$(mktemp -d "${AMS_BINARY_DIR:-/tmp}/cli_convert.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM

fail() { echo "cli_convert: FAIL: $*" >&2; exit 1; }
[ -x "$ams" ] || fail "no ams binary at $ams (set AMS_BIN)"

# ---- 1. TF checkpoint -> safetensors -> DeepLab inference
like="$src/tests/data/deeplab/os16-1x33x46-c19/weights.safetensors" # names and shapes only
mkdir -p "$work/ckpt"
"$py" "$src/tools/ref/write_tf_bundle.py" --like "$like" --prefix "$work/ckpt/model.ckpt-30000" \
  --safetensors "$work/direct.safetensors" --shards 2 --half-every 7 --slots --block-size 2048 \
  >/dev/null || fail "write_tf_bundle.py failed"
"$py" -c "import numpy as np; np.save('$work/img.npy', (np.random.default_rng(5).random((2,41,57,3))*255).astype(np.float32))"

"$ams" convert "$work/ckpt/model.ckpt-30000" "$work/conv.safetensors" --arch deeplabv3-mnv2 \
  --classes 19 2>"$work/conv.err" || fail "convert: $(cat "$work/conv.err")"
grep -q "272 tensors; 545 other variables skipped" "$work/conv.err" ||
  fail "convert kept the wrong variables: $(cat "$work/conv.err")"
for w in direct conv; do
  "$ams" infer --arch deeplabv3-mnv2 --os 16 --classes 19 --weights "$work/$w.safetensors" \
    --input "$work/img.npy" --output "$work/$w.npy" 2>"$work/$w.err" ||
    fail "infer with $w weights: $(cat "$work/$w.err")"
done
cmp -s "$work/direct.npy" "$work/conv.npy" || fail "converted checkpoint: logits differ"
# without --arch: every model variable as it is (the same 272 tensors)
"$ams" convert "$work/ckpt/model.ckpt-30000" "$work/all.safetensors" 2>"$work/all.err" ||
  fail "convert without --arch: $(cat "$work/all.err")"
"$ams" infer --arch deeplabv3-mnv2 --os 16 --classes 19 --weights "$work/all.safetensors" \
  --input "$work/img.npy" --output "$work/all.npy" 2>/dev/null || fail "infer with all.safetensors"
cmp -s "$work/direct.npy" "$work/all.npy" || fail "convert without --arch: logits differ"
echo "cli_convert: checkpoint (2 shards, float16 + float32, slots dropped) -> logits bit-identical"

expect_fail() { # WHAT PATTERN ARGS...
  what=$1 pat=$2
  shift 2
  rc=0
  "$ams" convert "$@" >"$work/x.out" 2>"$work/x.err" || rc=$?
  [ "$rc" -ne 0 ] || fail "$what: convert succeeded"
  [ "$rc" -eq 2 ] || fail "$what: exit $rc (want 2): $(cat "$work/x.err")"
  grep -q "$pat" "$work/x.err" || fail "$what: message lacks '$pat': $(cat "$work/x.err")"
}
expect_fail "wrong classes" "needs \[1,1,256,21\]" "$work/ckpt/model.ckpt-30000" "$work/o.safetensors" \
  --arch deeplabv3-mnv2 --classes 21
cp "$work/ckpt/model.ckpt-30000.index" "$work/index.bak"
head -c 1000 "$work/index.bak" >"$work/ckpt/model.ckpt-30000.index"
expect_fail "truncated index" "footer" "$work/ckpt/model.ckpt-30000" "$work/o.safetensors"
cp "$work/index.bak" "$work/ckpt/model.ckpt-30000.index"
# byte 0 of shard 0: the first variable in key order, MobilenetV2/Conv/BatchNorm/beta
"$py" - "$work/ckpt/model.ckpt-30000.data-00000-of-00002" <<'EOF'
import sys
p = sys.argv[1]
b = bytearray(open(p, "rb").read())
b[0] ^= 0x40
open(p, "wb").write(bytes(b))
EOF
expect_fail "flipped data byte" "BatchNorm/beta': crc32c mismatch" "$work/ckpt/model.ckpt-30000" "$work/o.safetensors"
[ ! -e "$work/o.safetensors" ] || fail "a failed convert left an output file"
echo "cli_convert: bad classes / truncated index / corrupt data -> clear errors"

# ---- 2. TF.js model.json -> safetensors -> identical outputs
if ! "$src/tools/fetch-models" >"$work/fetch.out" 2>"$work/fetch.err"; then
  root="${AMS_CACHE:-${HOME:-/tmp}/.cache/ams}"
  if [ ! -f "$root/models/selfie.json" ]; then
    echo "cli_convert: SKIP TF.js part: models are not cached and cannot be fetched: $(cat "$work/fetch.err")"
    echo "cli_convert: ok"
    exit 0
  fi
  fail "tools/fetch-models failed with a cache present: $(cat "$work/fetch.err")"
fi
"$py" -c "import numpy as np; np.save('$work/rgb.npy', np.random.default_rng(6).random((1,288,384,3)).astype(np.float32))"
same() { # NAME FEEDS...
  name=$1
  shift
  "$ams" infer --model "$name" --input "$work/rgb.npy" --output "$work/a.npy" "$@" 2>"$work/a.err" ||
    fail "infer $name: $(cat "$work/a.err")"
  "$ams" infer --model "$work/$name.safetensors" --input "$work/rgb.npy" --output "$work/b.npy" \
    "$@" 2>"$work/b.err" || fail "infer $name.safetensors: $(cat "$work/b.err")"
  cmp -s "$work/a.npy" "$work/b.npy" || fail "$name: converted model's output differs"
}
for m in selfie rvm; do
  "$ams" convert "$m" "$work/$m.safetensors" 2>"$work/c.err" || fail "convert $m: $(cat "$work/c.err")"
done
same selfie
rvmf="--output-name pha --feed r1i=0 --feed r2i=0 --feed r3i=0 --feed r4i=0"
# shellcheck disable=SC2086
same rvm $rvmf --feed downsample_ratio=1
# shellcheck disable=SC2086
same rvm $rvmf --feed downsample_ratio=0.5
expect_fail "not a checkpoint or model" "" "$work/nothing.json" "$work/o.safetensors"
"$ams" infer --model "$work/direct.safetensors" --input "$work/rgb.npy" --output "$work/o.npy" \
  2>"$work/d.err" && fail "infer --model accepted plain weights"
grep -q "not a converted TF.js model" "$work/d.err" || fail "plain weights: $(cat "$work/d.err")"
echo "cli_convert: selfie, rvm (ratio 1, 0.5) -> outputs bit-identical after convert"
echo "cli_convert: ok"
