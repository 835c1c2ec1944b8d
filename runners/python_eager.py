"""python-eager: the model as PyTorch runs it, cast to the model precision, optionally under autocast."""

from __future__ import annotations

import time
from typing import Any

import torch

from runners import common
from sweep.models.build import count_gflops, load_model


def run(job: dict[str, Any]) -> dict[str, Any]:
    """Run a python-eager job (or the fp32 reference the others are compared with: tf32 off, GFLOPs counted).

    With cuda_graphs, one forward is captured after warm-up and the timed loop replays it."""
    device = job["device"]
    common.setup(job)  # device and TF32, before the model exists
    graphs = bool(job.get("cuda_graphs"))
    t0 = time.perf_counter()
    model = load_model(job["model"], int(job["seed"]))
    model = model.to(device=device, dtype=common.weight_dtype(job["model_precision"]))
    inputs = common.to_device(common.make_inputs(job), job["model_precision"], device)
    load_s = time.perf_counter() - t0
    forward = common.make_forward(model, inputs, device, job.get("amp_dtype", ""), cache_enabled=not graphs)
    extra: dict[str, Any] = {}
    with torch.inference_mode():
        if common.reference_role(job):
            extra["gflops"] = count_gflops(model, inputs)
        result = common.measure(job, forward, graphs=graphs)
    return {**result, "load_s": load_s, "extra": extra}


if __name__ == "__main__":
    common.main(run)
