#!/usr/bin/env bash
# Visit F (one H200): the GPU-marked tests on the code as it stands, and the TorchScript capture question
# (which op in the traced graph synchronizes).   bash bench/visit_f.sh    (results in $OUT)
set -uo pipefail
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
t0=$SECONDS
python3 bench/ts_graph_probe.py --model dino-vitdet-tiny --precision fp16 > "$OUT/ts-graph.jsonl" 2>&1
cut -c1-400 "$OUT/ts-graph.jsonl"; echo "ts probe $((SECONDS - t0)) s"
t0=$SECONDS
timeout 420 python3 -m pytest -q -rs -p no:cacheprovider tests/test_gpu.py tests/test_runner_gpu.py tests/test_pool_cpus.py \
  tests/test_native.py 2>&1 | tee "$OUT/gpu-tests.txt" | tail -25
echo "gpu tests $((SECONDS - t0)) s"
