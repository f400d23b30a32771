#!/bin/sh
# parity_deeplab.sh - `ams infer` / `ams grad` on DeepLabV3-MobileNetV2 against the
# independent PyTorch oracle (tools/ref/deeplab_mnv2.py; issue 3, point 6).
#  (a) the committed fixtures in tests/data/deeplab/*/ (need only numpy);
#  (b) fresh random cases made now by tools/ref/make_deeplab_fixture.py (need
#      Debian's python3-torch: missing torch is a failure, not a skip): OS 8 at
#      the odd size 97x131; OS 16, batch 2, a class subset; OS 8, batch 2, an
#      even size (TF SAME pads asymmetrically there), a subset in non-sorted
#      order, F16 weights. The seed is printed; rerun a failure with
#      AMS_PARITY_SEED=<seed>.
# Tolerances and the error table: tools/ref/compare.py. Runs from CTest with
# AMS_BIN, AMS_SOURCE_DIR, AMS_BINARY_DIR set (AMS_PYTHON overrides the
# interpreter, to test this script's own failure paths). About 15 s in a
# Release build, 35 s with ASan, most of it torch.
set -u
: "${AMS_BIN:?AMS_BIN not set}" "${AMS_SOURCE_DIR:?AMS_SOURCE_DIR not set}"
: "${AMS_BINARY_DIR:?AMS_BINARY_DIR not set}"
PY=${AMS_PYTHON:-/usr/bin/python3}  # Debian's interpreter: python3-numpy, python3-torch
REF=$AMS_SOURCE_DIR/tools/ref
WORK=$AMS_BINARY_DIR/parity
rm -rf "$WORK"
mkdir -p "$WORK" || exit 1
failures=""

fail() {
    echo "parity_deeplab: FAIL: $*"
    failures="$failures
  $*"
}

if ! $PY -c 'import numpy' 2>/dev/null; then
    echo "parity_deeplab: FAIL: $PY cannot import numpy (tools/setup installs python3-numpy)"
    exit 1
fi

# load_meta DIR: sets m_arch m_os m_classes m_batch m_height m_width m_subset
# (1,2,3 or empty) from DIR/meta.json
load_meta() {
    m_vars=$($PY - "$1/meta.json" <<'EOF'
import json, sys
m = json.load(open(sys.argv[1]))
for k in ('arch', 'os', 'classes', 'batch', 'height', 'width', 'subset'):
    v = m[k]
    v = '' if v is None else ','.join(map(str, v)) if isinstance(v, list) else str(v)
    assert all(c.isalnum() or c in ',-' for c in v), (k, v)
    print('m_%s=%s' % (k, v))
EOF
) || return 1
    eval "$m_vars"
}

# check NAME DIR: runs ams infer + ams grad on fixture DIR and compares.
# shellcheck disable=SC2154  # m_* are set by load_meta's eval
check() {
    c_name=$1 c_dir=$2
    if ! load_meta "$c_dir"; then
        fail "$c_name: cannot read $c_dir/meta.json"
        return
    fi
    flags="--arch $m_arch --os $m_os --classes $m_classes"
    subset=$m_subset
    out=$WORK/$c_name
    mkdir -p "$out"
    echo "== $c_name: $flags, batch $m_batch, ${m_height}x$m_width, subset ${subset:-none} ($c_dir)"
    t0=$(date +%s)
    # shellcheck disable=SC2086
    if ! "$AMS_BIN" infer $flags --weights "$c_dir/weights.safetensors" --input "$c_dir/input.npy" \
            --output "$out/logits.npy"; then
        fail "$c_name: ams infer exited non-zero"
        return
    fi
    t1=$(date +%s)
    # shellcheck disable=SC2086
    if ! "$AMS_BIN" grad $flags ${subset:+--subset "$subset"} --weights "$c_dir/weights.safetensors" \
            --input "$c_dir/input.npy" --labels "$c_dir/labels.npy" \
            --output "$out/grads.safetensors" >"$out/grad.txt"; then
        cat "$out/grad.txt"
        fail "$c_name: ams grad exited non-zero"
        return
    fi
    t2=$(date +%s)
    echo "   ams infer $((t1 - t0)) s, ams grad $((t2 - t1)) s"
    $PY "$REF/compare.py" --fixture "$c_dir" --logits "$out/logits.npy" \
        --grads "$out/grads.safetensors" --grad-log "$out/grad.txt" || fail "$c_name: parity"
}

# (a) committed fixtures
n=0
for d in "$AMS_SOURCE_DIR"/tests/data/deeplab/*/; do
    [ -f "$d/meta.json" ] || continue
    check "committed-$(basename "$d")" "${d%/}"
    n=$((n + 1))
done
[ "$n" -gt 0 ] || fail "no committed fixture under tests/data/deeplab/"

# (b) live cases
if ! $PY -c 'import torch' 2>/dev/null; then
    fail "$PY cannot import torch: the live PyTorch comparison cannot run (tools/setup installs python3-torch)"
else
    seed=${AMS_PARITY_SEED:-$(od -An -N2 -tu2 /dev/urandom | tr -d ' ')}
    echo "== live cases, seed $seed (rerun with AMS_PARITY_SEED=$seed)"
    i=0
    for name in os8-97x131 os16-b2-subset os8-b2-even-subset; do
        case $name in
        os8-97x131) args="--os 8 --classes 19 --batch 1 --height 97 --width 131" ;;
        os16-b2-subset)
            args="--os 16 --classes 19 --batch 2 --height 65 --width 89 --subset 1,4,6,8,11" ;;
        os8-b2-even-subset)
            args="--os 8 --classes 12 --batch 2 --height 56 --width 72 --subset 7,0,2,5 --dtype f16" ;;
        esac
        i=$((i + 1))
        dir=$WORK/fixture-$name
        # shellcheck disable=SC2086
        if ! $PY "$REF/make_deeplab_fixture.py" $args --seed $((seed + 100 * i)) --out "$dir" \
                --f32-out "$dir/torch-f32"; then
            fail "live $name: fixture generation"
            continue
        fi
        check "live-$name" "$dir"
    done

    # The comparison itself must be able to fail: a float32 engine (torch's own
    # float32 run) passes; the same outputs, slightly wrong, do not.
    dir=$WORK/fixture-os16-b2-subset
    if [ -d "$dir/torch-f32" ]; then
        echo "== control: torch float32 outputs against the float64 expectations"
        $PY "$REF/compare.py" --fixture "$dir" --logits "$dir/torch-f32/logits.npy" \
            --grads "$dir/torch-f32/grads.safetensors" --grad-log "$dir/torch-f32/grad.txt" \
            || fail "control: torch float32 outputs rejected"
        for bad in logits loss grad names; do
            mkdir -p "$WORK/bad-$bad"
            $PY - "$dir/torch-f32" "$WORK/bad-$bad" "$bad" <<'EOF'
import json, shutil, struct, sys
import numpy as np
src, dst, what = sys.argv[1:]
for f in ('logits.npy', 'grads.safetensors', 'grad.txt'):
    shutil.copy(src + '/' + f, dst + '/' + f)
if what == 'logits':        # 3e-4 of max|logit| at one element
    y = np.load(src + '/logits.npy')
    y.flat[7] += 3e-4 * np.abs(y).max()
    np.save(dst + '/logits.npy', y)
if what == 'loss':          # 3e-5 relative
    v = float(open(src + '/grad.txt').read().split()[1])
    open(dst + '/grad.txt', 'w').write('loss %.9g\n' % (v * (1 + 3e-5)))
if what in ('grad', 'names'):
    raw = open(src + '/grads.safetensors', 'rb').read()
    n = struct.unpack('<Q', raw[:8])[0]
    h = json.loads(raw[8:8 + n])
    data = bytearray(raw[8 + n:])
    if what == 'grad':      # one tensor 0.3 % too large
        b, e = h['aspp0/BatchNorm/beta']['data_offsets']
        g = np.frombuffer(bytes(data[b:e]), '<f4') * np.float32(1.003)
        data[b:e] = g.astype('<f4').tobytes()
    else:                   # a moving statistic passed off as trainable
        h['aspp0/BatchNorm/moving_mean'] = dict(h['aspp0/BatchNorm/beta'])
    hb = json.dumps(h).encode()
    hb += b' ' * ((8 - len(hb) % 8) % 8)
    open(dst + '/grads.safetensors', 'wb').write(struct.pack('<Q', len(hb)) + hb + bytes(data))
EOF
            if $PY "$REF/compare.py" --fixture "$dir" --logits "$WORK/bad-$bad/logits.npy" \
                    --grads "$WORK/bad-$bad/grads.safetensors" \
                    --grad-log "$WORK/bad-$bad/grad.txt" >"$WORK/bad-$bad/compare.txt"; then
                fail "control: compare.py accepted wrong $bad"
            else
                echo "   wrong $bad rejected: $(grep 'compare: FAIL' "$WORK/bad-$bad/compare.txt")"
            fi
        done
    fi
fi

if [ -n "$failures" ]; then
    echo "parity_deeplab: FAILED:$failures"
    exit 1
fi
echo "parity_deeplab: all cases within tolerance"
exit 0
