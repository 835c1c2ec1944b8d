"""Rendering: result rows (a DataFrame with sweep.store.COLUMNS) to markdown tables and a latency plot."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa

from sweep.errors import SweepError
from sweep.stats import NOISY_CV
from sweep.store import COLUMNS, SCHEMA

__all__ = ["render", "plot_latency"]

FORMATS = ("md", "myst")
OK = "ok"
DASH = "—"
REASON_CHARS = 200  # footnotes stay one readable line; the head and the tail of a stderr tail both matter
MEMORY_SPREAD = 0.15  # configurations whose peak memory is within this of each other share one figure
MAX_LISTED_RUNS = 8

# What makes two rows "the same configuration" (re-runs of it): the machine and the job's settings,
# not job_key, which also hashes measurement settings (iters) that do not change the table's row.
MACHINE_COLUMNS = ("device_name", "torch_version", "torch_tensorrt_version", "tensorrt_version")
CONFIG_COLUMNS = (
    "model",
    "input_shapes",
    "runtime",
    "model_precision",
    "amp_dtype",
    "enabled_precisions",
    "compile_mode",
    "device",
)
# Extended tables and the plot list Python runtimes before C++ ones, plainest first; others follow by name.
RUNTIME_ORDER = (
    "python-eager",
    "python-inductor",
    "python-aoti",
    "python-trt",
    "cpp-torchscript",
    "cpp-aoti",
    "cpp-trt",
)
_TEXT_COLUMNS = tuple(f.name for f in SCHEMA if pa.types.is_string(f.type))

Row = dict[str, Any]


# ---------------------------------------------------------------- number formatting (the only place)


def _float(x: object) -> float | None:
    """A finite float, or None for None / NaN / pd.NA / anything that is not a number."""
    if x is None or isinstance(x, bool):
        return None
    try:
        value = float(x)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def fmt_fixed(x: object, digits: int = 3) -> str:
    value = _float(x)
    return DASH if value is None else f"{value:.{digits}f}"


def fmt_mean_std(mean: object, std: object) -> str:
    """The seed's latency cell: `66.322 ± 0.927`."""
    m, s = _float(mean), _float(std)
    if m is None:
        return DASH
    return f"{m:.3f}" if s is None else f"{m:.3f} ± {s:.3f}"


def fmt_sig(x: object, sig: int = 3) -> str:
    """`sig` significant digits in plain notation (2.00, 0.0512, 123), never scientific."""
    value = _float(x)
    if value is None:
        return DASH
    if value == 0:
        return "0"
    digits = max(0, sig - 1 - math.floor(math.log10(abs(value))))
    return f"{value:.{digits}f}"


def fmt_sci(x: object) -> str:
    """Errors span decades: `1.2e-04`."""
    value = _float(x)
    return DASH if value is None else f"{value:.1e}"


def fmt_cv(cv: object, noisy: object) -> str:
    """CV in percent, with ⚠ when the row was flagged noisy (or, unflagged, exceeds stats.NOISY_CV)."""
    value = _float(cv)
    if value is None:
        return DASH
    flagged = bool(noisy) if isinstance(noisy, bool) else value > NOISY_CV
    return f"{value * 100:.1f}" + (" ⚠" if flagged else "")


def fmt_memory(mb: float) -> str:
    """The seed's rough figures: `~500MB`, `~770MB`, `~1GB` (MB as torch counts them, 1 GB = 1024 MB)."""
    if mb < 10:
        return f"~{mb:.1f}MB"
    if mb < 100:
        return f"~{mb:.0f}MB"
    if round(mb, -1) < 1000:
        return f"~{round(mb, -1):.0f}MB"
    gb = f"{mb / 1024:.1f}".removesuffix(".0")
    return f"~{gb}GB"


def fmt_tflops(gflops: object, p50_ms: object) -> str:
    """Achieved TFLOP/s = gflops * 1e9 / (p50 / 1e3) / 1e12, which is gflops / p50_ms."""
    work, p50 = _float(gflops), _float(p50_ms)
    if work is None or p50 is None or p50 <= 0:
        return DASH
    return fmt_sig(work / p50)


def one_line(reason: object, limit: int = REASON_CHARS) -> str:
    """A reason fit for a footnote: one line, pipes escaped, head and tail kept when too long."""
    text = " ".join(str(reason or "").split())
    if len(text) > limit:
        half = (limit - 3) // 2
        text = f"{text[:half]} … {text[-half:]}"
    return text.replace("|", "\\|")


def amp_label(amp_dtype: str) -> str:
    """The seed's amp column: `fp32` without autocast, `fp32+fp16` with fp16 autocast."""
    if not amp_dtype:
        return ""
    return "fp32" if amp_dtype == "fp32" else f"fp32+{amp_dtype}"


# ---------------------------------------------------------------- markdown building blocks


@dataclass(frozen=True)
class Column:
    header: str
    cell: Callable[[Row], str]
    min_width: int = 0
    right: bool = False


def markdown_table(columns: Sequence[Column], rows: Sequence[Row]) -> list[str]:
    """Pipe table padded like the seed: each column as wide as its widest cell, header or min_width."""
    body = [[col.cell(row).replace("|", "\\|") for col in columns] for row in rows]
    widths = [max(col.min_width, len(col.header), *(len(r[i]) for r in body)) for i, col in enumerate(columns)]

    def line(cells: Sequence[str]) -> str:
        padded = (c.rjust(w) if col.right else c.ljust(w) for c, w, col in zip(cells, widths, columns, strict=True))
        return "| " + " | ".join(padded) + " |"

    rule = ("-" * (w - 1) + ":" if col.right else "-" * w for w, col in zip(widths, columns, strict=True))
    return [line([col.header for col in columns]), "| " + " | ".join(rule) + " |", *(line(r) for r in body)]


def table_block(
    fmt: str,
    title: str,
    name: str,
    table: list[str],
    note: str | None = None,
    blank_before_close: bool = True,
    blank_after_close: bool = True,
) -> list[str]:
    """A titled table: MyST `{table}` directive with a `:name:` to reference, or a bold title line."""
    if fmt == "myst":
        lines = [f"```{{table}} **{title}**", f":name: {name}", "", *table]
        lines += ["", "```"] if blank_before_close else ["```"]
        if note:
            lines += ["", note] if blank_after_close else [note]
        return lines
    lines = [f"**{title}**", "", *table]
    return lines + ["", note] if note else lines


def join_words(items: Sequence[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def memory_line(entries: Sequence[tuple[str, float]]) -> str | None:
    """The seed's memory sentence: one figure for the configurations within MEMORY_SPREAD of each other
    (the largest such cluster), then the exceptions by name: `... ~500MB except for fp32+fp32 which is ~770MB.`
    """
    if not entries:
        return None
    values = sorted(v for _, v in entries)

    def members(low: float) -> list[tuple[str, float]]:
        return [(k, v) for k, v in entries if low <= v <= low * (1 + MEMORY_SPREAD)]

    main = max((members(low) for low in values), key=len)  # max keeps the first (lowest) of equal clusters
    text = f"Max memory usage for all configurations is {fmt_memory(max(v for _, v in main))}"
    others = [f"{k} which is {fmt_memory(v)}" for k, v in entries if (k, v) not in main]
    return text + (f" except for {join_words(others)}." if others else ".")


class Footnotes:
    """Reasons of rows that are not ok, numbered in order of first use; the same reason shares a number."""

    def __init__(self) -> None:
        self._numbers: dict[str, int] = {}

    def status(self, row: Row) -> str:
        status = row["status"] or "unknown"
        text = one_line(row["reason"])
        if not text:
            return status
        number = self._numbers.setdefault(text, len(self._numbers) + 1)
        return f"{status}[^{number}]"

    def lines(self) -> list[str]:
        return [f"[^{n}]: {text}" for text, n in self._numbers.items()]


# ---------------------------------------------------------------- rows: cleaning, re-runs, ordering


def _when(row: Row) -> float:
    stamp = row.get("started_at")
    return stamp.timestamp() if isinstance(stamp, pd.Timestamp) and not pd.isna(stamp) else -math.inf


def is_ok(row: Row) -> bool:
    return bool(row["status"] == OK)


def clean(df: pd.DataFrame) -> list[Row]:
    """Every row as a dict with text columns never null, ordered by started_at."""
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"DataFrame lacks result columns {missing}; render what sweep.store.load returns")
    if df.empty:
        return []
    frame = df[list(COLUMNS)].copy()
    for name in _TEXT_COLUMNS:
        frame[name] = frame[name].astype(object).where(frame[name].notna(), "").astype(str)
    # Schema v2 types these as lists; the tables group and print them as the v1 text did.
    frame["input_shapes"] = [shapes_text(v) for v in frame["input_shapes"]]
    frame["enabled_precisions"] = ["+".join(v) if _is_list(v) else "" for v in frame["enabled_precisions"]]
    frame["started_at"] = pd.to_datetime(frame["started_at"], utc=True)
    return sorted(frame.to_dict("records"), key=_when)


def _is_list(value: object) -> bool:
    return isinstance(value, (list, tuple)) or hasattr(value, "tolist")


def shapes_text(value: object) -> str:
    """input_shapes as the tables print them: `[[3, 512, 512]]` ("" when unknown)."""
    if not _is_list(value):
        return ""
    return json.dumps([[int(d) for d in shape] for shape in value])  # type: ignore[union-attr]


def model_identity(row: Row) -> str:
    """The model part of the job's identity (options, weights, file hashes): two models that share a name
    but not their options are different configurations, never re-runs of one another."""
    return str(row["model_key"] or "")


def latest(rows: Iterable[Row]) -> list[Row]:
    """One row per configuration: the latest ok row of its re-runs, or the latest row when none is ok."""
    chosen: dict[tuple[str, ...], Row] = {}
    for row in sorted(rows, key=_when):
        key = (*(row[c] for c in MACHINE_COLUMNS + CONFIG_COLUMNS), model_identity(row))
        if key not in chosen or is_ok(row) or not is_ok(chosen[key]):
            chosen[key] = row
    return sorted(chosen.values(), key=_when)


def latency_rank(row: Row) -> tuple[bool, float, str, str, str, str]:
    """Fastest first, rows that are not ok last; ties broken by the settings so the order is total.

    The seed's tables are all in ascending mean latency, and that order answers the question the tables
    exist for (which setting is fastest) independently of file or matrix order."""
    mean = _float(row["latency_ms_mean"]) if is_ok(row) else None
    settings = (row["model_precision"], row["amp_dtype"], row["enabled_precisions"], row["compile_mode"])
    return (mean is None, math.inf if mean is None else mean, *settings)


def runtime_rank(runtime: str) -> tuple[int, str]:
    return (RUNTIME_ORDER.index(runtime) if runtime in RUNTIME_ORDER else len(RUNTIME_ORDER), runtime)


def groups(rows: Iterable[Row], columns: Sequence[str]) -> dict[tuple[str, ...], list[Row]]:
    """Rows by the values of `columns`, groups in order of first appearance."""
    out: dict[tuple[str, ...], list[Row]] = {}
    for row in rows:
        out.setdefault(tuple(row[c] for c in columns), []).append(row)
    return out


def plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def unique(values: Iterable[str]) -> list[str]:
    return [v for v in dict.fromkeys(values) if v]


# ---------------------------------------------------------------- sections


def machine_title(key: tuple[str, ...]) -> str:
    device, torch_v, trt_v, tensorrt_v = key
    parts = [device or "unknown device", f"torch {torch_v or '?'}"]
    parts += [f"torch-tensorrt {trt_v}"] if trt_v else []
    parts += [f"TensorRT {tensorrt_v}"] if tensorrt_v else []
    return " · ".join(parts)


def _date(stamp: object) -> str:
    return stamp.strftime("%Y-%m-%d") if isinstance(stamp, pd.Timestamp) and not pd.isna(stamp) else "?"


def _code_list(values: Sequence[str], limit: int = MAX_LISTED_RUNS) -> str:
    shown = ", ".join(f"`{v}`" for v in values[:limit])
    return shown + (f" and {len(values) - limit} more" if len(values) > limit else "")


def header(all_rows: list[Row], shown: dict[tuple[str, ...], list[Row]]) -> list[str]:
    """Which machines and software the numbers come from, and which matrices / runs / dates."""
    lines = ["# Benchmark results", "", "Measured on:", ""]
    everything = groups(all_rows, MACHINE_COLUMNS)
    for key, rows in shown.items():
        raw = everything[key]
        cuda, driver = unique(r["cuda_version"] for r in raw), unique(r["driver_version"] for r in raw)
        hosts = unique(r["hostname"] for r in raw)
        facts = [f"CUDA {', '.join(cuda)}"] if cuda else []
        facts += [f"driver {', '.join(driver)}"] if driver else []
        facts += [f"host {', '.join(hosts)}"] if hosts else []
        first, last = _date(raw[0]["started_at"]), _date(raw[-1]["started_at"])
        dates = first if first == last else f"{first} to {last}"
        lines.append(
            f"- **{machine_title(key)}**"
            + "".join(f" · {f}" for f in facts)
            + f": matrix {_code_list(unique(r['matrix'] for r in raw)) or '?'};"
            + f" runs {_code_list(unique(r['run_id'] for r in raw)) or '?'}; {dates};"
            + f" {plural(len(rows), 'configuration')} from {plural(len(raw), 'row')}."
        )
    return lines


@dataclass(frozen=True)
class SeedTable:
    """One of the hand-made tables of the seed document; its blank lines are copied byte for byte
    (the seed's three blocks differ there), so that the seed's readers find the very same text."""

    runtime: str
    title: str
    name: str
    setting: str  # header of the second column
    blank_before_close: bool
    blank_after_close: bool


SEED_TABLES = (
    SeedTable("python-eager", "Python Runtime, no TensorRT", "py_notrt", "amp_dtype", True, True),
    SeedTable("python-trt", "Python Runtime, with TensorRT", "py_trt", "trt.enabled_precisions", True, False),
    SeedTable("cpp-trt", "C++ Runtime, with TensorRT", "cpp_trt", "trt.enabled_precisions", False, True),
)
SEED_WIDTHS = (17, 22, 14)  # the seed's column widths, kept as minimums


class Names:
    """MyST `:name:`s must be unique in a document: the first use of a name keeps it (py_notrt stays
    py_notrt for references), later ones get a suffix."""

    def __init__(self) -> None:
        self._used: set[str] = set()

    def take(self, base: str, suffix: str) -> str:
        name = base
        if name in self._used:
            name = f"{base}_{suffix}"
        n = 2
        while name in self._used:
            name, n = f"{base}_{suffix}_{n}", n + 1
        self._used.add(name)
        return name


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_") or "x"


def seed_setting(spec: SeedTable, row: Row) -> str:
    if spec.runtime == "python-eager":
        return amp_label(row["amp_dtype"]) or DASH
    return row["enabled_precisions"] or DASH


def seed_memory_key(spec: SeedTable, row: Row) -> str:
    """How the seed names a configuration in its memory sentence: `fp32+fp32` (model + the setting)."""
    setting = row["amp_dtype"] if spec.runtime == "python-eager" else row["enabled_precisions"]
    return f"{row['model_precision']}+{setting}" if setting else row["model_precision"]


def memory_entries(rows: Sequence[Row], key: Callable[[Row], str]) -> list[tuple[str, float]]:
    entries = [(key(r), _float(r["peak_mem_mb"])) for r in rows if is_ok(r)]
    return [(k, v) for k, v in entries if v is not None]


def seed_block(spec: SeedTable, rows: list[Row], fmt: str, names: Names, notes: Footnotes, suffix: str) -> list[str]:
    rows = sorted(rows, key=latency_rank)

    def latency(row: Row) -> str:
        return fmt_mean_std(row["latency_ms_mean"], row["latency_ms_std"]) if is_ok(row) else notes.status(row)

    columns = [
        Column("model's precision", lambda r: r["model_precision"], SEED_WIDTHS[0]),
        Column(spec.setting, lambda r: seed_setting(spec, r), SEED_WIDTHS[1]),
        Column("latency (ms)", latency, SEED_WIDTHS[2]),
    ]
    note = memory_line(memory_entries(rows, lambda r: seed_memory_key(spec, r)))
    return table_block(
        fmt,
        spec.title,
        names.take(spec.name, suffix),
        markdown_table(columns, rows),
        note,
        spec.blank_before_close,
        spec.blank_after_close,
    )


def workload_title(key: tuple[str, ...]) -> str:
    model, shapes = key
    return f"{model or 'unknown model'}, inputs `{shapes}`" if shapes else model or "unknown model"


def seed_section(rows: list[Row], fmt: str, names: Names, notes: Footnotes, suffix: str) -> list[str]:
    """The seed's three tables, one set per workload (model and input shapes) of the machine."""
    lines: list[str] = []
    workloads = groups(rows, ("model", "input_shapes"))
    for workload, workload_rows in workloads.items():
        blocks = [
            seed_block(spec, chosen, fmt, names, notes, suffix)
            for spec in SEED_TABLES
            if (chosen := [r for r in workload_rows if r["runtime"] == spec.runtime])
        ]
        if blocks and len(workloads) > 1:
            lines += [f"### {workload_title(workload)}", ""]
        for block in blocks:
            lines += [*block, ""]
    return lines


def fmt_floor(p50_ms: object, gflops: object, tflops: object) -> str:
    """How far above the FLOP floor: p50 / (GFLOP / TFLOP/s, which is ms), e.g. `40.1×`."""
    p50, work, peak = _float(p50_ms), _float(gflops), _float(tflops)
    if p50 is None or work is None or peak is None or work <= 0 or peak <= 0:
        return DASH
    return fmt_sig(p50 / (work / peak)) + "×"


def extended_columns(rows: Sequence[Row], notes: Footnotes, peak: Peak | None = None) -> list[Column]:
    """Every measured figure; a settings column only where some row of this table has a value;
    `× floor` where the machine has a calibration."""

    def num(fn: Callable[[Row], str]) -> Callable[[Row], str]:
        return lambda r: fn(r) if is_ok(r) else DASH

    multi_shapes = len({r["input_shapes"] for r in rows}) > 1
    columns = [Column("model", lambda r: r["model"])]
    columns += [Column("inputs", lambda r: r["input_shapes"])] if multi_shapes else []
    columns.append(Column("model's precision", lambda r: r["model_precision"]))
    settings: list[tuple[str, str, Callable[[Row], str]]] = [
        ("amp_dtype", "amp_dtype", lambda r: amp_label(r["amp_dtype"])),
        ("enabled_precisions", "trt.enabled_precisions", lambda r: r["enabled_precisions"]),
        ("compile_mode", "compile_mode", lambda r: r["compile_mode"]),
    ]
    columns += [Column(head, cell) for field, head, cell in settings if any(r[field] for r in rows)]
    columns += [
        Column("latency (ms)", num(lambda r: fmt_mean_std(r["latency_ms_mean"], r["latency_ms_std"])), right=True),
        Column("p50 (ms)", num(lambda r: fmt_fixed(r["latency_ms_p50"])), right=True),
        Column("p90 (ms)", num(lambda r: fmt_fixed(r["latency_ms_p90"])), right=True),
        Column("p99 (ms)", num(lambda r: fmt_fixed(r["latency_ms_p99"])), right=True),
        Column("CV (%)", num(lambda r: fmt_cv(r["latency_ms_cv"], r["noisy"])), right=True),
        Column("TFLOP/s", num(lambda r: fmt_tflops(r["gflops"], r["latency_ms_p50"])), right=True),
    ]
    if peak is not None:
        tflops = peak.tflops
        columns.append(
            Column("× floor", num(lambda r: fmt_floor(r["latency_ms_p50"], r["gflops"], tflops)), right=True)
        )
    return columns + [
        Column("peak mem (MB)", num(lambda r: fmt_fixed(r["peak_mem_mb"], 0)), right=True),
        Column("rel_err", num(lambda r: fmt_sci(r["rel_err"])), right=True),
        Column("rel_err (sorted)", num(lambda r: fmt_sci(r["rel_err_sorted"])), right=True),
        Column("status", lambda r: OK if is_ok(r) else notes.status(r)),
    ]


FIDELITY_NOTE = (
    "rel_err is the relative L2 error of the outputs, element by element, against the fp32 eager reference "
    "on the same seeded input; rel_err (sorted) is the same on each output's sorted values, so a detector's "
    "reordered near-ties do not count."
)


def floor_note(peak: Peak) -> str:
    return (
        f"× floor is p50 over the FLOP floor, the row's GFLOP / {fmt_sig(peak.tflops)} TFLOP/s "
        f"({peak.dtype or '?'} matmul measured by `sweep calibrate`{peak.source}; see Calibration)."
    )


def extended_section(
    rows: list[Row], fmt: str, names: Names, notes: Footnotes, suffix: str, peak: Peak | None = None
) -> list[str]:
    """One table per runtime of the machine, every runtime present, every figure measured."""
    lines: list[str] = [FIDELITY_NOTE + (" " + floor_note(peak) if peak else ""), ""]
    by_runtime = groups(rows, ("runtime",))
    for (runtime,), runtime_rows in sorted(by_runtime.items(), key=lambda item: runtime_rank(item[0][0])):
        ordered = sorted(runtime_rows, key=lambda r: (r["model"], r["input_shapes"], *latency_rank(r)))
        table = markdown_table(extended_columns(ordered, notes, peak), ordered)
        lines += [
            *table_block(fmt, runtime or "unknown runtime", names.take(f"all_{slug(runtime)}", suffix), table),
            "",
        ]
    return lines


# ---------------------------------------------------------------- calibration (`sweep calibrate`'s reports)


@dataclass(frozen=True)
class Peak:
    """A device's measured matmul ceiling, the one its rows' `× floor` is measured against."""

    tflops: float
    dtype: str
    source: str  # ", model x, date" — which calibration, for the sentence that explains the column


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def calibration_device(cal: Mapping[str, Any]) -> str:
    return str(_mapping(cal.get("env")).get("device_name") or "")


def _calibration_date(cal: Mapping[str, Any]) -> str:
    return str(cal.get("created_at") or "")[:10]


def device_peaks(calibrations: Sequence[Mapping[str, Any]]) -> dict[str, Peak]:
    """Per device name, the highest matmul TFLOP/s of its calibrations: the best measured is the truest
    ceiling (a slower run was throttled or disturbed, never the device being slower)."""
    out: dict[str, Peak] = {}
    for cal in calibrations:
        device, peak = calibration_device(cal), _mapping(cal.get("peak"))
        tflops = _float(peak.get("matmul_tflops"))
        if not device or tflops is None or tflops <= 0:
            continue
        if device not in out or tflops > out[device].tflops:
            source = f", {cal.get('model') or '?'} calibration of {_calibration_date(cal) or '?'}"
            out[device] = Peak(tflops, str(peak.get("matmul_dtype") or ""), source)
    return out


CLOCK_READINGS = (
    ("sm_clock_mhz", "SM", " MHz"),
    ("mem_clock_mhz", "memory", " MHz"),
    ("temperature_c", "", " °C"),
    ("power_w", "", " W"),
    ("utilization_pct", "utilization", " %"),
)
NO_READINGS = "no readings"


def clocks_text(snapshot: object) -> str:
    """An NVML snapshot in words: `SM 1980 MHz, memory 3201 MHz, 39 °C, 198 W, utilization 38 %`."""
    readings = _mapping(snapshot)
    parts = []
    for key, label, unit in CLOCK_READINGS:
        value = _float(readings.get(key))
        if value is not None:
            parts.append(f"{label} {value:.0f}{unit}".strip())
    return ", ".join(parts) or NO_READINGS


def harness_table(forms: Mapping[str, Any]) -> list[str]:
    def cell(key: str) -> Callable[[Row], str]:
        return lambda r: fmt_fixed(r.get(key))

    columns = [
        Column("form", lambda r: str(r["form"])),
        Column("ours host p50 (ms)", cell("ours_host_ms"), right=True),
        Column("ours CUDA events p50 (ms)", cell("ours_cuda_events_ms"), right=True),
        Column("torch.utils.benchmark (ms)", cell("torch_benchmark_ms"), right=True),
        Column("triton do_bench (ms)", cell("triton_do_bench_ms"), right=True),
        Column("ratio ours/independent", lambda r: fmt_sig(r.get("ratio_ours_host_vs_independent")), right=True),
    ]
    rows = [{**_mapping(entry), "form": name} for name, entry in forms.items()]
    return markdown_table(columns, rows)


def calibration_block(cal: Mapping[str, Any], fmt: str, names: Names) -> list[str]:
    env, peak = _mapping(cal.get("env")), _mapping(cal.get("peak"))
    device = calibration_device(cal) or "unknown device"
    model, precision = cal.get("model") or "unknown model", cal.get("precision") or "?"
    title = f"{device} · {model}, {precision}" + (f" · {_calibration_date(cal)}" if cal.get("created_at") else "")
    facts = [f"torch {env['torch_version']}"] if env.get("torch_version") else []
    facts += [f"driver {env['driver_version']}"] if env.get("driver_version") else []
    facts += [f"host {env['hostname']}"] if env.get("hostname") else []
    gflops, tflops = _float(cal.get("model_gflops")), _float(peak.get("matmul_tflops"))
    floor = gflops / tflops if gflops is not None and tflops else _float(cal.get("floor_ms"))
    lines = [f"### {title}", ""]
    lines.append(
        f"Measured by `sweep calibrate` on `{cal.get('device') or '?'}`" + "".join(f" · {f}" for f in facts) + "."
    )
    lines += [
        "",
        f"- Device ceilings: matmul {fmt_sig(tflops)} TFLOP/s ({peak.get('matmul_dtype') or '?'}), "
        f"copy {fmt_sig(peak.get('copy_gbps'))} GB/s (read plus write).",
        f"- Model: {fmt_sig(gflops)} GFLOP per forward; FLOP floor {fmt_sig(floor)} ms (GFLOP / matmul TFLOP/s).",
    ]
    before, after = clocks_text(cal.get("clocks_before")), clocks_text(cal.get("clocks_after"))
    if before == after == NO_READINGS:
        lines.append("- Clocks, temperature and power: no NVML readings (a CPU, or no NVIDIA driver).")
    else:
        lines.append(f"- Clocks before: {before}; after: {after}.")
    forms = _mapping(cal.get("forms"))
    for name, entry in forms.items():
        error = _mapping(entry).get("triton_error")
        if error:
            lines.append(f"- triton do_bench failed for {name}: {one_line(error)}")
    if cal.get("note"):
        lines.append(f"- Note: {one_line(cal['note'])}")
    lines.append("")
    if forms:
        ratio_note = (
            "ratio: ours host p50 / the independent median (triton do_bench where it ran, "
            "else torch.utils.benchmark); near 1 means our timer agrees."
        )
        name = names.take(f"calibration_{slug(device)}_{slug(str(model))}", slug(_calibration_date(cal)))
        lines += [*table_block(fmt, f"Harness check, {model} on {device}", name, harness_table(forms), ratio_note), ""]
    return lines


def calibration_section(calibrations: Sequence[Mapping[str, Any]], fmt: str, names: Names) -> list[str]:
    """What each device can do at best and whether our timer agrees with independent ones."""
    lines = ["## Calibration", ""]
    for cal in calibrations:
        lines += calibration_block(cal, fmt, names)
    return lines


def render(
    df: pd.DataFrame,
    fmt: str = "md",
    plot: str | None = None,
    calibrations: Sequence[Mapping[str, Any]] | None = None,
) -> str:
    """The results document: machines, the seed's three tables, every runtime in full, the calibration
    of each device (`sweep calibrate`'s reports, as dicts), the plot link, footnotes. A pure function of
    the rows and the calibrations: it reads and writes no file."""
    if fmt not in FORMATS:
        raise SweepError(f"report format {fmt!r} is not known; use one of: {', '.join(FORMATS)}")
    calibrations = list(calibrations or [])
    all_rows = clean(df)
    names = Names()
    if not all_rows:
        text = (
            "# Benchmark results\n\nNo results yet: run `sweep run <matrix.yaml>` to measure, "
            "then `sweep report` to render them here.\n"
        )
        if not calibrations:
            return text
        return text + "\n" + "\n".join(calibration_section(calibrations, fmt, names)).rstrip("\n") + "\n"
    machines = groups(latest(all_rows), MACHINE_COLUMNS)
    peaks = device_peaks(calibrations)
    notes = Footnotes()
    lines = [*header(all_rows, machines), ""]
    for key, rows in machines.items():
        where = f" — {machine_title(key)}" if len(machines) > 1 else ""
        seed = seed_section(rows, fmt, names, notes, slug(key[0]))
        lines += [f"## Summary{where}", "", *seed] if seed else []
        extended = extended_section(rows, fmt, names, notes, slug(key[0]), peaks.get(key[0]))
        lines += [f"## All runtimes{where}", "", *extended]
    if calibrations:
        lines += calibration_section(calibrations, fmt, names)
    if plot:
        lines += [f"![Latency p50 per configuration, whiskers to p90]({plot})", ""]
    footnotes = notes.lines()
    lines += footnotes
    return "\n".join(lines).rstrip("\n") + "\n"


# ---------------------------------------------------------------- plot


def plot_label(row: Row, many_models: bool, many_machines: bool) -> str:
    parts = [row["device_name"]] if many_machines else []
    parts += [row["model"]] if many_models else []
    parts += [row["runtime"], row["model_precision"]]
    parts += [f"amp {row['amp_dtype']}"] if row["amp_dtype"] not in ("", "fp32") else []
    parts += [f"trt {row['enabled_precisions']}"] if row["enabled_precisions"] else []
    parts += [row["compile_mode"]] if row["compile_mode"] else []
    return " · ".join(parts)


def plot_latency(df: pd.DataFrame, path: Path) -> Path | None:
    """Horizontal bars of p50 latency per runtime × precision configuration, whiskers to p90, ok rows only.

    Returns None (and writes nothing) when no row is ok or matplotlib is not installed: the plot is an
    extra, never a reason for a report to fail."""
    rows = [r for r in latest(clean(df)) if is_ok(r) and _float(r["latency_ms_p50"]) is not None]
    if not rows:
        return None
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from matplotlib.patches import Patch
    except ImportError:
        return None
    rows.sort(
        key=lambda r: (
            machine_title(tuple(r[c] for c in MACHINE_COLUMNS)),
            r["model"],
            runtime_rank(r["runtime"]),
            *latency_rank(r),
        )
    )
    many_models = len({r["model"] for r in rows}) > 1
    many_machines = len({tuple(r[c] for c in MACHINE_COLUMNS) for r in rows}) > 1
    runtimes = list(dict.fromkeys(r["runtime"] for r in rows))
    colors = {rt: f"C{i % 10}" for i, rt in enumerate(runtimes)}
    p50 = [float(r["latency_ms_p50"]) for r in rows]
    up = [max(0.0, (_float(r["latency_ms_p90"]) or p) - p) for r, p in zip(rows, p50, strict=True)]

    fig = Figure(figsize=(7.0, 1.2 + 0.28 * len(rows)), dpi=100)  # no pyplot: no global backend state
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ys = list(range(len(rows)))
    ax.barh(ys, p50, xerr=[[0.0] * len(rows), up], color=[colors[r["runtime"]] for r in rows], capsize=2)
    ax.set_yticks(ys, [plot_label(r, many_models, many_machines) for r in rows], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("latency p50 (ms), whisker to p90")
    ax.legend(handles=[Patch(color=colors[rt], label=rt) for rt in runtimes], fontsize=7, loc="lower right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    return path
