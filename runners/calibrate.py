"""Calibration (`sweep calibrate` launches `python -m runners.calibrate`): can our timer be trusted, and what can
this device do at best? A benchmark, not a test. Writes the report as JSON to --out; a device that is not
there writes {"status": "unavailable", "reason": ...} instead."""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from runners import common
from sweep import atomic, telemetry
from sweep.models import BUILTINS
from sweep.models.build import count_gflops, load_model


def _independent_median_ms(fn: Callable[[], Any], device: str, min_run_time: float) -> dict[str, float]:
    """Medians from timers that share no code with ours: torch.utils.benchmark, and triton's do_bench on CUDA."""
    from torch.utils.benchmark import Timer

    out = {}
    # Same thread count as our loop: Timer defaults to one thread, which would compare different things.
    timer = Timer(stmt="fn()", globals={"fn": fn}, num_threads=torch.get_num_threads())
    measurement = timer.blocked_autorange(min_run_time=min_run_time)
    out["torch_benchmark_ms"] = measurement.median * 1e3
    if device.startswith("cuda"):
        try:
            from triton.testing import do_bench

            out["triton_do_bench_ms"] = float(do_bench(fn, warmup=200, rep=int(min_run_time * 1000),
                                                       return_mode="median"))
        except Exception as exc:  # triton missing or too old: the torch timer alone still answers
            out["triton_error"] = f"{type(exc).__name__}: {exc}"  # type: ignore[assignment]
    return out


def _ours(fn: Callable[[], Any], device: str, warmup: int, iters: int) -> dict[str, float | None]:
    result = common.bench(fn, device, warmup, iters)
    cuda = result["samples_cuda_ms"]
    return {"ours_host_ms": statistics.median(result["samples_ms"]),
            "ours_cuda_events_ms": statistics.median(cuda) if cuda else None}


def peak_matmul_tflops(device: str, n: int, dtype: torch.dtype, reps: int = 10) -> float:
    """Achieved TFLOP/s of an n×n×n product on random data (zeros run faster and would flatter the card)."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    common.sync(device)
    t0 = time.perf_counter()
    for _ in range(reps):
        a @ b
    common.sync(device)
    return 2 * n**3 * reps / (time.perf_counter() - t0) / 1e12


def copy_gbps(device: str, mbytes: int, reps: int = 10) -> float:
    """Achieved GB/s of a device-to-device copy, counting bytes read plus bytes written."""
    src = torch.rand(mbytes * 2**20 // 4, device=device)
    dst = torch.empty_like(src)
    for _ in range(3):
        dst.copy_(src)
    common.sync(device)
    t0 = time.perf_counter()
    for _ in range(reps):
        dst.copy_(src)
    common.sync(device)
    return 2 * src.numel() * 4 * reps / (time.perf_counter() - t0) / 1e9


def calibrate(model_name: str, device: str, precision: str = "fp32", warmup: int = 20, iters: int = 100,
              min_run_time: float = 2.0, seed: int = 0) -> dict[str, Any]:
    """Time eager and torch.compile forms of a built-in model with our loop and independent timers."""
    common.check_device(device)
    builtin = BUILTINS[model_name]
    low, high = builtin.input_range
    job = {"seed": seed, "inputs": [{"shape": s, "low": low, "high": high} for s in builtin.input_shapes()]}
    model = load_model({"kind": "builtin", "name": model_name}, seed)
    model = model.to(device=device, dtype=common.weight_dtype(precision))
    inputs = common.to_device(common.make_inputs(job), precision, device)
    report: dict[str, Any] = {
        "created_at": datetime.now(timezone.utc).isoformat(),
        "model": model_name, "device": device, "precision": precision,
        "env": telemetry.environment(device), "clocks_before": telemetry.snapshot(device), "forms": {},
    }
    with torch.inference_mode():
        report["model_gflops"] = count_gflops(model, inputs)
        forms: dict[str, Callable[[], Any]] = {"eager": lambda: model(*inputs)}
        compiled = torch.compile(model)
        forms["torch.compile"] = lambda: compiled(*inputs)
        for name, fn in forms.items():
            t0 = time.perf_counter()
            fn()
            common.sync(device)
            first_call_s = time.perf_counter() - t0
            entry: dict[str, Any] = {"first_call_s": first_call_s, **_ours(fn, device, warmup, iters)}
            entry.update(_independent_median_ms(fn, device, min_run_time))
            ref = entry.get("triton_do_bench_ms") or entry["torch_benchmark_ms"]
            entry["ratio_ours_host_vs_independent"] = entry["ours_host_ms"] / ref
            if entry.get("ours_cuda_events_ms"):
                entry["ratio_ours_events_vs_independent"] = entry["ours_cuda_events_ms"] / ref
            report["forms"][name] = entry
    cuda = device.startswith("cuda")
    report["peak"] = {
        "matmul_dtype": "bf16" if cuda else "fp32",
        "matmul_tflops": peak_matmul_tflops(device, 8192 if cuda else 1024, torch.bfloat16 if cuda else torch.float32),
        "copy_gbps": copy_gbps(device, 2048 if cuda else 256),
    }
    report["floor_ms"] = report["model_gflops"] / report["peak"]["matmul_tflops"]  # GFLOP / TFLOP/s = ms
    report["clocks_after"] = telemetry.snapshot(device)
    return report


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", required=True, choices=list(BUILTINS))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="fp32", choices=list(common.DTYPES))
    parser.add_argument("--iters", type=int, default=100)
    parser.add_argument("--out", required=True, type=Path)
    args = parser.parse_args(argv)
    common._die_with_parent()  # a killed `sweep calibrate` takes its runner along
    try:
        report = calibrate(args.model, args.device, args.precision, iters=args.iters)
    except common.Unavailable as exc:
        report = {"status": "unavailable", "reason": str(exc)}
    atomic.write_json(args.out, report, indent=1)


if __name__ == "__main__":
    main()
