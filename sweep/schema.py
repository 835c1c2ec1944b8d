"""The Parquet row schema (v2), its required columns, and the chain of pure steps that upgrade older rows."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pyarrow as pa

from sweep.jobs import canonical_key

SCHEMA_VERSION = 2
VERSION_KEY = b"sweep_schema_version"  # key-value metadata of every row file: the version its rows were written in

_F = pa.float64()
_S = pa.string()
_I = pa.int32()
_B = pa.bool_()

# NVML readings around the timed loop (sweep.telemetry.snapshot); every field null where not read.
TELEMETRY_READINGS = ("sm_clock_mhz", "mem_clock_mhz", "temperature_c", "power_w", "utilization_pct",
                      "device_mem_used_mb")
_SNAPSHOT = pa.struct([(name, _F) for name in TELEMETRY_READINGS])
TELEMETRY = pa.struct([("before", _SNAPSHOT), ("after", _SNAPSHOT)])

# Every column of a result row, in order (TEAM.md, "Parquet schema v2"). Raw samples are kept; statistics are
# derived by sweep.stats.summarize when the row is made. "" in a text column means "does not apply"; null
# means "not known / not measured".
SCHEMA = pa.schema(
    [
        ("schema_version", _I),
        ("job_key", _S),
        ("process", _I),  # which fresh process of the job (0..processes-1)
        ("processes", _I),  # how many the sweep planned
        ("run_id", _S),
        ("matrix", _S),
        ("model", _S),  # builtin name, factory spec or file name
        ("model_key", _S),  # hash of the model's identity (sweep.jobs.ModelSpec.key)
        ("runtime", _S),
        ("model_precision", _S),  # fp32 | fp16 | bf16 | fp32+fp16 | fp32+bf16
        ("amp_dtype", _S),  # fp32 | fp16 | bf16 ("" where not applicable)
        ("enabled_precisions", pa.list_(_S)),  # TensorRT's, canonical order; [] where not applicable
        ("compile_mode", _S),  # python-inductor only; "" elsewhere
        ("cuda_graphs", _B),
        ("tf32", _S),  # on | off | "" (PyTorch's default)
        ("input_shapes", pa.list_(pa.list_(pa.int64()))),
        ("device", _S),  # cpu | cuda | cuda:N
        ("device_name", _S),
        ("gpu_index", _I),  # physical NVML index (CUDA_VISIBLE_DEVICES resolved)
        ("gpu_uuid", _S),
        ("hostname", _S),
        ("executor", _S),  # local | slurm
        ("slurm_job_id", _S),
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
        ("noisy", _B),  # cv above sweep.stats.NOISY_CV
        ("samples_ms", pa.list_(_F)),
        ("cuda_ms_mean", _F),  # CUDA events per iteration (null on CPU)
        ("cuda_ms_p50", _F),
        ("samples_cuda_ms", pa.list_(_F)),
        ("kernel_busy_ms", _F),  # profiled kernel time per forward
        ("kernels_per_forward", _F),
        ("profile_note", _S),  # why no profile
        ("peak_mem_mb", _F),  # CUDA max_memory_allocated; CPU peak RSS of the runner process
        ("reserved_mem_mb", _F),
        ("nvml_mem_mb", _F),
        ("energy_mj_per_forward", _F),
        ("mean_power_w", _F),
        ("energy_note", _S),  # why no energy figure
        ("fidelity", _S),  # pass | fail | null (no verdict: see fidelity_note)
        ("fidelity_precision", _S),  # fp32 | tf32 | fp16 | bf16: what the tolerance was chosen for
        ("fidelity_tolerance", _F),
        ("fidelity_measure", _S),  # elementwise | sorted
        ("fidelity_error", _F),  # the judged figure (max over judged outputs)
        ("fidelity_note", _S),  # why no verdict
        ("rel_err", _F),  # relative L2 error of the outputs vs the fp32 eager reference
        ("rel_err_sorted", _F),  # same on each output's sorted values: blind to reordered near-ties (top-k)
        ("max_abs_err", _F),
        ("int_mismatch", _F),  # share of integer outputs (labels) that differ
        ("tf32_matmul", _B),  # as run
        ("tf32_cudnn", _B),
        ("num_threads", _I),  # intra-op threads of the runner
        ("gflops", _F),  # forward FLOPs of the model at these shapes (null when unknown)
        ("load_s", _F),
        ("compile_s", _F),  # compile time, kept out of the latency samples
        ("wall_s", _F),  # the whole job, subprocess start to result
        ("variant_key", _S),  # compiled artifact the job ran ("" for eager)
        ("variant_rebuilt", _B),  # the cached variant failed verification and was rebuilt for this job
        ("torch_version", _S),
        ("torch_tensorrt_version", _S),
        ("tensorrt_version", _S),
        ("cuda_version", _S),
        ("driver_version", _S),
        ("python_version", _S),
        ("telemetry", TELEMETRY),  # NVML before/after the timed loop
        ("extra", _S),  # JSON: runtime-specific facts only (the one JSON text column)
        # the runner process's start, no queue or lock wait in it (sweep.orchestrate Orchestrator._row); rows of
        # sweeps before this was so hold when the pair was handed to the executor
        ("started_at", pa.timestamp("us", tz="UTC")),
        ("finished_at", pa.timestamp("us", tz="UTC")),  # when the row was made
    ],
    metadata={VERSION_KEY: str(SCHEMA_VERSION).encode()},
)

# Statuses of rows whose pair never launched: the job's variant failed to compile. The sweep writes such a row for
# each planned process it reaches, as for any pair (every claimed pair gets its row before its claim goes, so
# sweeps sharing a folder see it handled); the rows are alike but for `process` and tell of ONE failure, which
# report and `sweep run` count once per job, never as processes that ran. Resume does not count them as done
# (only ok rows are), so a rerun tries the compile again, once per variant, and a fixed build then runs the job.
NOT_LAUNCHED = ("compile_failed",)
COLUMNS = tuple(SCHEMA.names)
REQUIRED = ("schema_version", "job_key", "process", "run_id", "runtime", "status", "started_at")
JSON_COLUMNS = ("extra",)  # the only columns holding JSON text

# The columns each older version wrote, and which of them a file of that version must have. A file that
# claims a version but carries a column that version never had is damaged (a flipped byte in a column name)
# or foreign, and is refused rather than read with that column silently missing.
V1_COLUMNS = (
    "schema_version", "job_key", "run_id", "matrix", "model", "runtime", "model_precision", "amp_dtype",
    "enabled_precisions", "compile_mode", "input_shapes", "device", "device_name", "hostname", "status", "reason",
    "warmup", "iters", "seed", "latency_ms_mean", "latency_ms_std", "latency_ms_p50", "latency_ms_p90",
    "latency_ms_p99", "latency_ms_min", "latency_ms_cv", "noisy", "samples_ms", "cuda_ms_mean", "cuda_ms_p50",
    "samples_cuda_ms", "peak_mem_mb", "reserved_mem_mb", "nvml_mem_mb", "rel_err", "rel_err_sorted", "max_abs_err",
    "gflops", "load_s", "compile_s", "wall_s", "variant_key", "torch_version", "torch_tensorrt_version",
    "tensorrt_version", "cuda_version", "driver_version", "telemetry", "extra", "job", "started_at", "finished_at",
)
KNOWN_COLUMNS: dict[int, tuple[str, ...]] = {1: V1_COLUMNS, SCHEMA_VERSION: COLUMNS}
REQUIRED_COLUMNS: dict[int, tuple[str, ...]] = {
    1: ("schema_version", "job_key", "run_id", "runtime", "status", "started_at"),
    SCHEMA_VERSION: REQUIRED,
}

Row = dict[str, Any]
Step = Callable[[Row], Row]


class SchemaMismatch(ValueError):
    """A row file that cannot be taken to the current schema; the message is one line without the path."""


def _json(text: object) -> Any:
    if not isinstance(text, str) or not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None


def _snapshot(value: object) -> dict[str, float | None] | None:
    if not isinstance(value, Mapping):
        return None
    out: dict[str, float | None] = {}
    for name in TELEMETRY_READINGS:
        reading = value.get(name)
        out[name] = float(reading) if isinstance(reading, (int, float)) and not isinstance(reading, bool) else None
    return out


def telemetry_struct(value: object) -> dict[str, Any] | None:
    """{before, after} NVML snapshots as the TELEMETRY struct; None when nothing was read (CPU, no NVML)."""
    if not isinstance(value, Mapping) or not value:
        return None
    before, after = _snapshot(value.get("before")), _snapshot(value.get("after"))
    if before is None and after is None:
        return None
    return {"before": before, "after": after}


def _v1_to_v2(row: Row) -> Row:
    """v1 kept telemetry, input_shapes, extra and the whole job as JSON text and enabled_precisions as a label;
    v2 types them, adds processes, CUDA graphs, TF32, executor and fidelity verdicts, and drops `job`."""
    out = {k: v for k, v in row.items() if k != "job"}
    job = _json(row.get("job"))
    model = job.get("model") if isinstance(job, dict) else None
    out["model_key"] = canonical_key(model) if isinstance(model, dict) else None
    label = row.get("enabled_precisions")
    out["enabled_precisions"] = [p for p in label.split("+") if p] if isinstance(label, str) else []
    shapes = _json(row.get("input_shapes"))
    out["input_shapes"] = [[int(d) for d in s] for s in shapes] if isinstance(shapes, list) else None
    out["telemetry"] = telemetry_struct(_json(row.get("telemetry")))
    extra = _json(row.get("extra"))
    extra = dict(extra) if isinstance(extra, dict) else {}
    for name in ("int_mismatch", "tf32_matmul", "tf32_cudnn"):
        out[name] = extra.pop(name, None)
    out["extra"] = json.dumps(extra)
    out.update(process=0, processes=1, cuda_graphs=False, tf32="", executor="local", fidelity=None,
               fidelity_note="row predates fidelity verdicts (schema v1)", schema_version=2)
    return out


# UPGRADES[n] takes a row of version n to version n + 1. A v3 is one more function here and one more
# entry in KNOWN_COLUMNS / REQUIRED_COLUMNS; the steps before it never change.
UPGRADES: dict[int, Step] = {1: _v1_to_v2}


def check_columns(version: int, names: Sequence[str]) -> None:
    """Raise SchemaMismatch unless a file of `version` with these columns can be read and upgraded."""
    if version > SCHEMA_VERSION:
        raise SchemaMismatch(f"schema_version {version} is newer than this sweep reads ({SCHEMA_VERSION}); "
                             "upgrade sweep to read it")
    if version not in KNOWN_COLUMNS:
        raise SchemaMismatch(f"schema_version {version} is not one sweep ever wrote")
    missing = [c for c in REQUIRED_COLUMNS[version] if c not in names]
    if missing:
        raise SchemaMismatch(f"missing required columns {', '.join(missing)} (schema_version {version})")
    unknown = [c for c in names if c not in KNOWN_COLUMNS[version]]
    if unknown:
        raise SchemaMismatch(f"columns {', '.join(unknown)} are not in schema_version {version} (damaged or foreign)")


def upgrade(row: Row, version: int) -> Row:
    """A row of an older (or the current) version as a row of SCHEMA_VERSION, through every step in turn."""
    for step_from in range(version, SCHEMA_VERSION):
        row = UPGRADES[step_from](row)
    return row


def file_version(metadata: Mapping[bytes, bytes] | None) -> int:
    """The schema version a row file declares; SchemaMismatch when it declares none."""
    raw = (metadata or {}).get(VERSION_KEY)
    if raw is None:
        raise SchemaMismatch("no sweep_schema_version in its metadata; it was not written by sweep")
    try:
        return int(raw.decode())
    except (UnicodeDecodeError, ValueError):
        raise SchemaMismatch(f"sweep_schema_version {raw[:20]!r} is not a number") from None
