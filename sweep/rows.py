"""make_row(): one job's result.json, its verdicts and where it ran, as one typed row of sweep.schema."""

from __future__ import annotations

import json
import math
import platform
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Protocol

from sweep.execute import Outcome
from sweep.jobs import Job
from sweep.schema import telemetry_struct
from sweep.stats import NOISY_CV, summarize

# The verdict a caller passes in (sweep.fidelity judges; the runner or `python -m runners.fidelity` measures).
VERDICT_COLUMNS = ("fidelity", "fidelity_precision", "fidelity_tolerance", "fidelity_measure", "fidelity_error",
                   "fidelity_note")
ERROR_FIGURES = ("rel_err", "rel_err_sorted", "max_abs_err", "int_mismatch")
# result.json facts that have columns of their own; whatever else a runner puts in `extra` stays there.
OWN_COLUMNS = ("tf32_matmul", "tf32_cudnn", "num_threads")
EXECUTORS = ("local", "slurm")


class MachineFacts(Protocol):
    """What the parent knows of the machine of a device (sweep.orchestrate.Machine, a frozen dataclass)."""

    @property
    def device_name(self) -> str: ...
    @property
    def torch_version(self) -> str: ...
    @property
    def hostname(self) -> str: ...
    @property
    def cuda_version(self) -> str: ...
    @property
    def driver_version(self) -> str: ...
    @property
    def torch_tensorrt_version(self) -> str: ...
    @property
    def tensorrt_version(self) -> str: ...


def _number(value: object) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def _int(value: object) -> int | None:
    number = _number(value)
    return int(number) if number is not None and math.isfinite(number) else None


def _flag(value: object) -> bool | None:
    return value if isinstance(value, bool) else None


def make_row(job: Job, outcome: Outcome, *, run_id: str, machine: MachineFacts, started_at: datetime,
             finished_at: datetime, errors: Mapping[str, Any] | None = None, gflops: float | None = None,
             variant_key: str = "", compile_s: float | None = None, variant_rebuilt: bool = False,
             verdict: Mapping[str, Any] | None = None, process: int = 0, processes: int | None = None,
             gpu_index: int | None = None, gpu_uuid: str = "", executor: str = "local",
             slurm_job_id: str = "", facts: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """One result row: identity, status, raw samples and the statistics derived from them in one place.

    `extra` holds the runner's own facts (ok rows only: a failed runner's result is not trusted) and, in every
    row whatever its status, `facts`: what the parent knows of the run (the CPUs it pinned the runner to, the
    variant's build facts, leftovers it killed), which win over a runner's fact of the same name.

    `errors` are the fidelity figures measured outside the runner (C++ rows: `python -m runners.fidelity`);
    result.json's own `fidelity` object wins when present. `verdict` holds the VERDICT_COLUMNS the caller
    judged (sweep.fidelity); where it gives no note and there is no verdict, the runner's note is kept.
    """
    unknown = set(verdict or {}) - set(VERDICT_COLUMNS)
    if unknown:
        raise ValueError(f"verdict has keys that are not verdict columns: {sorted(unknown)}")
    if executor not in EXECUTORS:
        raise ValueError(f"executor {executor!r} is not one of {EXECUTORS}")
    result = outcome.result if outcome.status == "ok" else {}
    samples = [float(x) for x in result.get("samples_ms", [])]
    cuda_samples = [float(x) for x in result.get("samples_cuda_ms", [])]
    stats = summarize(samples)
    cuda_stats = summarize(cuda_samples)
    cv = stats["cv"]
    extra = dict(result.get("extra") or {})
    # Runners before schema v2 put TF32 facts in extra; they are columns now, wherever they come from.
    own = {name: result.get(name, extra.get(name)) for name in OWN_COLUMNS}
    for name in OWN_COLUMNS:
        extra.pop(name, None)
    parent_note = extra.pop("fidelity", None)  # the orchestrator's "could not compare" reason (pre-v2 path)
    extra.update(facts or {})
    runner_fidelity = result.get("fidelity")
    measured: Mapping[str, Any] = runner_fidelity if isinstance(runner_fidelity, Mapping) else errors or {}
    figures = {name: _number(measured.get(name)) for name in ERROR_FIGURES}
    fidelity: dict[str, Any] = {name: None for name in VERDICT_COLUMNS}
    fidelity["fidelity_error"] = _number(measured.get("error"))
    fidelity["fidelity_note"] = measured.get("note") or (str(parent_note) if parent_note else None)
    fidelity.update({k: v for k, v in (verdict or {}).items() if v is not None or k != "fidelity_note"})
    runner_compile = result.get("compile_s")
    graphs = result.get("cuda_graphs")
    return {
        "job_key": job.key,
        "process": process,
        "processes": job.processes if processes is None else processes,  # planned
        "run_id": run_id,
        "matrix": job.matrix,
        "model": job.model.label,
        "model_key": job.model.key,
        "runtime": job.runtime,
        "model_precision": job.model_precision,
        "amp_dtype": job.amp_dtype,
        "enabled_precisions": list(job.enabled_precisions),
        "compile_mode": job.compile_mode,
        "cuda_graphs": graphs if isinstance(graphs, bool) else job.cuda_graphs,  # as run, else as asked
        "tf32": job.tf32,
        "input_shapes": [[int(d) for d in s] for s in job.model.input_shapes],
        "device": job.device,
        "device_name": machine.device_name,
        "gpu_index": gpu_index,
        "gpu_uuid": gpu_uuid,
        "hostname": machine.hostname,
        "executor": executor,
        "slurm_job_id": slurm_job_id,
        "status": outcome.status,
        "reason": outcome.reason,
        "warmup": job.warmup,
        "iters": job.iters,
        "seed": job.seed,
        **{f"latency_ms_{k}": v for k, v in stats.items()},
        "noisy": bool(cv is not None and cv > NOISY_CV),
        "samples_ms": samples,
        "cuda_ms_mean": cuda_stats["mean"],
        "cuda_ms_p50": cuda_stats["p50"],
        "samples_cuda_ms": cuda_samples,
        "kernel_busy_ms": _number(result.get("kernel_busy_ms")),
        "kernels_per_forward": _number(result.get("kernels_per_forward")),
        "profile_note": result.get("profile_note"),
        "peak_mem_mb": _number(result.get("peak_mem_mb")),
        "reserved_mem_mb": _number(result.get("reserved_mem_mb")),
        "nvml_mem_mb": _number(result.get("nvml_mem_mb")),
        "energy_mj_per_forward": _number(result.get("energy_mj_per_forward")),
        "mean_power_w": _number(result.get("mean_power_w")),
        "energy_note": result.get("energy_note"),
        **fidelity,
        **figures,
        "tf32_matmul": _flag(own["tf32_matmul"]),
        "tf32_cudnn": _flag(own["tf32_cudnn"]),
        "num_threads": _int(own["num_threads"]),
        "gflops": gflops,
        "load_s": _number(result.get("load_s")),
        "compile_s": _number(runner_compile) if runner_compile is not None else compile_s,
        "wall_s": outcome.wall_s,
        "variant_key": variant_key,
        "variant_rebuilt": variant_rebuilt,
        "torch_version": machine.torch_version,
        "torch_tensorrt_version": machine.torch_tensorrt_version,
        "tensorrt_version": machine.tensorrt_version,
        "cuda_version": machine.cuda_version,
        "driver_version": machine.driver_version,
        "python_version": getattr(machine, "python_version", "") or platform.python_version(),
        "telemetry": telemetry_struct(result.get("telemetry")),
        "extra": json.dumps(extra, default=str, sort_keys=True),
        "started_at": started_at,
        "finished_at": finished_at,
    }
