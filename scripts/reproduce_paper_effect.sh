#!/usr/bin/env bash
# The paper's central effect on synthetic data, sized for a 2-core CPU: Cell-only vs Pred-to-inter-2
# vs Tissue-label-leaking, trained with one configuration (256-px patches, ResNet-18 encoders, the GPU
# run's 320/40/40 synthetic pairs but 8 epochs instead of 20) and scored on the test split; the table
# lands in OUT/table.md and the Pred-to-inter-2 weights in OUT/pred-to-inter-2/seed-0/best.pt (int8).
# About 1 h on a 2-core x86-64 (2.9 Cell-only and 1.9 Pred-to-inter-2 training pairs/s).
# The GPU-sized run (larger data, three variants trained concurrently): scripts/reproduce_paper_effect_gpu.sh.
#
# Usage: scripts/reproduce_paper_effect.sh [OUT] [more `reproduce` flags]
# Rerunning continues where an interrupted run stopped (finished variants are not retrained).
# Set PYTHON to choose the interpreter (default: python3).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-runs/effect-cpu}
exec "${PYTHON:-python3}" -m baseline_algorithm reproduce --out "$out" \
  --pairs 320 40 40 --size 256 --encoder resnet18 --epochs 8 --batch-size 8 \
  --lr-tissue 1e-3 --lr-cell 5e-4 --workers 1 --device cpu --checkpoint-dtype int8 \
  --variants cell-only pred-to-inter-2 tissue-label-leaking "${@:2}"
