#!/bin/sh
# cli_info.sh - `ams info` on committed fixtures: the exact listing, exit 2 with one
# "ams info: ..." line for missing and corrupt files, exit 1 for bad usage.
set -u
: "${AMS_BIN:?AMS_BIN must point to the ams program}"
: "${AMS_SOURCE_DIR:?AMS_SOURCE_DIR must point to the source tree}"
F="$AMS_SOURCE_DIR/tests/data/formats"
T=$(mktemp -d /tmp/ams_cli_info.XXXXXX) || exit 1
trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

# a listing in file order, dtype as stored, then the totals (hand-computed:
# 6+4+1+0 elements; 24+4+4+0 bytes)
"$AMS_BIN" info "$F/multi.safetensors" >"$T/out" 2>"$T/err" || fail "multi: exit $?"
printf 'a/weights\tF32\t[2,3]\nb\tU8\t[4]\nc\tI32\t[]\nd\tF32\t[0,2]\ntotal: 4 tensors, 11 parameters, 32 bytes\n' >"$T/want"
cmp -s "$T/out" "$T/want" || { diff "$T/want" "$T/out" >&2; fail "multi listing"; }
[ ! -s "$T/err" ] || fail "multi: unexpected stderr: $(cat "$T/err")"

"$AMS_BIN" info "$F/bf16.safetensors" >"$T/out" || fail "bf16: exit $?"
printf 'g\tBF16\t[6]\ntotal: 1 tensors, 6 parameters, 12 bytes\n' >"$T/want"
cmp -s "$T/out" "$T/want" || { diff "$T/want" "$T/out" >&2; fail "bf16 listing"; }

# errors: exit 2, nothing on stdout, exactly one line on stderr naming the file
check_error() { # file, text expected in the message
    "$AMS_BIN" info "$1" >"$T/out" 2>"$T/err"
    rc=$?
    [ "$rc" -eq 2 ] || fail "$1: exit $rc, want 2"
    [ ! -s "$T/out" ] || fail "$1: output on stdout"
    [ "$(wc -l <"$T/err")" -eq 1 ] || fail "$1: stderr is not one line: $(cat "$T/err")"
    grep -q "^ams info: $1: .*$2" "$T/err" || fail "$1: stderr: $(cat "$T/err")"
}
check_error "$F/corrupt.safetensors" "truncated"
check_error "$T/missing.safetensors" "cannot open"
printf 'not a safetensors file at all' >"$T/junk.safetensors"
check_error "$T/junk.safetensors" "header length"

# usage: exit 1
"$AMS_BIN" info >/dev/null 2>&1; rc=$?; [ "$rc" -eq 1 ] || fail "no file: exit $rc"
"$AMS_BIN" info --bogus x >/dev/null 2>&1; rc=$?; [ "$rc" -eq 1 ] || fail "bad option: exit $rc"
"$AMS_BIN" info a b >/dev/null 2>&1; rc=$?; [ "$rc" -eq 1 ] || fail "two files: exit $rc"
"$AMS_BIN" info --help | grep -q "usage: ams info" || fail "--help"
echo "cli_info: ok"
