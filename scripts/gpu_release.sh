#!/usr/bin/env bash
# The one device command of issue 13: on one H100 / H200 in about 9 minutes, setup included, measure S
# and L throughput and MFU, pretrain AstroCo-S then AstroCo-L on every carried light curve (split by
# object as the CPU recipe), score the held-out objects, run the few-shot benchmarks with each frozen
# encoder and build both release folders (dry run). Returns in $OUT: gpu_report.json (every number,
# every phase's status and time), gpu_results.tar.gz (records, cards, plots, logs) and S's weights in
# 15 MB safetensors shards. The phases live in astroco_hf/release/gpu_release.py; docs/gpu-release.md
# gives the exact device call, the preparation here and the unpacking afterwards.
#
#   bash scripts/gpu_release.sh              # on the device, after `... gpu_release prepare` here
#   bash scripts/gpu_release.sh --cpu-smoke  # every phase with tiny sizes on the CPU
set -uo pipefail
cd "$(dirname "$0")/.."
START=$(date +%s)
OUT="${OUT:-gpu_release_out}"
TOTAL_S="${GPU_RELEASE_TOTAL_S:-540}"  # the whole script; the device tool's command limit is 600 s
mkdir -p "$OUT"

source scripts/device_setup.sh
require_astroco "$OUT/gpu_report.json"

ELAPSED=$(( $(date +%s) - START ))
DEADLINE=$(( TOTAL_S - ELAPSED - 20 ))  # 20 s for the last archive and the copy back
if [[ " $* " == *" --cpu-smoke "* ]]; then DEADLINE=900; fi
echo "== gpu_release run (setup took ${ELAPSED}s; phases must end within ${DEADLINE}s)"
timeout --signal=INT $(( DEADLINE + 40 )) "$PY" -m astroco_hf.release.gpu_release run --out "$OUT" \
    --deadline-s "$DEADLINE" "$@"
status=$?
echo "gpu_release exit status $status after $(( $(date +%s) - START ))s; files in $OUT:"
ls -l "$OUT"
exit $status
