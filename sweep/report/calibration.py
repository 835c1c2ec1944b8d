"""Calibration section: what each device can do at best (`sweep calibrate`) and whether our timer agrees."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sweep.report.format import Column, Names, fmt_fixed, fmt_sig, markdown_table, one_line, slug, table_block
from sweep.results import number as _float

Row = dict[str, Any]


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
