#!/usr/bin/env bash
# The paper's central effect on synthetic data: Cell-only vs Pred-to-inter-2 vs Tissue-label-leaking,
# trained with one configuration and scored on the test split (table: OUT/effect.md).
#
# Usage: scripts/reproduce_paper_effect.sh cpu|gpu [OUT] [more `reproduce` flags, e.g. --data DIR]
#   cpu  2-core CPU: 256-px synthetic patches, ResNet-18 encoders, small dataset, few epochs.
#   gpu  one GPU: larger synthetic dataset, int8-stored best checkpoints (the shipped weights fit
#        in 30 MB), each variant's training capped at --max-minutes so all three fit ~8 minutes.
# Rerunning continues where an interrupted run stopped (finished variants are not retrained).
# Set PYTHON to choose the interpreter (default: python3).
set -euo pipefail
cd "$(dirname "$0")/.."
config=${1:?usage: scripts/reproduce_paper_effect.sh cpu|gpu [OUT] [reproduce flags]}
out=${2:-runs/effect-$config}
case $config in
  cpu) args=(--pairs 64 16 32 --size 256 --encoder resnet18 --epochs 30 --batch-size 8
             --lr-tissue 1e-3 --lr-cell 5e-4 --workers 1 --device cpu) ;;
  gpu) args=(--pairs 256 64 128 --size 256 --encoder resnet18 --epochs 80 --batch-size 16
             --lr-tissue 1e-3 --lr-cell 5e-4 --workers 12 --device cuda --checkpoint-dtype int8
             --max-minutes 2.2) ;;
  *) echo "error: configuration '$config' is neither cpu nor gpu" >&2; exit 2 ;;
esac
exec "${PYTHON:-python3}" -m baseline_algorithm reproduce --out "$out" "${args[@]}" "${@:3}"
