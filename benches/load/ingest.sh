#!/usr/bin/env bash
# Durable-and-applied ingestion of one backend build: plain 150-message Reports from wrk
# (benches/load/relay.lua, 64 connections) for DURATION seconds, then the time until StateSys
# has applied every acknowledged Report. Prints one line:
#   <label> acked_msgs_per_s=... applied_msgs_per_s=... drain_s=... checkpoints=...
# applied_msgs_per_s = state messages applied / (wrk's time + the drain after it); the backend's
# peak RSS, the clients its store holds at the end, and its CPU time (user + system) in all and
# per applied state message (steadier than the rate on a shared host), the inbox's commits
# (fdatasyncs), and wrk's own CPU time (client_cpu_s=user+system: what the client took of the
# cores it shares with the backend). LUA=path runs another wrk script in relay.lua's place.
#   cargo run --release -p benches --example write_report > /tmp/report.xml
#   benches/load/ingest.sh target/release/backend after 20
# To keep wrk off the backend's cores (the backend's own capacity, with a client that is not
# the limit), BACKEND_CPUS and CLIENT_CPUS pin each (taskset), e.g. BACKEND_CPUS=0 CLIENT_CPUS=1.
# WIRE=faithful sends faithful CCM envelopes (UTF-16, zlib) from relay_load's `prebuilt` mode
# instead of wrk (RELAY_LOAD=path, default target/release/examples/relay_load; build it with
# `cargo build --release -p benches --example relay_load`): 16,384 distinct clients' requests
# built before the clock starts, so the client only sends; its CPU time while sending is printed
# too, which says whether it could have been the limit. Its Reports name updates no catalog has
# (StateSys counts their messages and keeps no state); RELAY_MODE=prebuilt-catalog names the
# site's updates instead, so every state is kept.
set -euo pipefail
BIN=${1:?backend binary}; LABEL=${2:-run}; DURATION=${3:-20}; PORT=${PORT:-18790}
EXTRA=${EXTRA:-}
PIN_BACKEND=(); PIN_CLIENT=()
if [ -n "${BACKEND_CPUS:-}" ]; then PIN_BACKEND=(taskset -c "$BACKEND_CPUS"); fi
if [ -n "${CLIENT_CPUS:-}" ]; then PIN_CLIENT=(taskset -c "$CLIENT_CPUS"); fi
DIR=$(mktemp -d /tmp/ingest.XXXX)
HERE=$(cd "$(dirname "$0")" && pwd)
"${PIN_BACKEND[@]}" "$BIN" serve --listen 127.0.0.1:$PORT --data-dir "$DIR/data" --statesys-pause 0 $EXTRA >"$DIR/backend.log" 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null; wait $PID 2>/dev/null; rm -rf "$DIR"' EXIT
for _ in $(seq 50); do curl -sf 127.0.0.1:$PORT/api/v1/status >/dev/null && break; sleep 0.1; done
status() { curl -sf 127.0.0.1:$PORT/api/v1/status; }
field() { python3 -c "import json,sys; d=json.load(sys.stdin); print(d['$1'])"; }
start=$(date +%s.%N)
if [ "${WIRE:-plain}" = faithful ]; then
  "${PIN_CLIENT[@]}" "${RELAY_LOAD:-$HERE/../../target/release/examples/relay_load}" \
    http://127.0.0.1:$PORT 64 "$DURATION" "${RELAY_MODE:-prebuilt}" >"$DIR/wrk.txt" 2>&1 &
  CLIENT=$!
  # The clock starts when the requests, built, start going out (bounded: 120 s).
  for _ in $(seq 1200); do grep -q "relay_load: sending" "$DIR/wrk.txt" && break; sleep 0.1; done
  start=$(date +%s.%N)
  wait $CLIENT
else
  REPORT=${REPORT:-/tmp/report.xml} /usr/bin/time -f "client_cpu_s=%U+%S" "${PIN_CLIENT[@]}" \
    wrk -t1 -c64 -d${DURATION}s -s "${LUA:-$HERE/relay.lua}" http://127.0.0.1:$PORT >"$DIR/wrk.txt" 2>&1
fi
wrk_end=$(date +%s.%N)
accepted=$(status | field StateMessagesAccepted)
# Applied: every acknowledged Report processed (bounded wait: 120 s).
for _ in $(seq 1200); do
  s=$(status)
  relayed=$(echo "$s" | python3 -c "import json,sys; d=json.load(sys.stdin); print(d['RecordsProcessed'])")
  [ "$relayed" -ge "$accepted" ] && break
  sleep 0.1
done
done_at=$(date +%s.%N)
ckpts=$(status | field Checkpoints)
syncs=$(status | field InboxSyncs)
clients=$(curl -sf 127.0.0.1:$PORT/metrics | awk '/^sumstorm_store_clients /{print $2}')
rss=$(awk '/VmHWM/{print $2}' /proc/$PID/status)
# The backend's CPU time (user + system clock ticks), to cost a message on a shared host.
ticks=$(awk '{print $14 + $15}' /proc/$PID/stat); hz=$(getconf CLK_TCK)
python3 - "$LABEL" "$start" "$wrk_end" "$done_at" "$accepted" "$relayed" "$ckpts" "$syncs" "$rss" "${clients:-0}" "$ticks" "$hz" <<'PY'
import sys
label, start, wrk_end, done, accepted, applied, ckpts, syncs, rss, clients, ticks, hz = sys.argv[1:]
cpu = int(ticks) / int(hz)
start, wrk_end, done = float(start), float(wrk_end), float(done)
accepted, applied = int(accepted), int(applied)
print(f"{label} acked_msgs_per_s={accepted/(wrk_end-start):.0f} applied_msgs_per_s={applied/(done-start):.0f} "
      f"drain_s={done-wrk_end:.2f} applied={applied} accepted={accepted} checkpoints={ckpts} syncs={syncs} "
      f"peak_rss_mib={int(rss)//1024} clients={clients} "
      f"backend_cpu_s={cpu:.1f} backend_cpu_ns_per_msg={1e9 * cpu / max(applied, 1):.0f}")
PY
grep -E "Requests/sec|Non-2xx|Latency|requests ok|client_cpu_s" "$DIR/wrk.txt" | tr -s ' ' | tr '\n' ' '; echo
