#!/usr/bin/env bash
# The study of docs/results.md: positional encodings (none, sinusoidal, RoPE, gated SineSPE,
# gated ConvSPE) x attention kernels (linear ReLU, FAVOR+, softmax) on the extrapolation LM,
# ListOps and sequential Fashion-MNIST, 3 seeds each; R against accuracy and speed; and the
# Monte-Carlo error of SPE's logits against R.
#
#   scripts/experiments.sh [--out DIR] [--list] [PATTERN ...]
#
# Every run is a row of the table below: an id TASK/ROW/sSEED, a config of
# examples/configs/study/ and the --set overrides that make the row. PATTERNs are shell globs on
# the ids ('extrapolation/*', 'listops/linear-sine_spe/*', '*/s0'); without one, every row runs,
# in the order of the table. A row whose directory holds summary.json (and, for the language
# model, its per-position losses) is done and skipped, so the study can be stopped and started
# again at any time; a row stopped mid-run resumes from its last checkpoint (bit-identically).
#
# Each run uses one thread under nice, one run at a time; the binaries come from $SPEAR_BIN
# (default build/bin). A line per finished row goes to DIR/status.txt.
# scripts/results.py DIR then writes the tables and plots.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=$root/build/runs/study
bin=${SPEAR_BIN:-$root/build/bin}
configs=$root/examples/configs/study
seeds=(0 1 2)

# The rows: "TASK ROW OVERRIDES...", before the seeds are added. The study configs fix
# everything else: model size, steps, batch, learning rate, SPE's R, K and P.
linear="model.attention.kind=linear model.attention.feature_map=relu"
favor="model.attention.kind=favor model.attention.features=64"
softmax="model.attention.kind=softmax"
conv="model.positional=conv_spe model.spe.share_across_layers=true"
main_rows() {  # the table of PE x attention, for one task
  local task=$1
  echo "$task linear-none $linear model.positional=none"
  echo "$task linear-sinusoidal $linear model.positional=sinusoidal"
  echo "$task linear-rope $linear model.positional=rope"
  echo "$task linear-sine_spe $linear model.positional=sine_spe"
  echo "$task linear-conv_spe $linear $conv"
  echo "$task softmax-sinusoidal $softmax model.positional=sinusoidal"
  echo "$task favor-none $favor model.positional=none"
  echo "$task favor-sinusoidal $favor model.positional=sinusoidal"
  echo "$task favor-rope $favor model.positional=rope"
  echo "$task favor-sine_spe $favor model.positional=sine_spe"
  echo "$task favor-conv_spe $favor $conv"
}
r_rows() {  # SineSPE's R against accuracy and speed (R 32 is the main row)
  for r in 8 16 64 128; do
    echo "extrapolation linear-sine_spe-R$r $linear model.positional=sine_spe model.spe.realizations=$r"
  done
}
fashion_rows() {  # 14 x 14 images: 196 tokens
  echo "fashion_mnist linear-none $linear model.positional=none"
  echo "fashion_mnist linear-sinusoidal $linear model.positional=sinusoidal"
  echo "fashion_mnist linear-rope $linear model.positional=rope"
  echo "fashion_mnist linear-sine_spe $linear model.positional=sine_spe"
  echo "fashion_mnist linear-conv_spe $linear $conv"
  echo "fashion_mnist linear-conv_spe_2d $linear $conv model.spe.ndim=2 model.spe.kernel_size=7"
  echo "fashion_mnist softmax-sinusoidal $softmax model.positional=sinusoidal"
  echo "fashion_mnist favor-none $favor model.positional=none"
  echo "fashion_mnist favor-sinusoidal $favor model.positional=sinusoidal"
  echo "fashion_mnist favor-rope $favor model.positional=rope"
  echo "fashion_mnist favor-sine_spe $favor model.positional=sine_spe"
  echo "fashion_mnist favor-conv_spe $favor $conv"
}
# The whole study in priority order: every row with seed 0 before any with seed 1, so a study
# cut short still has every row.
all_rows() {
  for task in extrapolation listops; do
    for s in "${seeds[@]}"; do main_rows "$task" | sed "s|^\([^ ]*\) \([^ ]*\)|\1 \2 $s|"; done
  done
  echo "spe_variance - -"
  for s in "${seeds[@]}"; do r_rows | sed "s|^\([^ ]*\) \([^ ]*\)|\1 \2 $s|"; done
  for s in "${seeds[@]}"; do fashion_rows | sed "s|^\([^ ]*\) \([^ ]*\)|\1 \2 $s|"; done
}

usage() {
  sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'
}

list=0
patterns=()
while [ $# -gt 0 ]; do
  case $1 in
    --out) out=$2; shift 2 ;;
    --list) list=1; shift ;;
    -h|--help) usage; exit 0 ;;
    -*) echo "experiments.sh: unknown flag $1 (see --help)" >&2; exit 2 ;;
    *) patterns+=("$1"); shift ;;
  esac
done
[ ${#patterns[@]} -gt 0 ] || patterns=("*")

row_id() {  # TASK ROW SEED -> the id
  if [ "$1" = spe_variance ]; then echo spe_variance; else echo "$1/$2/s$3"; fi
}
selected() {
  local p
  for p in "${patterns[@]}"; do
    # shellcheck disable=SC2053  # the pattern is a glob on purpose
    [[ $1 == $p ]] && return 0
  done
  return 1
}
done_row() {  # the run directory is complete
  local dir=$1 task=$2
  [ -s "$dir/summary.json" ] || return 1
  [ "$task" != extrapolation ] || compgen -G "$dir/positions_test_*.jsonl" >/dev/null
}
# Runs a command under nice with one thread, appending "wall user sys" seconds to DIR/time.txt;
# the command's own stderr goes where the caller sent it (through fd 3).
timed() {
  local dir=$1
  shift
  local TIMEFORMAT='%R %U %S'
  { time SPEAR_NUM_THREADS=1 nice -n 19 "$@" </dev/null 2>&3; } 3>&2 2>>"$dir/time.txt"
}
status() {
  echo "$(date '+%F %T') $*" | tee -a "$out/status.txt"
}

train_row() {  # ID DIR TASK SEED OVERRIDES...
  local id=$1 dir=$2 task=$3 seed=$4
  shift 4
  local sets=(--set train.threads=1 --set "train.seed=$seed")
  local o
  for o in "$@"; do sets+=(--set "$o"); done
  if [ -f "$dir/trainer_state.json" ]; then
    timed "$dir" "$bin/spear-train" --resume "$dir" --threads 1 >"$dir/summary.json.tmp" \
      2>>"$dir/train.log" || return 1
  else
    rm -rf "$dir" && mkdir -p "$dir"
    timed "$dir" "$bin/spear-train" --config "$configs/$task.json" --out "$dir" "${sets[@]}" \
      >"$dir/summary.json.tmp" 2>>"$dir/train.log" || return 1
  fi
  mv "$dir/summary.json.tmp" "$dir/summary.json"
  if [ "$task" = extrapolation ]; then  # the loss at every position up to 4x the trained length
    timed "$dir" "$bin/spear-eval" --run "$dir" >/dev/null 2>>"$dir/train.log" || return 1
  fi
  status "$id done: $(python3 -c 'import json, sys
s = json.load(open(sys.argv[1]))
t = s["test"]
print("test loss %.4f, accuracy %.4f, %.0f s" % (t["loss"], t["accuracy"], s["elapsed_s"]))' \
    "$dir/summary.json")"
}

variance_row() {
  local dir=$out/spe_variance
  mkdir -p "$dir"
  timed "$dir" "$bin/spear-spe-variance" >"$dir/variance.jsonl.tmp" || return 1
  mv "$dir/variance.jsonl.tmp" "$dir/variance.jsonl"
  status "spe_variance done"
}

mkdir -p "$out"
failed=0
while read -r task row seed overrides; do
  id=$(row_id "$task" "$row" "$seed")
  selected "$id" || continue
  dir=$out/$id
  if [ $list = 1 ]; then
    echo "$id $overrides"
    continue
  fi
  if [ "$task" = spe_variance ]; then
    [ -s "$dir/variance.jsonl" ] && continue
    variance_row || { status "spe_variance FAILED"; failed=1; }
    continue
  fi
  done_row "$dir" "$task" && continue
  # shellcheck disable=SC2086  # the overrides are words
  train_row "$id" "$dir" "$task" "$seed" $overrides ||
    { status "$id FAILED (see $dir/train.log)"; failed=1; }
done < <(all_rows)
exit $failed
