#!/usr/bin/env bash
# GPU check of the native runner for the integrator: build sweep-bench against the machine's CUDA torch,
# then run a small TorchScript and AOTInductor model through it with and without CUDA graphs (plus tf32
# flags and a model that cannot be captured), printing p50s, statuses, energy and fidelity against eager.
#   bash bench/native_gpu_check.sh           # from the repository root on the GPU machine; leaves $OUT/*
#   TESTS=1 bash bench/native_gpu_check.sh   # also the gpu-marked tests of tests/test_native.py
set -uo pipefail
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
PY=${PYTHON:-python3}
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
t0=$(date +%s)
{
  nvidia-smi --query-gpu=name,driver_version,clocks.sm,power.draw,temperature.gpu --format=csv
  prefix=$($PY -c 'import torch; print(torch.utils.cmake_prefix_path)')
  b0=$(date +%s)
  if ! (cmake -S native -B native/build -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$prefix" \
        && cmake --build native/build -j"$(nproc)") > "$OUT/native-build.log" 2>&1; then
    tail -40 "$OUT/native-build.log"; echo "BUILD FAILED after $(( $(date +%s) - b0 )) s"; exit 1
  fi
  grep "sweep-bench:" "$OUT/native-build.log"
  echo "build took $(( $(date +%s) - b0 )) s"
  native/build/sweep-bench --version
  $PY bench/native_gpu_check.py --binary native/build/sweep-bench --out "$OUT"
  if [ "${TESTS:-0}" = 1 ]; then
    $PY -m pytest -q -m gpu tests/test_native.py -p no:cacheprovider
  fi
  echo "total $(( $(date +%s) - t0 )) s"
} 2>&1 | tee "$OUT/native-gpu-check.txt"
