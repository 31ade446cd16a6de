#!/usr/bin/env bash
# Sets up a virtual environment with every extra, checks the tree with ruff, runs the test suite.
# Usage: scripts/test.sh [pytest arguments]
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${VENV:-.venv}
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/pip" install -q -e '.[algorithm,report,fast,slides,dev]'
"$venv/bin/ruff" check .
exec "$venv/bin/python" -m pytest "$@"
