#!/usr/bin/env bash
# The paper's Table 5 (seven variants) and Table 7 (data ablation of Pred-to-inter-2) on synthetic
# data under one converging protocol for every row, sized for a 2-core CPU: 320 training, 32
# validation and 80 test pairs at 256 px, ResNet-18, batch 8, at most 30 epochs with the learning
# rates on a cosine over the 30 epochs and early stopping after 6 epochs without a better val mF1.
# Seeds: 3 for Cell-only, Pred-to-inter-2 and Tissue-label leaking, 2 for the other rows and for
# Table 7's two ablation rows (Table 7's Cell-only and Pred-to-inter-2 are Table 5's runs, linked).
#
# Cost (docs/model.md, "The converging protocol"): training steps at 256 px, ResNet-18, batch 8
# on an idle CPU-2 (scripts/benchmark_training.py, docs/benchmarks.md) run at 3.75 pairs/s for
# Cell-only, 1.8-2.0 for the injection variants, 0.69 for Feature-sharing and 4.56 for leaking:
# 30 epochs of 320 pairs are 0.7 h of steps for Cell-only, 1.3-1.5 h for an injection variant,
# 3.9 h for Feature-sharing and 0.6 h for leaking. The 21 runs are 29.8 h of steps; data loading
# (about 18 ms of CPU per pair), validation (32 pairs per epoch) and the test split add about 3 h:
# at most about 33 hours of an idle 2-core machine (66 core-hours), less where early stopping ends
# runs before epoch 30. On a shared machine it is proportionally longer: with three other users on
# the same two cores (load average 5.5-7.8, 2026-12-07) the same steps ran 4-13 times slower.
#
# Runs live outside the work tree (OUT, default $HOME/ocelot-runs/paper-tables) and resume:
# rerunning continues where a stopped run ended, finished runs (all epochs, or stopped by
# patience) are not retrained. The tables are OUT/table5/table.{md,json} and
# OUT/table7/table.{md,json}; with all runs done the script copies table.json to
# TABLES_DIR/table5.json and table7.json (as reproduce writes them) and draws the convergence
# figures TABLES_DIR/table5_convergence.png and table7_convergence.png; then
# `python scripts/render_tables.py TABLES_DIR/table5.json --into docs/model.md --marker table5`
# (and table7) puts them into docs/model.md.
#
# Usage: scripts/reproduce_paper_tables.sh [OUT] [more `reproduce` options]
# Environment (defaults in brackets): SEEDS ["0 1"], MORE_SEEDS ["0,1,2": the three rows above],
#   EPOCHS [30], PATIENCE [6], LR_SCHEDULE [cosine], PAIRS ["320 32 80"], SIZE [256],
#   ENCODER [resnet18], DEVICE [cpu], WORKERS [1], TABLES_DIR [docs/tables], PYTHON [python3].
# The GPU-sized version, in one 10-minute run on one GPU: scripts/gpu_tables.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd -P)
out=$(realpath -m "${1:-$HOME/ocelot-runs/paper-tables}")
case "$out/" in
  "$repo"/*) echo "reproduce_paper_tables: OUT $out is inside the work tree $repo; keep runs outside it" >&2; exit 2 ;;
esac
python=${PYTHON:-python3}
tables=${TABLES_DIR:-docs/tables}
more=${MORE_SEEDS:-0,1,2}
# shellcheck disable=SC2206  # word splitting of the lists is intended
seeds=(${SEEDS:-0 1})
# shellcheck disable=SC2206
pairs=(${PAIRS:-320 32 80})
common=(--pairs "${pairs[@]}" --size "${SIZE:-256}" --encoder "${ENCODER:-resnet18}"
  --epochs "${EPOCHS:-30}" --patience "${PATIENCE:-6}" --lr-schedule "${LR_SCHEDULE:-cosine}"
  --batch-size 8 --workers "${WORKERS:-1}" --device "${DEVICE:-cpu}" --seeds "${seeds[@]}" --quiet)
mkdir -p "$out/table7"
"$python" -m baseline_algorithm reproduce --out "$out/table5" "${common[@]}" \
  --variants cell-only pred-to-input pred-to-inter-1 pred-to-inter-2 pred-to-output \
  feature-sharing tissue-label-leaking \
  --row-seeds "cell-only=$more" "pred-to-inter-2=$more" "tissue-label-leaking=$more" "${@:2}"
for row in cell-only pred-to-inter-2; do
  [ -e "$out/table7/$row" ] || ln -s "../table5/$row" "$out/table7/$row"
done
"$python" -m baseline_algorithm reproduce --out "$out/table7" --data "$out/table5/data" \
  "${common[@]}" \
  --variants cell-only pred-to-inter-2 --ablations both tissue-label-only large-fov-only \
  --row-seeds "cell-only=$more" "pred-to-inter-2=$more" "${@:2}"
mkdir -p "$tables"
for table in table5 table7; do
  cp "$out/$table/table.json" "$tables/$table.json"
  "$python" scripts/plot_convergence.py "$out/$table" "$tables/${table}_convergence.png"
done
