"""python-aoti: an AOTInductor package (built by the compile step), loaded from Python and timed.

Loading goes through one of LOADERS. On torch 2.11 + CUDA, `torch._inductor.aoti_load_package` died with
SIGSEGV inside torch/export/pt2_archive/_package.py `_load_aoti` (visit A), on the line that constructs
the C++ `torch._C._aoti.AOTIModelPackageLoader`; the C++ runner's own AOTIModelPackageLoader loads such
packages. The other loaders here reach the same compiled model by shorter paths (the loader class alone,
without the inductor import and device probe that precede it in `_load_aoti`; or the package's .so
through the container runner). `bench/aoti_loaders.py` tries each in its own process on the GPU;
CUDA_LOADER names the one this runner uses. Loading runs in the runner subprocess, so a loader crash is
the parent's `failed` row (faulthandler puts the Python frames in its reason), never the parent's crash.
"""

from __future__ import annotations

import atexit
import shutil
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from runners import common
from sweep import telemetry

Model = Callable[..., Any]


def load_package_api(path: str, device_index: int, single_threaded: bool) -> Model:
    """The documented API: torch._inductor.aoti_load_package (pytree in and out, via the call spec)."""
    return torch._inductor.aoti_load_package(path, run_single_threaded=single_threaded,  # type: ignore[no-any-return]
                                             device_index=device_index)


def load_package_loader(path: str, device_index: int, single_threaded: bool) -> Model:
    """The package loader class alone (what the C++ runner uses), without importing torch._inductor and
    without `_load_aoti`'s device-information probe. Inputs and outputs are flat lists of tensors, which
    is what this contract's positional tensor inputs and saved outputs are."""
    loader = torch._C._aoti.AOTIModelPackageLoader(path, "model", single_threaded, 1, device_index)
    return lambda *inputs: loader.run(list(inputs))


def load_container_runner(path: str, device_index: int, single_threaded: bool) -> Model:
    """The package's compiled .so (and its kernel binaries) extracted and run by the container runner
    class, bypassing the package loader. It has no single-threaded mode in Python, so it cannot be
    captured in a CUDA graph."""
    if single_threaded:
        raise common.Unsupported("the AOTI container runner has no run_single_threaded mode in Python, "
                                 "which CUDA graph capture needs")
    folder = Path(tempfile.mkdtemp(prefix="sweep-aoti-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    with zipfile.ZipFile(path) as archive:
        archive.extractall(folder)
    libraries = sorted(folder.rglob("data/aotinductor/model/*.so"))
    if not libraries:
        raise RuntimeError(f"{path} holds no data/aotinductor/model/*.so to load")
    library = libraries[0]
    runner: Any
    if device_index < 0:
        runner = torch._C._aoti.AOTIModelContainerRunnerCpu(str(library), 1)
    else:
        runner = torch._C._aoti.AOTIModelContainerRunnerCuda(str(library), 1, f"cuda:{device_index}",
                                                             str(library.parent))
    return lambda *inputs: runner.run(list(inputs))


LOADERS: dict[str, Callable[[str, int, bool], Model]] = {
    "aoti_load_package": load_package_api,
    "package_loader": load_package_loader,
    "container_runner": load_container_runner,
}
CUDA_LOADER = "package_loader"  # until bench/aoti_loaders.py says which works on the GPU
CPU_LOADER = "package_loader"


def run(job: dict[str, Any]) -> dict[str, Any]:
    """Load the variant's model.pt2 and time it; with cuda_graphs the loader runs single-threaded (its
    container's per-run thread synchronisation cannot be captured) and one forward is captured."""
    device = job["device"]
    common.setup(job)
    artifact = job.get("artifact") or {}
    if artifact.get("kind") != "aoti":
        raise ValueError(f"python-aoti needs an artifact of kind 'aoti', got {artifact.get('kind')!r}")
    graphs = bool(job.get("cuda_graphs"))
    cuda = device.startswith("cuda")
    name = CUDA_LOADER if cuda else CPU_LOADER
    index = telemetry.device_index(device) if cuda else -1
    t0 = time.perf_counter()
    print(f"python-aoti: loading {artifact['file']} with the {name!r} loader (torch {torch.__version__}, "
          f"run_single_threaded={graphs})", file=sys.stderr, flush=True)
    model = LOADERS[name](artifact["file"], index, graphs)
    inputs = common.to_device(common.make_inputs(job), job["model_precision"], device)
    load_s = time.perf_counter() - t0
    # mixed precisions: the casts were compiled in; no autocast at run time
    forward = common.make_forward(model, inputs, device)
    with torch.inference_mode():
        result = common.measure(job, forward, graphs=graphs)
    return {**result, "load_s": load_s, "extra": {"artifact": artifact["file"], "aoti_loader": name}}


if __name__ == "__main__":
    common.main(run)
