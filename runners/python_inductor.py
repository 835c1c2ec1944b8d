"""python-inductor: torch.compile(model, mode=compile_mode); the compile happens in warm-up and is timed apart."""

from __future__ import annotations

import time
from typing import Any

import torch

from runners import common
from sweep.jobs import low_precision
from sweep.models.build import load_model

# reduce-overhead records CUDA graphs on the calls after the first compile; those calls are compile work too.
CUDA_GRAPH_WARMUP_CALLS = 2


def run(job: dict[str, Any]) -> dict[str, Any]:
    """Run a python-inductor job: compile on the first call(s), then warm up and time as every runner does.

    CUDA graphs come from compile_mode reduce-overhead (cudagraph trees), which the row's cuda_graphs
    reports; the cuda_graphs axis itself does not apply here."""
    device = job["device"]
    if job.get("cuda_graphs"):
        raise common.Unsupported("python-inductor takes CUDA graphs from compile_mode reduce-overhead; "
                                 "the cuda_graphs axis does not apply to it")
    common.setup(job)  # TF32 before compiling: inductor's kernels follow the flags it sees
    precision = job["model_precision"]
    mode = job.get("compile_mode") or "default"
    t0 = time.perf_counter()
    model = load_model(job["model"], int(job["seed"]))
    model = model.to(device=device, dtype=common.weight_dtype(precision))
    inputs = common.to_device(common.make_inputs(job), precision, device)
    load_s = time.perf_counter() - t0
    # Mixed precisions run the fp32 model under autocast, as python-eager's amp_dtype does.
    amp = (low_precision(precision) or "") if "+" in precision else ""
    compiled = torch.compile(model, mode=None if mode == "default" else mode)
    forward = common.make_forward(compiled, inputs, device, amp)
    graphs = mode == "reduce-overhead" and device.startswith("cuda")

    with torch.inference_mode():
        # The first call traces and compiles (minutes for big models): it belongs in compile_s, never in
        # the samples. reduce-overhead on CUDA also records its graphs on the next calls.
        t0 = time.perf_counter()
        forward()
        calls = 1
        if graphs:
            for _ in range(CUDA_GRAPH_WARMUP_CALLS):
                forward()
                calls += 1
        common.sync(device)
        compile_s = time.perf_counter() - t0
        result = common.measure(job, forward, graphs=False)
    result["cuda_graphs"] = graphs  # as run: reduce-overhead replays cudagraph trees
    extra = {"compile_mode": mode, "compile_calls": calls, "autocast": amp or None}
    return {**result, "load_s": load_s, "compile_s": compile_s, "extra": extra}


if __name__ == "__main__":
    common.main(run)
