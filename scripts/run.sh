#!/usr/bin/env bash
# The main job: set up, then `munet evolve` on the built-in offline default (extra args pass on).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/munet evolve "$@"
