#!/usr/bin/env bash
# The paper's Table 5 on one GPU in one 10-minute run: installs what the machine lacks from wheels
# brought along (no network), synthesizes the data there, trains the seven rows with three seeds
# under the converging protocol (cosine learning rate, early stopping), scores them, writes
# OUT_DIR/table5/table.json and .md and the convergence figure OUT_DIR/table5_convergence.png,
# then runs scripts/benchmark_gpu.sh into OUT_DIR/benchmark_gpu.json.
#
# Usage: scripts/gpu_tables.sh OUT_DIR [WHEELS_DIR]
# Wheels: the image (a stock CUDA PyTorch one: torch, torchvision, numpy) lacks the model's
#   segmentation-models-pytorch and the toolkit's scipy, scikit-image, matplotlib, tifffile and
#   tqdm. Prepare them where the package index is reachable, without torch (the image's is used):
#     pip download --dest WHEELS_DIR --no-deps --only-binary=:all: --python-version 3.11 \
#       --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 \
#       -r scripts/gpu_tables_wheels.txt
#   (set --python-version to the image's Python). Only the modules the image lacks are installed,
#   with `pip install --no-index --find-links WHEELS_DIR`; their dependencies come from the same
#   folder or from what the image has.
#
# Sizing (assumptions, not yet measured on a GPU: docs/model.md, "GPU-sized"): 320/40/80 pairs at
# 256 px, ResNet-18, batch 16, bfloat16. On an H100 the steps of a two-branch ResNet-18 at 256 px
# are not the limit; data loading is: about 18 ms of CPU per training pair (measured on CPU-2),
# so the 14 loader processes give at most about 780 pairs/s, of which we assume 400 for the seven
# concurrent trainings. 7 rows x 3 seeds x 320 pairs x 20 epochs = 134,400 pair-epochs, about 5.6
# minutes; each run is also stopped after its first epoch past RUN_MINUTES, so every row gets its
# three seeds within the budget even if the assumption is off (rows stopped that way are marked
# unconverged in table.md when their best epoch is their last). Then about 40 s of test scoring
# and the benchmark, held to BENCH_SECONDS.
#
# Environment (defaults in brackets): PAIRS ["320 40 80"], SIZE [256], EPOCHS [20], PATIENCE [6],
#   SEEDS ["0 1 2"], ENCODER [resnet18], BATCH [16], LOADER_WORKERS [2 per row], DEVICE [cuda],
#   RUN_MINUTES [1.6], BENCH_SECONDS [100], BENCH_ARGS [""], VARIANTS [the seven], PYTHON [python3].
# TOY=1: a few-minute CPU check of every step but the GPU calls (64 px, 1 epoch, two rows,
#   one seed, the benchmark at 64 px on the CPU); tests/test_gpu_tables.py runs it.
set -euo pipefail
out=$(realpath -m "${1:?usage: $0 OUT_DIR [WHEELS_DIR]}")
wheels=${2:-}
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
if [ "${TOY:-0}" = 1 ]; then
  : "${PAIRS:=4 1 2}" "${SIZE:=64}" "${EPOCHS:=1}" "${SEEDS:=0}" "${BATCH:=2}" "${DEVICE:=cpu}"
  : "${LOADER_WORKERS:=0}" "${VARIANTS:=cell-only pred-to-inter-2}"
  : "${BENCH_ARGS:=--device cpu --pairs 2 --size 64 --batch-sizes 1 --precision float32 --train-batch 2 --train-steps 1}"
  : "${BENCH_SECONDS:=300}"
fi
# shellcheck disable=SC2206  # word splitting of the lists is intended
variants=(${VARIANTS:-cell-only pred-to-input pred-to-inter-1 pred-to-inter-2 pred-to-output feature-sharing tissue-label-leaking})
# shellcheck disable=SC2206
seeds=(${SEEDS:-0 1 2})
# shellcheck disable=SC2206
pairs=(${PAIRS:-320 40 80})
# shellcheck disable=SC2206
bench_args=(${BENCH_ARGS:---pairs 64 --batch-sizes 1 16 --train-steps 5})
started=$(date +%s)
mkdir -p "$out/logs"

# 1. What the image lacks, from the wheels (module -> distribution).
missing=()
for entry in segmentation_models_pytorch:segmentation-models-pytorch scipy:scipy \
  skimage:scikit-image matplotlib:matplotlib tifffile:tifffile tqdm:tqdm PIL:pillow; do
  "$python" -c "import ${entry%%:*}" 2>/dev/null || missing+=("${entry#*:}")
done
if [ ${#missing[@]} -gt 0 ]; then
  [ -n "$wheels" ] || { echo "gpu_tables: missing ${missing[*]} and no WHEELS_DIR given" >&2; exit 2; }
  echo "installing ${missing[*]} from $wheels" >&2
  "$python" -m pip install --quiet --no-index --find-links "$wheels" "${missing[@]}"
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}

# 2. The data.
"$python" -m baseline_algorithm synthesize "$out/data" --pairs "${pairs[@]}" --size "${SIZE:-256}" \
  --seed 0 --workers "$(nproc)" --quiet

# 3. The rows, concurrently (one process per row, its seeds one after another): the GPU work of
#    one overlaps the data loading and validation of the others.
common=(--data "$out/data" --out "$out/table5" --epochs "${EPOCHS:-20}" --patience "${PATIENCE:-6}"
  --lr-schedule cosine --batch-size "${BATCH:-16}" --encoder "${ENCODER:-resnet18}"
  --workers "${LOADER_WORKERS:-2}" --device "${DEVICE:-cuda}" --seeds "${seeds[@]}" --quiet)
pids=()
for variant in "${variants[@]}"; do
  "$python" -m baseline_algorithm reproduce "${common[@]}" --variants "$variant" \
    --max-minutes "${RUN_MINUTES:-1.6}" >"$out/logs/$variant.log" 2>&1 &
  pids+=($!)
done
status=0
for i in "${!pids[@]}"; do
  wait "${pids[$i]}" || { status=$?; echo "${variants[$i]} failed; see $out/logs/${variants[$i]}.log" >&2; }
done
[ "$status" -eq 0 ] || exit "$status"
# Every run has ended: this trains no further (--max-minutes 0 stops a run that RUN_MINUTES cut
# short before its next epoch), scores them and writes the one table.
"$python" -m baseline_algorithm reproduce "${common[@]}" --variants "${variants[@]}" \
  --max-minutes 0 >"$out/logs/table.log" 2>&1
cat "$out/table5/table.md"
"$python" scripts/plot_convergence.py "$out/table5" "$out/table5_convergence.png" \
  --title "Table 5 on one GPU: validation mF1 per epoch, one line per run"
echo "tables: $(($(date +%s) - started)) s" | tee "$out/logs/seconds.txt"

# 4. The GPU benchmark, in the same go.
timeout "${BENCH_SECONDS:-100}" scripts/benchmark_gpu.sh "$out/benchmark_gpu.json" "${bench_args[@]}" \
  >"$out/logs/benchmark_gpu.log" 2>&1 || echo "benchmark_gpu failed or ran out of time; see $out/logs/benchmark_gpu.log" >&2
echo "total: $(($(date +%s) - started)) s" | tee -a "$out/logs/seconds.txt"
