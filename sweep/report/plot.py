"""The latency plot: per job, the median of the process p50s as a bar and their min–max as whiskers."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from sweep.report.seed import latency_rank
from sweep.results import JobResult, jobs_of, machine_title, runtime_rank, variant_label

CAPTION = "Latency p50 per configuration (median of processes), whiskers to the min–max of process p50s"


def plot_label(job: JobResult, many_models: bool, many_machines: bool) -> str:
    parts = [job["device_name"]] if many_machines else []
    parts += [job["model"]] if many_models else []
    return " · ".join([*parts, variant_label(job.row)])


def plot_latency(df: pd.DataFrame, path: Path) -> Path | None:
    """Horizontal bars of p50 latency per job, ok jobs only.

    Returns None (and writes nothing) when no job is ok or matplotlib is not installed: the plot is an
    extra, never a reason for a report to fail."""
    jobs = [j for j in jobs_of(df)[0] if j.ok and j.spread is not None]
    if not jobs:
        return None
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from matplotlib.patches import Patch
    except ImportError:
        return None
    jobs.sort(key=lambda j: (machine_title(j.machine), j["model"], runtime_rank(j["runtime"]), *latency_rank(j)))
    many_models = len({j["model"] for j in jobs}) > 1
    many_machines = len({j.machine for j in jobs}) > 1
    runtimes = list(dict.fromkeys(j["runtime"] for j in jobs))
    colors = {rt: f"C{i % 10}" for i, rt in enumerate(runtimes)}
    p50 = [j.spread.median for j in jobs if j.spread]
    low = [max(0.0, p - j.spread.low) for j, p in zip(jobs, p50, strict=True) if j.spread]
    high = [max(0.0, j.spread.high - p) for j, p in zip(jobs, p50, strict=True) if j.spread]

    fig = Figure(figsize=(7.0, 1.2 + 0.28 * len(jobs)), dpi=100)  # no pyplot: no global backend state
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ys = list(range(len(jobs)))
    ax.barh(ys, p50, xerr=[low, high], color=[colors[j["runtime"]] for j in jobs], capsize=2)
    ax.set_yticks(ys, [plot_label(j, many_models, many_machines) for j in jobs], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("latency p50 (ms): median of processes, whiskers min–max of process p50s")
    ax.legend(handles=[Patch(color=colors[rt], label=rt) for rt in runtimes], fontsize=7, loc="lower right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    return path
