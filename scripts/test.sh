#!/usr/bin/env bash
# The test suite: set up, then pytest (extra args pass on to pytest).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export MUNET_CACHE_DIR=${MUNET_CACHE_DIR:-$PWD/.cache-test}
exec .venv/bin/python -m pytest "$@"
