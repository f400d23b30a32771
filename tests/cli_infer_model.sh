#!/bin/sh
# cli_infer_model.sh - `ams infer --model` on a tiny hand-written TF.js model (no
# download needed): the output equals the graph's arithmetic, named outputs and
# signature keys resolve, and bad input gives a one-line error and a non-zero exit.
# Env: AMS_BIN, AMS_SOURCE_DIR (set by CTest).
set -eu

src="${AMS_SOURCE_DIR:-$(cd "$(dirname "$0")/.." && pwd)}"
ams="${AMS_BIN:-$src/build/ams}"
work=$(mktemp -d "${TMPDIR:-/tmp}/cli_infer_model.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM
fail() { echo "cli_infer_model: FAIL: $*" >&2; exit 1; }
command -v node >/dev/null 2>&1 || fail "node not found (HINT: run tools/setup)"

# y = relu(x * s) with a fed scalar s; signature key "out"; no weight shards.
cat >"$work/tiny.json" <<'EOF'
{"format":"graph-model","modelTopology":{"node":[
 {"name":"x","op":"Placeholder","attr":{"shape":{"shape":{"dim":[{"size":"-1"},{"size":"-1"},{"size":"-1"},{"size":"3"}]}}}},
 {"name":"s","op":"Placeholder","attr":{"shape":{"shape":{"unknownRank":true}}}},
 {"name":"m","op":"Mul","input":["x","s"]},
 {"name":"y","op":"Relu","input":["m"]}]},
 "signature":{"outputs":{"out":{"name":"y:0"}}},
 "weightsManifest":[]}
EOF
node "$src/tools/tfjs/npy_tool.js" synth 6 5 "$work/x.npy"

"$ams" infer --model "$work/tiny.json" --input "$work/x.npy" --output "$work/y1.npy" --feed s=1 \
  2>"$work/err" || fail "feed s=1: $(cat "$work/err")"
node "$src/tools/tfjs/npy_tool.js" diff "$work/y1.npy" "$work/x.npy" 0 >/dev/null ||
  fail "relu(x * 1) != x for a positive x"
"$ams" infer --model "$work/tiny.json" --input "$work/x.npy" --output "$work/y0.npy" --feed s=-1 \
  --output-name out 2>"$work/err" || fail "--output-name out: $(cat "$work/err")"
# relu(-x) = 0 everywhere for a positive x
node -e "const {readNpy}=require('$src/tools/tfjs/npy.js');const y=readNpy('$work/y0.npy');
  if (y.data.some(v => v !== 0)) process.exit(1);" || fail "relu(-x) is not all zero"

expect_fail() { # WHAT MESSAGE-PART ARGS...
  what=$1 part=$2
  shift 2
  if "$ams" infer "$@" >"$work/out" 2>"$work/err"; then fail "$what: exit 0"; fi
  grep -q -- "$part" "$work/err" || fail "$what: expected '$part' in: $(cat "$work/err")"
  [ "$(wc -l <"$work/err")" -le 2 ] || fail "$what: more than an error + HINT line: $(cat "$work/err")"
}
expect_fail "unfed input" "input 's' is not fed" --model "$work/tiny.json" --input "$work/x.npy" --output "$work/o.npy"
expect_fail "bad feed" "NAME=VALUE" --model "$work/tiny.json" --input "$work/x.npy" --output "$work/o.npy" --feed s
expect_fail "unknown output" "no output or node named 'nope'" --model "$work/tiny.json" --input "$work/x.npy" \
  --output "$work/o.npy" --feed s=1 --output-name nope
expect_fail "missing model" "cannot open" --model "$work/none.json" --input "$work/x.npy" --output "$work/o.npy"
AMS_CACHE="$work/empty" expect_fail "uncached name" "tools/fetch-models" --model rvm --input "$work/x.npy" --output "$work/o.npy"
printf '{"modelTopology":' >"$work/bad.json"
expect_fail "bad json" "not valid JSON" --model "$work/bad.json" --input "$work/x.npy" --output "$work/o.npy"
"$ams" infer --model x --help | grep -q "output-name" || fail "--help"
echo "cli_infer_model: ok"
