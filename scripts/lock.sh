#!/usr/bin/env bash
# Regenerate requirements-lock.txt: resolve munet[dev] afresh in a scratch venv and freeze it.
# Run after changing dependencies in pyproject.toml; commit the new lock file with that change.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$PY" -m venv "$tmp/venv"
"$tmp/venv/bin/python" -m pip install -q --upgrade pip
"$tmp/venv/bin/python" -m pip install -q torch==2.14.1 torchvision==0.29.1
"$tmp/venv/bin/python" -m pip install -q -e ".[dev]"
{
  echo "# Every Python dependency of munet[dev], pinned; used by scripts/setup.sh (pip -c)."
  echo "# Regenerate with: bash scripts/lock.sh"
  "$tmp/venv/bin/python" -m pip freeze --exclude-editable | grep -v '^#'
} > requirements-lock.txt
echo "wrote requirements-lock.txt ($(grep -vc '^#' requirements-lock.txt) pins)"
