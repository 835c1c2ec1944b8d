"""One process, one model: the plain probe's loop against the runner's timed loop, alternated.

If the two loops agree here, whatever slows the runner down is not in its timed loop but in how its
process is set up or started. Prints one JSON line: the median p50 of each loop over its repeats.

    PYTHONPATH=. python3 bench/bias_inproc.py fp16 dino-vitdet-b
"""

from __future__ import annotations

import json
import statistics
import sys
import time

import torch

from runners import common
from sweep.models import BUILTINS
from sweep.models.build import build_builtin, draw_inputs

precision = sys.argv[1] if len(sys.argv) > 1 else "fp16"
model_name = sys.argv[2] if len(sys.argv) > 2 else "dino-vitdet-b"
device = "cuda" if torch.cuda.is_available() else "cpu"
dtype = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}[precision]
spec = BUILTINS[model_name]
torch.manual_seed(0)
model = build_builtin(model_name).eval().to(device).to(dtype)
x = draw_inputs(spec.input_shapes(), *spec.input_range)[0].to(device).to(dtype)


def plain(iters: int = 100) -> float:
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        model(x)
        common.sync(device)
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def events_only(iters: int = 100) -> float:
    times = []
    for _ in range(iters):
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        t0 = time.perf_counter()
        s.record()
        model(x)
        e.record()
        torch.cuda.synchronize()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def runner_loop(iters: int = 100) -> float:
    forward = common.make_forward(model, [x], device)  # the runners' forward: the bare call without autocast
    return statistics.median(common.bench(forward, device, 0, iters)["samples_ms"])


out: dict[str, list[float]] = {"plain": [], "runner_loop": [], "events_only": []}
with torch.inference_mode():
    for _ in range(20):
        model(x)
    common.sync(device)
    for _ in range(3):
        out["plain"].append(plain())
        out["runner_loop"].append(runner_loop())
        if device == "cuda":
            out["events_only"].append(events_only())
    # what the runner's main() does before run(): NVML init, versions, names
    from sweep import telemetry

    telemetry.environment(device)
    out["plain_after_nvml"] = [plain() for _ in range(2)]
    out["runner_after_nvml"] = [runner_loop() for _ in range(2)]
print(json.dumps({f"{k}_ms": round(statistics.median(v), 3) for k, v in out.items() if v}
                 | {"threads": torch.get_num_threads()}))
