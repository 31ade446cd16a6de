#!/usr/bin/env bash
# Prepares, on the host, the wheels an image installs offline (`pip install --no-index --find-links`):
# containers here cannot reach the package index, and an offline build machine needs them anyway.
#
# Usage: scripts/wheelhouse.sh eval|algorithm [--output DIR]
#   eval       the base install (numpy, scipy, pandas) and the project wheel; no torch.
#   algorithm  the project with its `algorithm` extra (torch, torchvision, ...; several GB).
# Output: DIR (default wheelhouse/<target>/) holds ocelot_toolkit-*.whl and every dependency as a
# binary wheel for CPython $WHEEL_PYTHON_VERSION (default 3.11) on $WHEEL_PLATFORM (default
# manylinux_2_36_<arch>, i.e. Debian bookworm's glibc; every older manylinux tag is accepted too).
# pip runs from $PYTHON (default python3); it only downloads, so the host Python version does not matter.
# Re-running is cheap: pip keeps wheels that are already in DIR.
set -euo pipefail
cd "$(dirname "$0")/.."

usage() { echo "usage: scripts/wheelhouse.sh eval|algorithm [--output DIR]" >&2; exit 2; }
[ $# -ge 1 ] || usage
target=$1; shift
case "$target" in
  eval) requirement_extra="[fast]" ;;  # orjson: the same documents accepted, parsed faster
  algorithm) requirement_extra="[algorithm]" ;;
  *) usage ;;
esac
output=wheelhouse/$target
while [ $# -gt 0 ]; do
  case "$1" in
    --output) [ $# -ge 2 ] || usage; output=$2; shift 2 ;;
    *) usage ;;
  esac
done

python=${PYTHON:-python3}
python_version=${WHEEL_PYTHON_VERSION:-3.11}
platform=${WHEEL_PLATFORM:-manylinux_2_36_$(uname -m)}
# pip does not widen a custom manylinux_2_N tag to older glibc versions: list them all.
platform_flags=()
if [[ $platform =~ ^manylinux_2_([0-9]+)_(.+)$ ]]; then
  for ((minor = BASH_REMATCH[1]; minor >= 5; minor--)); do
    platform_flags+=(--platform "manylinux_2_${minor}_${BASH_REMATCH[2]}")
  done
  platform_flags+=(--platform "manylinux2014_${BASH_REMATCH[2]}" --platform "manylinux2010_${BASH_REMATCH[2]}"
    --platform "manylinux1_${BASH_REMATCH[2]}")
else
  platform_flags=(--platform "$platform")
fi
mkdir -p "$output"

# pip SUBCOMMAND...: pip without the warnings this machine's pip configuration prints for every
# package missing from one of its local indexes.
pip() {
  { "$python" -m pip "$@" 2>&1 1>&3 | { grep -v 'is ignored: it is neither a file nor a directory' || true; } >&2; } 3>&1
}

# The project wheel, built from a clean copy of the working tree's files (setuptools' build/
# folder could smuggle in stale modules). A fixed SOURCE_DATE_EPOCH makes the wheel byte-identical
# while the code is, so Docker reuses the layers that install it.
source=$(mktemp -d "${TMPDIR:-/tmp}/ocelot-wheel-source.XXXXXX")
trap 'rm -rf "$source"' EXIT
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  git ls-files -z --cached --others --exclude-standard -- pyproject.toml README.md evaluation \
    baseline_algorithm | xargs -0 -r sh -c 'for f; do [ -e "$f" ] && printf "%s\0" "$f"; done' _ \
    | tar --null -T - -c | tar -C "$source" -x
else
  cp -r pyproject.toml README.md evaluation baseline_algorithm "$source"/
fi
rm -f "$output"/ocelot_toolkit-*.whl
SOURCE_DATE_EPOCH=315532800 pip wheel --quiet --no-deps --wheel-dir "$output" "$source"
project_wheel=$(ls "$output"/ocelot_toolkit-*.whl)

# Its dependencies, as binary wheels for the image's interpreter and platform (not the host's).
pip download --quiet --dest "$output" --only-binary=:all: \
  --implementation cp --python-version "$python_version" "${platform_flags[@]}" \
  "${project_wheel}${requirement_extra}"

# dependencies/: hard links to every wheel but the project's, and the project's own requirements,
# so that an image can install the dependencies in one layer and the project in the next (a code
# change then reinstalls only the project). pip resolves the requirements within the wheelhouse,
# so wheels left over from older runs do no harm.
rm -rf "$output/dependencies"
mkdir "$output/dependencies"
for wheel in "$output"/*.whl; do
  [ "$wheel" = "$project_wheel" ] || ln -f "$wheel" "$output/dependencies/"
done
"$python" - "$target" > "$output/dependencies/requirements.txt" <<'PYTHON'
import sys, tomllib
project = tomllib.load(open("pyproject.toml", "rb"))["project"]
extras = project.get("optional-dependencies", {})
print("\n".join(project["dependencies"] + (extras["algorithm"] if sys.argv[1] == "algorithm" else [])))
PYTHON

echo "wheelhouse: $output ($(basename "$project_wheel") and $(ls "$output"/dependencies/*.whl | wc -l) dependency wheels, $(du -sh "$output" | cut -f1))"
