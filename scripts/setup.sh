#!/usr/bin/env bash
# Idempotent set-up: a venv with munet and its dependencies, and Debian's Fashion-MNIST.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=.venv/.munet-installed
want=$(cat pyproject.toml requirements-lock.txt scripts/setup.sh | sha256sum | cut -c1-16)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  .venv/bin/python -m pip install -q --upgrade pip
  # torch/torchvision pinned to the builds this machine has on disk (CUDA wheels, run on CPU too)
  .venv/bin/python -m pip install -q -c requirements-lock.txt torch==2.14.1 torchvision==0.29.1
  # every other dependency at the version in requirements-lock.txt (bash scripts/lock.sh)
  .venv/bin/python -m pip install -q -c requirements-lock.txt -e ".[dev]"
  echo "$want" > "$stamp"
fi
if [ ! -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ]; then
  SUDO=""
  [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq dataset-fashion-mnist
fi
