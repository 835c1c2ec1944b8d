"""The results dataset: one Parquet schema declared once, durable one-row appends, loading with checks."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from sweep.errors import ResultsError

SCHEMA_VERSION = 1

_F = pa.float64()
_S = pa.string()
_I = pa.int32()

# Every column of a result row, in order. Raw samples are kept; statistics are derived by
# sweep.stats.summarize when the row is made, never edited by hand.
SCHEMA = pa.schema(
    [
        ("schema_version", _I),
        ("job_key", _S),
        ("run_id", _S),
        ("matrix", _S),
        ("model", _S),  # builtin name, factory spec or file name
        ("runtime", _S),
        ("model_precision", _S),  # fp32 | fp16 | bf16 | fp32+fp16 | fp32+bf16
        ("amp_dtype", _S),  # fp32 | fp16 | bf16 ("" where not applicable)
        ("enabled_precisions", _S),  # the seed's label, e.g. "fp32+bf16+fp16"; "" where not applicable
        ("compile_mode", _S),  # python-inductor only; "" elsewhere
        ("input_shapes", _S),  # JSON, e.g. "[[3, 512, 512]]"
        ("device", _S),  # cpu | cuda | cuda:N
        ("device_name", _S),
        ("hostname", _S),
        ("status", _S),  # ok | failed | timeout | unavailable | unsupported | compile_failed
        ("reason", _S),  # why, when not ok (stderr tail, runner's reason)
        ("warmup", _I),
        ("iters", _I),
        ("seed", _I),
        ("latency_ms_mean", _F),  # host clock per iteration (around a synchronize on CUDA)
        ("latency_ms_std", _F),
        ("latency_ms_p50", _F),
        ("latency_ms_p90", _F),
        ("latency_ms_p99", _F),
        ("latency_ms_min", _F),
        ("latency_ms_cv", _F),
        ("noisy", pa.bool_()),  # cv above sweep.stats.NOISY_CV
        ("samples_ms", pa.list_(_F)),
        ("cuda_ms_mean", _F),  # CUDA events per iteration (null on CPU)
        ("cuda_ms_p50", _F),
        ("samples_cuda_ms", pa.list_(_F)),
        ("peak_mem_mb", _F),  # CUDA max_memory_allocated; CPU peak RSS of the runner process
        ("reserved_mem_mb", _F),
        ("nvml_mem_mb", _F),
        ("rel_err", _F),  # relative L2 error of the outputs vs the fp32 eager reference
        ("rel_err_sorted", _F),  # same on each output's sorted values: blind to reordered near-ties (top-k)
        ("max_abs_err", _F),
        ("gflops", _F),  # forward FLOPs of the model at these shapes (null when unknown)
        ("load_s", _F),
        ("compile_s", _F),  # compile time, kept out of the latency samples
        ("wall_s", _F),  # the whole job, subprocess start to result
        ("variant_key", _S),  # compiled artifact the job ran ("" for eager)
        ("torch_version", _S),
        ("torch_tensorrt_version", _S),
        ("tensorrt_version", _S),
        ("cuda_version", _S),
        ("driver_version", _S),
        ("telemetry", _S),  # JSON: NVML clocks, temperature, power before/after the timed loop
        ("extra", _S),  # JSON: runtime-specific facts
        ("job", _S),  # JSON: the full job as run, to reproduce it
        ("started_at", pa.timestamp("us", tz="UTC")),
        ("finished_at", pa.timestamp("us", tz="UTC")),
    ],
    metadata={b"sweep_schema_version": str(SCHEMA_VERSION).encode()},
)

COLUMNS = tuple(SCHEMA.names)


def _table(rows: Iterable[Mapping[str, Any]]) -> pa.Table:
    rows = list(rows)
    unknown = {k for row in rows for k in row} - set(COLUMNS)
    if unknown:
        raise ValueError(f"row has columns not in the schema: {sorted(unknown)}")
    data = {name: [row.get(name) for row in rows] for name in COLUMNS}
    data["schema_version"] = [SCHEMA_VERSION] * len(rows)
    return pa.Table.from_pydict(data, schema=SCHEMA)


def append_row(results_dir: Path, row: Mapping[str, Any]) -> Path:
    """Write one row as its own Parquet file, durably, before the sweep moves on.

    Written to a temporary file in the same folder, fsynced, then renamed into place: a reader or a
    crash sees the whole row or nothing. The folder entry is fsynced too so the rename survives power loss.
    """
    results_dir.mkdir(parents=True, exist_ok=True)
    table = _table([row])
    stamp = str(row.get("started_at") or "").replace(":", "").replace(" ", "T").replace("+0000", "")
    final = results_dir / f"row-{row['run_id']}-{stamp[:17]}-{row['job_key'][:16]}.parquet"
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".parquet", dir=results_dir)
    try:
        with os.fdopen(fd, "wb") as fh:
            pq.write_table(table, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, final)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(results_dir, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return final


def _read_one(path: Path) -> pa.Table:
    try:
        meta = pq.read_schema(path).metadata or {}
    except (pa.ArrowInvalid, OSError) as exc:
        raise ResultsError(f"{path}: not a readable Parquet file ({exc}); move it out of the results folder") from exc
    version = meta.get(b"sweep_schema_version")
    if version is None:
        raise ResultsError(f"{path}: no sweep_schema_version in its metadata; it was not written by sweep")
    if version.decode(errors="replace") != str(SCHEMA_VERSION):
        raise ResultsError(
            f"{path}: schema_version {version.decode(errors='replace')}, this sweep reads {SCHEMA_VERSION}; "
            "use the sweep release that wrote it, or keep it in another --results folder"
        )
    try:
        return pq.read_table(path, schema=SCHEMA)
    except (pa.ArrowInvalid, pa.ArrowTypeError, KeyError) as exc:
        raise ResultsError(f"{path}: its columns do not match schema_version {SCHEMA_VERSION} ({exc}); "
                           "move it out of the results folder") from exc


def row_files(results_dir: Path) -> list[Path]:
    """All row files under the folder (recursively: a results/ tree may hold one folder per machine)."""
    if not results_dir.exists():
        return []
    return sorted(p for p in results_dir.rglob("*.parquet") if not p.name.startswith(".tmp-"))


def load(results_dir: Path) -> pd.DataFrame:
    """Every row under the folder as one DataFrame with the schema's columns (empty if none)."""
    files = row_files(results_dir)
    if not files:
        return SCHEMA.empty_table().to_pandas()
    table = pa.concat_tables([_read_one(p) for p in files])
    return table.to_pandas().sort_values(["started_at", "job_key"], kind="stable").reset_index(drop=True)
