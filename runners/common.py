"""What every Python runner shares: the contract's I/O, inputs, dtype casts and the timed loop."""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import resource
import signal
import sys
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

import torch
from torch.utils._pytree import tree_flatten

from sweep import atomic, telemetry
from sweep.models import draw_inputs

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


class Unavailable(Exception):
    """The runtime cannot run on this machine (missing package, no GPU): the row says so, with the reason."""


class Unsupported(Exception):
    """The installed runtime cannot express what the job asks for: the row says so rather than fall back."""


def import_torch_tensorrt() -> Any:
    """torch_tensorrt, or Unavailable saying why and how to install it (the compile step and python-trt)."""
    from sweep.trt_api import INSTALL_HINT

    try:
        import torch_tensorrt
    except Exception as exc:  # ImportError, or OSError for a missing libnvinfer: either way not usable here
        first = str(exc).splitlines()[0] if str(exc) else ""
        raise Unavailable(f"torch_tensorrt cannot be imported ({type(exc).__name__}: {first}); {INSTALL_HINT}") from exc
    return torch_tensorrt


def _die_with_parent() -> None:
    """Ask Linux to kill this runner if the orchestrator dies, so a killed sweep leaves no orphan on the GPU."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        if os.getppid() == 1:
            os._exit(1)
    except OSError:
        pass


def make_inputs(job: dict[str, Any]) -> list[torch.Tensor]:
    """The contract's inputs: input i from seed + i on the CPU generator (same numbers in libtorch), never zeros."""
    seed = int(job["seed"])
    return [draw_inputs([spec["shape"]], float(spec["low"]), float(spec["high"]), seed + i)[0]
            for i, spec in enumerate(job["inputs"])]


def weight_dtype(model_precision: str) -> torch.dtype:
    """fp16 / bf16 cast weights and inputs; fp32 and the mixed fp32+X keep fp32 weights."""
    return DTYPES.get(model_precision, torch.float32)


def to_device(inputs: Sequence[torch.Tensor], model_precision: str, device: str) -> list[torch.Tensor]:
    dtype = weight_dtype(model_precision)
    return [x.to(device=device, dtype=dtype if x.is_floating_point() else x.dtype) for x in inputs]


def autocast(device: str, amp_dtype: str) -> AbstractContextManager[Any]:
    """Autocast for fp16 / bf16; fp32 (or empty) means no autocast at all."""
    if amp_dtype in ("", "fp32"):
        return nullcontext()
    return torch.autocast(device_type=device.split(":")[0], dtype=DTYPES[amp_dtype])


def check_device(device: str) -> None:
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise Unavailable(f"CUDA is not available here (torch {torch.__version__}, "
                              f"built with CUDA {torch.version.cuda or 'none'})")
        index = telemetry.device_index(device)
        if index >= torch.cuda.device_count():
            raise Unavailable(f"{device} requested but only {torch.cuda.device_count()} CUDA device(s) visible")
        torch.cuda.set_device(index)


def flatten_outputs(out: Any) -> list[torch.Tensor]:
    """Outputs as a flat list of CPU tensors in pytree order, the order the C++ runner uses too."""
    leaves, _ = tree_flatten(out)
    # Plain numbers become 0-dim tensors and None is dropped, as the C++ runner does, so both runtimes
    # save the same list for the same model.
    return [t.detach().to("cpu") if isinstance(t, torch.Tensor) else torch.tensor(t)
            for t in leaves if isinstance(t, (torch.Tensor, bool, int, float))]


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def bench(fn: Callable[[], Any], device: str, warmup: int, iters: int) -> dict[str, Any]:
    """Warm up, then time each iteration.

    Warm-up keeps module load, autotuning and allocator growth out of the numbers. On CUDA each
    iteration is timed twice: CUDA events (device time) and the host clock around a synchronize (what
    a caller waits); the host clock is the primary figure. Peak memory is reset after warm-up so it
    reflects steady-state inference.
    """
    cuda = device.startswith("cuda")
    for _ in range(warmup):
        fn()
    sync(device)
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    before = telemetry.snapshot(device)
    host: list[float] = []
    events: list[float] = []
    if cuda:
        pairs = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(iters)]
        for start, end in pairs:
            t0 = time.perf_counter()
            start.record()
            fn()
            end.record()
            torch.cuda.synchronize()
            host.append((time.perf_counter() - t0) * 1e3)
        events = [start.elapsed_time(end) for start, end in pairs]
    else:
        for _ in range(iters):
            t0 = time.perf_counter()
            fn()
            host.append((time.perf_counter() - t0) * 1e3)
    after = telemetry.snapshot(device)
    result: dict[str, Any] = {"samples_ms": host, "samples_cuda_ms": events,
                              "telemetry": {"before": before, "after": after}}
    if cuda:
        result["peak_mem_mb"] = torch.cuda.max_memory_allocated() / 2**20
        result["reserved_mem_mb"] = torch.cuda.max_memory_reserved() / 2**20
        result["nvml_mem_mb"] = telemetry.process_memory_mb(device)
    else:
        # ru_maxrss is in KiB on Linux: the runner process's peak resident memory, model included.
        result["peak_mem_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        result["reserved_mem_mb"] = None
        result["nvml_mem_mb"] = None
    return result


def save_outputs(out: Any, path: str) -> None:
    torch.save(flatten_outputs(out), path)


def main(run: Callable[[dict[str, Any]], dict[str, Any]], argv: Sequence[str] | None = None) -> None:
    """Parse --job/--out, run, write result.json. Unavailable/Unsupported become rows; other errors propagate.

    An uncaught exception prints its traceback to stderr and exits 1: the parent turns that into a
    `failed` row with the traceback's tail as the reason.
    """
    _die_with_parent()
    parser = argparse.ArgumentParser(description=run.__doc__)
    parser.add_argument("--job", required=True, type=Path)
    parser.add_argument("--out", required=True, type=Path)
    args = parser.parse_args(argv)
    job = json.loads(args.job.read_text())
    env = telemetry.environment(job["device"])
    try:
        result = run(job)
        result.setdefault("status", "ok")
    except Unavailable as exc:
        result = {"status": "unavailable", "reason": str(exc)}
    except Unsupported as exc:
        result = {"status": "unsupported", "reason": str(exc)}
    result.setdefault("env", env)
    atomic.write_json(args.out, result)
    sys.stdout.flush()
