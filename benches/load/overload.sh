#!/usr/bin/env bash
# Overload at 3x (issue 7 §3), with the backend in its own process so its memory is its own:
#   benches/load/overload.sh [RUN_DIR]
# Starts `backend serve` with StateSys paced at 100,000 state messages/s and a high-water mark of
# 4 inbox files, samples the backend's RSS and applied records twice a second, runs
# profiles/overload-3x.toml against it (300,000 messages/s offered for 20 s), and prints the
# backend's peak RSS, the applied rate while backlogged (the capacity actually delivered) and the
# run's summary. Needs release builds: cargo build --release -p backend -p loadgen. EXTRA adds
# backend arguments (e.g. EXTRA="--background-nice 10").
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${1:-results/runs/overload/$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$out"
data=$(mktemp -d)
port=18650
./target/release/backend serve --listen 127.0.0.1:$port --data-dir "$data" \
    --statesys-rate 100000 --high-water-files 4 --retry-after 2 ${EXTRA:-} 2> "$out/backend.log" &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$data"' EXIT
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/api/v1/status" > /dev/null && break; sleep 0.1; done
(
    while kill -0 $pid 2> /dev/null; do
        rss=$(awk '/VmRSS/ { print $2 }' /proc/$pid/status 2> /dev/null || echo 0)
        applied=$(curl -sf "http://127.0.0.1:$port/api/v1/status" | python3 -c 'import json,sys; print(json.load(sys.stdin)["RecordsProcessed"])' 2> /dev/null || echo "")
        echo "$(date +%s.%N) $rss $applied"
        sleep 0.5
    done
) > "$out/samples.txt" &
status=0
./target/release/loadgen run profiles/overload-3x.toml --target "http://127.0.0.1:$port" --out "$out/run" 2> "$out/loadgen.log" || status=$?
hwm=$(awk '/VmHWM/ { print $2 }' /proc/$pid/status)
python3 - "$out" "$hwm" "$status" << 'EOF'
import json, sys, tomllib
om = tomllib.load(open("profiles/overload-3x.toml", "rb"))["open_model"]
out, hwm, status = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
s = json.load(open(f"{out}/run/summary.json"))
rows = [l.split() for l in open(f"{out}/samples.txt") if len(l.split()) == 3]
pts = [(float(t), int(a)) for t, _, a in rows]
# The applied rate over each second-long stretch while records were arriving: its median is the
# capacity StateSys delivered.
rates = sorted((b[1] - a[1]) / (b[0] - a[0]) for a, b in zip(pts, pts[2:]) if b[1] > a[1])
cap = rates[len(rates) // 2] if rates else 0
sr = s["requests"]["state_report"]
figures = {
    "exit": status,
    "offered_messages_per_s": round(om["rate"] * om["messages_per_report"]),
    "capacity_applied_per_s_median": round(cap),
    "acknowledged": s["state_messages"]["acknowledged"],
    "applied": s["backend"]["records_processed"],
    "busy_503": s["backend"]["busy_answers"],
    "requests": sr["count"],
    "peak_backlog_files": s["backend"]["peak_backlog_files"],
    "backend_peak_rss_mib": round(hwm / 1024),
    "verification_exact": s["verification"]["exact"],
    "wall_seconds": round(s["wall_seconds"], 1),
}
json.dump(figures, open(f"{out}/overload.json", "w"), indent=2)
print(json.dumps(figures, indent=2))
EOF
exit $status
