#!/bin/sh
# net_trainer.sh - `ams server --teacher rvm` for real on loopback (127.0.0.1): two edges run
# the selfie student on 16 s of vtest.avi at the video's pace (an upload every 2 s); the server labels their uploads
# with RVM, trains each client's student (tiny K) and streams updates. Checks: every update an
# edge applies carries exactly the weights hash the server logged for that client and version;
# the server is killed with SIGKILL mid-run and restarted on the same port, the edges reconnect
# and the sessions resume (versions continue, the horizon is reloaded from the state files);
# each edge ends with the server's weights; the server reports the edges' mIoU.
# Skips (exit 0) only when the models or the video cannot be fetched.
set -u
: "${AMS_BIN:?AMS_BIN must point to the ams program}"
CACHE="${AMS_CACHE:-$HOME/.cache/ams}"
V="$CACHE/videos/vtest.avi"
if [ -n "${AMS_SOURCE_DIR:-}" ]; then
    [ -f "$CACHE/models/rvm.json" ] || "$AMS_SOURCE_DIR/tools/fetch-models" >/dev/null 2>&1 || true
    [ -f "$V" ] || "$AMS_SOURCE_DIR/tools/fetch-videos" >/dev/null 2>&1 || true
fi
if [ ! -f "$V" ] || [ ! -f "$CACHE/models/selfie.json" ] || [ ! -f "$CACHE/models/rvm.json" ]; then
    echo "SKIP: needs selfie, rvm (tools/fetch-models) and vtest.avi (tools/fetch-videos)"
    exit 0
fi
T=$(mktemp -d /tmp/ams_net_trainer.XXXXXX) || exit 1
SP=""
EP=""
cleanup() {
    [ -n "$SP" ] && kill -9 "$SP" 2>/dev/null
    for p in $EP; do kill -9 "$p" 2>/dev/null; done
    rm -rf "$T"
}
trap cleanup EXIT
fail() {
    echo "FAIL: $*" >&2
    for f in "$T"/*.err; do echo "--- $f" >&2; tail -8 "$f" >&2; done
    exit 1
}
json() { # file key -> value of the last line
    tail -n 1 "$1" | tr ',{}' '\n\n\n' | sed -n "s/^\"$2\":\"\{0,1\}\([^\"]*\)\"\{0,1\}$/\1/p" | head -n 1
}
SIZE="--width 192 --height 144"
for id in e1 e2; do "$AMS_BIN" keygen --id $id --keys "$T/keys" >/dev/null || fail "keygen $id"; done

start_server() { # $1 listen address, $2 run number
    "$AMS_BIN" server --listen "$1" --keys "$T/keys" --state "$T/state" --teacher rvm \
        --student selfie $SIZE --iters 2 --batch 2 --train-period 2 --memory 30 \
        --stats-every 3600 >"$T/server$2.out" 2>"$T/server$2.err" &
    SP=$!
    i=0
    while ! grep -q "(port [0-9]" "$T/server$2.err" 2>/dev/null; do
        i=$((i + 1)); [ $i -lt 600 ] || fail "server did not start"
        kill -0 "$SP" 2>/dev/null || fail "server exited"
        sleep 0.1
    done
    PORT=$(sed -n 's/.*(port \([0-9]*\)).*/\1/p' "$T/server$2.err" | head -n 1)
}

start_server 127.0.0.1:0 1
for id in e1 e2; do
    timeout 600 "$AMS_BIN" edge --server 127.0.0.1:$PORT --id $id --key "$T/keys/$id.key" \
        --video "$V" --seconds 16 --period 2 $SIZE --drain 120 --stats-period 0.5 \
        >"$T/$id.out" 2>"$T/$id.err" &
    EP="$EP $!"
done
# mid-run: once both edges run a trained model (v1), kill -9 the server and restart it
i=0
until grep -q "model v1 applied" "$T/e1.err" 2>/dev/null && grep -q "model v1 applied" "$T/e2.err" 2>/dev/null; do
    i=$((i + 1)); [ $i -lt 3000 ] || fail "no update within 300 s"
    sleep 0.1
done
kill -9 "$SP"; wait "$SP" 2>/dev/null; SP=""
[ -s "$T/state/e1.compute" ] && [ -s "$T/state/e1.session" ] || fail "no state files"
start_server 127.0.0.1:$PORT 2
wait %2 || fail "edge e1 exit"
wait %3 || fail "edge e2 exit"
EP=""
kill -TERM "$SP"; wait "$SP" || fail "server exit"; SP=""

cat "$T/server1.err" "$T/server2.err" >"$T/server.all"
for id in e1 e2; do
    [ "$(json "$T/$id.out" updates_rejected)" = 0 ] || fail "$id rejected updates"
    n=$(json "$T/$id.out" updates_applied)
    [ "$n" -ge 2 ] || fail "$id applied only $n updates"
    [ "$(json "$T/$id.out" connects)" -ge 2 ] || fail "$id did not reconnect"
    # after each update: the edge's weights hash is the server's for that version
    grep "model v[0-9]* applied" "$T/$id.err" | sed 's/.*model v\([0-9]*\) applied, hash \([0-9a-f]*\).*/\1 \2/' |
        while read -r v h; do
            grep -q "update $id v$v hash $h" "$T/server.all" || { echo "v$v $h" >"$T/$id.bad"; }
        done
    [ -e "$T/$id.bad" ] && fail "$id: edge weights $(cat "$T/$id.bad") not the server's"
    # the end: edge == the restarted server's session
    h=$(json "$T/$id.out" model_hash)
    v=$(json "$T/$id.out" model_version)
    tr '{' '\n' <"$T/server2.out" | grep "\"id\":\"$id\"" >"$T/$id.srv" || fail "$id not in server stats"
    grep -q "\"version\":$v,\"hash\":\"$h\"" "$T/$id.srv" || fail "$id: edge v$v $h, server $(cat "$T/$id.srv")"
    # resumed: versions continue after the restart, the horizon came back from the state file
    v1=$(sed -n "s/.*update $id v\([0-9]*\) .*/\1/p" "$T/server1.err" | tail -n 1)
    v2=$(sed -n "s/.*update $id v\([0-9]*\) .*/\1/p" "$T/server2.err" | head -n 1)
    [ -n "$v2" ] && [ "$v2" -gt "$v1" ] || fail "$id: server 2 started at v$v2 after v$v1"
    hz=$(sed -n 's/.*"horizon":\([0-9]*\).*/\1/p' "$T/$id.srv")
    lb=$(sed -n 's/.*"labelled":\([0-9]*\).*/\1/p' "$T/$id.srv")
    [ "$hz" -gt "$lb" ] || fail "$id: horizon $hz not above the $lb frames labelled since the restart"
    grep -q '"miou":0\.[0-9]*,"miou_pretrained":0\.' "$T/$id.srv" || grep -q '"miou":1\.' "$T/$id.srv" ||
        fail "$id: no mIoU in the server stats"
done
echo "ok: e1 $(tail -n 1 "$T/e1.out")"
grep "update e1 " "$T/server.all" | tail -n 2
