#!/bin/sh
# net_tls_cli.sh - TLS end to end with the CLI on loopback: `ams keygen --tls-cert` writes a
# self-signed pair (key 0600, no silent overwrite); `ams server --tls-cert --tls-key` with the
# stub compute serves two `ams edge --tls-ca` edges (selfie, 2 s of vtest.avi, --fast), each
# ending with the server's exact weights; a plain edge is refused with error 103 and an edge
# trusting another certificate with "not trusted" (neither connects, the server goes on); bad
# TLS options fail at once with a clear message. Skips (exit 0) without the cached model/video.
set -u
: "${AMS_BIN:?AMS_BIN must point to the ams program}"
T=$(mktemp -d /tmp/ams_net_tls_cli.XXXXXX) || exit 1
SP=""
cleanup() { [ -n "$SP" ] && kill "$SP" 2>/dev/null; rm -rf "$T"; }
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; for f in "$T"/*.err; do [ -f "$f" ] && { echo "--- $f" >&2; tail -5 "$f" >&2; }; done; exit 1; }
json() { # file key -> value (numbers or strings, last line)
    tail -n 1 "$1" | tr ',{}' '\n\n\n' | sed -n "s/^\"$2\":\"\{0,1\}\([^\"]*\)\"\{0,1\}$/\1/p" | head -n 1
}

# keygen --tls-cert: the pair, modes, no silent overwrite, --force, a bad name
"$AMS_BIN" keygen --tls-cert "$T/tls" --name ams-test.example >/dev/null || fail "keygen --tls-cert"
[ "$(stat -c %a "$T/tls/key.pem")" = 600 ] || fail "key.pem mode $(stat -c %a "$T/tls/key.pem")"
grep -q "BEGIN CERTIFICATE" "$T/tls/cert.pem" || fail "cert.pem is not PEM"
"$AMS_BIN" keygen --tls-cert "$T/tls" 2>"$T/kg.err" && fail "keygen overwrote the certificate"
grep -q "exists" "$T/kg.err" || fail "keygen: no 'exists' reason"
"$AMS_BIN" keygen --tls-cert "$T/other" >/dev/null || fail "keygen other"
"$AMS_BIN" keygen --tls-cert "$T/other" --force >/dev/null || fail "keygen --force"
"$AMS_BIN" keygen --tls-cert "$T/x" --name 'a,b' 2>/dev/null && fail "keygen took a bad name"
for id in e1 e2; do "$AMS_BIN" keygen --id $id --keys "$T/keys" >/dev/null || fail "keygen $id"; done
"$AMS_BIN" keygen --help | grep -q -- "--tls-cert DIR" || fail "keygen --help"
"$AMS_BIN" server --help | grep -q -- "--tls-key" || fail "server --help"
"$AMS_BIN" edge --help | grep -q -- "--tls-ca" || fail "edge --help"

# bad TLS options: a clear error, at once
"$AMS_BIN" server --listen 127.0.0.1:0 --keys "$T/keys" --state "$T/state" --synthetic 100 \
    --tls-cert "$T/tls/cert.pem" 2>"$T/o1.err" && fail "server: --tls-cert without --tls-key"
grep -q "go together" "$T/o1.err" || fail "server: no reason for a lone --tls-cert"
timeout 20 "$AMS_BIN" server --listen 127.0.0.1:0 --keys "$T/keys" --state "$T/state" \
    --synthetic 100 --tls-cert "$T/tls/cert.pem" --tls-key "$T/other/key.pem" 2>"$T/o2.err" \
    && fail "server: a key of another certificate"
grep -q "does not match" "$T/o2.err" || fail "server: no reason for a mismatched key"
timeout 20 "$AMS_BIN" edge --server 127.0.0.1:9 --id e1 --key "$T/keys/e1.key" --video /dev/null \
    --tls-ca "$T/nope.pem" 2>"$T/o3.err" && fail "edge: a missing CA file"
grep -q "nope.pem" "$T/o3.err" || fail "edge: no reason for a missing CA file"
"$AMS_BIN" edge --server 127.0.0.1:9 --id e1 --key "$T/keys/e1.key" --video /dev/null \
    --tls-name x 2>"$T/o4.err" && fail "edge: --tls-name without --tls-ca"

CACHE="${AMS_CACHE:-$HOME/.cache/ams}"
V="$CACHE/videos/vtest.avi"
if [ ! -f "$V" ] || [ ! -f "$CACHE/models/selfie.json" ]; then
    echo "SKIP (after the option checks): needs tools/fetch-models and tools/fetch-videos"
    exit 0
fi

"$AMS_BIN" server --listen 127.0.0.1:0 --keys "$T/keys" --state "$T/state" --student selfie \
    --stats-every 3600 --tls-cert "$T/tls/cert.pem" --tls-key "$T/tls/key.pem" \
    >"$T/server.out" 2>"$T/server.err" &
SP=$!
i=0
while ! grep -q "port [0-9]" "$T/server.err" 2>/dev/null; do
    i=$((i + 1)); [ $i -lt 300 ] || fail "server did not start"; sleep 0.1
done
grep -q "TLS" "$T/server.err" || fail "server does not say TLS"
PORT=$(sed -n 's/.*(port \([0-9]*\).*/\1/p' "$T/server.err" | head -n 1)

for id in e1 e2; do
    timeout 300 "$AMS_BIN" edge --server 127.0.0.1:$PORT --id $id --key "$T/keys/$id.key" \
        --tls-ca "$T/tls/cert.pem" --video "$V" --fast --seconds 2 --period 1 --drain 20 \
        >"$T/$id.out" 2>"$T/$id.err" &
done
# a plain edge and an edge that trusts another certificate: refused, the server goes on
timeout 60 "$AMS_BIN" edge --server 127.0.0.1:$PORT --id e1 --key "$T/keys/e1.key" \
    --video "$V" --fast --seconds 0.3 --drain 0 >"$T/plain.out" 2>"$T/plain.err" || fail "plain edge exit"
timeout 60 "$AMS_BIN" edge --server localhost:$PORT --id e2 --key "$T/keys/e2.key" \
    --tls-ca "$T/other/cert.pem" --video "$V" --fast --seconds 0.3 --drain 0 \
    >"$T/wrongca.out" 2>"$T/wrongca.err" || fail "wrong-CA edge exit"
wait %2 || fail "edge e1 exit"
wait %3 || fail "edge e2 exit"
kill -TERM "$SP"; wait "$SP" || fail "server exit $?"; SP=""

[ "$(json "$T/plain.out" connects)" = 0 ] || fail "plain edge connected"
grep -q "server error 103" "$T/plain.err" || fail "plain edge: no error 103"
[ "$(json "$T/wrongca.out" connects)" = 0 ] || fail "wrong-CA edge connected"
grep -q "not trusted" "$T/wrongca.err" || fail "wrong-CA edge: no 'not trusted' reason"
grep -q '"tls_failures":[1-9]' "$T/server.out" || fail "server did not count the TLS failures"
for id in e1 e2; do
    [ "$(json "$T/$id.out" frames)" -ge 20 ] || fail "$id frames"
    [ "$(json "$T/$id.out" updates_rejected)" = 0 ] || fail "$id rejected updates"
    n=$(json "$T/$id.out" updates_applied)
    [ "$n" -ge 1 ] || fail "$id applied $n updates"
    h=$(json "$T/$id.out" model_hash)
    v=$(json "$T/$id.out" model_version)
    tr '{' '\n' <"$T/server.out" | grep "\"id\":\"$id\"" >"$T/$id.srv" || fail "$id not in server stats"
    grep -q "\"version\":$v,\"hash\":\"$h\"" "$T/$id.srv" || fail "$id: edge v$v $h, server $(cat "$T/$id.srv")"
done
echo "ok: $(tail -n 1 "$T/e1.out")"
