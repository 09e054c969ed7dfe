#!/usr/bin/env bash
# The main job: set up, build Release, then train a linear-attention transformer with gated
# SineSPE on ListOps (examples/configs/listops_spe.json, about 5 minutes on 2 cores) and report
# its test accuracy next to the majority-class baseline, with plots of its curves and of the
# positional kernels it learned.
#
#   scripts/run.sh [--config NAME] [spear-train flags ...]
#   scripts/run.sh --help
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
config=listops_spe

usage() {
  cat <<USAGE
usage: scripts/run.sh [--config NAME] [spear-train flags ...]

Installs what is missing, builds spear (Release) into build/, trains examples/configs/NAME.json
into build/runs/NAME and prints its result. Default NAME: $config. Extra flags go to spear-train
(e.g. --threads 2, --set train.steps=200); see build/bin/spear-train --help.

Shipped configs:
USAGE
  for f in "$here"/../examples/configs/*.json; do
    name=$(basename "$f" .json)
    task=$(sed -n 's/.*"name": *"\([a-z_]*\)".*/\1/p' "$f" | head -n 1)
    printf '  %-22s task %s\n' "$name" "$task"
  done
}

if [ "${1:-}" = "--help" ] || [ "${1:-}" = "-h" ]; then
  usage
  exit 0
fi
if [ "${1:-}" = "--config" ]; then
  [ $# -ge 2 ] || { usage >&2; exit 2; }
  config=$2
  shift 2
fi
[ -f "$here/../examples/configs/$config.json" ] || { echo "run.sh: no config examples/configs/$config.json (see --help)" >&2; exit 2; }

source "$here/setup.sh"
run_dir="$SPEAR_ROOT/build/runs/$config"
step "main job: build/bin/spear-train --config examples/configs/$config.json --out build/runs/$config"
rm -rf "$run_dir"  # a fresh run each time; spear-train never overwrites a run
summary=$("$SPEAR_ROOT/build/bin/spear-train" --config "$SPEAR_ROOT/examples/configs/$config.json" \
  --out "$run_dir" "$@") || fail "spear-train"
echo "$summary"

step "result"
python3 - "$summary" <<'PY'
import json, sys
s = json.loads(sys.argv[1].strip().splitlines()[-1])
test = s.get("test", {})
accuracy, baseline = test.get("accuracy"), s.get("majority", s.get("chance"))
if accuracy is not None and baseline is not None:
    print(f"test accuracy {100 * accuracy:.1f}%  (majority-class baseline {100 * baseline:.1f}%, "
          f"{100 * (accuracy - baseline):+.1f} points), {s['steps']} steps in {s['elapsed_s']:.0f} s")
PY
echo "run directory: $run_dir"
if /usr/bin/python3 -c "import matplotlib" 2>/dev/null; then
  echo "loss and accuracy curves: $(/usr/bin/python3 "$SPEAR_ROOT/scripts/plot.py" "$run_dir" | tail -n 1)"
  if grep -q '_spe"' "$run_dir/config.json"; then
    echo "learned positional kernels: $(/usr/bin/python3 "$SPEAR_ROOT/scripts/plot_kernels.py" "$run_dir")"
  fi
else
  echo "(install python3-matplotlib for the plots: scripts/plot.py, scripts/plot_kernels.py)"
fi
