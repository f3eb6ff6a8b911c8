#!/usr/bin/env bash
# Recovery after kill -9 of a site-sized store with an inbox backlog: how long from start until
# the relay answers again, and how long StateSys then takes to apply what was left.
#   cargo run --release -p benches --example write_report -- 201 --catalog > /tmp/report-catalog-200.xml
#   benches/load/recovery.sh target/release/backend [FILL_SECONDS] [BACKLOG_SECONDS]
# 1. fills a store: wrk relays Reports of 200 catalog updates (+ a scan), each from a new client,
#    for FILL_SECONDS (20 s: about 175,000 clients × 200 states here), and stops gracefully;
# 2. restarts with StateSys paced to 1 state message a second and relays for BACKLOG_SECONDS
#    (5 s): all of it acknowledged, none of it applied: the inbox backlog;
# 3. kill -9, restarts, and times: spawn → first relay answer (200 NoReply), and the status's
#    LoadSeconds (base + log) and RecoverySeconds (the backlog applied).
set -euo pipefail
BIN=${1:?backend binary}; FILL=${2:-20}; BACKLOG=${3:-5}; PORT=${PORT:-18796}
REPORT=${REPORT:-/tmp/report-catalog-200.xml}
DIR=$(mktemp -d /tmp/recovery.XXXX)
HERE=$(cd "$(dirname "$0")" && pwd)
trap 'pkill -9 -f "listen 127.0.0.1:$PORT" 2>/dev/null || true; rm -rf "$DIR"' EXIT
serve() { "$BIN" serve --listen 127.0.0.1:$PORT --data-dir "$DIR/data" --statesys-pause 0 "$@" >>"$DIR/backend.log" 2>&1 & echo $!; }
up() { for _ in $(seq 600); do curl -sf 127.0.0.1:$PORT/api/v1/status >/dev/null && return; sleep 0.05; done; echo "not up" >&2; exit 1; }
field() { curl -sf 127.0.0.1:$PORT/api/v1/status | python3 -c "import json,sys; print(json.load(sys.stdin)['$1'])"; }
pid=$(serve); up
REPORT=$REPORT wrk -t1 -c64 -d${FILL}s -s "$HERE/relay.lua" http://127.0.0.1:$PORT >/dev/null
curl -sf -X POST "127.0.0.1:$PORT/api/v1/drain?timeout=120" >/dev/null
echo "filled: $(field Clients) clients, $(field RecordsProcessed) records"
kill -TERM $pid; while kill -0 $pid 2>/dev/null; do sleep 0.1; done
pid=$(serve --statesys-rate 1); up
REPORT=$REPORT wrk -t1 -c64 -d${BACKLOG}s -s "$HERE/relay.lua" http://127.0.0.1:$PORT >/dev/null
echo "backlog: $(field ReportsAccepted) Reports acknowledged, $(field FilesWaiting | tr -d '{} ') files waiting"
kill -9 $pid; sleep 0.2
du -sh "$DIR/data/state" "$DIR/data/inboxes" | tr '\n' ' '; echo
start=$(date +%s.%N)
pid=$(serve)
for _ in $(seq 20000); do
  code=$(curl -s -o /dev/null -w '%{http_code}' -X POST -H 'Content-Type: text/xml' \
    -H 'X-Target-Endpoint: MP_RelayEndpoint' --data-binary @"$REPORT" 127.0.0.1:$PORT/ccm_system/request || true)
  [ "$code" = 200 ] && break
  sleep 0.01
done
answered=$(date +%s.%N)
while [ "$(field Recovering)" = True ]; do sleep 0.05; done
python3 -c "print(f'start to first relay answer: {$answered-$start:.3f} s')"
echo "LoadSeconds $(field LoadSeconds) RecoverySeconds $(field RecoverySeconds) ReportsRecovered $(field ReportsRecovered)"
grep -h "Loaded the state store\|Recovered " "$DIR/data/logs/StateSys.log" | tail -2
