#!/usr/bin/env bash
# First GPU visit of this round: diagnosis only, on the code as it is (no rows committed from it).
#   bash bench/visit_a.sh bias    # runner vs plain script, interleaved; fidelity landings of dino-vitdet-b
#   bash bench/visit_a.sh aoti    # AOTInductor on CUDA: compile small variants, try every Python loader, C++
set -uo pipefail
phase=${1:?bias or aoti}
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
W=/tmp/visit-a; mkdir -p $W
log="$OUT/visit-a-$phase.txt"
{
  date -u +%FT%TZ; nproc; uptime
  nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,temperature.gpu,power.draw --format=csv
  python3 -c 'import torch, sys; print(sys.version.split()[0], torch.__version__, torch.cuda.get_device_name())'
  if [ "$phase" = bias ]; then
    timeout -s TERM 330 python3 bench/bias_probe.py --precision fp16 --rounds 4 \
      --variants plain,runner,launch,sweep,inproc --out $W/bias
    cp $W/bias/bias.jsonl "$OUT/" 2>/dev/null
    python3 bench/probes/plain_eager.py fp32 --profile
    timeout -s TERM 150 python3 bench/fidelity_landing.py dino-vitdet-b cuda
  else
    cat > $W/aoti.yaml <<'Y'
name: aoti-probe
model: {name: dino-vitdet-tiny}
device: cuda
measure: {warmup: 5, iters: 20, timeout_s: 400, seed: 0}
jobs:
  - runtime: [python-aoti, cpp-aoti]
    model_precision: [fp16, fp32]
Y
    time timeout -s TERM 300 python3 -m sweep compile $W/aoti.yaml --artifacts $W/art
    timeout -s TERM 150 python3 bench/aoti_loaders.py $W/art
    timeout -s TERM 120 python3 -m sweep run $W/aoti.yaml --artifacts $W/art --results $W/res
    python3 - <<'P'
import pyarrow.parquet as pq, glob
for f in sorted(glob.glob('/tmp/visit-a/res/*.parquet')):
    r = pq.read_table(f).to_pylist()[0]
    print(r['runtime'], r['model_precision'], r['status'], r['latency_ms_p50'], r['rel_err_sorted'], (r['reason'] or '')[-600:])
P
  fi
  date -u +%FT%TZ
} 2>&1 | tee "$log"
