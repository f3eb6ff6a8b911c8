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
#
# A site database has cores of its own. To measure it that way on one machine, pin the parts:
# BACKEND_CPUS runs the backend and relay_load on those CPUs (taskset), PG_CPUS moves the
# PostgreSQL server's processes (and so the sessions it forks later) to those, e.g.
#   BACKEND_CPUS=0 PG_CPUS=1 benches/load/sitedb.sh ...
set -euo pipefail
BIN=$(realpath "${1:?backend binary}"); LOAD=$(realpath "${2:?relay_load binary}")
PG=${3:?postgres://user@host:port}; DURATION=${4:-15}; ROUNDS=${5:-3}; PORT=${PORT:-18793}
DIR=$(mktemp -d /tmp/sitedb.XXXX)
trap 'kill $PID 2>/dev/null; wait $PID 2>/dev/null; rm -rf "$DIR"' EXIT
psql_admin() { psql "$PG/postgres" -qAt -c "$1"; }
PIN=()
if [ -n "${BACKEND_CPUS:-}" ]; then PIN=(taskset -c "$BACKEND_CPUS"); fi
if [ -n "${PG_CPUS:-}" ]; then
  for p in $(pgrep -u postgres); do taskset -a -p -c "$PG_CPUS" "$p" >/dev/null; done
fi
for round in $(seq "$ROUNDS"); do
  for mode in off on; do
    rm -rf "$DIR/data"
    flag=()
    if [ "$mode" = on ]; then
      psql_admin "DROP DATABASE IF EXISTS relay_bench WITH (FORCE)"
      psql_admin "CREATE DATABASE relay_bench"
      flag=(--database "$PG/relay_bench")
    fi
    "${PIN[@]}" "$BIN" serve --listen 127.0.0.1:$PORT --data-dir "$DIR/data" --statesys-pause 0 "${flag[@]}" >"$DIR/backend.log" 2>&1 &
    PID=$!
    for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/api/v1/status" >/dev/null && break; sleep 0.1; done
    out=$("${PIN[@]}" "$LOAD" "http://127.0.0.1:$PORT" 64 "$DURATION" catalog)
    db=$(curl -sf "http://127.0.0.1:$PORT/api/v1/status" | python3 -c "import json,sys; d=json.load(sys.stdin).get('Database'); print('-' if d is None else 'lag %.1f s, %d rows merged, %d full loads, %d MB queued' % (d['LagSeconds'], d['Rows'], d['FullLoads'], d['QueuedBytes'] // 1000000))")
    if [ "$mode" = on ]; then
      # How long after the load the database held every acknowledged message (bounded: 120 s).
      t0=$(date +%s.%N); caught=no
      for _ in $(seq 1200); do
        # StateSys has applied every acknowledged message, and the database holds it all.
        if curl -sf "http://127.0.0.1:$PORT/api/v1/status" | python3 -c "import json,sys; d=json.load(sys.stdin); sys.exit(0 if d['RecordsProcessed'] >= d['StateMessagesAccepted'] and d['Database']['CaughtUp'] else 1)"; then
          caught=$(python3 -c "import time; print('%.1f s' % (time.time() - $t0))"); break
        fi
        sleep 0.1
      done
      rows=$(curl -sf "http://127.0.0.1:$PORT/api/v1/status" | python3 -c "import json,sys; print(json.load(sys.stdin)['Database']['Rows'])")
      db="$db; caught up after the load: $caught, $rows rows merged in all"
    fi
    echo "round $round database $mode: $out (mirror: $db)"
    kill $PID; wait $PID 2>/dev/null || true
  done
done
