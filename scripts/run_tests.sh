#!/usr/bin/env bash
# Installs everything and runs the project's own test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
exec .venv/bin/python -m pytest -p no:cacheprovider "$@"
