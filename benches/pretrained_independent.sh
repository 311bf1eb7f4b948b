#!/usr/bin/env bash
# The shipped pretrained model on videos made by another program
# (tools/independent-check/make_real_videos.py): amortised and TTT50 MAE per kind.
#
#   benches/pretrained_independent.sh OUT_DIR [N_PER_KIND] [SEED]
#
# Generates N videos of each kind (default 10, seed 11), runs `safe-pit-cm infer` with
# the built-in model (no --model) with 0 and 50 test-time steps, and scores both with
# tools/independent-check/check.py (MAE, max error, R^2 per regime, 2-stderr coverage).
set -euo pipefail
out=${1:?usage: $0 OUT_DIR [N_PER_KIND] [SEED]}
n=${2:-10}
seed=${3:-11}
root=$(cd "$(dirname "$0")/.." && pwd)
bin=$root/target/release/safe-pit-cm
py=${PYTHON:-python3}
kinds="continuum-periodic open-window zero-flux five-point-open camera paper8bit"
mkdir -p "$out"
for k in $kinds; do
  [ -d "$out/$k" ] || "$py" "$root/tools/independent-check/make_real_videos.py" "$out" --kinds "$k" --n "$n" --seed "$seed" >/dev/null
done
for steps in 0 50; do
  for k in $kinds; do
    "$bin" infer "$out/$k" --ttt-steps "$steps" --out "$out/infer_${steps}_$k.json" --overwrite >/dev/null 2>"$out/infer_${steps}_$k.log" || true
  done
  echo "== infer, built-in model, --ttt-steps $steps"
  "$py" - "$out" "$steps" $kinds <<'PY'
import json, sys
out, steps, kinds = sys.argv[1], sys.argv[2], sys.argv[3:]
sims = []
for k in kinds:
    sims += json.load(open(f"{out}/infer_{steps}_{k}.json"))["sims"]
json.dump({"sims": sims}, open(f"{out}/infer_{steps}_all.json", "w"))
secs = sorted(s["seconds"] for s in sims)
print(f"median seconds per video: {secs[len(secs)//2]:.3f}")
PY
  (cd "$root/tools/independent-check" && "$py" check.py "$out" --results "$out/infer_${steps}_all.json")
done
