"""Results query for report, compare and plot: latest row per (job, process) per machine, per-job aggregates."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from sweep import host, stats
from sweep.schema import NOT_LAUNCHED

Row = dict[str, Any]
OK = "ok"

# A machine: what the numbers of one table may come from. Rows of two machines are never aggregated or
# ranked together; a report or a comparison says which machine each figure is from.
MACHINE_COLUMNS = ("device_name", "torch_version", "torch_tensorrt_version", "tensorrt_version")
REQUIRED = ("job_key", "runtime", "status", "started_at")
NOT_RECORDED = "not measured: the row records no {} and no reason (written before schema v2 or by an old runner)"
TEXT_COLUMNS = (
    "job_key", "run_id", "matrix", "model", "model_key", "runtime", "model_precision", "amp_dtype",
    "compile_mode", "tf32", "device", "device_name", "hostname", "status", "reason", "variant_key",
    "torch_version", "torch_tensorrt_version", "tensorrt_version", "cuda_version", "driver_version",
    "fidelity", "fidelity_precision", "fidelity_measure", "fidelity_note", "profile_note", "energy_note",
)  # fmt: skip
NUMBER_COLUMNS = (
    "latency_ms_mean", "latency_ms_std", "latency_ms_p50", "latency_ms_p90", "latency_ms_p99", "latency_ms_min",
    "latency_ms_cv", "kernel_busy_ms", "kernels_per_forward", "peak_mem_mb", "energy_mj_per_forward",
    "mean_power_w", "fidelity_tolerance", "fidelity_error", "rel_err", "rel_err_sorted", "max_abs_err", "gflops",
    "compile_s",
)  # fmt: skip
# Settings that tell the variants of one workload apart, in the order a label names them.
SETTING_COLUMNS = ("runtime", "model_precision", "amp_dtype", "enabled_precisions", "compile_mode", "cuda_graphs",
                   "tf32")
EAGER = "python-eager"
# Extended tables and the plot list Python runtimes before C++ ones, plainest first; others follow by name.
RUNTIME_ORDER = ("python-eager", "python-inductor", "python-aoti", "python-trt", "cpp-torchscript", "cpp-aoti",
                 "cpp-trt")


def number(x: object) -> float | None:
    """A finite float, or None for None / NaN / pd.NA / anything that is not a number."""
    if x is None or isinstance(x, bool):
        return None
    try:
        value = float(x)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _plain(value: Any) -> Any:
    """Parquet lists come back as numpy arrays (of arrays): plain Python lists for display and JSON."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _shapes_text(value: Any) -> str:
    """input_shapes as the tables print them, `[[1, 3, 64, 64]]`, from v2's list<list<int>> or v1's JSON."""
    value = _plain(value)
    if isinstance(value, list):
        return json.dumps([[int(d) for d in shape] for shape in value])
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)


def _precisions_text(value: Any) -> str:
    """enabled_precisions as the seed's label (`fp32+bf16+fp16`), from v2's list<string> or v1's label."""
    value = _plain(value)
    if isinstance(value, list):
        return "+".join(str(v) for v in value)
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)


def _flag(value: Any) -> bool:
    return bool(value) if isinstance(value, (bool, int)) or hasattr(value, "item") else False


def _samples(value: Any) -> list[float]:
    value = _plain(value)
    if not isinstance(value, list):
        return []
    return [v for v in (number(x) for x in value) if v is not None]


def _model_identity(row: Mapping[str, Any]) -> str:
    """model_key (v2), else the model part of v1's `job` JSON: two models that share a name but not their
    options are different workloads."""
    if row.get("model_key"):
        return str(row["model_key"])
    try:
        return json.dumps(json.loads(row.get("job") or "").get("model"), sort_keys=True)
    except (TypeError, ValueError, AttributeError):
        return ""


def clean(df: pd.DataFrame) -> list[Row]:
    """Every row as a plain dict ordered by started_at: text never null, lists as Python lists, the display
    forms of input_shapes / enabled_precisions, and columns a row file lacks (older schemas) as missing."""
    missing = [c for c in REQUIRED if c not in df.columns]
    if missing:
        raise ValueError(f"DataFrame lacks result columns {missing}; render what sweep.store.load returns")
    rows: list[Row] = []
    for record in df.to_dict("records"):
        row: Row = dict(record)
        for name in TEXT_COLUMNS:
            value = row.get(name)
            row[name] = "" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)
        for name in NUMBER_COLUMNS:
            row[name] = number(row.get(name))
        row["input_shapes"] = _shapes_text(row.get("input_shapes"))
        row["enabled_precisions"] = _precisions_text(row.get("enabled_precisions"))
        row["samples_ms"] = _samples(row.get("samples_ms"))
        row["cuda_graphs"] = _flag(row.get("cuda_graphs"))
        row["noisy"] = row.get("noisy") if isinstance(row.get("noisy"), bool) else None
        process, processes = number(row.get("process")), number(row.get("processes"))
        row["process"] = int(process) if process is not None else 0
        row["processes"] = int(processes) if processes is not None else 1
        row["model_identity"] = _model_identity(row)
        stamp = pd.to_datetime(row.get("started_at"), utc=True)
        row["started_at"] = stamp
        figures = host.figures(row.get("extra"))
        row["cpu_canary_ms"] = host.canaries(figures)
        row["host_busy"] = host.busy(host.other_cpus_busy(figures))
        rows.append(row)
    mark_slowed(rows)
    return sorted(rows, key=when)


def mark_slowed(rows: Sequence[Row]) -> None:
    """Each row's host_slowed: its slower CPU canary against its machine's reference (canary_reference_ms, the
    lowest canary of any row of that machine in `rows`; sweep.host.SLOWED); None for rows without canaries
    (unknown, never flagged)."""
    readings: dict[tuple[str, ...], list[float]] = {}
    for row in rows:
        readings.setdefault(machine_of(row), []).extend(row["cpu_canary_ms"])
    references = {machine: host.reference(values) for machine, values in readings.items()}
    for row in rows:
        row["canary_reference_ms"] = references[machine_of(row)]
        row["host_slowed"] = host.slowed(row["cpu_canary_ms"], row["canary_reference_ms"])


def when(row: Mapping[str, Any]) -> float:
    stamp = row.get("started_at")
    return stamp.timestamp() if isinstance(stamp, pd.Timestamp) and not pd.isna(stamp) else -math.inf


def is_ok(row: Mapping[str, Any]) -> bool:
    return bool(row.get("status") == OK)


def launched(row: Mapping[str, Any]) -> bool:
    """Whether the row's process ran (or at least was started): not a pair of a job whose variant failed to
    compile, whose rows (one per planned process, alike) a job counts as one failure (sweep.schema.NOT_LAUNCHED)."""
    return row.get("status") not in NOT_LAUNCHED


def machine_of(row: Mapping[str, Any]) -> tuple[str, ...]:
    return tuple(str(row.get(c) or "") for c in MACHINE_COLUMNS)


def machine_title(key: Sequence[str]) -> str:
    device, torch_v, trt_v, tensorrt_v = key
    parts = [device or "unknown device", f"torch {torch_v or '?'}"]
    parts += [f"torch-tensorrt {trt_v}"] if trt_v else []
    parts += [f"TensorRT {tensorrt_v}"] if tensorrt_v else []
    return " · ".join(parts)


def runtime_rank(runtime: str) -> tuple[int, str]:
    return (RUNTIME_ORDER.index(runtime) if runtime in RUNTIME_ORDER else len(RUNTIME_ORDER), runtime)


def variant_label(row: Mapping[str, Any]) -> str:
    """A variant in words: `python-eager · fp32 · amp fp16 · CUDA graphs`."""
    parts = [str(row["runtime"]), str(row["model_precision"])]
    parts += [f"amp {row['amp_dtype']}"] if row.get("amp_dtype") not in ("", "fp32", None) else []
    parts += [f"trt {row['enabled_precisions']}"] if row.get("enabled_precisions") else []
    parts += [str(row["compile_mode"])] if row.get("compile_mode") else []
    parts += ["CUDA graphs"] if row.get("cuda_graphs") else []
    parts += [f"TF32 {row['tf32']}"] if row.get("tf32") else []
    return " · ".join(parts)


# ---------------------------------------------------------------- latest row per (job, process)


@dataclass(frozen=True)
class Duplicate:
    """More than one row for one (job_key, process) on one machine: a second sweep into the same folder, or
    a --force rerun. The report names them (issue 15.1); the latest ok row (else the latest) is used."""

    machine: tuple[str, ...]
    job_key: str
    process: int
    label: str
    run_ids: tuple[str, ...]
    shown_run: str


def latest(rows: Iterable[Row]) -> tuple[list[Row], list[Duplicate]]:
    """One row per (machine, job_key, process): the latest ok row, or the latest row when none is ok; and
    the pairs that had more than one row."""
    chosen: dict[tuple[Any, ...], Row] = {}
    count: dict[tuple[Any, ...], list[Row]] = {}
    for row in sorted(rows, key=when):
        key = (machine_of(row), row["job_key"], row["process"])
        count.setdefault(key, []).append(row)
        if key not in chosen or is_ok(row) or not is_ok(chosen[key]):
            chosen[key] = row
    duplicates = [
        Duplicate(key[0], key[1], key[2], variant_label(chosen[key]),
                  tuple(dict.fromkeys(r["run_id"] for r in group)), chosen[key]["run_id"])
        for key, group in count.items()
        if len(group) > 1
    ]
    return sorted(chosen.values(), key=when), duplicates


# ---------------------------------------------------------------- per-job aggregates over processes


def _median(values: Iterable[float | None]) -> float | None:
    present = sorted(v for v in values if v is not None)
    return stats.percentile(present, 50) if present else None


def _largest(values: Iterable[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return max(present) if present else None


def _first_text(values: Iterable[str]) -> str:
    return next((v for v in values if v), "")


@dataclass
class JobResult:
    """One job on one machine: its latest row per process, and the figures over those processes."""

    machine: tuple[str, ...]
    job_key: str
    rows: list[Row]  # latest row per process, by process
    row: Row = field(init=False)  # the settings, the status and the reason the job is shown with
    ok_rows: list[Row] = field(init=False)
    planned: int = field(init=False)  # processes the matrix asked for (the largest any row records)
    p50s: list[float] = field(init=False)  # one per ok process
    samples: list[float] = field(init=False)  # every sample of every ok process
    pooled: dict[str, float | None] = field(init=False)  # stats.summarize over all samples (the seed's mean ± std)
    spread: stats.Spread | None = field(init=False)

    def __post_init__(self) -> None:
        self.rows = sorted(self.rows, key=lambda r: (r["process"], when(r)))
        self.ok_rows = [r for r in self.rows if is_ok(r)]
        self.row = max(self.ok_rows or self.rows, key=when)
        self.planned = max([r["processes"] for r in self.rows] + [len(self.rows)])
        self.p50s = [p for p in (r["latency_ms_p50"] for r in self.ok_rows) if p is not None]
        self.samples = [x for r in self.ok_rows for x in r["samples_ms"]]
        if self.samples:
            self.pooled = stats.summarize(self.samples)
        elif len(self.ok_rows) == 1:  # a row stored without its samples: its own figures
            only = self.ok_rows[0]
            self.pooled = {name: only[f"latency_ms_{name}"] for name in stats.STAT_NAMES}
        else:
            self.pooled = {name: None for name in stats.STAT_NAMES}
        self.spread = stats.spread(self.p50s)

    def __getitem__(self, name: str) -> Any:
        """The settings of the job (every process shares them)."""
        return self.row[name]

    @property
    def ok(self) -> bool:
        return bool(self.ok_rows)

    @property
    def status(self) -> str:
        return OK if self.ok else str(self.row["status"] or "unknown")

    @property
    def reason(self) -> str:
        return "" if self.ok else str(self.row["reason"])

    @property
    def failed_processes(self) -> list[Row]:
        return [r for r in self.rows if not is_ok(r)]

    @property
    def launched_rows(self) -> list[Row]:
        """The latest row of each process that ran: not those of pairs that never launched (NOT_LAUNCHED)."""
        return [r for r in self.rows if launched(r)]

    @property
    def not_launched(self) -> bool:
        """Some process of the job never launched: its variant failed to compile (one failure, however many rows)."""
        return any(not launched(r) for r in self.rows)

    @property
    def p50(self) -> float | None:
        """The job's p50: the median of its process p50s."""
        return self.spread.median if self.spread else None

    @property
    def noisy(self) -> bool:
        cv = self.pooled.get("cv")
        return any(r["noisy"] for r in self.ok_rows) or (cv is not None and cv > stats.NOISY_CV)

    @property
    def host_slowed(self) -> host.Count | None:
        """Of the ok processes with CPU canaries, how many ran on a slowed host core (an indicator: a flagged
        process may still have run fast). The figures above keep every process: none is dropped or reweighted."""
        return host.count(r.get("host_slowed") for r in self.ok_rows)

    @property
    def canary_reference_ms(self) -> float | None:
        """The machine's reference CPU canary the processes were judged against (None without canaries)."""
        return _first_number(r.get("canary_reference_ms") for r in self.rows)

    @property
    def host_busy(self) -> host.Count | None:
        """Of the ok processes with the figure, how many had other work on the machine during the timed loop."""
        return host.count(r.get("host_busy") for r in self.ok_rows)

    @property
    def hosts(self) -> list[str]:
        return list(dict.fromkeys(r["hostname"] for r in self.rows if r["hostname"]))

    # -- fidelity: a job fails when any of its processes failed; passes when every judged process passed
    @property
    def fidelity(self) -> str:
        verdicts = {r["fidelity"] for r in self.ok_rows if r["fidelity"]}
        return "fail" if "fail" in verdicts else "pass" if "pass" in verdicts else ""

    @property
    def fidelity_note(self) -> str:
        """Why there is no verdict (empty when there is one)."""
        if self.fidelity or not self.ok:
            return ""
        return _first_text(r["fidelity_note"] for r in self.ok_rows) or "no verdict recorded and no reason given"

    def judged(self, name: str) -> float | None:
        """The worst (largest) figure over the processes: fidelity_error, rel_err, rel_err_sorted, ..."""
        return _largest(r[name] for r in self.ok_rows)

    @property
    def fidelity_tolerance(self) -> float | None:
        return _first_number(r["fidelity_tolerance"] for r in self.ok_rows)

    @property
    def fidelity_precision(self) -> str:
        return _first_text(r["fidelity_precision"] for r in self.ok_rows)

    # -- the rest of the figures
    @property
    def kernel_busy_ms(self) -> float | None:
        return _median(r["kernel_busy_ms"] for r in self.ok_rows)

    @property
    def gpu_busy(self) -> float | None:
        """Kernel-busy time over the p50 (issue 9.4): below stats.LAUNCH_BOUND_BUSY the host decides."""
        busy, p50 = self.kernel_busy_ms, self.p50
        return busy / p50 if busy is not None and p50 else None

    @property
    def launch_bound(self) -> bool:
        busy = self.gpu_busy
        return busy is not None and busy < stats.LAUNCH_BOUND_BUSY

    @property
    def profile_note(self) -> str:
        """Why there is no kernel-busy figure (issue 9.4 says where it is not measured, e.g. C++ rows)."""
        note = _first_text(r["profile_note"] for r in self.ok_rows)
        if note:
            return note
        if str(self.row["runtime"]).startswith("cpp-"):
            return "not measured for C++ runtimes: kernel time is profiled by the Python runners only"
        if not str(self.row["device"]).startswith("cuda"):
            return "not measured: kernel time is profiled on CUDA devices only"
        return NOT_RECORDED.format("kernel profile")

    @property
    def energy_mj(self) -> float | None:
        return _median(r["energy_mj_per_forward"] for r in self.ok_rows)

    @property
    def power_w(self) -> float | None:
        return _median(r["mean_power_w"] for r in self.ok_rows)

    @property
    def energy_note(self) -> str:
        note = _first_text(r["energy_note"] for r in self.ok_rows)
        if note:
            return note
        if not str(self.row["device"]).startswith("cuda"):
            return "not measured: NVML's energy counter is a GPU's"
        return NOT_RECORDED.format("energy figure")

    @property
    def compile_s(self) -> float | None:
        return _largest(r["compile_s"] for r in self.rows)

    @property
    def peak_mem_mb(self) -> float | None:
        return _largest(r["peak_mem_mb"] for r in self.ok_rows)

    @property
    def gflops(self) -> float | None:
        return _first_number(r["gflops"] for r in self.ok_rows)


def _first_number(values: Iterable[float | None]) -> float | None:
    return next((v for v in values if v is not None), None)


def aggregate(rows: Iterable[Row]) -> list[JobResult]:
    """Per (machine, job_key), over the latest row of each process; in order of first row."""
    by_job: dict[tuple[tuple[str, ...], str], list[Row]] = {}
    for row in rows:
        by_job.setdefault((machine_of(row), row["job_key"]), []).append(row)
    return [JobResult(machine, key, group) for (machine, key), group in by_job.items()]


def jobs_of(df: pd.DataFrame) -> tuple[list[JobResult], list[Duplicate], list[Row]]:
    """The whole query: (per-job aggregates, duplicate (job, process) rows, every cleaned row)."""
    everything = clean(df)
    chosen, duplicates = latest(everything)
    return aggregate(chosen), duplicates, everything


def by_machine(jobs: Iterable[JobResult]) -> dict[tuple[str, ...], list[JobResult]]:
    out: dict[tuple[str, ...], list[JobResult]] = {}
    for job in jobs:
        out.setdefault(job.machine, []).append(job)
    return out


def groups(items: Iterable[Any], columns: Sequence[str]) -> dict[tuple[Any, ...], list[Any]]:
    """Rows or jobs by the values of `columns`, groups in order of first appearance."""
    out: dict[tuple[Any, ...], list[Any]] = {}
    for item in items:
        out.setdefault(tuple(item[c] for c in columns), []).append(item)
    return out


# ---------------------------------------------------------------- workloads and baselines


WORKLOAD_COLUMNS = ("model", "input_shapes", "model_identity")


def is_eager_fp32(job: JobResult) -> bool:
    """Eager fp32 as users know it: fp32 weights, no autocast, no graphs."""
    return (
        job["runtime"] == EAGER
        and job["model_precision"] == "fp32"
        and job["amp_dtype"] in ("", "fp32")
        and not job["cuda_graphs"]
    )


def baseline(jobs: Sequence[JobResult]) -> JobResult | None:
    """Eager fp32 of these jobs (one machine, one sweep, one workload), ok: PyTorch's default TF32 first,
    then TF32 off, then on."""
    candidates = [j for j in jobs if j.ok and j.p50 is not None and is_eager_fp32(j)]
    order = {"": 0, "off": 1, "on": 2}
    return min(candidates, key=lambda j: (order.get(j["tf32"], 3), when(j.row)), default=None)


def significance(base: JobResult, new: JobResult) -> stats.Significance:
    return stats.significance(base.p50s, new.p50s, base.samples, new.samples)


def tied(a: JobResult, b: JobResult) -> bool:
    if a.spread is None or b.spread is None:
        return True
    return stats.tied(a.spread, b.spread, a.p50s, b.p50s, a.samples, b.samples)
