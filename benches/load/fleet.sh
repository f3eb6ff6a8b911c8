#!/usr/bin/env bash
# A fleet on one machine, measured: N "machines" (each a network namespace with its own address
# on a bridge, and a CPU quota of its own: cgroup v1 cpu.cfs_quota_us), a backend (no quota) and
# a collector. Runs PROFILE once as one process on one machine, then as N shards on N machines
# with `loadgen collect`, each against a fresh backend, and prints the key figures of both.
#
#   sudo benches/load/fleet.sh                 # mp-25k, 60 simulated minutes at 20x, 4 x 0.25 CPU
#   PROFILE=profiles/quickstart.toml SHARDS=2 QUOTA=0.5 ARGS="--time-scale 600" benches/load/fleet.sh
#
# Root (namespaces, cgroups). Everything it makes is removed at the end. Load goes to the
# bridge's own addresses only, bounded by the profile's duration.
set -euo pipefail
cd "$(dirname "$0")/../.."
PROFILE=${PROFILE:-profiles/mp-25k.toml}
SHARDS=${SHARDS:-4}
QUOTA=${QUOTA:-0.25}
ARGS=${ARGS:---duration 60m --time-scale 20}
BIN=${BIN:-target/release}
OUT=${OUT:-/tmp/fleet-bench}
CG=/sys/fs/cgroup/cpu
NET=10.231.7
TOKEN=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
ADMIN=fleet-bench-admin
export SUMSTORM_COLLECTOR_TOKEN=$TOKEN SUMSTORM_ADMIN_TOKEN=$ADMIN

rm -rf "$OUT" && mkdir -p "$OUT"
cp "$BIN/loadgen" "$BIN/backend" "$OUT/"
cleanup() {
    pkill -f "$OUT/backend" 2>/dev/null || true
    pkill -f "$OUT/loadgen" 2>/dev/null || true
    sleep 0.5
    for i in $(seq 0 $((SHARDS - 1))); do
        ip netns del "ssfm$i" 2>/dev/null || true
        rmdir "$CG/ssfm$i" 2>/dev/null || true
    done
    ip link del ssfbr 2>/dev/null || true
}
trap cleanup EXIT
cleanup
ip link add ssfbr type bridge && ip addr add "$NET.1/24" dev ssfbr && ip link set ssfbr up
for i in $(seq 0 $((SHARDS - 1))); do
    ip netns add "ssfm$i"
    ip link add "ssfv$i" type veth peer name eth0 netns "ssfm$i"
    ip link set "ssfv$i" master ssfbr && ip link set "ssfv$i" up
    ip -n "ssfm$i" addr add "$NET.$((10 + i))/24" dev eth0
    ip -n "ssfm$i" link set eth0 up && ip -n "ssfm$i" link set lo up
    mkdir -p "$CG/ssfm$i"
    awk -v q="$QUOTA" 'BEGIN { printf "%d\n", q * 100000 }' > "$CG/ssfm$i/cpu.cfs_quota_us"
done

# On machine I (its namespace and CPU quota): the rest of the line.
on_machine() {
    local i=$1; shift
    sh -c "echo \$\$ > $CG/ssfm$i/cgroup.procs && exec ip netns exec ssfm$i \"\$@\"" sh "$@"
}

backend_up() {
    rm -rf "$OUT/data-$1"
    "$OUT/backend" serve --listen "$NET.1:18300" --data-dir "$OUT/data-$1" --admin-token "$ADMIN" \
        --statesys-pause 0 2>"$OUT/backend-$1.log" &
    for _ in $(seq 100); do
        grep -q serving "$OUT/backend-$1.log" 2>/dev/null && return
        sleep 0.1
    done
    echo "the backend did not start" >&2 && exit 1
}

echo "== one process on one machine ($QUOTA CPU): $PROFILE $ARGS"
backend_up one
set +e
on_machine 0 "$OUT/loadgen" run "$PROFILE" --target "http://$NET.1:18300" $ARGS --out "$OUT/one" \
    2>&1 | tr '\r' '\n' | grep -v '^\[sim' | tail -n 14
echo "exit ${PIPESTATUS[0]}"
set -e
pkill -f "$OUT/backend" && sleep 1

echo "== $SHARDS shards on $SHARDS machines ($QUOTA CPU each) and a collector"
backend_up fleet
"$OUT/loadgen" collect "$PROFILE" --shards "$SHARDS" --listen "$NET.1:18399" --target "http://$NET.1:18300" \
    $ARGS --out "$OUT/fleet" 2> >(tr '\r' '\n' | grep -v '^\[fleet' > "$OUT/collector.log") &
collector=$!
sleep 1
for i in $(seq 0 $((SHARDS - 1))); do
    on_machine "$i" "$OUT/loadgen" run "$PROFILE" --target "http://$NET.1:18300" $ARGS --shard "$i/$SHARDS" \
        --collector "http://$NET.1:18399" --out "$OUT/shard-$i" 2>"$OUT/shard-$i.log" &
done
set +e
wait "$collector"
echo "collector exit $?"
set -e
tail -n 14 "$OUT/collector.log"

python3 - "$OUT" <<'PY'
import json, sys
out = sys.argv[1]
for name in ("one", "fleet"):
    s = json.load(open(f"{out}/{name}/summary.json"))
    g, r = s["generator"], s["requests"]
    print(f"{name:6} exit {s['exit']}  requests {sum(v['count'] for v in r.values())}  errors {sum(v['errors'] for v in r.values())}"
          f"  lateness p99 {g['lateness_ms'] and g['lateness_ms']['p99']} ms  state_report p99 {r.get('state_report', {}).get('latency_ms', {}) and r['state_report']['latency_ms']['p99']} ms"
          f"  generator CPU {g['cpu_seconds']:.1f} s  verification {s['verification'].get('exact')}")
f = json.load(open(f"{out}/fleet/summary.json"))["fleet"]
c = f["collector"]
print(f"collector: CPU {c['cpu_seconds']:.2f} s, peak RSS {c['peak_rss_mib']:.1f} MiB, {c['bytes_received']} bytes received, refused {c['refused']}")
for p in f["per_shard"]:
    print(f"  shard {p['shard']} at {p['address']}: {p.get('clients')} clients, CPU {p.get('cpu_seconds')} s, peak RSS {p.get('peak_rss_mib')} MiB, intervals {p['intervals_received']}/{p.get('intervals_sent')}")
PY
