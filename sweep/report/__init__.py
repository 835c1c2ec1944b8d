"""The results document: answers first, then per machine the seed tables, every runtime, calibration, plot."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from sweep.errors import SweepError
from sweep.report.calibration import Peak, calibration_section, device_peaks
from sweep.report.extended import extended_section, fmt_floor
from sweep.report.format import (
    REASON_CHARS,
    Footnotes,
    Names,
    fmt_cv,
    fmt_fixed,
    fmt_mean_std,
    fmt_memory,
    fmt_sci,
    fmt_tflops,
    memory_line,
    slug,
)
from sweep.report.plot import CAPTION, plot_latency
from sweep.report.seed import SEED_TABLES, seed_section
from sweep.report.summary import answers, duplicate_lines, header, skipped_lines
from sweep.results import by_machine, jobs_of, machine_title

__all__ = [
    "FORMATS", "REASON_CHARS", "SEED_TABLES", "Peak", "SweepError", "fmt_cv", "fmt_fixed", "fmt_floor",
    "fmt_mean_std", "fmt_memory", "fmt_sci", "fmt_tflops", "memory_line", "plot_latency", "render",
]  # fmt: skip

FORMATS = ("md", "myst")
TITLE = "# Benchmark results"


def render(
    df: pd.DataFrame,
    fmt: str = "md",
    plot: str | None = None,
    calibrations: Sequence[Mapping[str, Any]] | None = None,
    skipped: Sequence[tuple[str, str]] = (),
) -> str:
    """The results document: the answers, the machines, per machine the seed's three tables and every
    runtime in full, the calibration of each device (`sweep calibrate`'s reports, as dicts), the plot link,
    footnotes. `skipped` lists row files left out by --skip-bad as (path, reason). A pure function of its
    arguments: it reads and writes no file."""
    if fmt not in FORMATS:
        raise SweepError(f"report format {fmt!r} is not known; use one of: {', '.join(FORMATS)}")
    calibrations = list(calibrations or [])
    jobs, duplicates, all_rows = jobs_of(df)
    names = Names()
    notes = Footnotes()
    lines = [TITLE, ""]
    if not jobs:
        lines += ["No results yet: run `sweep run <matrix.yaml>` to measure, then `sweep report` to render them here.",
                  ""]
        lines += [*skipped_lines(skipped), ""] if skipped else []
        lines += calibration_section(calibrations, fmt, names) if calibrations else []
        return "\n".join(lines).rstrip("\n") + "\n"
    machines = by_machine(jobs)
    peaks = device_peaks(calibrations)
    lines += answers(machines, notes)
    lines += [*header(all_rows, machines), ""]
    for extra in (duplicate_lines(duplicates), skipped_lines(skipped)):
        lines += [*extra, ""] if extra else []
    for key, machine_jobs in machines.items():
        where = f" — {machine_title(key)}"
        suffix = slug(key[0])
        seed = seed_section(machine_jobs, fmt, names, notes, suffix)
        lines += [f"## Summary{where}", "", *seed] if seed else []
        extended = extended_section(machine_jobs, fmt, names, notes, suffix, peaks.get(key[0]))
        lines += [f"## All runtimes{where}", "", *extended]
    if calibrations:
        lines += calibration_section(calibrations, fmt, names)
    if plot:
        lines += [f"![{CAPTION}]({plot})", ""]
    lines += notes.lines()
    return "\n".join(lines).rstrip("\n") + "\n"
