#!/usr/bin/env bash
# Sets up a virtual environment with every extra, checks the tree with ruff (lint and format),
# runs the test suite.
# Usage: scripts/test.sh [pytest arguments]
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${VENV:-.venv}
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
# constraints.txt: the releases these machines test (pyproject.toml gives the supported ranges).
"$venv/bin/pip" install -q --constraint constraints.txt -e '.[algorithm,report,slides,dev]'
"$venv/bin/ruff" check .
"$venv/bin/ruff" format --check .
exec "$venv/bin/python" -m pytest "$@"
