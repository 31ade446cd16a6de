#!/usr/bin/env bash
# Builds the project's container images from a host-prepared wheelhouse (no network in the build).
#
# Usage: scripts/build-images.sh [eval|algorithm|all] [--base-image IMAGE] [--ground-truth PATH]
#                                [--split SPLIT] [--checkpoint PATH] [--tag TAG] [--no-cache]
#   eval        ocelot-eval from Dockerfile.eval (the Grand Challenge evaluation container).
#   algorithm   ocelot-algorithm from Dockerfile.algorithm (when that file exists).
#   all         both (the default).
#   --base-image    Python 3.11 base image (default $OCELOT_BASE_IMAGE, else python:3.11-slim;
#                   where no registry is reachable, scripts/docker-base.sh makes ocelot-base:py311).
#   --ground-truth  eval only: GT baked into ocelot-eval, a GT JSON file or a folder (see
#                   Dockerfile.eval; default test_data/ground_truth).
#   --split         eval only: split of a release-folder ground truth (default test).
#   --checkpoint    algorithm only: weights baked into ocelot-algorithm
#                   (default baseline_algorithm/checkpoints/pred_to_inter_2.pt).
#   --tag           image tag (default ocelot-eval / ocelot-algorithm; only with one target).
#   --no-cache      rebuild every layer (default: Docker reuses layers whose inputs are unchanged).
#
# Each image is built from a small context holding exactly what its Dockerfile copies (the
# Dockerfile, its wheelhouse and the ground truth), so neither .venv nor the other image's
# wheelhouse is sent to the daemon.
set -euo pipefail
cd "$(dirname "$0")/.."

usage() { sed -n '4,18p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
target=all
if [ $# -gt 0 ] && [[ $1 != --* ]]; then target=$1; shift; fi
case "$target" in eval|algorithm|all) ;; *) usage ;; esac
base_image=${OCELOT_BASE_IMAGE:-python:3.11-slim}
ground_truth=test_data/ground_truth
split=test
checkpoint=baseline_algorithm/checkpoints/pred_to_inter_2.pt
tag=""
cache_flags=()
while [ $# -gt 0 ]; do
  if [ "$1" = --no-cache ]; then cache_flags=(--no-cache); shift; continue; fi
  [ $# -ge 2 ] || usage
  case "$1" in
    --base-image) base_image=$2 ;;
    --ground-truth) ground_truth=$2 ;;
    --split) split=$2 ;;
    --checkpoint) checkpoint=$2 ;;
    --tag) tag=$2 ;;
    *) usage ;;
  esac
  shift 2
done
if [ -n "$tag" ] && [ "$target" = all ]; then
  echo "build-images: --tag needs one target (eval or algorithm)" >&2; exit 2
fi

contexts=$(mktemp -d "${TMPDIR:-/tmp}/ocelot-contexts.XXXXXX")
trap 'rm -rf "$contexts"' EXIT

# build_from_context TAG DOCKERFILE BUILD-ARG... ; reads "context-path=host-path" lines on stdin.
# The context is a folder of symbolic links that tar dereferences, so nothing big is copied.
build_from_context() {
  local image=$1 dockerfile=$2; shift 2
  local context; context=$(mktemp -d "$contexts/context.XXXXXX")
  ln -s "$PWD/$dockerfile" "$context/$dockerfile"
  while IFS='=' read -r inside host; do
    [ -e "$host" ] || { echo "build-images: $host does not exist" >&2; return 1; }
    mkdir -p "$context/$(dirname "$inside")"
    ln -s "$(cd "$(dirname "$host")" && pwd)/$(basename "$host")" "$context/$inside"
  done
  local started=$SECONDS
  echo "build-images: building $image from $dockerfile on $base_image"
  tar -C "$context" -ch . | docker build --force-rm ${cache_flags[@]+"${cache_flags[@]}"} --file "$dockerfile" --tag "$image" \
    --build-arg "BASE_IMAGE=$base_image" "$@" -
  echo "build-images: built $image in $((SECONDS - started)) s" \
    "($(docker image inspect -f '{{.Size}}' "$image" | awk '{printf "%.0f MB", $1/1e6}'))"
}

build_eval() {
  # A GT file keeps its name (the entry looks for *.json); a folder's content is copied.
  local ground_truth_inside=ground_truth_source
  [ -d "$ground_truth" ] || ground_truth_inside=ground_truth_source/$(basename "$ground_truth")
  scripts/wheelhouse.sh eval
  build_from_context "${tag:-ocelot-eval}" Dockerfile.eval \
    --build-arg GROUND_TRUTH=ground_truth_source --build-arg "GROUND_TRUTH_SPLIT=$split" <<EOF
wheelhouse/eval=wheelhouse/eval
$ground_truth_inside=$ground_truth
EOF
}

build_algorithm() {
  scripts/wheelhouse.sh algorithm
  if [ ! -f Dockerfile.algorithm ]; then
    echo "build-images: no Dockerfile.algorithm yet; prepared wheelhouse/algorithm only"
    return 0
  fi
  build_from_context "${tag:-ocelot-algorithm}" Dockerfile.algorithm --build-arg CHECKPOINT=checkpoint.pt <<EOF
wheelhouse/algorithm=wheelhouse/algorithm
checkpoint.pt=$checkpoint
EOF
}

case "$target" in
  eval) build_eval ;;
  algorithm) build_algorithm ;;
  all) build_eval; build_algorithm ;;
esac
