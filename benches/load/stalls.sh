#!/usr/bin/env bash
# The stall test of the StateSys work: benches/load/statesys-open.toml (plain Reports of 150
# state messages, each from another client, at a fixed arrival rate, 60 s) against a backend in
# its own process, the backend pinned to one core and loadgen to another, so neither takes the
# other's CPU. Choose RATE (Reports/s) as 80 % of the backend's one-core capacity measured in the
# same session: BACKEND_CPUS=0 CLIENT_CPUS=1 benches/load/ingest.sh BACKEND ... gives it in
# applied state messages/s; divide by 150.
#   benches/load/stalls.sh target/release/backend target/release/loadgen after 2450 [-- backend args]
# e.g. `-- --background-nice 10` to run the site server's threads less far below the relay's.
# Prints loadgen's state_report line (count, errors, p50, p99, p99.9, max: corrected for
# coordinated omission), its verdict on its own lateness, the p99 of every second, and the upper
# bound of every second's slowest inbox commit (write + fdatasync; "inf" past 2.5 s): a spike in
# a second whose commits were all short did not come from the disk.
set -euo pipefail
BACKEND=$(realpath "${1:?backend binary}"); LOADGEN=$(realpath "${2:?loadgen binary}"); LABEL=${3:-run}; RATE=${4:-2450}
shift $(( $# < 4 ? $# : 4 )); [ "${1:-}" = "--" ] && shift
BACKEND_CPUS=${BACKEND_CPUS:-0}; CLIENT_CPUS=${CLIENT_CPUS:-1}; PORT=${PORT:-18791}
HERE=$(cd "$(dirname "$0")" && pwd)
DIR=$(mktemp -d /tmp/stalls.XXXX)
sed -e "s/^rate = .*/rate = $RATE/" -e "s/^connections = .*/connections = 256/" "$HERE/statesys-open.toml" >"$DIR/open.toml"
taskset -c "$BACKEND_CPUS" "$BACKEND" serve --listen 127.0.0.1:$PORT --data-dir "$DIR/data" --statesys-pause 0 "$@" >"$DIR/backend.log" 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null; wait $PID 2>/dev/null; rm -rf "$DIR"' EXIT
for _ in $(seq 100); do curl -sf 127.0.0.1:$PORT/api/v1/status >/dev/null && break; sleep 0.1; done
(cd "$DIR" && taskset -c "$CLIENT_CPUS" "$LOADGEN" run open.toml --target http://127.0.0.1:$PORT --no-verify >loadgen.txt 2>&1) || true
echo "$LABEL $(grep -E '^state_report' "$DIR/loadgen.txt" | head -1)"
grep -o 'GENERATOR-BOUND: [^(]*(lateness p99 [0-9.]* ms' "$DIR/loadgen.txt" || echo "generator on schedule"
python3 - "$DIR"/results/runs/*/*/timeline.json <<'PY'
import json, sys
timeline = json.load(open(sys.argv[1]))
print('per-second p99 ms:', ' '.join(f"{x['p99_ms']:.0f}" for x in timeline))
def bound(x):
    s = x.get('inbox_commit_slowest_ms')
    return '-' if s is None else 'inf' if s[1] is None else f"{s[1]:g}"
print('per-second slowest commit at most ms:', ' '.join(bound(x) for x in timeline))
PY
