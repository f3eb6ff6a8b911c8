#!/usr/bin/env bash
# The false-alarm rate of `loadgen compare`: PAIRS pairs of identical runs of the ci profile (one
# build, one machine, back to back), each second run compared with the first as its baseline,
# and every run compared with the baseline file CI uses, at CI's tolerance. A flagged pair is a
# false alarm: nothing changed between the two runs.
#   cargo build --release -p loadgen
#   benches/load/false-alarms.sh target/release/loadgen /tmp/fa 20 50%
# Runs already in RUNS_DIR are reused (the comparison can be repeated with another build).
# Prints one line per comparison and the totals; exits 0.
set -uo pipefail
LOADGEN=$(realpath "${1:?loadgen binary}"); RUNS=${2:?runs folder}; PAIRS=${3:-20}; TOL=${4:-50%}
HERE=$(cd "$(dirname "$0")/../.." && pwd)
BASELINE=${BASELINE:-$HERE/results/baselines/ci.json}
mkdir -p "$RUNS"
cd "$RUNS"
for i in $(seq 0 $((2 * PAIRS - 1))); do
  [ -f "run$i/summary.json" ] && continue
  # A run's own exit (thresholds, verification) is not the question here; its figures are.
  "$LOADGEN" run "$HERE/profiles/ci.toml" --out "run$i" >"run$i.log" 2>&1
  echo "run$i: exit $?"
done
flagged() { grep REGRESSION | awk '{print $1}' | tr '\n' ' '; }
pairs=0; pair_alarms=0
for i in $(seq 0 $((PAIRS - 1))); do
  a=run$((2 * i)); b=run$((2 * i + 1))
  out=$("$LOADGEN" compare "$b" "$a" --max-regression "$TOL" 2>&1); rc=$?
  pairs=$((pairs + 1)); [ $rc -eq 1 ] && pair_alarms=$((pair_alarms + 1))
  echo "pair $a -> $b: exit $rc $(echo "$out" | flagged)"
done
runs=0; base_alarms=0
if [ -f "$BASELINE" ]; then
  for i in $(seq 0 $((2 * PAIRS - 1))); do
    out=$("$LOADGEN" compare "run$i" "$BASELINE" --max-regression "$TOL" 2>&1); rc=$?
    runs=$((runs + 1)); [ $rc -eq 1 ] && base_alarms=$((base_alarms + 1))
    echo "baseline -> run$i: exit $rc $(echo "$out" | flagged)"
  done
fi
echo "pairs: $pair_alarms of $pairs flagged at $TOL"
echo "against $(basename "$BASELINE"): $base_alarms of $runs flagged at $TOL"
