#!/usr/bin/env bash
# The paper's Table 5 (seven variants) and Table 7 (data ablation of Pred-to-inter-2) on synthetic
# data, sized for a 2-core CPU: about two hours for the seven rows with two seeds, then the two
# Table 7 rows with the same seeds (about 40 more minutes).
#
# Sizing (docs/benchmarks.md, "Model"): on an idle 2-core x86-64 scripts/benchmark_training.py
# measures training steps at 256 px with ResNet-18 and batch 8 at 3.75 pairs/s for Cell-only,
# 1.8-2.0 for the injection variants, 0.69 for Feature-sharing and 4.6 for leaking: about 4 s of
# steps per training pair-epoch for one seed of the seven rows. 112 training pairs x 5 epochs x
# 2 seeds is then about 75 minutes of steps; data loading on the same cores, validation (16
# pairs per epoch) and the test split (48 pairs) bring it to an estimated 1 h 45 min on an idle
# machine. Measured on the same machine on 2026-12-02 with these defaults and other jobs on the
# cores part of the time: Table 5 took 2 h 36 min; each Table 7 run (tissue-label-only,
# large-fov-only) took 5-18 minutes.
#
# Usage: scripts/reproduce_paper_tables.sh [OUT] [more `reproduce` options]
# Environment (defaults in brackets): SEEDS ["0 1"], EPOCHS [5], PAIRS ["112 16 48"], SIZE [256],
#   ENCODER [resnet18], DEVICE [cpu], WORKERS [1], PYTHON [python3].
# With a GPU: DEVICE=cuda SEEDS="0 1 2" EPOCHS=40 PAIRS="320 40 80" WORKERS=4.
# Rerunning continues where a stopped run ended (finished runs are not retrained). The tables are
# OUT/table5/table.md and OUT/table7/table.md; both use OUT/table5/data, and Table 7 links to
# Table 5's Cell-only and Pred-to-inter-2 runs instead of training them again.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-runs/paper-tables}
python=${PYTHON:-python3}
# shellcheck disable=SC2206  # word splitting of the lists is intended
seeds=(${SEEDS:-0 1})
# shellcheck disable=SC2206
pairs=(${PAIRS:-112 16 48})
common=(--pairs "${pairs[@]}" --size "${SIZE:-256}" --encoder "${ENCODER:-resnet18}"
  --epochs "${EPOCHS:-5}" --batch-size 8 --workers "${WORKERS:-1}" --device "${DEVICE:-cpu}"
  --seeds "${seeds[@]}" --quiet)
mkdir -p "$out/table7"
"$python" -m baseline_algorithm reproduce --out "$out/table5" "${common[@]}" \
  --variants cell-only pred-to-input pred-to-inter-1 pred-to-inter-2 pred-to-output \
  feature-sharing tissue-label-leaking "${@:2}"
for row in cell-only pred-to-inter-2; do
  [ -e "$out/table7/$row" ] || ln -s "../table5/$row" "$out/table7/$row"
done
"$python" -m baseline_algorithm reproduce --out "$out/table7" --data "$out/table5/data" \
  "${common[@]}" \
  --variants cell-only pred-to-inter-2 --ablations both tissue-label-only large-fov-only "${@:2}"
