"""The one builder of job.json (runners/README.md): runner processes, fp32 references and compile steps."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sweep.jobs import Job


def _fidelity_spec(job: Job) -> dict[str, Any]:
    """What the runner compares: the measure and the judged outputs (the tolerance stays with the parent)."""
    outputs = job.fidelity.outputs
    return {"measure": job.fidelity.measure or "elementwise", "outputs": list(outputs) if outputs is not None else None}


def job_document(job: Job, outputs_path: Path, artifact: dict[str, Any] | None, *, process: int = 0,
                 reference: dict[str, str] | None = None) -> dict[str, Any]:
    """job.json for one process of a job.

    `reference` is {"path", "sha256"} of the fp32 reference outputs (sweep.references), or None when there
    is none; the runner compares its outputs with it in-process and writes result.json's `fidelity`.
    """
    cuda = job.device.startswith("cuda")
    return {
        "job_key": job.key,
        "process": process,
        "runtime": job.runtime,
        "device": job.device,
        "model": job.model.to_runner(),
        "inputs": job.model.inputs(),
        "model_precision": job.model_precision,
        "amp_dtype": job.amp_dtype,
        "enabled_precisions": list(job.enabled_precisions),
        "compile_mode": job.compile_mode,
        "cuda_graphs": job.cuda_graphs,
        "tf32": job.tf32,
        "profile_kernels": cuda,
        "warmup": job.warmup,
        "iters": job.iters,
        "seed": job.seed,
        "artifact": artifact,
        "outputs_path": str(outputs_path),
        "reference": dict(reference) if reference else None,
        "fidelity": _fidelity_spec(job) if reference else None,
    }


def reference_document(job: Job, outputs_path: Path) -> dict[str, Any]:
    """job.json of the true-fp32 eager reference for a job: same model, inputs, device and seed."""
    from sweep import fidelity  # its reference_job says what a reference run is (owner: runner)

    return fidelity.reference_job(job_document(job, outputs_path, None))


def compile_document(job: Job, variant: Any, out_dir: Path, work: Path) -> dict[str, Any]:
    """job.json for runners/compile.py: the runner contract plus `variant`, `backend` and `out_dir`.

    The compile's one "sample" is its wall time in ms (iters 1), so the parent's classification of the
    ending applies unchanged. `variant` is a sweep.compile.Variant.
    """
    return {
        **job_document(job, work / "outputs.pt", None),
        "job_key": variant.key,
        "runtime": f"compile-{variant.backend}",
        "amp_dtype": "",
        "enabled_precisions": list(variant.enabled_precisions),
        "compile_mode": "",
        "cuda_graphs": False,
        "tf32": variant.tf32,
        "profile_kernels": False,
        "warmup": 0,
        "iters": 1,
        "backend": variant.backend,
        "variant": variant.identity(),
        "out_dir": str(out_dir),
    }
