#!/usr/bin/env bash
# The main job: set up, then `munet evolve` on the built-in offline default (extra args pass on),
# then each task's test accuracy beside its floor (a logistic regression on raw pixels).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/munet evolve "$@"
system=munet-system
while [ $# -gt 0 ]; do
  case "$1" in
    --system) system=$2; shift ;;
    --system=*) system=${1#--system=} ;;
  esac
  shift
done
echo
.venv/bin/python bench/floors.py --system "$system"
