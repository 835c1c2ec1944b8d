"""python-aoti: an AOTInductor package (built by the compile step) loaded with torch._inductor.aoti_load_package."""

from __future__ import annotations

import time
from typing import Any

import torch

from runners import common
from sweep import telemetry


def run(job: dict[str, Any]) -> dict[str, Any]:
    """Load the variant's model.pt2 and time it. Loading runs here, in the runner subprocess: a loader crash
    (seen as a segfault with torch 2.11 on CUDA) is the parent's `failed` row, never the parent's crash."""
    device = job["device"]
    common.check_device(device)
    artifact = job.get("artifact") or {}
    if artifact.get("kind") != "aoti":
        raise ValueError(f"python-aoti needs an artifact of kind 'aoti', got {artifact.get('kind')!r}")
    t0 = time.perf_counter()
    index = telemetry.device_index(device) if device.startswith("cuda") else -1
    model = torch._inductor.aoti_load_package(artifact["file"], device_index=index)
    inputs = common.to_device(common.make_inputs(job), job["model_precision"], device)
    load_s = time.perf_counter() - t0

    def forward() -> Any:
        return model(*inputs)  # mixed precisions: the casts were compiled in; no autocast at run time

    with torch.inference_mode():
        result = common.bench(forward, device, int(job["warmup"]), int(job["iters"]))
        common.save_outputs(forward(), job["outputs_path"])
    return {**result, "load_s": load_s, "outputs_path": job["outputs_path"],
            "extra": {"artifact": artifact["file"]}}


if __name__ == "__main__":
    common.main(run)
