#!/usr/bin/env bash
# Visit C (one H200, nothing else running): the runner-vs-plain-script check of issue 9 on a quiet
# machine, what host contention does to a launch-bound eager loop, and why TorchScript fails graph capture.
#
#   bash bench/visit_c.sh        # from the repository root on the GPU machine; results in $OUT/visit-c.tgz
#
#   1. machine facts (CPU topology, what else runs) and a /proc/stat monitor for the whole visit;
#   2. plain probe vs `sweep run` of the python-eager fp16 job, fresh processes, ABBA-interleaved;
#   3. bench/host_diag.py: the plain loop split into issue time and wait, quiet and beside busy-looping
#      processes (4, then 15 of them), to see which part a host slowdown lands on;
#   4. bench/ts_graph_probe.py: TorchScript capture under each executor setting.
set -uo pipefail
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/out}; V=${V:-/tmp/vc}; ROUNDS=${ROUNDS:-6}; mkdir -p "$OUT" "$V"
. bench/visit_lib.sh  # sweep, ms, timed

{
  echo "visit start $(date -u +%FT%TZ)"; nproc; uname -r; cat /proc/loadavg
  grep -m1 "model name" /proc/cpuinfo; grep -c ^processor /proc/cpuinfo
  for c in /sys/devices/system/cpu/cpu[0-9]*; do
    echo "$(basename "$c") siblings=$(cat "$c/topology/thread_siblings_list" 2>/dev/null) core=$(cat "$c/topology/core_id" 2>/dev/null) pkg=$(cat "$c/topology/physical_package_id" 2>/dev/null)"
  done
  ls /sys/devices/system/node 2>/dev/null | grep node
  nvidia-smi --query-gpu=index,name,driver_version,clocks.sm,clocks.mem,temperature.gpu,power.draw,pci.bus_id --format=csv
  nvidia-smi topo -m 2>/dev/null
  ps -eo pid,pcpu,comm --sort=-pcpu | head -8
  python3 -c 'import torch, sys; print(sys.version.split()[0], torch.__version__)'
} > "$V/facts.txt" 2>&1
cat "$V/facts.txt"

# /proc/stat every 0.5 s for the whole visit: when was the machine busy, and was there steal?
python3 - "$V/procstat.jsonl" <<'PY' &
import json, sys, time
with open(sys.argv[1], "w") as out:
    while True:
        with open("/proc/stat") as fh:
            cpus = {ln.split()[0]: [int(v) for v in ln.split()[1:9]] for ln in fh if ln.startswith("cpu")}
        out.write(json.dumps({"t": round(time.time(), 2), "cpus": cpus}) + "\n"); out.flush()
        time.sleep(0.5)
PY
monitor=$!

timed bias python3 bench/bias_probe.py --precision fp16 --rounds "$ROUNDS" --variants plain,sweep --out "$V/bias" \
  2>&1 | tee "$V/bias.log" | grep -v '^{' 
for spec in "quiet 0" "quiet2 0" "hog4 4" "hog15 15"; do
  set -- $spec
  timed "diag-$1" python3 bench/host_diag.py fp16 --iters 300 --hog "$2" --label "$1" > "$V/diag-$1.jsonl" 2>"$V/diag-$1.err"
  tail -1 "$V/diag-$1.jsonl"
done
timed ts-graph python3 bench/ts_graph_probe.py --model dino-vitdet-tiny --precision fp16 2>&1 | tee "$V/ts-graph.jsonl"
timed ts-graph-b python3 bench/ts_graph_probe.py --model dino-vitdet-b --precision fp16 2>&1 | tee "$V/ts-graph-b.jsonl"

kill $monitor 2>/dev/null
mkdir -p "$V/bias-rows"; find "$V/bias" -path "*results-*" -name "*.parquet" -exec cp {} "$V/bias-rows/" \;
tar czf "$OUT/visit-c.tgz" -C "$V" --exclude=artifacts --exclude='results-*' --exclude=warm --exclude='*.pt' . && ls -la "$OUT"
