#!/bin/sh
# label_rvm.sh - `ams label` with the RVM teacher on real frames of vtest.avi:
#  1. the first 3 s at 2 fps: a label file that an independent reader (Python, written from
#     the format in label_store.h, zstd CLI) parses: 6 frames at pts 0, 0.5, ..., 2.5, 2 classes,
#     256x192 planes of 0/1; frames 0 and 5 agree with `ams infer --model rvm` on the same
#     frames decoded by the ffmpeg CLI, thresholded at 0.5 (>= 98 % of pixels, person IoU >= 0.7);
#  2. resume: a run interrupted by SIGINT (exit 130), then with a torn last record (a crash
#     mid-write), then rerun, gives a file byte-identical to an uninterrupted run; so does a run
#     killed by SIGKILL and rerun;
#  3. bad input (missing video, unknown model, other settings on resume, bad sizes) exits
#     non-zero with one line (+ an optional HINT) and leaves no label file behind.
# Skips, saying why, only when the models or the video are not cached and cannot be fetched.
# Env: AMS_BIN, AMS_SOURCE_DIR, AMS_BINARY_DIR (set by CTest).
set -eu

src="${AMS_SOURCE_DIR:-$(cd "$(dirname "$0")/.." && pwd)}"
ams="${AMS_BIN:-$src/build/ams}"
py=/usr/bin/python3 # Debian's, with numpy
work=$(mktemp -d "${AMS_BINARY_DIR:-/tmp}/label_rvm.XXXXXX")
pid=""
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$work"' EXIT INT TERM
fail() { echo "label_rvm: FAIL: $*" >&2; exit 1; }
[ -x "$ams" ] || fail "no ams binary at $ams (set AMS_BIN)"
for t in ffmpeg zstd "$py"; do command -v "$t" >/dev/null 2>&1 || fail "$t not found (HINT: run tools/setup)"; done

if ! "$src/tools/fetch-models" >"$work/fm.out" 2>"$work/fm.err" ||
   ! video=$("$src/tools/fetch-videos" 2>"$work/fv.err" | tail -n 1) || [ ! -f "$video" ]; then
  root="${AMS_CACHE:-${HOME:-/tmp}/.cache/ams}"
  if [ ! -f "$root/models/rvm.json" ] || [ ! -f "$root/videos/vtest.avi" ]; then
    echo "label_rvm: SKIP: rvm/vtest.avi are not cached and cannot be fetched: $(cat "$work/fm.err" "$work/fv.err")"
    exit 0
  fi
  fail "tools/fetch-models or fetch-videos failed with a cache present: $(cat "$work/fm.err" "$work/fv.err")"
fi

# An independent reader of the label file: header and record CRCs, zstd payloads via the CLI.
cat >"$work/lbl.py" <<'PYEOF'
import struct, subprocess, sys, zlib
import numpy as np
def read(path, decode=True):
    b = open(path, 'rb').read()
    assert b[:8] == b'AMSLABEL', 'magic'
    ver, hsize, w, h, classes, mlen = struct.unpack_from('<6I', b, 8)
    assert ver == 1 and hsize == 32 + mlen + 4, (ver, hsize, mlen)
    assert struct.unpack_from('<I', b, hsize - 4)[0] == zlib.crc32(b[:hsize - 4]), 'header crc'
    meta = b[32:32 + mlen].decode()
    off, frames = hsize, []
    while off + 20 <= len(b):
        assert b[off:off + 4] == b'LFRM', 'record magic'
        size, pts, crc = struct.unpack_from('<IdI', b, off + 4)
        assert crc == zlib.crc32(b[off:off + 16]), 'record crc'
        if off + 20 + size > len(b): break          # torn tail
        if decode:
            raw = subprocess.run(['zstd', '-d', '-c'], input=b[off + 20:off + 20 + size],
                                 capture_output=True, check=True).stdout
            assert len(raw) == w * h, 'plane size'
            frames.append((pts, np.frombuffer(raw, np.uint8).reshape(h, w)))
        else:
            frames.append((pts, None))
        off += 20 + size
    return w, h, classes, meta, frames
cmd = sys.argv[1]
if cmd == 'count':
    try: print(len(read(sys.argv[2], False)[4]))
    except Exception: print(0)
elif cmd == 'check':  # FILE N W H: N frames at pts k/2, planes of 0/1
    w, h, classes, meta, frames = read(sys.argv[2])
    n, W, H = map(int, sys.argv[3:6])
    assert (w, h, classes) == (W, H, 2), (w, h, classes)
    assert len(frames) == n, len(frames)
    for k, (pts, p) in enumerate(frames):
        assert abs(pts - k * 0.5) < 1e-6, (k, pts)
        assert set(np.unique(p)) <= {0, 1}, np.unique(p)
    assert '"teacher": "rvm' in meta and '"fps": 2' in meta, meta
    print('ones per frame', [int(p.sum()) for _, p in frames])
elif cmd == 'rgb2npy':  # RGB W H OUT
    W, H = int(sys.argv[3]), int(sys.argv[4])
    x = np.fromfile(sys.argv[2], np.uint8).reshape(1, H, W, 3).astype(np.float32) / 255
    np.save(sys.argv[5], x)
elif cmd == 'agree':  # FILE K PHA.npy
    frames = read(sys.argv[2])[4]
    p = frames[int(sys.argv[3])][1]
    q = (np.load(sys.argv[4])[0, :, :, 0] > 0.5).astype(np.uint8)
    agree = float((p == q).mean())
    iou = float(((p == 1) & (q == 1)).sum()) / max(1, int(((p == 1) | (q == 1)).sum()))
    print('frame', sys.argv[3], 'agree %.4f' % agree, 'person iou %.3f' % iou, 'ones', int(p.sum()), int(q.sum()))
    sys.exit(0 if agree >= 0.98 and iou >= 0.7 and q.sum() > 50 else 1)
PYEOF

# 1. the first 3 s at 2 fps, checked against ams infer on ffmpeg-decoded frames
"$ams" label --threads 1 --teacher rvm --video "$video" --fps 2 --seconds 3 --output "$work/a.labels" \
  >"$work/a.json" 2>"$work/a.err" || fail "label: $(cat "$work/a.err")"
tail -n 1 "$work/a.json" | grep -q '"frames": 6, "new": 6' || fail "label JSON: $(cat "$work/a.json")"
"$py" "$work/lbl.py" check "$work/a.labels" 6 256 192 || fail "the label file does not read back"
for k in 0 5; do
  ffmpeg -loglevel error -y -i "$video" -vf "select=eq(n\,$k),scale=256:192:flags=area" -frames:v 1 \
    -f rawvideo -pix_fmt rgb24 "$work/f$k.rgb" || fail "ffmpeg frame $k"
  "$py" "$work/lbl.py" rgb2npy "$work/f$k.rgb" 256 192 "$work/f$k.npy"
  "$ams" infer --threads 1 --model rvm --input "$work/f$k.npy" --output "$work/pha$k.npy" 2>"$work/i.err" ||
    fail "infer: $(cat "$work/i.err")"
  "$py" "$work/lbl.py" agree "$work/a.labels" $((k / 5)) "$work/pha$k.npy" ||
    fail "labels of frame $k disagree with ams infer"
done
echo "label_rvm: $(tail -n 1 "$work/a.json")"

# 2. interrupt (SIGINT), tear the last record, resume: equal to an uninterrupted run
run() { # OUT  (exec: in the background, $! must be ams itself, not a subshell)
  exec "$ams" label --threads 1 --teacher rvm --video "$video" --fps 5 --seconds 8 --width 128 --height 96 --output "$1"
}
(run "$work/full.labels") >"$work/full.json" 2>"$work/full.err" || fail "full run: $(cat "$work/full.err")"
(run "$work/b.labels") >"$work/b1.json" 2>"$work/b1.err" &
pid=$!
i=0
while [ "$("$py" "$work/lbl.py" count "$work/b.labels" 2>/dev/null || echo 0)" -lt 3 ]; do
  i=$((i + 1))
  [ $i -lt 600 ] || fail "the interrupted run wrote no 3 frames in 60 s"
  sleep 0.1
done
kill -INT "$pid"
st=0
wait "$pid" || st=$?
pid=""
[ "$st" -eq 130 ] || fail "SIGINT: exit $st, expected 130: $(cat "$work/b1.err")"
n1=$("$py" "$work/lbl.py" count "$work/b.labels")
[ "$n1" -ge 3 ] && [ "$n1" -lt 40 ] || fail "interrupted run kept $n1 frames (want 3..39)"
size=$(wc -c <"$work/b.labels")
truncate -s $((size - 7)) "$work/b.labels" # a crash in the middle of the last write
(run "$work/b.labels") >"$work/b2.json" 2>"$work/b2.err" || fail "resume: $(cat "$work/b2.err")"
grep -q "dropped" "$work/b2.err" || fail "resume did not report the torn record: $(cat "$work/b2.err")"
grep -q "\"resumed\": $((n1 - 1))" "$work/b2.json" || fail "resume JSON: $(cat "$work/b2.json")"
cmp "$work/b.labels" "$work/full.labels" || fail "interrupted + resumed labels differ from a full run"
[ "$("$py" "$work/lbl.py" count "$work/full.labels")" -eq 40 ] || fail "full run: not 40 frames"
(run "$work/b.labels") >"$work/b3.json" 2>&1 || fail "rerun of a complete file"
grep -q '"new": 0' "$work/b3.json" || fail "rerun of a complete file added frames: $(cat "$work/b3.json")"
# a crash (SIGKILL, nothing flushed by the program) mid-run, then a rerun: identical as well
(run "$work/c.labels") >/dev/null 2>&1 &
pid=$!
i=0
while [ "$("$py" "$work/lbl.py" count "$work/c.labels" 2>/dev/null || echo 0)" -lt 2 ]; do
  i=$((i + 1))
  [ $i -lt 600 ] || fail "the killed run wrote no 2 frames in 60 s"
  sleep 0.1
done
kill -KILL "$pid"
wait "$pid" 2>/dev/null || true
pid=""
(run "$work/c.labels") >"$work/c2.json" 2>"$work/c2.err" || fail "resume after SIGKILL: $(cat "$work/c2.err")"
cmp "$work/c.labels" "$work/full.labels" || fail "killed + resumed labels differ from a full run"
echo "label_rvm: interrupted after $n1 frames, resumed: identical to the full run"

# 3. bad input: one line (+ HINT), non-zero, no label file left behind
expect_fail() { # WHAT MESSAGE-PART ARGS...
  what=$1 part=$2
  shift 2
  if "$ams" label "$@" >"$work/out" 2>"$work/err"; then fail "$what: exit 0"; fi
  grep -q -- "$part" "$work/err" || fail "$what: expected '$part' in: $(cat "$work/err")"
  [ "$(wc -l <"$work/err")" -le 2 ] || fail "$what: more than an error + HINT line: $(cat "$work/err")"
}
expect_fail "missing video" "none.avi" --teacher rvm --video "$work/none.avi" --output "$work/x.labels"
[ ! -e "$work/x.labels" ] || fail "a missing video left a label file"
expect_fail "unknown model" "cannot open" --teacher "$work/nope.json" --video "$video" --output "$work/x.labels"
[ ! -e "$work/x.labels" ] || fail "an unknown model left a label file"
AMS_CACHE="$work/empty" expect_fail "uncached name" "tools/fetch-models" --teacher rvm --video "$video" --output "$work/x.labels"
expect_fail "other fps on resume" "fps 5 there, 4 now" --teacher rvm --video "$video" --fps 4 --seconds 8 \
  --width 128 --height 96 --output "$work/b.labels"
expect_fail "other teacher on resume" "teacher" --teacher selfie --video "$video" --fps 5 --seconds 8 \
  --width 128 --height 96 --output "$work/b.labels"
expect_fail "other size on resume" "label size 128x96 there, 256x192 now" --teacher rvm --video "$video" \
  --fps 5 --output "$work/b.labels"
expect_fail "teacher aspect" "aspect ratio" --teacher rvm --video "$video" --teacher-width 300 \
  --teacher-height 300 --output "$work/x.labels"
cmp "$work/b.labels" "$work/full.labels" || fail "a refused resume changed the file"
"$ams" label --help | grep -q "teacher-width" || fail "--help"
echo "label_rvm: ok"
