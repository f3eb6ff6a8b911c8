#!/usr/bin/env bash
# What keeping the site database costs the relay: relay_load's faithful 150-message Reports naming
# the default catalog's updates (its `catalog` mode: each Report adds a client with 150 states; a
# fresh client each) on 64 kept-alive connections for DURATION seconds against one backend build
# without --database and with it (a fresh database each run, PostgreSQL on the same machine),
# alternating ROUNDS times. With the database, also what the mirror reached by the end: its lag,
# the rows it merged, its full loads.
#   cargo build --release -p backend -p benches --example relay_load
#   benches/load/sitedb.sh target/release/backend target/release/examples/relay_load \
#       postgres://postgres@127.0.0.1:5433 15 3
# Prints one line per run.
set -euo pipefail
BIN=$(realpath "${1:?backend binary}"); LOAD=$(realpath "${2:?relay_load binary}")
PG=${3:?postgres://user@host:port}; DURATION=${4:-15}; ROUNDS=${5:-3}; PORT=${PORT:-18793}
DIR=$(mktemp -d /tmp/sitedb.XXXX)
trap 'kill $PID 2>/dev/null; wait $PID 2>/dev/null; rm -rf "$DIR"' EXIT
psql_admin() { psql "$PG/postgres" -qAt -c "$1"; }
for round in $(seq "$ROUNDS"); do
  for mode in off on; do
    rm -rf "$DIR/data"
    flag=()
    if [ "$mode" = on ]; then
      psql_admin "DROP DATABASE IF EXISTS relay_bench WITH (FORCE)"
      psql_admin "CREATE DATABASE relay_bench"
      flag=(--database "$PG/relay_bench")
    fi
    "$BIN" serve --listen 127.0.0.1:$PORT --data-dir "$DIR/data" --statesys-pause 0 "${flag[@]}" >"$DIR/backend.log" 2>&1 &
    PID=$!
    for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/api/v1/status" >/dev/null && break; sleep 0.1; done
    out=$("$LOAD" "http://127.0.0.1:$PORT" 64 "$DURATION" catalog)
    db=$(curl -sf "http://127.0.0.1:$PORT/api/v1/status" | python3 -c "import json,sys; d=json.load(sys.stdin).get('Database'); print('-' if d is None else 'lag %.1f s, %d rows merged, %d full loads, %d MB queued' % (d['LagSeconds'], d['Rows'], d['FullLoads'], d['QueuedBytes'] // 1000000))")
    echo "round $round database $mode: $out (mirror: $db)"
    kill $PID; wait $PID 2>/dev/null || true
  done
done
