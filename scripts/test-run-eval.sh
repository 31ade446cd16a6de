#!/usr/bin/env bash
# Runs ocelot-eval as Grand Challenge runs it: no network, no capabilities, read-only root,
# input read-only, only /output (and a /tmp tmpfs) writable, the platform's 4 GB memory limit.
#
# Usage: scripts/test-run-eval.sh INPUT OUTPUT [--ground-truth DIR] [--image IMAGE]
#   INPUT           the evaluation input layout: predictions.json and <pk>/output/<file> per job
#                   (e.g. test_data/evaluation/input); must be readable by every user.
#   OUTPUT          folder that receives metrics.json; created if missing and made writable for
#                   the container's non-root user; an old metrics.json is removed first.
#   --ground-truth  a folder to mount at /opt/ml/input/data/ground_truth (wins over the baked GT).
#   --image         image to run (default ocelot-eval).
# Exit status: the container's (0: metrics.json written; 2: input that cannot be scored).
set -euo pipefail

usage() { sed -n '5,12p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
[ $# -ge 2 ] || usage
input=$(cd "$1" && pwd)
mkdir -p "$2"
output=$(cd "$2" && pwd)
shift 2
image=ocelot-eval
mounts=()
while [ $# -gt 0 ]; do
  [ $# -ge 2 ] || usage
  case "$1" in
    --ground-truth) mounts+=(-v "$(cd "$2" && pwd):/opt/ml/input/data/ground_truth:ro") ;;
    --image) image=$2 ;;
    *) usage ;;
  esac
  shift 2
done

chmod a+rwx "$output"
rm -f "$output/metrics.json"
set -x
docker run --rm --network none --cap-drop ALL --security-opt no-new-privileges --read-only \
  --tmpfs /tmp --memory 4g --memory-swap 4g --pids-limit 256 \
  -v "$input:/input:ro" -v "$output:/output" ${mounts[@]+"${mounts[@]}"} "$image"
