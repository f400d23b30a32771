#!/bin/sh
# Bad input to `ams infer` / `ams grad`: every case must exit non-zero with one clear
# line on stderr naming the file and the problem - never a crash (exit >= 128).
set -u
AMS=${AMS_BIN:?}
PY=/usr/bin/python3
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fails=0
passes=0

# a valid model and batch: the committed PyTorch parity fixture (19 classes, 1x33x46)
FX="$AMS_SOURCE_DIR/tests/data/deeplab/os16-1x33x46-c19"
mkdir -p "$T/fx" && cp "$FX/weights.safetensors" "$FX/input.npy" "$FX/labels.npy" "$T/fx/"
"$PY" - "$T" <<'PY'
import sys, numpy as np
t = sys.argv[1]
np.save(t + "/x4.npy", np.zeros((1, 33, 46, 4), np.float32))
x = np.full((1, 33, 46, 3), 100, np.float32); x[0, 3, 4, 1] = np.nan
np.save(t + "/nan.npy", x)
np.save(t + "/i32.npy", np.zeros((1, 33, 46, 3), np.int32))
np.save(t + "/lab_badshape.npy", np.zeros((1, 32, 46), np.uint8))
lab = np.zeros((1, 33, 46), np.uint8); lab[0, 0, 0] = 23
np.save(t + "/lab_badclass.npy", lab)
b = open(t + "/fx/input.npy", "rb").read()
open(t + "/trunc.npy", "wb").write(b[: len(b) - 10])
w = open(t + "/fx/weights.safetensors", "rb").read()
open(t + "/trunc.safetensors", "wb").write(w[: len(w) // 2])
open(t + "/lying.safetensors", "wb").write((10**12).to_bytes(8, "little") + w[8:100])
open(t + "/garbage.npy", "wb").write(b"this is not a numpy file at all")
PY

# expect NAME PATTERN -- ams args...: non-zero exit < 128 and stderr matching PATTERN
expect() {
  name=$1; pattern=$2; shift 3
  "$AMS" "$@" >"$T/out" 2>"$T/err"
  rc=$?
  if [ $rc -eq 0 ] || [ $rc -ge 128 ] || ! grep -q -- "$pattern" "$T/err"; then
    echo "FAIL $name: exit $rc, stderr:"; cat "$T/err"; fails=$((fails + 1))
  else
    echo "ok   $name: $(head -n 1 "$T/err")"; passes=$((passes + 1))
  fi
}

M="--arch deeplabv3-mnv2 --os 16 --classes 19"
W="--weights $T/fx/weights.safetensors"
expect wrong_channels "x4.npy" -- infer $M $W --input "$T/x4.npy" --output "$T/y.npy"
expect nan_input "non-finite" -- infer $M $W --input "$T/nan.npy" --output "$T/y.npy"
expect int32_input "expected float32" -- infer $M $W --input "$T/i32.npy" --output "$T/y.npy"
expect truncated_npy "trunc.npy" -- infer $M $W --input "$T/trunc.npy" --output "$T/y.npy"
expect garbage_npy "garbage.npy" -- infer $M $W --input "$T/garbage.npy" --output "$T/y.npy"
expect missing_input "nope.npy" -- infer $M $W --input "$T/nope.npy" --output "$T/y.npy"
expect missing_weights "none.safetensors" -- infer $M --weights "$T/none.safetensors" --input "$T/fx/input.npy" --output "$T/y.npy"
expect truncated_weights "trunc.safetensors" -- infer $M --weights "$T/trunc.safetensors" --input "$T/fx/input.npy" --output "$T/y.npy"
expect lying_header "lying.safetensors" -- infer $M --weights "$T/lying.safetensors" --input "$T/fx/input.npy" --output "$T/y.npy"
expect wrong_classes "logits/semantic" -- infer --arch deeplabv3-mnv2 --os 16 --classes 4 $W --input "$T/fx/input.npy" --output "$T/y.npy"
expect bad_os "--os" -- infer --arch deeplabv3-mnv2 --os 12 --classes 19 $W --input "$T/fx/input.npy" --output "$T/y.npy"
expect unknown_arch "unknown --arch" -- infer --arch resnet --os 16 --classes 19 $W --input "$T/fx/input.npy" --output "$T/y.npy"
expect labels_shape "lab_badshape.npy" -- grad $M $W --input "$T/fx/input.npy" --labels "$T/lab_badshape.npy" --output "$T/g.safetensors"
expect labels_class "label 23" -- grad $M $W --input "$T/fx/input.npy" --labels "$T/lab_badclass.npy" --output "$T/g.safetensors"
expect bad_subset "--subset" -- grad $M $W --input "$T/fx/input.npy" --labels "$T/fx/labels.npy" --subset 0,19 --output "$T/g.safetensors"
expect unwritable_output "y.npy" -- infer $M $W --input "$T/fx/input.npy" --output "$T/no/such/dir/y.npy"
expect unknown_command "unknown command" -- frobnicate
# no output file may be left behind by a failed run
if ls "$T"/y.npy* "$T"/g.safetensors* >/dev/null 2>&1; then
  echo "FAIL a failed run left an output file"; fails=$((fails + 1))
else passes=$((passes + 1)); fi
# --help works and exits 0
for c in infer grad info; do
  if "$AMS" $c --help | grep -q "usage: ams $c"; then passes=$((passes + 1)); else
    echo "FAIL ams $c --help"; fails=$((fails + 1)); fi
done
echo "$passes passed, $fails failed"
[ $fails -eq 0 ]
