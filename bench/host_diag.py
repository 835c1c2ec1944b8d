"""When an eager forward reads slow, is the host slow or the GPU? The plain probe's loop, instrumented.

Same model, inputs and loop as bench/probes/plain_eager.py, with each iteration split into the time to
issue the forward (the Python call returns once every kernel is queued) and the wait in synchronize, and
the issuing thread's CPU time beside its wall time. Every block of iterations also reads the machine's
/proc/stat (other work, steal), the CPU the thread is on, its involuntary context switches and the GPU's
SM clock. With --hog N, N busy-looping processes run on the other CPUs meanwhile (host contention made
on purpose, to see what it does to a launch-bound loop).

    PYTHONPATH=. python3 bench/host_diag.py fp16 --iters 300 --hog 0
Prints one JSON line per block and a summary line.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

import torch

from sweep import telemetry
from sweep.models import BUILTINS
from sweep.models.build import build_builtin, draw_inputs


def current_cpu() -> int:
    with open("/proc/thread-self/stat") as fh:
        return int(fh.read().rsplit(")", 1)[1].split()[36])  # field 39: processor last run on


def sm_clock() -> float | None:
    snap = telemetry.snapshot("cuda")
    return snap.get("sm_clock_mhz")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("precision", nargs="?", default="fp16")
    parser.add_argument("--model", default="dino-vitdet-b")
    parser.add_argument("--iters", type=int, default=300)
    parser.add_argument("--block", type=int, default=25)
    parser.add_argument("--hog", type=int, default=0, help="busy-looping processes beside the loop")
    parser.add_argument("--label", default="")
    args = parser.parse_args()
    dtype = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}[args.precision]
    spec = BUILTINS[args.model]
    torch.manual_seed(0)
    model = build_builtin(args.model).eval().cuda().to(dtype)
    x = draw_inputs(spec.input_shapes(), *spec.input_range)[0].cuda().to(dtype)
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.hog)]
    clock, cpu_clock, sync = time.perf_counter, time.thread_time, torch.cuda.synchronize
    rows = []
    try:
        with torch.inference_mode():
            for _ in range(20):
                model(x)
            sync()
            for b in range(0, args.iters, args.block):
                canary = telemetry.cpu_canary_ms()
                c0 = telemetry.host_counters()
                cpu_at = current_cpu()
                clk = sm_clock()
                issue, issue_cpu, total = [], [], []
                for _ in range(args.block):
                    t0, u0 = clock(), cpu_clock()
                    model(x)
                    t1, u1 = clock(), cpu_clock()
                    sync()
                    t2 = clock()
                    issue.append((t1 - t0) * 1e3)
                    issue_cpu.append((u1 - u0) * 1e3)
                    total.append((t2 - t0) * 1e3)
                fig = telemetry.host_figures(c0, telemetry.host_counters())
                row = {"block": b // args.block, "p50_ms": round(statistics.median(total), 2),
                       "issue_ms": round(statistics.median(issue), 2),
                       "issue_cpu_ms": round(statistics.median(issue_cpu), 2),
                       "canary_ms": canary, "canary_after_ms": telemetry.cpu_canary_ms(),
                       "cpu": cpu_at, "cpu_end": current_cpu(), "sm_mhz": clk, **fig}
                rows.append(row)
                print(json.dumps(row), flush=True)
    finally:
        for h in hogs:
            h.kill()
    p50s = [r["p50_ms"] for r in rows]
    print(json.dumps({"label": args.label, "precision": args.precision, "hog": args.hog,
                      "p50_of_blocks_ms": round(statistics.median(p50s), 2), "min_block_ms": min(p50s),
                      "max_block_ms": max(p50s), "cpus_seen": sorted({r["cpu"] for r in rows}),
                      "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
                      "nproc": os.cpu_count()}), flush=True)


if __name__ == "__main__":
    main()
