#!/bin/sh
# net_cli.sh - `ams keygen`, `ams server` and `ams edge` end to end on loopback: two edges
# run the selfie student on 2 s of vtest.avi (--fast) against a server with the stub compute;
# each edge ends with the server's exact weights (model_hash and version equal the server's
# session); an edge with a wrong key gets nothing applied; SIGTERM stops the server cleanly
# and a restarted server resumes both sessions. Skips (exit 0) without the cached model/video.
set -u
: "${AMS_BIN:?AMS_BIN must point to the ams program}"
CACHE="${AMS_CACHE:-$HOME/.cache/ams}"
V="$CACHE/videos/vtest.avi"
if [ ! -f "$V" ] || [ ! -f "$CACHE/models/selfie.json" ]; then
    echo "SKIP: needs tools/fetch-models and tools/fetch-videos (selfie, vtest.avi)"
    exit 0
fi
T=$(mktemp -d /tmp/ams_net_cli.XXXXXX) || exit 1
SP=""
cleanup() { [ -n "$SP" ] && kill "$SP" 2>/dev/null; rm -rf "$T"; }
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; for f in "$T"/*.err; do echo "--- $f" >&2; tail -5 "$f" >&2; done; exit 1; }
json() { # file key -> value (numbers or strings, last line)
    tail -n 1 "$1" | tr ',{}' '\n\n\n' | sed -n "s/^\"$2\":\"\{0,1\}\([^\"]*\)\"\{0,1\}$/\1/p" | head -n 1
}

# keygen: 0600, 32 bytes, no silent overwrite
for id in e1 e2; do "$AMS_BIN" keygen --id $id --keys "$T/keys" >/dev/null || fail "keygen $id"; done
[ "$(stat -c %a "$T/keys/e1.key")" = 600 ] || fail "key mode"
[ "$(stat -c %s "$T/keys/e1.key")" = 32 ] || fail "key size"
"$AMS_BIN" keygen --id e1 --keys "$T/keys" 2>/dev/null && fail "keygen overwrote a key"
mkdir -p "$T/other" && "$AMS_BIN" keygen --id e1 --keys "$T/other" >/dev/null || fail "keygen other"

start_server() { # a fresh stderr file each time: the port is read from it
    rm -f "$T/server.err"
    "$AMS_BIN" server --listen 127.0.0.1:0 --keys "$T/keys" --state "$T/state" \
        --student selfie --stats-every 3600 >"$T/server.out" 2>"$T/server.log" &
    SP=$!
    i=0
    while ! grep -q "port [0-9]" "$T/server.log" 2>/dev/null; do
        i=$((i + 1)); [ $i -lt 300 ] || fail "server did not start"; sleep 0.1
    done
    PORT=$(sed -n 's/.*(port \([0-9]*\)).*/\1/p' "$T/server.log" | head -n 1)
    mv "$T/server.log" "$T/server.err"
}
stop_server() {
    kill -TERM "$SP"; wait "$SP" || fail "server exit $?"; SP=""
}

start_server
for id in e1 e2; do
    timeout 300 "$AMS_BIN" edge --server 127.0.0.1:$PORT --id $id --key "$T/keys/$id.key" \
        --video "$V" --fast --seconds 2 --period 1 --drain 20 >"$T/$id.out" 2>"$T/$id.err" &
done
timeout 60 "$AMS_BIN" edge --server 127.0.0.1:$PORT --id e1 --key "$T/other/e1.key" \
    --video "$V" --fast --seconds 0.3 --drain 0 >"$T/bad.out" 2>"$T/bad.err" || fail "bad edge exit"
wait %2 || fail "edge e1 exit"
wait %3 || fail "edge e2 exit"
[ "$(json "$T/bad.out" updates_applied)" = 0 ] || fail "wrong key: updates applied"
[ "$(json "$T/bad.out" connects)" = 0 ] || fail "wrong key: connected"
grep -q "bad mac" "$T/bad.err" || fail "wrong key: no 'bad mac' reason"
stop_server
for id in e1 e2; do
    [ "$(json "$T/$id.out" frames)" -ge 20 ] || fail "$id frames"
    [ "$(json "$T/$id.out" updates_rejected)" = 0 ] || fail "$id rejected updates"
    n=$(json "$T/$id.out" updates_applied)
    [ "$n" -ge 1 ] || fail "$id applied $n updates"
    h=$(json "$T/$id.out" model_hash)
    v=$(json "$T/$id.out" model_version)
    # the server's final metrics line: this client's version and hash
    tr '{' '\n' <"$T/server.out" | grep "\"id\":\"$id\"" >"$T/$id.srv" || fail "$id not in server stats"
    grep -q "\"version\":$v,\"hash\":\"$h\"" "$T/$id.srv" || fail "$id: edge v$v $h, server $(cat "$T/$id.srv")"
done
grep -q '"rejected":[1-9]' "$T/server.out" || fail "server did not count the wrong key"

# restart: the sessions come back with the same versions
start_server
timeout 120 "$AMS_BIN" edge --server 127.0.0.1:$PORT --id e1 --key "$T/keys/e1.key" \
    --video "$V" --fast --seconds 0.2 --period 1 --drain 20 >"$T/r.out" 2>"$T/r.err" || fail "resume edge"
stop_server
# a fresh edge starts from the pretrained weights: it is resynchronised, then trained once more
v1=$(json "$T/e1.out" model_version)
vr=$(json "$T/r.out" model_version)
[ "$vr" -ge $((v1 + 1)) ] || fail "resumed at v$vr, was v$v1"
[ "$(json "$T/r.out" updates_rejected)" = 0 ] || fail "resume: rejected updates"
tr '{' '\n' <"$T/server.out" | grep '"id":"e1"' | grep -q "\"hash\":\"$(json "$T/r.out" model_hash)\"" \
    || fail "resume: hash differs from the server's"
echo "ok: $(tail -n 1 "$T/e1.out")"
