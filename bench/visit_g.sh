#!/usr/bin/env bash
# NOT RUN YET: on 2026-12-06 no GPU machine could be started (sixteen tries); nothing in results/ comes from it.
# Visit G (one H200): sweep-bench (cpp-torchscript fp16, dino-vitdet-b) with CUDA graphs off and on, on the
# trace fixed after visit F (trace_revision 2), through the real pipeline, beside python-eager fp16 with graphs
# on and off as the same-visit baseline. Run from the repository root with the image's python3, no install.
#
#   setsid nohup bash bench/visit_g.sh > /tmp/vg.log 2>&1 &     then poll: test -f /tmp/vg/DONE
#   bash bench/visit_g.sh pack                                  tar rows, reports and logs into $OUT/visit-g.tgz
#
# Steps (everything under $V, /tmp/vg):
#   1. machine facts (GPU, driver, clocks, python/torch, cores); nvidia-smi dmon for the whole visit;
#   2. smoke: bench/smoke-gpu.yaml (small detector, one process per job, graphs in Python and C++); it builds
#      sweep-bench (SKIP_SMOKE=1: only the build). The TorchScript trace of the full-size detector is built
#      beside it (sweep compile);
#   3. main: bench/visit-g.yaml (same name and measure as matrices/h200-visit.yaml, so the job keys are those of
#      results/h200) into a copy of results/h200 with --force: 3 jobs x 3 processes, interleaved (every job's
#      process 0, then 1, then 2); then, if the visit is less than EXTRA_BEFORE_S (360) seconds old,
#      bench/visit-g-extra.yaml (eager fp16 without graphs, 3 processes) the same way; the rows they add are
#      also copied to $V/new-rows;
#   4. the new rows as a table, and `sweep report` of the copy (old and new rows together).
set -uo pipefail
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/out}; V=${V:-/tmp/vg}; mkdir -p "$OUT" "$V"
ART=$V/artifacts; R=$V/h200
. bench/visit_lib.sh  # sweep, ms, timed

if [ "${1:-}" = pack ]; then
  cp /tmp/vg.log "$V/visit.log" 2>/dev/null
  tar czf "$OUT/visit-g.tgz" -C "$V" --exclude=artifacts --exclude=smoke-art --exclude='.sweep-*' --exclude='*.lock' . \
    && ls -la "$OUT"
  exit 0
fi

# 1. facts
{
  echo "visit start $(date -u +%FT%TZ)"
  echo "commit $(cat COMMIT 2>/dev/null || git log -1 --format=%H 2>/dev/null || echo unknown)"
  nproc; uname -r; cat /proc/loadavg; nvidia-smi -L
  nvidia-smi --query-gpu=index,name,driver_version,memory.total,clocks.sm,clocks.mem,temperature.gpu,power.draw \
    --format=csv
  python3 -c 'import sys, torch; print("python", sys.version.split()[0], "torch", torch.__version__,
    "cuda", torch.version.cuda, torch.cuda.get_device_name(0))'
  cmake --version | head -1; g++ --version | head -1
  ps -eo pid,pcpu,comm --sort=-pcpu | head -6
} > "$V/facts.txt" 2>&1
cat "$V/facts.txt"
nvidia-smi dmon -s puc -d 1 > "$V/dmon.txt" 2>&1 &
dmon=$!

# 2. smoke (builds sweep-bench), the full-size trace beside it
( timed compile sweep compile bench/visit-g.yaml --artifacts "$ART" ) > "$V/compile.log" 2>&1 &
compile_pid=$!
if [ -z "${SKIP_SMOKE:-}" ]; then
  timed smoke sweep run bench/smoke-gpu.yaml --results "$V/smoke" --artifacts "$V/smoke-art"
else  # a short lease: only the native build the smoke would have done
  timed native python3 -c 'from sweep import native; print(native.ensure_native())'
fi
show() {  # show FOLDER [ONLY_FILES_LIST]: the rows as a table
  python3 - "$@" <<'PY'
import sys
from pathlib import Path
import pandas as pd
from sweep import store
df = store.load(Path(sys.argv[1]))
if len(sys.argv) > 2:
    keep = set(Path(sys.argv[2]).read_text().split())
    df = df[df["run_id"].isin(keep)]
cols = ["runtime", "model_precision", "cuda_graphs", "process", "status", "latency_ms_p50", "latency_ms_cv",
        "fidelity", "fidelity_error", "kernel_busy_ms", "device_name", "reason"]
pd.set_option("display.width", 250)
print(df[cols].to_string(max_colwidth=100))
PY
}
[ -z "${SKIP_SMOKE:-}" ] && show "$V/smoke"
timed wait-compile wait $compile_pid; cat "$V/compile.log" | tail -5
touch "$V/SMOKE_DONE"

# 3. main: into a copy of the committed rows, so resume and the report see old and new rows together
mkdir -p "$R"; cp results/h200/*.parquet "$R"/; ls "$R" | sort > "$V/rows-before.txt"
timed main sweep run bench/visit-g.yaml --results "$R" --artifacts "$ART" --force
if [ "$SECONDS" -lt "${EXTRA_BEFORE_S:-360}" ]; then
  timed extra sweep run bench/visit-g-extra.yaml --results "$R" --artifacts "$ART" --force
else echo "extra skipped: the visit is $SECONDS s old"; fi
mkdir -p "$V/new-rows"
ls "$R" | sort | comm -13 "$V/rows-before.txt" - | grep '\.parquet$' | while read -r f; do cp "$R/$f" "$V/new-rows/"; done
python3 -c 'import sys, pyarrow.parquet as pq; print("\n".join(sorted({pq.read_table(p, columns=["run_id"])
  .column(0)[0].as_py() for p in sys.argv[1:]})))' "$V"/new-rows/*.parquet > "$V/new-run-ids.txt"

# 4. the new rows, and the report of old and new together
show "$R" "$V/new-run-ids.txt" | tee "$V/new-rows.txt"
sweep report --results "$R" --out "$V/RESULTS.md" --no-plot > /dev/null; head -30 "$V/RESULTS.md"
kill $dmon 2>/dev/null
nvidia-smi --query-gpu=index,name,clocks.sm,clocks.mem,temperature.gpu,power.draw --format=csv
cat "$V/phases.txt"; echo "visit end $(date -u +%FT%TZ)"; touch "$V/DONE"
