"""python-inductor: torch.compile(model, mode=compile_mode); the compile happens in warm-up and is timed apart."""

from __future__ import annotations

import time
from typing import Any

import torch

from runners import common
from sweep.jobs import low_precision
from sweep.models import load_model

# reduce-overhead records CUDA graphs on the calls after the first compile; those calls are compile work too.
CUDA_GRAPH_WARMUP_CALLS = 2


def run(job: dict[str, Any]) -> dict[str, Any]:
    """Run a python-inductor job: compile on the first call(s), then warm up and time as every runner does."""
    device = job["device"]
    common.check_device(device)
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

    def forward() -> Any:
        with common.autocast(device, amp):
            return compiled(*inputs)

    with torch.inference_mode():
        # The first call traces and compiles (minutes for big models): it belongs in compile_s, never in
        # the samples. reduce-overhead on CUDA also records its graphs on the next calls.
        t0 = time.perf_counter()
        forward()
        calls = 1
        if mode == "reduce-overhead" and device.startswith("cuda"):
            for _ in range(CUDA_GRAPH_WARMUP_CALLS):
                forward()
                calls += 1
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        compile_s = time.perf_counter() - t0
        result = common.bench(forward, device, int(job["warmup"]), int(job["iters"]))
        common.save_outputs(forward(), job["outputs_path"])
    extra = {"compile_mode": mode, "compile_calls": calls, "autocast": amp or None}
    return {**result, "load_s": load_s, "compile_s": compile_s, "outputs_path": job["outputs_path"], "extra": extra}


if __name__ == "__main__":
    common.main(run)
