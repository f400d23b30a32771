#!/bin/sh
# parity_xception.sh - `ams infer` / `ams grad` on DeepLabV3+-Xception65 against the
# independent PyTorch oracle (tools/ref/deeplab_xception65.py; issue 5, point 6).
# The model has 41 M values, so nothing is committed: tools/ref/make_xception_fixture.py
# makes fresh random cases now (needs Debian's python3-torch: missing torch is a
# failure, not a skip), into the build directory:
#   os16-49x49  OS 16, 1x49x49, 3 classes (odd size: SAME and fixed padding agree)
#   os8-48x40   OS 8, 1x48x40, 3 classes (even size: the strided separable convs'
#               fixed_padding differs from TF SAME; atrous middle/exit flows)
# The seed is fixed (18; AMS_PARITY_SEED=<seed> picks another): this network's
# float32 rounding floor is close to the logits and loss tolerances (torch's own
# float32 run lands 3e-5..1.2e-4 of max|logit| and 1e-6..1.5e-5 loss rel from the
# float64 truth on random weights, the engine ~1-3x that; see
# make_xception_fixture.py), so random seeds fail now and then on logits or loss
# although the gradients stay ~10x inside theirs. Tolerances and the error
# table: tools/ref/compare.py (logits 1e-4 of max|logit|, gradients 1e-3 rel L2).
# The loss is checked here against LOSS_TOL = 5e-5 relative, not compare.py's 1e-5:
# the engine's float32 loss lands up to 2.2e-5 from the float64 truth on these
# networks (measured: Release 2e-7..1.3e-5, Debug+ASan up to 2.2e-5; torch's own
# float32 up to 1.6e-5), so 1e-5 would fail on rounding alone; the line printed
# says whether 1e-5 was met. A last check feeds compare.py logits
# 3e-4 of max|logit| off at one element and expects a rejection.
# Runs from CTest with AMS_BIN, AMS_SOURCE_DIR, AMS_BINARY_DIR set.
set -u
: "${AMS_BIN:?AMS_BIN not set}" "${AMS_SOURCE_DIR:?AMS_SOURCE_DIR not set}"
: "${AMS_BINARY_DIR:?AMS_BINARY_DIR not set}"
PY=/usr/bin/python3          # Debian's interpreter: it has python3-numpy and python3-torch
REF=$AMS_SOURCE_DIR/tools/ref
WORK=$AMS_BINARY_DIR/parity-xception
rm -rf "$WORK"
mkdir -p "$WORK" || exit 1
failures=""
LOSS_TOL=5e-5

fail() {
    echo "parity_xception: FAIL: $*"
    failures="$failures
  $*"
}

# check_loss DIR GRADLOG: the `loss <value>` line of GRADLOG against DIR/loss.txt, LOSS_TOL
check_loss() {
    $PY - "$1" "$2" "$LOSS_TOL" <<'EOF'
import sys
d, log, tol = sys.argv[1], sys.argv[2], float(sys.argv[3])
got = [float(l.split()[1]) for l in open(log) if l.startswith('loss ')][0]
exp = float(open(d + '/loss.txt').read().split()[0])
rel = abs(got - exp) / abs(exp)
print('  loss: %.9g vs %.9g, rel err %.3e (tol %.0e; 1e-05 %s)  %s'
      % (got, exp, rel, tol, 'met' if rel <= 1e-5 else 'not met', 'ok' if rel <= tol else 'FAIL'))
sys.exit(0 if rel <= tol else 1)
EOF
}

if ! $PY -c 'import numpy, torch' 2>/dev/null; then
    echo "parity_xception: FAIL: $PY cannot import numpy and torch (tools/setup installs" \
        "python3-numpy and python3-torch)"
    exit 1
fi

seed=${AMS_PARITY_SEED:-18}
echo "== seed $seed (AMS_PARITY_SEED=<n> picks another)"
i=0
for name in os16-49x49 os8-48x40; do
    case $name in
    os16-49x49) os=16 h=49 w=49 ;;
    os8-48x40) os=8 h=48 w=40 ;;
    esac
    i=$((i + 1))
    dir=$WORK/$name
    t0=$(date +%s)
    if ! $PY "$REF/make_xception_fixture.py" --os $os --classes 3 --height $h --width $w \
            --seed $((seed + 100 * i)) --out "$dir"; then
        fail "$name: fixture generation"
        continue
    fi
    t1=$(date +%s)
    flags="--arch deeplabv3plus-xception65 --os $os --classes 3 --weights $dir/weights.safetensors"
    # shellcheck disable=SC2086
    if ! "$AMS_BIN" infer $flags --input "$dir/input.npy" --output "$dir/out-logits.npy"; then
        fail "$name: ams infer exited non-zero"
        continue
    fi
    t2=$(date +%s)
    # shellcheck disable=SC2086
    if ! "$AMS_BIN" grad $flags --input "$dir/input.npy" --labels "$dir/labels.npy" \
            --output "$dir/out-grads.safetensors" >"$dir/out-grad.txt"; then
        cat "$dir/out-grad.txt"
        fail "$name: ams grad exited non-zero"
        continue
    fi
    t3=$(date +%s)
    echo "   oracle $((t1 - t0)) s, ams infer $((t2 - t1)) s, ams grad $((t3 - t2)) s"
    $PY "$REF/compare.py" --fixture "$dir" --logits "$dir/out-logits.npy" \
        --grads "$dir/out-grads.safetensors" || fail "$name: parity"
    check_loss "$dir" "$dir/out-grad.txt" || fail "$name: loss"
done

# The comparison must be able to fail on this model too.
dir=$WORK/os16-49x49
if [ -f "$dir/out-logits.npy" ]; then
    $PY - "$dir" <<'EOF'
import sys
import numpy as np
d = sys.argv[1]
y = np.load(d + '/logits.npy')
y.flat[y.size // 2] += 3e-4 * np.abs(y).max()
np.save(d + '/bad-logits.npy', y)
EOF
    if $PY "$REF/compare.py" --fixture "$dir" --logits "$dir/bad-logits.npy" >"$WORK/bad.txt"; then
        fail "control: compare.py accepted logits 3e-4 off"
    else
        echo "== control: $(grep 'logits:' "$WORK/bad.txt")"
    fi
    awk '{ printf "loss %.9g\n", $1 * 1.0001 }' "$dir/loss.txt" >"$WORK/bad-grad.txt"
    if check_loss "$dir" "$WORK/bad-grad.txt" >"$WORK/bad-loss.txt"; then
        fail "control: a loss 1e-4 off was accepted"
    else
        echo "== control: $(cat "$WORK/bad-loss.txt")"
    fi
fi

if [ -n "$failures" ]; then
    echo "parity_xception: FAILED:$failures"
    exit 1
fi
echo "parity_xception: all cases within tolerance"
exit 0
