#!/usr/bin/env bash
# The main job: set up, build Release, run the demo.
source "$(dirname "$0")/setup.sh"
step "main job: build/bin/spear-demo"
"$SPEAR_ROOT/build/bin/spear-demo" --out "$SPEAR_ROOT/build/demo.safetensors" "$@" \
  || fail "spear-demo"
