#!/usr/bin/env bash
# The cost of HTTPS against HTTP on one backend build, with wrk on the same machine (its own TLS
# cost included): for each scheme, (1) MPLIST on 64 kept-alive connections (the steady state),
# (2) MPLIST with `Connection: close` (a new connection, and for HTTPS a full handshake, per
# request: handshakes a second), (3) plain 150-message Reports (benches/load/relay.lua) on 64
# kept-alive connections: state messages acknowledged a second. DURATION seconds each.
#   cargo build --release -p backend
#   cargo run --release -p benches --example write_report > /tmp/report.xml
#   benches/load/https.sh target/release/backend 10
# Prints one line per scheme and test.
set -euo pipefail
BIN=$(realpath "${1:?backend binary}"); DURATION=${2:-10}; PORT=${PORT:-18791}
HERE=$(cd "$(dirname "$0")" && pwd)
DIR=$(mktemp -d /tmp/https.XXXX)
trap 'kill $PID 2>/dev/null; wait $PID 2>/dev/null; rm -rf "$DIR"' EXIT
"$BIN" pki init --out "$DIR/pki" --clients 0 2>/dev/null
for scheme in http https; do
  rm -rf "$DIR/data"
  tls=()
  [ "$scheme" = https ] && tls=(--tls-cert "$DIR/pki/server.pem" --tls-key "$DIR/pki/server-key.pem")
  "$BIN" serve --listen 127.0.0.1:$PORT --data-dir "$DIR/data" --statesys-pause 0 "${tls[@]}" >"$DIR/backend.log" 2>&1 &
  PID=$!
  for _ in $(seq 50); do curl -skf "$scheme://127.0.0.1:$PORT/api/v1/status" >/dev/null && break; sleep 0.1; done
  url="$scheme://127.0.0.1:$PORT"
  rps() { awk '/Requests\/sec/ {print $2}'; }
  echo "$scheme keep-alive MPLIST req/s $(wrk -t1 -c64 -d${DURATION}s "$url/SMS_MP/.sms_aut?MPLIST" | rps)"
  echo "$scheme new-connection MPLIST req/s $(wrk -t1 -c16 -d${DURATION}s -H 'Connection: close' "$url/SMS_MP/.sms_aut?MPLIST" | rps)"
  before=$(curl -skf "$url/api/v1/status" | python3 -c "import json,sys; print(json.load(sys.stdin)['StateMessagesAccepted'])")
  REPORT=${REPORT:-/tmp/report.xml} wrk -t1 -c64 -d${DURATION}s -s "$HERE/relay.lua" "$url" >/dev/null
  after=$(curl -skf "$url/api/v1/status" | python3 -c "import json,sys; print(json.load(sys.stdin)['StateMessagesAccepted'])")
  echo "$scheme relay state messages/s $(( (after - before) / DURATION ))"
  kill $PID; wait $PID 2>/dev/null || true
done
