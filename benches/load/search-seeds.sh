#!/usr/bin/env bash
# Capacity searches of profiles/search-site.toml with different seeds, one after another (each
# uses the whole machine): do they agree, and how long does each take?
#   cargo build --release -p loadgen
#   benches/load/search-seeds.sh target/release/loadgen /tmp/seeds 1 2 3 4 5
# Searches already in OUT_DIR (a search.json with an answer) are kept. Prints one line per seed
# (answer per goal, bracket, trials, wall time) and the spread of the answers; exits 0.
set -uo pipefail
LOADGEN=$(realpath "${1:?loadgen binary}"); OUT=${2:?output folder}; shift 2
HERE=$(cd "$(dirname "$0")/../.." && pwd)
mkdir -p "$OUT"
for seed in "$@"; do
  dir="$OUT/seed$seed"
  if ! grep -q '"complete": true' "$dir/search.json" 2>/dev/null; then
    rm -rf "$dir"
    "$LOADGEN" search "$HERE/profiles/search-site.toml" --over clients --seed "$seed" --out "$dir" \
      >"$OUT/seed$seed.log" 2>&1
    echo "seed $seed: exit $?"
  fi
done
python3 - "$OUT" "$@" <<'EOF'
import json, sys
out, seeds = sys.argv[1], sys.argv[2:]
answers = {}
for seed in seeds:
    s = json.load(open(f"{out}/seed{seed}/search.json"))
    line = [f"seed {seed}:"]
    for a in s["answer"]:
        answers.setdefault(a["goal"], []).append(a["lower"])
        line.append(f"{a['goal']} {a['lower']:.0f} (upper {a['upper']:.0f})")
    line.append(f'{len(s["trials"])} trials, {s["wall_seconds"] / 60:.1f} min')
    print("  ".join(line))
for goal, loads in answers.items():
    lo, hi = min(loads), max(loads)
    print(f"{goal}: {lo:.0f} to {hi:.0f}, spread {(hi - lo) / lo * 100:.2f} % of the smallest")
EOF
