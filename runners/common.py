"""What every Python runner shares: the contract's I/O, inputs, TF32, the timed loop, CUDA graphs, profiling."""

from __future__ import annotations

import argparse
import ctypes
import faulthandler
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
from sweep.models.build import draw_inputs

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


def autocast(device: str, amp_dtype: str, cache_enabled: bool = True) -> AbstractContextManager[Any]:
    """Autocast for fp16 / bf16; fp32 (or empty) means no autocast at all.

    CUDA graphs need cache_enabled=False (PyTorch's CUDA-graph notes): the cast weights autocast caches
    during capture would live in the graph's pool and be freed when the autocast region exits.
    """
    if amp_dtype in ("", "fp32"):
        return nullcontext()
    return torch.autocast(device_type=device.split(":")[0], dtype=DTYPES[amp_dtype], cache_enabled=cache_enabled)


def make_forward(model: Callable[..., Any], inputs: Sequence[torch.Tensor], device: str, amp_dtype: str = "",
                 cache_enabled: bool = True) -> Callable[[], Any]:
    """One forward on the static inputs. Without autocast it is the bare call: no context manager per
    iteration, since the timed loop measures what a caller of the model waits for and nothing else."""
    args = tuple(inputs)
    if amp_dtype in ("", "fp32"):
        return lambda: model(*args)

    def forward() -> Any:
        with autocast(device, amp_dtype, cache_enabled):
            return model(*args)

    return forward


def check_device(device: str) -> None:
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise Unavailable(f"CUDA is not available here (torch {torch.__version__}, "
                              f"built with CUDA {torch.version.cuda or 'none'})")
        index = telemetry.device_index(device)
        if index >= torch.cuda.device_count():
            raise Unavailable(f"{device} requested but only {torch.cuda.device_count()} CUDA device(s) visible")
        torch.cuda.set_device(index)


# ----------------------------------------------------------------------------------------------------------
# TF32


def _new_tf32_api() -> bool:
    """torch >= 2.9 has `torch.backends.*.fp32_precision`; mixing it with the legacy `allow_tf32` flags
    warns (2.9-2.11) or raises (2.13), so a process uses one API only: the new one where it exists."""
    return hasattr(torch.backends.cuda.matmul, "fp32_precision") and hasattr(torch.backends.cudnn, "conv")


def apply_tf32(tf32: str) -> None:
    """Set TF32 for cuBLAS matmuls and cuDNN convolutions: "on", "off", or "" (leave PyTorch's default:
    cuDNN TF32 on, matmul off). Called before the model is built or compiled, so inductor and AOTInductor
    see the same setting as eager."""
    if tf32 not in ("on", "off"):
        if tf32:
            raise ValueError(f"tf32 must be 'on', 'off' or '', got {tf32!r}")
        return
    on = tf32 == "on"
    if _new_tf32_api():
        value = "tf32" if on else "ieee"
        torch.backends.cuda.matmul.fp32_precision = value
        torch.backends.cudnn.conv.fp32_precision = value  # type: ignore[attr-defined]
    else:
        torch.backends.cuda.matmul.allow_tf32 = on
        torch.backends.cudnn.allow_tf32 = on


def _effective(*levels: str) -> bool | None:
    """The first level that is set ("tf32" / "ieee") decides; "none" inherits from the next one up."""
    for level in levels:
        if level and level != "none":
            return level == "tf32"
    return None


def tf32_state(device: str = "cuda") -> dict[str, Any]:
    """What this process will do with fp32 matmuls and convolutions, read back with the API in use
    (both false on the CPU, where TF32 does not exist)."""
    if not device.startswith("cuda"):
        return {"tf32_matmul": False, "tf32_cudnn": False, "num_threads": torch.get_num_threads()}
    if _new_tf32_api():
        top = getattr(torch.backends, "fp32_precision", "none")
        matmul = _effective(torch.backends.cuda.matmul.fp32_precision, top)
        cudnn = _effective(torch.backends.cudnn.conv.fp32_precision,  # type: ignore[attr-defined]
                           torch.backends.cudnn.fp32_precision, top)
        # "none" all the way up: PyTorch's defaults (matmul in full fp32, cuDNN convolutions in TF32).
        return {"tf32_matmul": bool(matmul) if matmul is not None else False,
                "tf32_cudnn": bool(cudnn) if cudnn is not None else True,
                "num_threads": torch.get_num_threads()}
    return {"tf32_matmul": bool(torch.backends.cuda.matmul.allow_tf32),
            "tf32_cudnn": bool(torch.backends.cudnn.allow_tf32), "num_threads": torch.get_num_threads()}


def setup(job: dict[str, Any]) -> dict[str, Any]:
    """First thing every runner does: the device, then TF32 (before any model exists). Returns the state
    that the result reports."""
    device = job["device"]
    check_device(device)
    if reference_role(job):
        apply_tf32("off")  # the reference is true fp32
    elif device.startswith("cuda"):
        apply_tf32(str(job.get("tf32") or ""))
    elif job.get("tf32"):
        raise ValueError(f"tf32 {job['tf32']!r} applies to CUDA devices only, the job runs on {device}")
    return tf32_state(device)


def reference_role(job: dict[str, Any]) -> bool:
    """Is this the fp32 reference run? (`"count_gflops": true` with tf32 "off"; the older `"reference": true`.)"""
    return job.get("reference") is True or bool(job.get("count_gflops"))


# ----------------------------------------------------------------------------------------------------------
# outputs


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


# ----------------------------------------------------------------------------------------------------------
# CUDA graphs


# PyTorch's CUDA-graph docs warm up on a side stream before capture: the first calls create cuBLAS/cuDNN
# handles and workspaces, which capture must not do.
GRAPH_WARMUP_CALLS = 3


def capture_graph(forward: Callable[[], Any], device: str, warmup: int) -> tuple[Callable[[], Any], Any]:
    """Warm up, then capture one forward in a CUDA graph. Returns (replay, static outputs).

    The inputs `forward` closes over are the graph's static inputs: allocated once and never replaced,
    so every replay reads them. The static outputs hold each replay's results: after the timed loop they
    are the outputs of a replay, which is what fidelity compares. A capture error (a synchronize, a CPU
    op, a dynamic shape) is `Unsupported` with the error: never run without the graph.
    """
    if not device.startswith("cuda"):
        raise Unsupported(f"CUDA graphs need a CUDA device, the job runs on {device}")
    try:
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(max(warmup, GRAPH_WARMUP_CALLS)):
                forward()
        torch.cuda.current_stream().wait_stream(side)
        torch.cuda.synchronize()
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            static_out = forward()
        torch.cuda.synchronize()
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise Unsupported(f"CUDA graph capture failed: {type(exc).__name__}: {first}"[:500]) from exc
    return graph.replay, static_out


# ----------------------------------------------------------------------------------------------------------
# the timed loop


def bench(fn: Callable[[], Any], device: str, warmup: int, iters: int) -> dict[str, Any]:
    """Warm up, then time each iteration.

    Warm-up keeps module load, autotuning and allocator growth out of the numbers. On CUDA each
    iteration is timed twice: CUDA events (device time) and the host clock around a synchronize (what
    a caller waits); the host clock is the primary figure. Peak memory is reset after warm-up so it
    reflects steady-state inference. NVML's energy counter is read just outside the loop.

    The loop does nothing else per iteration (a plain script's loop read 1-7 % faster than a heavier one
    in visit A): the events are created before it, the clock and the synchronize are bound to locals,
    the host times go into a preallocated list in seconds and become milliseconds after the loop, and the
    event times are read once at the end.
    """
    cuda = device.startswith("cuda")
    for _ in range(warmup):
        fn()
    sync(device)
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    before = telemetry.snapshot(device)
    clock = time.perf_counter
    host = [0.0] * iters
    events: list[float] = []
    energy_before = telemetry.energy_counter_mj(device)
    canary_before = telemetry.cpu_canary_ms()
    host_before = telemetry.host_counters()
    loop_start = clock()
    if cuda:
        synchronize = torch.cuda.synchronize
        starts = [torch.cuda.Event(enable_timing=True) for _ in range(iters)]
        ends = [torch.cuda.Event(enable_timing=True) for _ in range(iters)]
        for i in range(iters):
            t0 = clock()
            starts[i].record()  # device time of this forward alone ...
            fn()
            ends[i].record()
            synchronize()  # ... and the host waits for it: a caller's latency, not a launch time
            host[i] = clock() - t0
        loop_s = clock() - loop_start
        host_after = telemetry.host_counters()
        energy_after = telemetry.energy_counter_mj(device)
        events = [start.elapsed_time(end) for start, end in zip(starts, ends, strict=True)]
    else:
        for i in range(iters):
            t0 = clock()
            fn()
            host[i] = clock() - t0
        loop_s = clock() - loop_start
        host_after = telemetry.host_counters()
        energy_after = telemetry.energy_counter_mj(device)
    after = telemetry.snapshot(device)
    result: dict[str, Any] = {"samples_ms": [t * 1e3 for t in host], "samples_cuda_ms": events,
                              "telemetry": {"before": before, "after": after},
                              "host": {**telemetry.host_figures(host_before, host_after),
                                       "cpu_canary_ms": [canary_before, telemetry.cpu_canary_ms()]},
                              **telemetry.energy_figures(energy_before, energy_after, iters, loop_s)}
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


# ----------------------------------------------------------------------------------------------------------
# kernel-busy diagnosis

PROFILED_FORWARDS = 5
_NOT_KERNELS = ("Memcpy", "Memset", "memcpy", "memset")


def profile_kernels(fn: Callable[[], Any], device: str, enabled: bool = True) -> dict[str, Any]:
    """Summed GPU activity per forward (kernels, copies and memsets) and kernels per forward, from
    torch.profiler over PROFILED_FORWARDS calls AFTER the timed loop (the profiler slows the host, so it
    never runs inside it). Kernel-busy time well below the p50 means the GPU waits for the host: the
    variant is launch-bound. Overlapping kernels count in full, so busy time can exceed wall time."""
    empty = {"kernel_busy_ms": None, "kernels_per_forward": None}
    if not device.startswith("cuda"):
        return {**empty, "profile_note": "kernel-busy time is measured on CUDA devices only"}
    if not enabled:
        return {**empty, "profile_note": "not requested (profile_kernels is false)"}
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile

    try:
        torch.cuda.synchronize()
        with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
            for _ in range(PROFILED_FORWARDS):
                fn()
            torch.cuda.synchronize()
        busy_us = 0.0
        kernels = 0
        for event in prof.events():
            if event.device_type != DeviceType.CUDA:
                continue
            busy_us += event.time_range.elapsed_us()
            if not event.name.startswith(_NOT_KERNELS):
                kernels += 1
    except Exception as exc:  # Kineto/CUPTI missing or busy (another profiler): say so, keep the row
        return {**empty, "profile_note": f"profiler failed: {type(exc).__name__}: {exc}"[:300]}
    if kernels == 0:
        return {**empty, "profile_note": "the profiler recorded no GPU kernels (CUPTI unavailable?)"}
    return {"kernel_busy_ms": busy_us / 1e3 / PROFILED_FORWARDS, "kernels_per_forward": kernels / PROFILED_FORWARDS,
            "profile_note": ""}


# ----------------------------------------------------------------------------------------------------------
# one job's measurement, start to end


def measure(job: dict[str, Any], forward: Callable[[], Any], *, graphs: bool = False) -> dict[str, Any]:
    """Warm up, time, profile, then save the outputs and judge them against the reference.

    With `graphs`, one forward is captured after warm-up and the timed loop replays it; the saved outputs
    are those of the last replay. Without, the outputs come from one more call after the timed loop. The
    reference is verified (sha256) before anything is timed: a damaged reference is an error, not a skip.
    Call inside torch.inference_mode().
    """
    from runners import fidelity

    device = job["device"]
    warmup, iters = int(job["warmup"]), int(job["iters"])
    reference = job.get("reference")
    if isinstance(reference, dict):
        fidelity.verify_reference(reference)
    fn = forward
    static_out: Any = None
    if graphs:
        fn, static_out = capture_graph(forward, device, warmup)
    result = bench(fn, device, warmup, iters)
    result.update(profile_kernels(fn, device, bool(job.get("profile_kernels", True))))
    if graphs:
        fn()  # one more replay, after the profiler's: the outputs below are a replay's
        sync(device)
        outputs = flatten_outputs(static_out)
    else:
        outputs = flatten_outputs(forward())
    torch.save(outputs, job["outputs_path"])
    result["outputs_path"] = job["outputs_path"]
    result["cuda_graphs"] = graphs
    result["fidelity"] = (fidelity.judge(outputs, reference, job.get("fidelity"))
                          if isinstance(reference, dict) else None)
    return result


def save_outputs(out: Any, path: str) -> None:
    torch.save(flatten_outputs(out), path)


def main(run: Callable[[dict[str, Any]], dict[str, Any]], argv: Sequence[str] | None = None) -> None:
    """Parse --job/--out, run, write result.json. Unavailable/Unsupported become rows; other errors propagate.

    An uncaught exception prints its traceback to stderr and exits 1: the parent turns that into a
    `failed` row with the traceback's tail as the reason. A damaged reference exits 1 with one line.
    An ok result always carries cuda_graphs, the TF32 flags and the thread count as they were at the end.
    """
    from runners.fidelity import ReferenceDamaged

    _die_with_parent()
    faulthandler.enable()  # a segfault in native code (a loader, a kernel) leaves its Python frames in the reason
    parser = argparse.ArgumentParser(description=run.__doc__)
    parser.add_argument("--job", required=True, type=Path)
    parser.add_argument("--out", required=True, type=Path)
    args = parser.parse_args(argv)
    job = json.loads(args.job.read_text())
    env = telemetry.environment(job["device"])
    try:
        result = run(job)
        result.setdefault("status", "ok")
        result.setdefault("cuda_graphs", False)
        if result.get("host"):  # the host during the timed loop: rows keep it in extra.host
            result.setdefault("extra", {})["host"] = result.pop("host")
        result = {**tf32_state(job["device"]), **result}
    except ReferenceDamaged as exc:
        print(f"{job.get('runtime', 'runner')}: {exc}", file=sys.stderr)
        sys.exit(1)
    except Unavailable as exc:
        result = {"status": "unavailable", "reason": str(exc)}
    except Unsupported as exc:
        result = {"status": "unsupported", "reason": str(exc)}
    result.setdefault("env", env)
    atomic.write_json(args.out, result)
    sys.stdout.flush()
