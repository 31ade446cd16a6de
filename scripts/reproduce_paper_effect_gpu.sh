#!/usr/bin/env bash
# The paper's effect on synthetic data, sized for one GPU: synthesizes a dataset, trains Cell-only,
# Pred-to-inter-2 and Tissue-label-leaking CONCURRENTLY on the same GPU (one process each, so the
# data loading of one overlaps the GPU work of the others), then scores the three best checkpoints
# on the test split and writes the table (OUT_DIR/table.md, OUT_DIR/table.json).
#
# Usage: scripts/reproduce_paper_effect_gpu.sh OUT_DIR
# Environment (defaults in brackets): PAIRS ["320 40 40"], SIZE [256], EPOCHS [20], ENCODER [resnet18],
#   BATCH [16], LOADER_WORKERS [5 per variant], DEVICE [cuda], SEED [0], PYTHON [python3].
# The CPU-sized equivalent, one variant after another: python -m baseline_algorithm reproduce --help.
set -euo pipefail
out=${1:?usage: $0 OUT_DIR}
python=${PYTHON:-python3}
pairs=${PAIRS:-320 40 40}
variants=(cell-only pred-to-inter-2 tissue-label-leaking)
mkdir -p "$out/logs"
# shellcheck disable=SC2086  # PAIRS is three numbers
"$python" -m baseline_algorithm synthesize "$out/data" --pairs $pairs --size "${SIZE:-256}" \
  --seed "${SEED:-0}" --workers "$(nproc)" --quiet
common=(--data "$out/data" --out "$out" --epochs "${EPOCHS:-20}" --batch-size "${BATCH:-16}"
  --encoder "${ENCODER:-resnet18}" --workers "${LOADER_WORKERS:-5}" --device "${DEVICE:-cuda}"
  --seeds "${SEED:-0}" --checkpoint-dtype int8 --quiet)
pids=()
for variant in "${variants[@]}"; do
  "$python" -m baseline_algorithm reproduce "${common[@]}" --variants "$variant" >"$out/logs/$variant.log" 2>&1 &
  pids+=($!)
done
status=0
for i in "${!pids[@]}"; do
  wait "${pids[$i]}" || { status=$?; echo "${variants[$i]} failed; see $out/logs/${variants[$i]}.log" >&2; }
done
[ "$status" -eq 0 ] || exit "$status"
# Every run is finished now, so this only scores them and writes the table.
"$python" -m baseline_algorithm reproduce "${common[@]}" --variants "${variants[@]}" | tee "$out/logs/table.log"
