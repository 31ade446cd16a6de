#!/usr/bin/env bash
# Builds the project's container images from a host-prepared wheelhouse (no network in the build).
#
# Usage: scripts/build-images.sh [eval|algorithm|all] [--base-image IMAGE] [--ground-truth PATH]
#                                [--split SPLIT] [--detector MODULE:FACTORY --package PATH]
#                                [--extra images|algorithm] [--checkpoint PATH] [--tag TAG] [--no-cache]
#   eval        ocelot-eval from Dockerfile.eval (the Grand Challenge evaluation container).
#   algorithm   ocelot-algorithm from Dockerfile.algorithm: the baseline, or the detector given.
#   all         both (the default).
#   --base-image    Python 3.11 base image (default $OCELOT_BASE_IMAGE, else python:3.11-slim;
#                   where no registry is reachable, scripts/docker-base.sh makes ocelot-base:py311).
#   --ground-truth  eval only: GT baked into ocelot-eval, a GT JSON file or a folder (see
#                   Dockerfile.eval; default test_data/ground_truth).
#   --split         eval only: split of a release-folder ground truth (default test).
#   --detector      algorithm only: the detector factory the entry runs (default the baseline).
#   --package       algorithm only: the package providing it, a wheel or a folder with a
#                   pyproject.toml; installed offline with its declared dependencies.
#   --extra         algorithm only: the project's extra installed with it: images (no torch;
#                   the default with --package: the image holds only what the package declares)
#                   or algorithm (torch and the baseline's model code; the default without).
#   --checkpoint    algorithm only: a file or folder baked in and handed to the factory
#                   (default: the shipped weights for the baseline, none with --package).
#   --tag           image tag (default ocelot-eval / ocelot-algorithm; only with one target).
#   --no-cache      rebuild every layer (default: Docker reuses layers whose inputs are unchanged).
#
# Each image is built from a small context holding exactly what its Dockerfile copies (the
# Dockerfile, its wheelhouse and the ground truth), so neither .venv nor the other image's
# wheelhouse is sent to the daemon.
set -euo pipefail
# Paths given on the command line are relative to where the script is run from.
invoked_from=$PWD
absolute() { if [[ $1 = /* ]]; then echo "$1"; else echo "$invoked_from/$1"; fi; }
cd "$(dirname "$0")/.."

usage() { sed -n '4,26p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
target=all
if [ $# -gt 0 ] && [[ $1 != --* ]]; then target=$1; shift; fi
case "$target" in eval|algorithm|all) ;; *) usage ;; esac
base_image=${OCELOT_BASE_IMAGE:-python:3.11-slim}
ground_truth=test_data/ground_truth
split=test
checkpoint=""
detector=""
package=""
extra=""
tag=""
cache_flags=()
while [ $# -gt 0 ]; do
  if [ "$1" = --no-cache ]; then cache_flags=(--no-cache); shift; continue; fi
  [ $# -ge 2 ] || usage
  case "$1" in
    --base-image) base_image=$2 ;;
    --ground-truth) ground_truth=$(absolute "$2") ;;
    --split) split=$2 ;;
    --checkpoint) checkpoint=$(absolute "$2") ;;
    --detector) detector=$2 ;;
    --package) package=$(absolute "$2") ;;
    --extra) extra=$2 ;;
    --tag) tag=$2 ;;
    *) usage ;;
  esac
  shift 2
done
if [ -n "$tag" ] && [ "$target" = all ]; then
  echo "build-images: --tag needs one target (eval or algorithm)" >&2; exit 2
fi
if [ -n "$package" ] && [ -z "$detector" ]; then
  echo "build-images: --package needs --detector MODULE:FACTORY (the factory the entry runs)" >&2; exit 2
fi
if [ -n "$detector" ] && [[ $detector != ?*:?* ]]; then
  echo "build-images: --detector $detector is not MODULE:FACTORY" >&2; exit 2
fi
case "${extra:-images}" in images|algorithm) ;; *) echo "build-images: --extra must be images or algorithm" >&2; exit 2 ;; esac
if [ -z "$package" ] && [ -z "$checkpoint" ] && [ -z "$detector" ]; then
  checkpoint=baseline_algorithm/checkpoints/pred_to_inter_2.pt
fi
if [ -n "$checkpoint" ] && [ ! -e "$checkpoint" ]; then
  echo "build-images: --checkpoint $checkpoint does not exist" >&2; exit 2
fi

contexts=$(mktemp -d "${TMPDIR:-/tmp}/ocelot-contexts.XXXXXX")
trap 'rm -rf "$contexts"' EXIT

# explain_failed_build TAG GB: when Docker's data folder has less than GB gigabytes free (what a
# cold build of TAG needs), a last line that says so: a full disk shows as a tar or layer error in
# the middle of Docker's output. A remote daemon's folder is not on this machine: nothing is said.
explain_failed_build() {
  local root free
  root=$(docker info --format '{{.DockerRootDir}}' 2>/dev/null) || return 0
  [ -d "$root" ] || return 0
  free=$(df -B1G --output=avail "$root" | tail -1 | tr -d ' ')
  if [ "$free" -lt "$2" ]; then
    echo "build-images: building $1 failed with $free GB free under $root; a cold build needs about $2 GB" >&2
  fi
}

# build_from_context TAG DOCKERFILE GB BUILD-ARG... ; reads "context-path=host-path" lines on stdin.
# GB: the free disk in gigabytes a cold build needs.
# The context is a folder of symbolic links that tar dereferences, so nothing big is copied.
build_from_context() {
  local image=$1 dockerfile=$2 disk_needed=$3; shift 3
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
    --build-arg "BASE_IMAGE=$base_image" "$@" - || { explain_failed_build "$image" "$disk_needed"; return 1; }
  echo "build-images: built $image in $((SECONDS - started)) s" \
    "($(docker image inspect -f '{{.Size}}' "$image" | awk '{printf "%.0f MB", $1/1e6}'))"
}

build_eval() {
  # A GT file keeps its name (the entry looks for *.json); a folder's content is copied.
  local ground_truth_inside=ground_truth_source
  [ -d "$ground_truth" ] || ground_truth_inside=ground_truth_source/$(basename "$ground_truth")
  scripts/wheelhouse.sh eval
  build_from_context "${tag:-ocelot-eval}" Dockerfile.eval 2 \
    --build-arg GROUND_TRUTH=ground_truth_source --build-arg "GROUND_TRUTH_SPLIT=$split" <<EOF
wheelhouse/eval=wheelhouse/eval
$ground_truth_inside=$ground_truth
EOF
}

build_algorithm() {
  # The baseline installs the algorithm extra (torch); a detector package gets only the images
  # extra and what it declares, unless --extra says otherwise.
  local project_extra=${extra:-algorithm} wheelhouse package_flags=() disk_needed
  [ -z "$package" ] || project_extra=${extra:-images}
  # Gigabytes of free disk a cold build needs; with torch, its wheels, installer stage and image.
  disk_needed=3
  [ "$project_extra" = images ] || disk_needed=18
  wheelhouse=wheelhouse/$project_extra
  if [ -n "$package" ]; then
    # One wheelhouse per package, so that images of other packages keep their cached layers.
    wheelhouse=wheelhouse/$project_extra-$(basename "${package%/}" | sed 's/[^A-Za-z0-9_.-]/_/g')
    package_flags=(--package "$package")
  fi
  scripts/wheelhouse.sh "$project_extra" --output "$wheelhouse" ${package_flags[@]+"${package_flags[@]}"}
  # checkpoint/ holds the one file or folder handed to the factory, or nothing.
  local checkpoint_dir="$contexts/checkpoint" checkpoint_path=""
  mkdir -p "$checkpoint_dir"
  if [ -n "$checkpoint" ]; then
    ln -s "$(cd "$(dirname "$checkpoint")" && pwd)/$(basename "$checkpoint")" "$checkpoint_dir/$(basename "$checkpoint")"
    checkpoint_path=/opt/ocelot/checkpoint/$(basename "$checkpoint")
  fi
  build_from_context "${tag:-ocelot-algorithm}" Dockerfile.algorithm "$disk_needed" \
    --build-arg "WHEELHOUSE=wheelhouse/algorithm" \
    --build-arg "DETECTOR=${detector:-baseline_algorithm.inference:baseline_detector}" \
    --build-arg "CHECKPOINT_PATH=$checkpoint_path" <<EOF
wheelhouse/algorithm=$wheelhouse
checkpoint=$checkpoint_dir
EOF
}

case "$target" in
  eval) build_eval ;;
  algorithm) build_algorithm ;;
  all) build_eval; build_algorithm ;;
esac
