#!/usr/bin/env bash
# Regenerates test_data/ (the committed Grand Challenge layouts of 3 synthetic 1024 px pairs).
# Usage: scripts/make_test_data.sh [DEST]   (default: test_data/ in the repository; PYTHON picks the interpreter)
set -euo pipefail
cd "$(dirname "$0")/.."
dest=${1:-test_data}
python=${PYTHON:-python3}
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
"$python" -m baseline_algorithm synthesize "$scratch/set" --pairs 0 0 3 --size 1024 --seed 2023 --gc-compression zlib --quiet
rm -rf "$dest"
mkdir -p "$(dirname "$dest")"
mv "$scratch/set/gc" "$dest"
