"""python-trt: the TensorRT compile of the variant (an ExportedProgram with TensorRT engines) run from Python."""

from __future__ import annotations

import time
from typing import Any

import torch

from runners import common


def run(job: dict[str, Any]) -> dict[str, Any]:
    """Load model.ep (torch_tensorrt registers the engine class it needs) and time it like every runner."""
    torch_tensorrt = common.import_torch_tensorrt()
    device = job["device"]
    common.setup(job)
    if job.get("cuda_graphs"):
        raise common.Unsupported("the cuda_graphs axis does not apply to python-trt")
    artifact = job.get("artifact") or {}
    if artifact.get("kind") != "exported-trt":
        raise ValueError(f"python-trt needs an artifact of kind 'exported-trt', got {artifact.get('kind')!r}")
    t0 = time.perf_counter()
    loaded = torch_tensorrt.load(artifact["file"])
    model = loaded.module() if hasattr(loaded, "module") else loaded
    inputs = common.to_device(common.make_inputs(job), job["model_precision"], device)
    load_s = time.perf_counter() - t0
    # precision was fixed at compile time (sweep.trt_api); no autocast here
    forward = common.make_forward(model, inputs, device)

    with torch.inference_mode():
        result = common.measure(job, forward)
    return {**result, "load_s": load_s,
            "extra": {"artifact": artifact["file"], "torch_tensorrt_version": torch_tensorrt.__version__}}


if __name__ == "__main__":
    common.main(run)
