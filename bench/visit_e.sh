#!/usr/bin/env bash
# Visit E (two H200s): does the CPU canary see the slowed host core that visit C found, why TorchScript
# fails graph capture (executor settings), then the one-GPU vs two-GPU evidence (results/h200x2/visit.sh).
# Too long for one device command: start it detached and poll.
#   setsid nohup bash bench/visit_e.sh > /tmp/ve.log 2>&1 &        then: cat /tmp/ve/DONE; bash bench/visit_e.sh pack
set -uo pipefail
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/out}; V=${V:-/tmp/ve}; mkdir -p "$OUT" "$V"
if [ "${1:-}" = pack ]; then
  cp /tmp/ve.log "$V/visit.log" 2>/dev/null
  tar czf "$OUT/visit-e.tgz" -C "$V" --exclude=artifacts --exclude='.sweep-*' --exclude='*.lock' --exclude='*.pt' . \
    && ls -la "$OUT"; exit 0
fi
. bench/visit_lib.sh  # sweep, ms, timed
echo "visit start $(date -u +%FT%TZ)"; nproc; cat /proc/loadavg; nvidia-smi -L
for spec in "quiet1 0" "quiet2 0" "quiet3 0" "quiet4 0" "hog31 31"; do
  set -- $spec
  CUDA_VISIBLE_DEVICES=0 timed "diag-$1" python3 bench/host_diag.py fp16 --iters 300 --hog "$2" --label "$1" \
    > "$V/diag-$1.jsonl" 2>"$V/diag-$1.err"
  tail -1 "$V/diag-$1.jsonl"
done
CUDA_VISIBLE_DEVICES=0 timed ts-graph python3 bench/ts_graph_probe.py --model dino-vitdet-tiny --precision fp16 \
  > "$V/ts-graph.jsonl" 2>&1; cut -c1-300 "$V/ts-graph.jsonl"
V=$V bash results/h200x2/visit.sh
echo "visit end $(date -u +%FT%TZ)"; touch "$V/DONE"
