#!/usr/bin/env bash
# Runs ocelot-algorithm as the OCELOT organisers test a submission: no network, no capabilities,
# no privilege gain, 4 GB of memory without swap, 128 MB of shared memory, at most 256 processes;
# the input folder read-only, only /output writable.
#
# Usage: scripts/test-run-algorithm.sh [INPUT] [OUTPUT] [--image IMAGE] [--gpus]
#   INPUT    the Grand Challenge input layout: images/cell_patches/<one>.tif,
#            images/tissue_patches/<one>.tif, metadata.json (default test_data/input).
#   OUTPUT   folder that receives cell_classification.json (default runs/algorithm-output);
#            created if missing and made writable for the container's non-root user; an old
#            cell_classification.json is removed first.
#   --image  image to run (default ocelot-algorithm).
#   --gpus   give the container every GPU (docker run --gpus all; needs the NVIDIA toolkit).
# Exit status: the container's (0: cell_classification.json written).
set -euo pipefail
cd "$(dirname "$0")/.."

usage() { sed -n '6,14p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
input=test_data/input
output=runs/algorithm-output
positional=()
image=ocelot-algorithm
gpus=()
while [ $# -gt 0 ]; do
  case "$1" in
    --image) [ $# -ge 2 ] || usage; image=$2; shift 2 ;;
    --gpus) gpus=(--gpus all); shift ;;
    -*) usage ;;
    *) positional+=("$1"); shift ;;
  esac
done
[ ${#positional[@]} -le 2 ] || usage
[ ${#positional[@]} -ge 1 ] && input=${positional[0]}
[ ${#positional[@]} -ge 2 ] && output=${positional[1]}
[ -d "$input" ] || { echo "test-run-algorithm: input folder $input not found" >&2; exit 2; }
input=$(cd "$input" && pwd)
mkdir -p "$output"
output=$(cd "$output" && pwd)

chmod a+rwx "$output"
rm -f "$output/cell_classification.json"
set -x
docker run --rm --network none --cap-drop ALL --security-opt no-new-privileges \
  --memory 4g --memory-swap 4g --shm-size 128m --pids-limit 256 ${gpus[@]+"${gpus[@]}"} \
  -v "$input:/input:ro" -v "$output:/output" "$image"
