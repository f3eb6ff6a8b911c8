#!/usr/bin/env bash
# What verifying signatures costs the relay: the same signed faithful Reports (relay_load's
# `signed` mode: 256 registered clients, 1,024 Reports with their clientauth hooks, built before
# the clock starts) sent on 64 kept-alive connections for DURATION seconds to one backend build
# with --require-signing and without, alternating ROUNDS times. The backend acknowledges each
# Report once it is durable; without the flag it ignores the hooks.
#   cargo build --release -p backend -p benches --example relay_load
#   benches/load/signing.sh target/release/backend target/release/examples/relay_load 15 3
# Prints one line per run.
set -euo pipefail
BIN=$(realpath "${1:?backend binary}"); LOAD=$(realpath "${2:?relay_load binary}")
DURATION=${3:-15}; ROUNDS=${4:-3}; PORT=${PORT:-18792}
DIR=$(mktemp -d /tmp/signing.XXXX)
trap 'kill $PID 2>/dev/null; wait $PID 2>/dev/null; rm -rf "$DIR"' EXIT
for round in $(seq "$ROUNDS"); do
  for mode in off on; do
    rm -rf "$DIR/data"
    flag=()
    [ "$mode" = on ] && flag=(--require-signing)
    "$BIN" serve --listen 127.0.0.1:$PORT --data-dir "$DIR/data" --statesys-pause 0 "${flag[@]}" >"$DIR/backend.log" 2>&1 &
    PID=$!
    for _ in $(seq 50); do curl -sf "http://127.0.0.1:$PORT/api/v1/status" >/dev/null && break; sleep 0.1; done
    out=$("$LOAD" "http://127.0.0.1:$PORT" 64 "$DURATION" signed)
    refused=$(curl -sf "http://127.0.0.1:$PORT/api/v1/status" | python3 -c "import json,sys; print(json.load(sys.stdin).get('SigningRefused', '-'))")
    echo "round $round verification $mode: $out (refused: $refused)"
    kill $PID; wait $PID 2>/dev/null || true
  done
done
