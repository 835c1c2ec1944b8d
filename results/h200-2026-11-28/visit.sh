#!/usr/bin/env bash
# How results/h200 was measured: run on the lent H200 from the source tree (its image has torch),
# one phase per device call; each phase leaves results.tgz (the Parquet rows) and logs under $OUT.
#   bash results/h200/visit.sh A   # native build, GPU tests, eager / TorchScript / TensorRT rows
#   bash results/h200/visit.sh B   # inductor, AOTInductor, calibrate, a repeated job for its spread
set -uo pipefail
phase=${1:?phase A or B}
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
RES=/tmp/sweep-results; ART=/tmp/sweep-artifacts
sweep() { python3 -m sweep "$@"; }
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,temperature.gpu,power.draw \
  --format=csv > "$OUT/nvidia-smi-$phase.csv" 2>&1
t0=$(date +%s)
# Seconds of work; the rows written by then are kept (each row is durable). TERM, not INT: a command
# started in the background by a non-interactive shell ignores SIGINT (seen there: INT did not stop it).
BUDGET=${BUDGET:-520}
work() {
  echo "phase $phase start $(date -u +%FT%TZ)"
  python3 -c 'import torch; print("torch", torch.__version__, torch.cuda.get_device_name())'
  if [ "$phase" = A ]; then
    time (cmake -S native -B native/build -DCMAKE_BUILD_TYPE=Release \
            -DCMAKE_PREFIX_PATH="$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)')" >/dev/null \
          && cmake --build native/build -j16 >/dev/null)
    native/build/sweep-bench --version
    sweep doctor --device cuda
    python3 -m pytest -q tests/test_gpu.py -p no:cacheprovider
    sweep run matrices/h200-budget.yaml --results $RES --artifacts $ART \
      --runtime python-eager --runtime cpp-torchscript --runtime python-trt --runtime cpp-trt
  else
    sweep run matrices/h200-budget.yaml --results $RES --artifacts $ART \
      --runtime python-inductor --runtime python-aoti --runtime cpp-aoti
    sweep calibrate --model dino-vitdet-b --device cuda --precision bf16 --iters 200 --results $RES
    # the spread of repeated runs of one job: the seed's fastest eager setting, twice more
    for i in 1 2; do sweep run matrices/h200-repeat.yaml --results $RES --artifacts $ART --force; done
  fi
}
export -f work sweep; export phase RES ART
timeout -s TERM "$BUDGET" bash -c work 2>&1 | tee "$OUT/log-$phase.txt"
echo "phase $phase took $(( $(date +%s) - t0 )) s" | tee -a "$OUT/log-$phase.txt"
tar czf "$OUT/results-$phase.tgz" -C $RES .
