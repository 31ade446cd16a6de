#!/usr/bin/env bash
# The paper's Table 5 (seven variants) and Table 7 (data ablation of Pred-to-inter-2) on synthetic
# data under one converging protocol for every row, sized for a 2-core CPU: 200 training, 32
# validation and 80 test pairs at 256 px, ResNet-18, batch 8, at most 12 epochs with the learning
# rates on a cosine over the 12 epochs and early stopping after 4 epochs without a better val mF1.
# Seeds: 3 for Cell-only, Pred-to-inter-2 and Tissue-label leaking, 2 for the other rows and for
# Table 7's two ablation rows (Table 7's Cell-only and Pred-to-inter-2 are Table 5's runs, linked).
# Cost: docs/model.md, "The converging protocol".
#
# Runs live outside the work tree (OUT, default $HOME/ocelot-runs/paper-tables) and resume:
# rerunning continues where a stopped run ended, finished runs (all epochs, or stopped by
# patience) are not retrained. The runs are spread over STREAMS concurrent `reproduce` calls, one
# per (row, seed), each with cores/STREAMS threads, so that the cores stay busy through the
# single-threaded parts of a run too (data loading, peak finding, scoring). Which stream a run
# goes to does not change it: each run is seeded from its own seed, epoch and pair (the thread
# count can change the last bits of floating-point sums). A last `reproduce` call per table, which
# finds every run finished and only scores them, writes OUT/table5/table.{md,json} and
# OUT/table7/table.{md,json}; the script then copies table.json to TABLES_DIR/table5.json and
# table7.json (as reproduce writes them) and draws TABLES_DIR/table5_convergence.png and
# table7_convergence.png; `python scripts/render_tables.py TABLES_DIR/table5.json --into
# docs/model.md --marker table5` (and table7) puts them into docs/model.md.
#
# Usage: scripts/reproduce_paper_tables.sh [OUT]
# Environment (defaults in brackets): ROWS [the seven Table 5 variants], TABLES ["5 7"],
#   SEEDS ["0 1"], MORE_SEEDS ["0 1 2"] for MORE_ROWS ["cell-only pred-to-inter-2
#   tissue-label-leaking"], STREAMS [2],
#   EPOCHS [12], PATIENCE [4], LR_SCHEDULE [cosine], PAIRS ["200 32 80"], SIZE [256],
#   ENCODER [resnet18], DEVICE [cpu], TABLES_DIR [docs/tables], PYTHON [python3].
# Logs: OUT/logs/<row>+<ablation>-seed-<K>.log. The GPU-sized version, in one 10-minute run on one GPU:
# scripts/gpu_tables.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd -P)
out=$(realpath -m "${1:-$HOME/ocelot-runs/paper-tables}")
case "$out/" in
  "$repo"/*) echo "reproduce_paper_tables: OUT $out is inside the work tree $repo; keep runs outside it" >&2; exit 2 ;;
esac
python=${PYTHON:-python3}
tables_dir=${TABLES_DIR:-docs/tables}
streams=${STREAMS:-2}
# shellcheck disable=SC2206  # word splitting of the lists is intended
rows=(${ROWS:-cell-only pred-to-input pred-to-inter-1 pred-to-inter-2 pred-to-output feature-sharing tissue-label-leaking})
# shellcheck disable=SC2206
tables=(${TABLES:-5 7})
# shellcheck disable=SC2206
seeds=(${SEEDS:-0 1})
# shellcheck disable=SC2206
more=(${MORE_SEEDS:-0 1 2})
# shellcheck disable=SC2206
pairs=(${PAIRS:-200 32 80})
data=$out/table5/data
common=(--data "$data" --pairs "${pairs[@]}" --size "${SIZE:-256}" --encoder "${ENCODER:-resnet18}"
  --epochs "${EPOCHS:-12}" --patience "${PATIENCE:-4}" --lr-schedule "${LR_SCHEDULE:-cosine}"
  --batch-size 8 --workers 0 --device "${DEVICE:-cpu}" --quiet)
threads=$(( $(nproc) / streams > 0 ? $(nproc) / streams : 1 ))

# shellcheck disable=SC2206
more_rows=(${MORE_ROWS:-cell-only pred-to-inter-2 tissue-label-leaking})

seeds_of() {  # the seeds of a Table 5 row, space-separated
  if [[ " ${more_rows[*]} " == *" $1 "* ]]; then echo "${more[*]}"; else echo "${seeds[*]}"; fi
}

wants() { [[ " ${tables[*]} " == *" $1 "* ]]; }

# One line per run: OUT VARIANT ABLATION SEED.
jobs=()
for row in "${rows[@]}"; do
  for seed in $(seeds_of "$row"); do jobs+=("$out/table5 $row both $seed"); done
done
if wants 7; then
  for ablation in tissue-label-only large-fov-only; do
    for seed in "${seeds[@]}"; do jobs+=("$out/table7 pred-to-inter-2 $ablation $seed"); done
  done
fi

mkdir -p "$out/logs" "$out/table7"
[ -e "$data/metadata.json" ] || "$python" -m baseline_algorithm synthesize "$data" \
  --pairs "${pairs[@]}" --size "${SIZE:-256}" --seed 0
for row in cell-only pred-to-inter-2; do
  [ -e "$out/table7/$row" ] || ln -s "../table5/$row" "$out/table7/$row"
done

stream() {  # stream K: every STREAMS-th run from the K-th, one after another
  local index=0 target variant ablation seed
  for job in "${jobs[@]}"; do
    if (( index++ % streams == $1 )); then
      read -r target variant ablation seed <<< "$job"
      OMP_NUM_THREADS=$threads "$python" -m baseline_algorithm reproduce --out "$target" \
        "${common[@]}" --variants "$variant" --ablations "$ablation" --seeds "$seed" \
        > "$out/logs/$variant+$ablation-seed-$seed.log" 2>&1
    fi
  done
}
pids=()
for (( k = 0; k < streams; k++ )); do
  stream "$k" &
  pids+=($!)
done
failed=0
for pid in "${pids[@]}"; do wait "$pid" || failed=1; done
if (( failed )); then
  echo "reproduce_paper_tables: a run failed; its log is in $out/logs" >&2
  exit 1
fi

row_seeds=()
for row in "${rows[@]}"; do row_seeds+=("$row=$(seeds_of "$row" | tr ' ' ,)"); done
mkdir -p "$tables_dir"
if wants 5; then
  "$python" -m baseline_algorithm reproduce --out "$out/table5" "${common[@]}" \
    --variants "${rows[@]}" --row-seeds "${row_seeds[@]}"
fi
if wants 7; then
  "$python" -m baseline_algorithm reproduce --out "$out/table7" "${common[@]}" \
    --variants cell-only pred-to-inter-2 --ablations both tissue-label-only large-fov-only \
    --seeds "${seeds[@]}" --row-seeds "cell-only=$(seeds_of cell-only | tr ' ' ,)" \
    "pred-to-inter-2=$(seeds_of pred-to-inter-2 | tr ' ' ,)"
fi
for table in "${tables[@]}"; do
  cp "$out/table$table/table.json" "$tables_dir/table$table.json"
  "$python" scripts/plot_convergence.py "$out/table$table" "$tables_dir/table${table}_convergence.png"
done
