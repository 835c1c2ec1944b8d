#!/usr/bin/env bash
# How results/h200x2 is measured: results/h200x2/matrix.yaml with --gpus 1, then --gpus 2, on a two-GPU
# H200 host (nvidia-h200-x2), from the repository root with the image's python3 and no install step.
# Nothing else runs meanwhile and nothing is pinned by hand: the pool gives each GPU worker its own CPU set.
#
#   V=/tmp/ve bash results/h200x2/visit.sh      # rows, reports and the comparison land under $V
set -uo pipefail
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
V=${V:-/tmp/ve}; mkdir -p "$V"; ART=$V/artifacts
. bench/visit_lib.sh  # sweep, ms, timed
nvidia-smi topo -m > "$V/topo.txt" 2>&1; nproc >> "$V/topo.txt"
timed gpus1 python3 -m sweep run results/h200x2/matrix.yaml --gpus 1 --results "$V/gpus1" --artifacts "$ART"
timed gpus2 python3 -m sweep run results/h200x2/matrix.yaml --gpus 2 --results "$V/gpus2" --artifacts "$ART"
for r in gpus1 gpus2; do python3 -m sweep report --results "$V/$r" --out "$V/$r/RESULTS.md" > /dev/null; done
python3 -m sweep compare "$V/gpus1" "$V/gpus2" > "$V/compare-gpus1-gpus2.md"
python3 -m sweep compare "$V/gpus1" "$V/gpus2" --json > "$V/compare-gpus1-gpus2.json"
cat "$V/compare-gpus1-gpus2.md" "$V/phases.txt"
