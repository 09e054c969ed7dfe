#!/usr/bin/env bash
# The main job: set up, build Release, train the majority classifier (examples/configs/) into
# build/runs/main. Progress goes to stderr; the last line on stdout is the run's JSON summary.
# Extra arguments go to spear-train (e.g. --threads 2, --set train.steps=100).
source "$(dirname "$0")/setup.sh"
run_dir="$SPEAR_ROOT/build/runs/main"
step "main job: build/bin/spear-train --config examples/configs/majority_classifier.json --out build/runs/main"
rm -rf "$run_dir"  # a fresh run each time; spear-train never overwrites a run
"$SPEAR_ROOT/build/bin/spear-train" --config "$SPEAR_ROOT/examples/configs/majority_classifier.json" \
  --out "$run_dir" "$@" || fail "spear-train"
