#!/usr/bin/env bash
# GPU checks of the runner work (issues 9.4, 10, 11): each phase fits one device command (< 10 min).
#   bash bench/visit_runner.sh aoti      # which Python AOTI loader works on torch 2.11 + CUDA; python-aoti runner
#   bash bench/visit_runner.sh tests     # GPU tests: graphs judged, capture errors, TF32, kernel-busy, energy
#   bash bench/visit_runner.sh landing   # where dino-vitdet-b variants land on the final fidelity measure
# Output: $OUT/runner-<phase>.txt (+ .jsonl for aoti and landing); copy them to bench/results/.
set -uo pipefail
phase=${1:?aoti, tests or landing}
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
W=/tmp/visit-runner; mkdir -p $W
{
  date -u +%FT%TZ; nproc
  nvidia-smi --query-gpu=name,driver_version,clocks.sm,temperature.gpu,power.draw --format=csv
  python3 -c 'import torch, sys; print(sys.version.split()[0], torch.__version__, torch.cuda.get_device_name())'
  case $phase in
    aoti)     # build ~1-2 min, then <= 90 s per candidate (6), the runner twice, a gdb backtrace if gdb exists
      timeout -s TERM 570 python3 bench/aoti_loaders.py --timeout 90 --gdb --keep $W/aoti | tee "$OUT/runner-aoti.jsonl" ;;
    tests)    # ~3-5 min (one small inductor reduce-overhead compile)
      timeout -s TERM 570 python3 -m pytest -q -m gpu tests/test_runner_gpu.py tests/test_gpu.py -p no:cacheprovider ;;
    landing)  # ~1-2 min
      timeout -s TERM 570 python3 bench/fidelity_landing.py dino-vitdet-b cuda | tee "$OUT/runner-landing.jsonl" ;;
    *) echo "unknown phase $phase"; exit 2 ;;
  esac
  date -u +%FT%TZ
} 2>&1 | tee "$OUT/runner-$phase.txt"
