#!/usr/bin/env bash
# End-to-end smoke test: a 3-node cluster via './chain up', then bucket, 100 MiB put/get with a sha256
# comparison, listing, stat, delete, status, and a clean stop with SIGINT. Bounded in time throughout.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PORT="${SMOKE_PORT:-17400}"
NODES=3
CHAINS=3
export CHAIN_MASTER="http://127.0.0.1:$PORT"
GATEWAY_PORT="${SMOKE_GATEWAY_PORT:-$((PORT + 100))}"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/chain-smoke.XXXXXX")"
DATA="$(mktemp -d "${TMPDIR:-/tmp}/chain-smoke-data.XXXXXX")"
UP_LOG="$WORK/up.log"
UP_PID=""

log() { echo "smoke: $*" >&2; }

fail() {
    log "FAILED: $*"
    if [ -f "$UP_LOG" ]; then
        log "---- chain up output ----"
        cat "$UP_LOG" >&2 || true
    fi
    for f in "$DATA"/*.log; do
        [ -f "$f" ] || continue
        log "---- last lines of $f ----"
        tail -n 40 "$f" >&2 || true
    done
    exit 1
}

# Waits up to $2 seconds for pid $1 to exit; returns 1 on timeout.
wait_gone() {
    local pid="$1" deadline=$((SECONDS + $2))
    while kill -0 "$pid" 2>/dev/null; do
        [ "$SECONDS" -lt "$deadline" ] || return 1
        sleep 0.2
    done
}

cleanup() {
    local rc=$?
    if [ -n "$UP_PID" ] && kill -0 "$UP_PID" 2>/dev/null; then
        kill -INT "$UP_PID" 2>/dev/null || true
        if ! wait_gone "$UP_PID" 30; then
            kill -KILL "$UP_PID" 2>/dev/null || true
        fi
    fi
    rm -rf "$WORK" "$DATA"
    exit "$rc"
}
trap cleanup EXIT

# Build (if needed) before starting anything, so the waits below measure the cluster, not the compiler.
./chain help >/dev/null

log "starting ./chain up --data $DATA --port $PORT"
# Job control gives the background job its own process group and keeps SIGINT deliverable
# (a non-interactive shell starts background jobs with SIGINT ignored).
set -m
./chain up --data "$DATA" --port "$PORT" --nodes "$NODES" --chains "$CHAINS" --gateway-port "$GATEWAY_PORT" >"$UP_LOG" 2>&1 &
UP_PID=$!
set +m

# Wait until the master answers and reports every chain and every node alive (bounded).
status_out="$WORK/status.txt"
deadline=$((SECONDS + 180))
until grep -qs "cluster is up" "$UP_LOG" \
        && ./chain status --master "$CHAIN_MASTER" >"$status_out" 2>&1 \
        && grep -q "$CHAINS chains" "$status_out" \
        && grep -q "$NODES/$NODES nodes alive" "$status_out"; do
    kill -0 "$UP_PID" 2>/dev/null || fail "'chain up' exited early"
    [ "$SECONDS" -lt "$deadline" ] || fail "cluster not healthy after 180 s; last status: $(cat "$status_out")"
    sleep 1
done
log "cluster is up"

./chain mb demo || fail "mb demo"

head -c $((100 * 1024 * 1024)) /dev/urandom >"$WORK/in.bin"
expected="$(sha256sum "$WORK/in.bin" | cut -d' ' -f1)"

start=$SECONDS
./chain put demo/dir/big.bin "$WORK/in.bin" >"$WORK/put.txt" || fail "put: $(cat "$WORK/put.txt")"
cat "$WORK/put.txt" >&2
log "put 100 MiB in $((SECONDS - start)) s"
reported="$(awk '$1 == "sha256:" { print $2 }' "$WORK/put.txt")"
[ "$reported" = "$expected" ] || fail "put reported sha256 '$reported', the file has '$expected'"

start=$SECONDS
./chain get demo/dir/big.bin "$WORK/out.bin" >"$WORK/get.txt" || fail "get: $(cat "$WORK/get.txt")"
log "get 100 MiB in $((SECONDS - start)) s"
[ ! -e "$WORK/out.bin.partial" ] || fail "get left out.bin.partial behind"
actual="$(sha256sum "$WORK/out.bin" | cut -d' ' -f1)"
[ "$actual" = "$expected" ] || fail "sha256 mismatch: put $expected, got $actual"

piped="$(./chain get demo/dir/big.bin - | sha256sum | cut -d' ' -f1)"
[ "$piped" = "$expected" ] || fail "sha256 mismatch on 'get -': $piped"

# The S3 gateway 'chain up' started, with the default access key it printed.
grep -q "gateway: http://127.0.0.1:$GATEWAY_PORT" "$UP_LOG" || fail "'chain up' did not print the gateway address"
printf '[default]\nregion = us-east-1\ns3 =\n    addressing_style = path\n' >"$WORK/aws.cfg"
printf '[default]\naws_access_key_id = chain-dev\naws_secret_access_key = chain-dev-secret\n' >"$WORK/aws.cred"
AWS_CONFIG_FILE="$WORK/aws.cfg" AWS_SHARED_CREDENTIALS_FILE="$WORK/aws.cred" /usr/bin/aws --endpoint-url "http://127.0.0.1:$GATEWAY_PORT" \
    s3 ls s3://demo/dir/ >"$WORK/s3ls.txt" 2>&1 || fail "aws s3 ls through the gateway: $(cat "$WORK/s3ls.txt")"
grep -q "104857600 big.bin" "$WORK/s3ls.txt" || fail "aws s3 ls does not show big.bin: $(cat "$WORK/s3ls.txt")"
log "S3 gateway lists the object"

./chain ls demo >"$WORK/ls.txt" || fail "ls demo"
grep -q "dir/big.bin" "$WORK/ls.txt" || fail "ls demo does not list dir/big.bin: $(cat "$WORK/ls.txt")"
./chain ls | grep -q "demo" || fail "ls does not list bucket demo"
./chain stat demo/dir/big.bin | grep -q "104857600" || fail "stat does not show the size"

./chain status >"$status_out" || fail "status"
cat "$status_out" >&2
grep -q "$CHAINS chains" "$status_out" || fail "status does not report $CHAINS chains"
# Every chain appears as a row 'id | epoch | head | middle | tail' of the Chains table.
for node in $(seq 1 "$NODES"); do
    grep -q "node$node" "$status_out" || fail "status does not mention node$node"
done
rows="$(sed 's/│/|/g' "$status_out" | awk -F'|' 'NF >= 7 && $2 ~ /^ *[0-9]+ *$/ && $3 ~ /^ *[0-9]+ *$/ { print $2 }' | sort -u | wc -l)"
[ "$rows" -eq "$CHAINS" ] || fail "status shows $rows chain rows, expected $CHAINS"
grep -q "demo" "$status_out" || fail "status does not list bucket demo"

./chain rm demo/dir/big.bin || fail "rm"
set +e
./chain stat demo/dir/big.bin 2>"$WORK/stat.err"
code=$?
set -e
[ "$code" -eq 1 ] || fail "stat of a deleted object exited $code, expected 1"
grep -q "not found" "$WORK/stat.err" || fail "stat of a deleted object: $(cat "$WORK/stat.err")"
set +e
./chain put nobucketslash "$WORK/in.bin" 2>/dev/null
code=$?
set -e
[ "$code" -eq 2 ] || fail "a usage error exited $code, expected 2"

# Ctrl-C is SIGINT. A shell started with SIGINT ignored (e.g. under nohup or as a background job of a
# non-interactive shell) passes the ignore on to every child, which can then never see it: use SIGTERM, which
# 'chain up' handles the same way, and say so.
STOP_SIGNAL=INT
if (( 0x$(awk '/^SigIgn:/ { print $2 }' /proc/$$/status) & 2 )); then
    STOP_SIGNAL=TERM
    log "SIGINT is ignored in this environment; stopping with SIGTERM instead"
fi
log "stopping the cluster (SIG$STOP_SIGNAL)"
kill -"$STOP_SIGNAL" "$UP_PID"
wait_gone "$UP_PID" 60 || fail "'chain up' did not stop within 60 s of SIG$STOP_SIGNAL"
set +e
wait "$UP_PID"
code=$?
set -e
UP_PID=""
[ "$code" -eq 0 ] || fail "'chain up' exited with $code after SIG$STOP_SIGNAL"
grep -q "stopped" "$UP_LOG" || fail "'chain up' did not report a clean stop"
log "OK"
