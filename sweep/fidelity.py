"""Fidelity: each job's outputs against an fp32 eager reference of the same model and inputs."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch


def compare(outputs_path: Path, reference_path: Path) -> dict[str, float]:
    """Relative L2 error and max abs error over the floating outputs, the share of integer outputs
    (e.g. class labels) that differ, and `rel_err_sorted`: the relative L2 error between each output's
    sorted values. A detector's top-k lists reorder when near-tied scores move by rounding, which makes
    the element-wise error large even for a faithful variant; the sorted error shows whether the values
    themselves agree.

    Inputs are the contract's seeded draws, so both files hold outputs of the same model on the same
    data. Outputs of different structure (count or shapes) give an infinite error: a wrong variant
    must show, never hide.
    """
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
    """The job.json of the fp32 eager reference for a job: same model, inputs, device and seed."""
    return {
        **job_doc,
        "runtime": "python-eager",
        "reference": True,
        "model_precision": "fp32",
        "amp_dtype": "fp32",
        "enabled_precisions": [],
        "compile_mode": "",
        "artifact": None,
        "warmup": 1,
        "iters": 1,
    }
