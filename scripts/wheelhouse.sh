#!/usr/bin/env bash
# Prepares, on the host, the wheels an image installs offline (`pip install --no-index --find-links`):
# containers here cannot reach the package index, and an offline build machine needs them anyway.
#
# Usage: scripts/wheelhouse.sh eval|images|algorithm [--package PATH] [--output DIR]
#   eval       the base install (numpy, scipy) and the project wheel; no torch.
#   images     the project with its `images` extra: what the container entry needs, without torch.
#   algorithm  the project with its `algorithm` extra (torch, torchvision, ...; several GB).
#   --package  a detector package (a wheel, or a folder with a pyproject.toml) to install too:
#              its wheel goes to DIR/detector/, its dependencies join the others.
# Every dependency is the release constraints.txt names where it names one (the releases the
# tests ran on), so that an image built twice gets the same packages.
# Output: DIR (default wheelhouse/<target>/) holds ocelot_toolkit-*.whl and every dependency as a
# binary wheel for CPython $WHEEL_PYTHON_VERSION (default 3.11) on $WHEEL_PLATFORM (default
# manylinux_2_36_<arch>, i.e. Debian bookworm's glibc; every older manylinux tag is accepted too);
# DIR/dependencies/ links to the dependency wheels, with requirements.txt listing what to install
# (the project's requirements and the detector package's) and a copy of constraints.txt.
# pip runs from $PYTHON (default python3); it only downloads, so the host Python version does not matter.
# Re-running is cheap: pip keeps wheels that are already in DIR.
set -euo pipefail
cd "$(dirname "$0")/.."

usage() { echo "usage: scripts/wheelhouse.sh eval|images|algorithm [--package PATH] [--output DIR]" >&2; exit 2; }
[ $# -ge 1 ] || usage
target=$1; shift
case "$target" in
  eval) requirement_extra="" ;;
  images|algorithm) requirement_extra="[$target]" ;;
  *) usage ;;
esac
output=wheelhouse/$target
package=""
while [ $# -gt 0 ]; do
  case "$1" in
    --output) [ $# -ge 2 ] || usage; output=$2; shift 2 ;;
    --package) [ $# -ge 2 ] || usage; package=$2; shift 2 ;;
    *) usage ;;
  esac
done
if [ -n "$package" ] && [ ! -f "$package" ] && [ ! -f "$package/pyproject.toml" ]; then
  echo "wheelhouse: --package $package is neither a wheel nor a folder with a pyproject.toml" >&2; exit 2
fi

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
pip download --quiet --dest "$output" --only-binary=:all: --constraint constraints.txt \
  --implementation cp --python-version "$python_version" "${platform_flags[@]}" \
  "${project_wheel}${requirement_extra}"

# The detector package: its wheel alone in detector/ (installed last, without dependencies, so that a
# change to its code reinstalls only it), its dependencies with the others.
rm -rf "$output/detector"
mkdir "$output/detector"
package_wheel=""
if [ -n "$package" ]; then
  if [ -f "$package" ]; then
    case "$package" in *.whl) ;; *) echo "wheelhouse: $package is not a .whl file" >&2; exit 2 ;; esac
    cp "$package" "$output/detector/"
  else
    # From a clean copy, so that no build/ or *.egg-info is left in (or read from) the source folder.
    package_source=$(mktemp -d "${TMPDIR:-/tmp}/ocelot-package-source.XXXXXX")
    trap 'rm -rf "$source" "$package_source"' EXIT
    tar -C "$package" --exclude=build --exclude='*.egg-info' --exclude=__pycache__ -c . | tar -C "$package_source" -x
    SOURCE_DATE_EPOCH=315532800 pip wheel --quiet --no-deps --wheel-dir "$output/detector" "$package_source"
  fi
  package_wheel=$(ls "$output"/detector/*.whl)
  pip download --quiet --dest "$output" --only-binary=:all: --constraint constraints.txt \
    --implementation cp --python-version "$python_version" "${platform_flags[@]}" "$package_wheel"
  rm -f "$output/$(basename "$package_wheel")"
fi

# dependencies/: hard links to every wheel but the project's, and the project's own requirements,
# so that an image can install the dependencies in one layer and the project in the next (a code
# change then reinstalls only the project). pip resolves the requirements within the wheelhouse
# under the same constraints, so wheels left over from older runs do no harm.
rm -rf "$output/dependencies"
mkdir "$output/dependencies"
cp constraints.txt "$output/dependencies/constraints.txt"
for wheel in "$output"/*.whl; do
  [ "$wheel" = "$project_wheel" ] || ln -f "$wheel" "$output/dependencies/"
done
"$python" - "$target" "$package_wheel" > "$output/dependencies/requirements.txt" <<'PYTHON'
import email, sys, tomllib, zipfile
target, package_wheel = sys.argv[1:]
project = tomllib.load(open("pyproject.toml", "rb"))["project"]
extras = project.get("optional-dependencies", {})


def expanded(requirements):
    """Requirements with the project's references to its own extras replaced by their contents
    (the project wheel is installed on its own, not from the dependency folder)."""
    own = project["name"] + "["
    for requirement in requirements:
        if requirement.startswith(own):
            for extra in requirement[len(own):].split("]")[0].split(","):
                yield from expanded(extras[extra.strip()])
        else:
            yield requirement


# The evaluation image installs the base package alone; the others the extra they are named after.
requirements = project["dependencies"] + list(expanded(extras.get(target, [])))
if package_wheel:
    with zipfile.ZipFile(package_wheel) as wheel:
        metadata = next(n for n in wheel.namelist() if n.endswith(".dist-info/METADATA"))
        declared = email.message_from_bytes(wheel.read(metadata)).get_all("Requires-Dist") or []
    # A requirement of one of the package's extras is not installed.
    requirements += [r for r in declared if "extra ==" not in r.replace("extra==", "extra ==")]
print("\n".join(requirements))
PYTHON

echo "wheelhouse: $output ($(basename "$project_wheel"),${package_wheel:+ $(basename "$package_wheel"),} $(ls "$output"/dependencies/*.whl | wc -l) dependency wheels, $(du -sh "$output" | cut -f1))"
