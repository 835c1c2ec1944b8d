#!/usr/bin/env bash
# How results/h200 and results/h200x2 were measured: one visit to a two-GPU H200 host (nvidia-h200-x2),
# run from the repository root with the image's python3 (torch 2.11+cu130) and no install step.
#
#   bash results/h200/visit.sh            # all steps below, in order; everything lands under $V (/tmp/vb)
#   bash results/h200/visit.sh pack       # tar the results, reports and logs into $OUT/visit.tgz
#
# The device lease allows 10 minutes per command, so start it detached and poll:
#   setsid nohup bash results/h200/visit.sh > /tmp/vb.log 2>&1 &      then: tail /tmp/vb.log; cat /tmp/vb/DONE
# Steps (times from the visit of 2026-11-29 are in results/h200x2/README.md and the closing note):
#   1. compile the TorchScript and AOTInductor variants (background: GPU 1, cores 16-31) while a smoke sweep of
#      the small detector checks the pipeline end to end on both GPUs (native build, graphs in Python and C++);
#   2. the runner-vs-plain-script check (issue 9): plain probe and `sweep run`, interleaved, GPU 0 alone;
#   3. the two-GPU evidence (issue 13): results/h200x2/matrix.yaml with --gpus 1, then --gpus 2;
#   4. the rest of matrices/h200-visit.yaml with --gpus 2 into the same folder (resume skips step 3's pairs),
#      AOTInductor runtimes last, once their compile is done;
#   5. reports and comparisons.
set -uo pipefail
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/out}; V=${V:-/tmp/vb}; mkdir -p "$OUT" "$V"
ART=$V/artifacts; R=$V/h200; R1=$V/h200x2-gpus1; R2=$V/h200x2-gpus2
. bench/visit_lib.sh  # sweep, ms, timed

if [ "${1:-}" = pack ]; then
  cp /tmp/vb.log "$V/visit.log" 2>/dev/null
  tar czf "$OUT/visit.tgz" -C "$V" --exclude=artifacts --exclude='.sweep-*' --exclude='*.lock' . && ls -la "$OUT"
  exit 0
fi

echo "visit start $(date -u +%FT%TZ)"; nproc; nvidia-smi -L
nvidia-smi --query-gpu=index,name,driver_version,clocks.sm,clocks.mem,temperature.gpu,power.draw --format=csv
python3 -c 'import torch, sys; print(sys.version.split()[0], torch.__version__, torch.cuda.device_count(), "GPUs")'
sweep doctor --device cuda || true

# Compiles run on cores 16-31 and GPU 1; everything that is timed runs on cores 0-15, so a compile still
# running never shares cores with a measurement (and every measured step sees the same cores).
NGPU=$(nvidia-smi -L | grep -c '^GPU'); G=$(( NGPU >= 2 ? 2 : 1 ))   # one-GPU hosts: no step-3 evidence
PIN_COMPILE=""; PIN_MEASURE=""
if command -v taskset >/dev/null; then PIN_COMPILE="taskset -c 16-31"; PIN_MEASURE="taskset -c 0-15"; fi

# 1. compiles (background) beside the smoke sweep (both GPUs)
( export CUDA_VISIBLE_DEVICES=$(( G - 1 ))
  timed compile $PIN_COMPILE python3 -m sweep compile matrices/h200-visit.yaml --artifacts "$ART" ) \
  > "$V/compile.log" 2>&1 &
compile_pid=$!
timed smoke $PIN_MEASURE python3 -m sweep run bench/smoke-gpu.yaml --gpus $G --results "$V/smoke" --artifacts "$V/smoke-art"
python3 - "$V/smoke" <<'PY'
import sys
from pathlib import Path
from sweep import store
df = store.load(Path(sys.argv[1]))
cols = ["runtime", "model_precision", "cuda_graphs", "gpu_index", "status", "latency_ms_p50", "fidelity",
        "fidelity_error", "kernel_busy_ms", "energy_mj_per_forward", "reason"]
print(df[cols].to_string(max_colwidth=80))
PY
touch "$V/SMOKE_DONE"

# 2. runner vs plain script, interleaved fresh processes, GPU 0 alone
CUDA_VISIBLE_DEVICES=0 timed bias $PIN_MEASURE python3 bench/bias_probe.py --precision fp16 --rounds 3 \
  --variants plain,sweep --out "$V/bias"

# 3. the same GPU matrix on one GPU, then on two
timed gpus1 $PIN_MEASURE python3 -m sweep run results/h200x2/matrix.yaml --gpus 1 --results "$R1" --artifacts "$ART"
[ "$G" = 2 ] && timed gpus2 $PIN_MEASURE python3 -m sweep run results/h200x2/matrix.yaml --gpus 2 --results "$R2" \
  --artifacts "$ART"

# 4. the rest of the visit matrix on both GPUs, into a folder that already holds step 3's --gpus 2 rows:
#    the runtimes that need no AOTInductor variant first, then (once its compile is done) the rest
mkdir -p "$R"; cp "$R2"/*.parquet "$R"/ 2>/dev/null || cp "$R1"/*.parquet "$R"/
timed main-eager-ts $PIN_MEASURE python3 -m sweep run matrices/h200-visit.yaml --gpus $G --results "$R" \
  --artifacts "$ART" --runtime python-eager --runtime cpp-torchscript
timed wait-compile wait $compile_pid; tail -15 "$V/compile.log"
timed main-rest $PIN_MEASURE python3 -m sweep run matrices/h200-visit.yaml --gpus $G --results "$R" --artifacts "$ART"

# 5. reports and comparisons
sweep report --results "$R" --out "$R/RESULTS.md" > /dev/null
sweep report --results "$R1" --out "$R1/RESULTS.md" > /dev/null
sweep report --results "$R2" --out "$R2/RESULTS.md" > /dev/null
sweep compare "$R1" "$R2" > "$V/compare-gpus1-gpus2.txt"; sweep compare "$R1" "$R2" --json > "$V/compare-gpus1-gpus2.json"
sweep compare results/h200 "$R" > "$V/compare-previous-visit.txt"
head -40 "$R/RESULTS.md"; cat "$V/compare-gpus1-gpus2.txt" "$V/phases.txt"
echo "visit end $(date -u +%FT%TZ)"; touch "$V/DONE"
