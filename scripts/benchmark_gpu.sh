#!/usr/bin/env bash
# GPU throughput of the paper's configuration (ResNet-34 Pred-to-inter-2 at 1024 px): predict in
# pairs per second at batch 1, 4 and 16 under bfloat16, through the predict entry on a stacked
# Grand Challenge input, and training pairs per second. Writes OUT_JSON; sized to finish within
# 8 minutes on one GPU (the whole run is stopped at 7.5 minutes).
#
# Usage: scripts/benchmark_gpu.sh OUT_JSON [extra options of scripts/benchmark_gpu.py]
#   e.g. the CPU check of everything but the GPU calls:
#   scripts/benchmark_gpu.sh /tmp/gpu.json --device cpu --pairs 2 --size 64 --batch-sizes 1 2 \
#     --train-batch 2 --train-steps 1
# Environment: PYTHON [python3].
set -euo pipefail
out=${1:?usage: $0 OUT_JSON [options of scripts/benchmark_gpu.py]}
shift
out=$(realpath -m "$out")
here=$(cd "$(dirname "$0")" && pwd)
cd "$here/.."
if command -v nvidia-smi >/dev/null; then
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader >&2 || true
fi
PYTHONPATH=. timeout 450 "${PYTHON:-python3}" scripts/benchmark_gpu.py --json "$out" "$@"
