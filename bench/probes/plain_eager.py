# Copied verbatim from ../shared/probes/plain_eager.py (the reference "plain script" the harness is checked against),
# so that it travels with the tree to the GPU machine. Do not edit: it is the yardstick.
"""A plain timing of a built-in model, outside the sweep: one process, no orchestrator, no runner.

Run from the project root on a GPU machine, several times, interleaved with `sweep run` of the same job:

    PYTHONPATH=. python3 ../shared/probes/plain_eager.py fp16            # dino-vitdet-b, eager, fp16 weights
    PYTHONPATH=. python3 ../shared/probes/plain_eager.py fp32 --profile  # also kernel-busy time per forward

It prints one JSON line: the host-clock p50/min over 100 timed forwards after 20 warm-up forwards
(synchronize after each), and with --profile the summed CUDA kernel time and kernel count per forward.
The sweep's python-eager row for the same job should read the same within a few percent.
"""
import json
import statistics
import sys
import time

import torch

from sweep.models import BUILTINS
from sweep.models.build import build_builtin, draw_inputs

precision = sys.argv[1] if len(sys.argv) > 1 else "fp16"
model_name = next((a for a in sys.argv[2:] if not a.startswith("--")), "dino-vitdet-b")
dtype = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}[precision]
spec = BUILTINS[model_name]
torch.manual_seed(0)
model = build_builtin(model_name).eval().cuda().to(dtype)
x = draw_inputs(spec.input_shapes(), *spec.input_range)[0].cuda().to(dtype)
with torch.inference_mode():
    for _ in range(20):
        model(x)
    torch.cuda.synchronize()
    times = []
    for _ in range(100):
        t0 = time.perf_counter()
        model(x)
        torch.cuda.synchronize()
        times.append((time.perf_counter() - t0) * 1e3)
    out = {"model": model_name, "precision": precision, "p50_ms": statistics.median(times), "min_ms": min(times)}
    if "--profile" in sys.argv:
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            for _ in range(5):
                model(x)
            torch.cuda.synchronize()
        kernels = [e for e in prof.events() if e.device_type.name == "CUDA"]
        out["kernel_busy_ms"] = sum(e.device_time for e in kernels) / 1e3 / 5
        out["kernels_per_forward"] = len(kernels) / 5
print(json.dumps(out))
