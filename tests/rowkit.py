"""Result rows for report/compare tests: complete rows with schema v2's column names, written through sweep.store."""

from __future__ import annotations

import hashlib
import json
import random
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pandas as pd

from sweep import stats, store

T0 = datetime(2024, 10, 31, 10, 43, 31, tzinfo=timezone.utc)
GPU = "NVIDIA GeForce RTX 4060 Ti"
SETTINGS = ("model", "input_shapes", "runtime", "model_precision", "amp_dtype", "enabled_precisions",
            "compile_mode", "cuda_graphs", "tf32", "device", "iters")


def samples_with(mean: float, std: float, n: int = 100, seed: int = 0) -> list[float]:
    """Samples whose sample mean and std (n-1) are exactly the given figures, up to rounding."""
    rng = random.Random(seed)
    z = [rng.gauss(0.0, 1.0) for _ in range(n)]
    s = stats.summarize(z)
    assert s["mean"] is not None and s["std"] is not None
    return [mean + std * (x - s["mean"]) / s["std"] for x in z]


def make_row(runtime: str = "python-eager", *, started: float = 0, **fields: Any) -> dict[str, Any]:
    """A complete row as the orchestrator writes it (schema v2 names); `fields` override anything.

    `mean`/`std` shape the samples; the job_key hashes the settings only, so the processes and reruns of
    one job share it."""
    row: dict[str, Any] = {
        "schema_version": 2,
        "process": 0,
        "processes": 1,
        "run_id": "run-a",
        "matrix": "rtx4060ti",
        "model": "detector",
        "model_key": "detector-key",
        "runtime": runtime,
        "model_precision": "fp32",
        "amp_dtype": "fp32" if runtime == "python-eager" else "",
        "enabled_precisions": [],
        "compile_mode": "",
        "cuda_graphs": False,
        "tf32": "",
        "input_shapes": [[1, 3, 512, 512]],
        "device": "cuda",
        "device_name": GPU,
        "hostname": "bench-1",
        "status": "ok",
        "reason": "",
        "warmup": 10,
        "iters": 100,
        "seed": 0,
        "peak_mem_mb": 500.0,
        "gflops": 30.0,
        "rel_err": 1.234e-4,
        "fidelity": None,
        "fidelity_note": "",
        "kernel_busy_ms": None,
        "profile_note": "",
        "energy_mj_per_forward": None,
        "mean_power_w": None,
        "energy_note": "",
        "torch_version": "2.5.1",
        "torch_tensorrt_version": "2.5.0",
        "tensorrt_version": "10.3.0",
        "cuda_version": "12.4",
        "driver_version": "550.120",
        "started_at": T0 + timedelta(minutes=started),
        "finished_at": T0 + timedelta(minutes=started, seconds=30),
    }
    mean, std = fields.pop("mean", 10.0), fields.pop("std", 0.1)
    seed = fields.pop("sample_seed", 0)
    row.update(fields)
    if isinstance(row["enabled_precisions"], str):
        row["enabled_precisions"] = row["enabled_precisions"].split("+") if row["enabled_precisions"] else []
    if row["status"] == "ok" and "samples_ms" not in row:
        row["samples_ms"] = samples_with(mean, std, seed=seed)
    if row.get("samples_ms"):
        summary = stats.summarize(row["samples_ms"])
        row.update({f"latency_ms_{k}": v for k, v in summary.items() if f"latency_ms_{k}" not in fields})
        row.setdefault("noisy", summary["cv"] is not None and summary["cv"] > stats.NOISY_CV)
    if "job_key" not in fields:
        identity = repr([row[k] for k in SETTINGS])
        row["job_key"] = hashlib.sha256(identity.encode()).hexdigest()[:20]
    return row


def host_extra(canary_ms: tuple[float, float], other_cpus_busy: float = 0.02, loop_s: float = 1.52) -> str:
    """An `extra` column as runners/common.py bench() writes it: extra.host with the CPU canaries before and
    after the timed loop."""
    host = {"loop_s": loop_s, "thread_cpu_share": 0.998, "other_cpus_busy": other_cpus_busy, "steal_cpus": 0.0,
            "voluntary_switches": 0, "involuntary_switches": 1, "cpu_canary_ms": list(canary_ms)}
    return json.dumps({"host": host, "tf32_note": "kept"}, sort_keys=True)


def processes(n: int, p50s: list[float] | None = None, std: float = 0.05, **fields: Any) -> list[dict[str, Any]]:
    """The n process rows of one job, process p50s as given (default: all 10 ms)."""
    p50s = p50s or [10.0] * n
    rows = []
    for i, p in enumerate(p50s):
        samples = samples_with(p, std, seed=i)
        shift = p - stats.percentile(sorted(samples), 50)
        rows.append(make_row(process=i, processes=n, samples_ms=[x + shift for x in samples],
                             **{"started": i, **fields}))
    return rows


def write_rows(folder: Path, rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Through the real store: one Parquet file per row (as `sweep run` writes them), then load() of the folder."""
    for row in rows:
        store.append_row(folder, row)
    return store.load(folder)

