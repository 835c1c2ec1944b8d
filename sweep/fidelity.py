"""Fidelity verdicts, torch-free: the precision a job computes in, its tolerance, and pass / fail / none.

A job's outputs are compared with a true fp32 reference (TF32 off, same device, same seeded inputs) by
the runner (`runners.fidelity`), which writes result.json's `fidelity` object. This module turns that
object into a verdict:

- The *compute precision* of a job is the lowest precision it computes in: bf16 < fp16 < tf32 < fp32.
  fp16 / bf16 weights, mixed fp32+fp16 / fp32+bf16, autocast, and TensorRT's enabled precisions count.
  TF32 counts on CUDA when the job's tf32 is "on", or "" (PyTorch's default keeps cuDNN convolutions in
  TF32), and for TensorRT's fp32 (its builder allows TF32 by default).
- The *tolerance* is the matrix's override for that precision, else DEFAULT_TOLERANCES.
- The *verdict*: non-finite outputs always fail; no judged figure gives no verdict (with the reason);
  else pass when the judged error is at most the tolerance.

How the defaults were chosen. The judged figure is the largest relative L2 error (float64) over the
judged outputs; for the built-in DINO detectors these are the two-stage encoder's class logits and box
deltas for every token, before any top-k, so rounding moves them a little and never reorders them.
Correct variants of dino-vitdet-b on an H200 (visit A, torch 2.11; enc logits / enc box deltas) landed at:
TF32 1.0e-4 / 9.6e-4, fp16 weights 5.1e-4 / 3.1e-3, autocast fp16 3.9e-4 / 1.1e-3, bf16 weights
3.4e-3 / 2.5e-2, autocast bf16 2.1e-3 / 9.3e-3; fp32 with TF32 off reads 0 against its own reference.
A broken variant (10 % noise on the encoder's weights) landed at 4.2e-2 / 3.2e-1. On the CPU (torch 2.13,
bench/results/fidelity-landing-*-cpu.jsonl) dino-vitdet-b lands at autocast fp16 1.5e-3, fp16 weights
3.4e-3, autocast bf16 1.3e-2, bf16 weights 2.8e-2 (the box deltas are always the worse output), and the
10 %-noise variant at 4.3e-1. Each default sits 3.5-7x above the worst correct landing of its precision,
and the loosest (bf16) sits 3-4x below the 10 %-noise variant, so a faithful variant passes with margin and
that broken one fails at every precision: fp32 1e-4 (room for reordered reductions in compiled fp32
kernels), tf32 5e-3, fp16 2e-2, bf16 1e-1. The limit: 1 % noise on the encoder's weights lands at 4.5e-2,
inside bf16's own rounding budget, so a bf16 verdict cannot tell that from bf16 (fp16 and finer do).
A matrix overrides them with `fidelity: {tolerance: {fp16: 2e-2, ...}}` (top level or per block); the
row records the tolerance it was judged against.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from sweep.runtimes import uses_tensorrt

# Lowest first: a job computes in the lowest precision anything in it uses.
COMPUTE_PRECISIONS = ("bf16", "fp16", "tf32", "fp32")
DEFAULT_TOLERANCES: dict[str, float] = {"fp32": 1e-4, "tf32": 5e-3, "fp16": 2e-2, "bf16": 1e-1}
MEASURES = ("elementwise", "sorted")


def _lowest(precisions: Iterable[str]) -> str:
    found = [p for p in precisions if p in COMPUTE_PRECISIONS]
    return min(found, key=COMPUTE_PRECISIONS.index) if found else "fp32"


def compute_precision(runtime: str, device: str, model_precision: str, amp_dtype: str = "",
                      enabled_precisions: Iterable[str] = (), tf32: str = "") -> str:
    """The lowest precision a job computes in: bf16 < fp16 < tf32 < fp32 (see the module docstring)."""
    used = [p for p in model_precision.split("+") if p in ("fp16", "bf16")]
    if amp_dtype in ("fp16", "bf16"):
        used.append(amp_dtype)
    cuda = device.startswith("cuda")
    enabled = [p for p in enabled_precisions if p in ("fp16", "bf16")]
    used.extend(enabled)
    if cuda and model_precision.split("+")[0] == "fp32":
        if uses_tensorrt(runtime):
            used.append("tf32")  # TensorRT's builder allows TF32 for fp32 layers unless told not to
        elif tf32 != "off":
            used.append("tf32")  # "on", or PyTorch's default (cuDNN convolutions in TF32)
    return _lowest(used)


def tolerance(precision: str, overrides: Mapping[str, float] | Iterable[tuple[str, float]] | None = None) -> float:
    """The matrix's tolerance for this compute precision, else the default."""
    table = dict(overrides.items() if isinstance(overrides, Mapping) else (overrides or ()))
    if precision in table:
        return float(table[precision])
    return DEFAULT_TOLERANCES[precision]


def verdict(fidelity: Mapping[str, Any] | None, tol: float, reason: str = "") -> tuple[str | None, str]:
    """("pass" | "fail" | None, note). None comes with the reason no comparison was possible.

    Non-finite outputs always fail; an infinite error (outputs of another structure) fails; else the judged
    error must be at most the tolerance."""
    if fidelity is None:
        return None, reason or "no fidelity comparison for this row"
    note = str(fidelity.get("note") or "")
    if fidelity.get("finite") is False:
        return "fail", "non-finite outputs (NaN or inf where the reference is finite)"
    error = fidelity.get("error")
    if error is None:
        return None, note or reason or "no judged figure"
    error = float(error)
    if math.isnan(error) or error > tol:
        return "fail", note or f"error {error:.3g} above the tolerance {tol:.3g}"
    return "pass", note


def job_fidelity(job: Any) -> dict[str, Any]:
    """For a Job: its compute precision, tolerance, and the job.json `fidelity` object (measure, outputs).

    `job.fidelity` is a FidelitySpec (tolerance as sorted (precision, value) pairs, measure, outputs) or None."""
    precision = compute_precision(job.runtime, job.device, job.model_precision, job.amp_dtype,
                                  job.enabled_precisions, job.tf32)
    spec = getattr(job, "fidelity", None)
    overrides = getattr(spec, "tolerance", None) or ()
    measure = getattr(spec, "measure", "") or "elementwise"
    outputs = getattr(spec, "outputs", None)
    return {"precision": precision, "tolerance": tolerance(precision, overrides),
            "spec": {"measure": measure, "outputs": list(outputs) if outputs is not None else None}}


def compare(outputs_path: Any, reference_path: Any) -> dict[str, float]:
    """Transitional (until the orchestrator passes the reference in job.json and reads the runner's
    `fidelity` object): the old element-wise comparison over all outputs. torch is imported here only,
    so importing this module stays torch-free."""
    import torch

    out = torch.load(outputs_path, map_location="cpu", weights_only=True)
    ref = torch.load(reference_path, map_location="cpu", weights_only=True)
    if not isinstance(out, (list, tuple)):
        out = [out]
    if len(out) != len(ref) or any(o.shape != r.shape for o, r in zip(out, ref, strict=True)):
        return {"rel_err": math.inf, "rel_err_sorted": math.inf, "max_abs_err": math.inf, "int_mismatch": 1.0}
    num = den = sorted_num = 0.0
    int_diff = int_total = 0
    max_abs = 0.0
    for o, r in zip(out, ref, strict=True):
        if r.is_floating_point():
            o64, r64 = o.double(), r.double()
            if not torch.isfinite(o64).all():
                return {"rel_err": math.inf, "rel_err_sorted": math.inf, "max_abs_err": math.inf,
                        "int_mismatch": 1.0}
            diff = o64 - r64
            num += float(diff.pow(2).sum())
            sorted_num += float((o64.flatten().sort().values - r64.flatten().sort().values).pow(2).sum())
            den += float(r64.pow(2).sum())
            if diff.numel():
                max_abs = max(max_abs, float(diff.abs().max()))
        else:
            int_diff += int((o != r).sum())
            int_total += r.numel()

    def relative(n: float) -> float:
        return math.sqrt(n / den) if den > 0 else (0.0 if n == 0 else math.inf)

    return {"rel_err": relative(num), "rel_err_sorted": relative(sorted_num), "max_abs_err": max_abs,
            "int_mismatch": int_diff / int_total if int_total else 0.0}


def reference_job(job_doc: dict[str, Any]) -> dict[str, Any]:
    """The job.json of the fp32 reference for a job: same model, inputs, device and seed; python-eager in
    true fp32 (tf32 "off"), no graphs, no profiling, nothing to compare with; it counts the model's GFLOPs."""
    return {
        **job_doc,
        "runtime": "python-eager",
        "count_gflops": True,
        "reference": None,
        "fidelity": None,
        "tf32": "off",
        "cuda_graphs": False,
        "profile_kernels": False,
        "model_precision": "fp32",
        "amp_dtype": "fp32",
        "enabled_precisions": [],
        "compile_mode": "",
        "artifact": None,
        "warmup": 1,
        "iters": 1,
    }
