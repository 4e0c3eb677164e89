#!/usr/bin/env bash
# Install astroco_hf and its dependencies into the current Python environment (CPU torch first).
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install --quiet torch==2.13.0
python -m pip install --quiet -e ".[test]"
