#!/usr/bin/env bash
# The documented CPU recipe (README, "CPU recipe on public data"): astroco-tiny on all public light
# curves in ../shared/data/lightcurves, split by object, ~1 hour on 2 shared CPU cores. Writes
# runs/cpu_public_data (model, eval_results.json with per-survey test RMSE, plots). Extra arguments go
# to `astroco pretrain`, e.g. `--output-dir runs/other --max-time-minutes 20`.
#
# In the background, gently:
#   nohup nice -n 5 bash recipes/cpu_public_data.sh > runs/cpu_public_data.log 2>&1 &
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -d ../shared/data/lightcurves ]; then
    echo "recipes/cpu_public_data.sh: ../shared/data/lightcurves not found (see ../shared/data/README.md)" >&2
    exit 1
fi
mkdir -p runs
# One intra-op thread: the tiny model's matrices are small, and on a shared 2-core machine two threads
# per process ran about ten times slower than one.
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
exec python -m astroco_hf.cli pretrain --config configs/pretrain/cpu-public-data.yaml --overwrite "$@"
