"""python-eager: the model as PyTorch runs it, cast to the model precision, optionally under autocast."""

from __future__ import annotations

import time
from typing import Any

import torch

from runners import common
from sweep.models import count_gflops, load_model


def run(job: dict[str, Any]) -> dict[str, Any]:
    """Run a python-eager job (or, with "reference": true, the fp32 reference the others are compared with)."""
    device = job["device"]
    common.check_device(device)
    reference = bool(job.get("reference"))
    if reference and device.startswith("cuda"):
        # The reference is true fp32: no TF32 in cuDNN convolutions or matmuls.
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False
    t0 = time.perf_counter()
    model = load_model(job["model"], int(job["seed"]))
    model = model.to(device=device, dtype=common.weight_dtype(job["model_precision"]))
    inputs = common.to_device(common.make_inputs(job), job["model_precision"], device)
    load_s = time.perf_counter() - t0

    def forward() -> Any:
        with common.autocast(device, job.get("amp_dtype", "")):
            return model(*inputs)

    extra: dict[str, Any] = {"tf32_matmul": torch.backends.cuda.matmul.allow_tf32,
                             "tf32_cudnn": torch.backends.cudnn.allow_tf32}
    with torch.inference_mode():
        if reference:
            extra["gflops"] = count_gflops(model, inputs)
        result = common.bench(forward, device, int(job["warmup"]), int(job["iters"]))
        common.save_outputs(forward(), job["outputs_path"])
    return {**result, "load_s": load_s, "outputs_path": job["outputs_path"], "extra": extra}


if __name__ == "__main__":
    common.main(run)
