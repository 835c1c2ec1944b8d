"""The seed's three hand-made tables (eager, Python TensorRT, C++ TensorRT) from per-job aggregates."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sweep.report.format import (
    DASH,
    Column,
    Footnotes,
    Names,
    amp_label,
    fmt_mean_std,
    markdown_table,
    memory_line,
    table_block,
)
from sweep.results import JobResult, groups, number

FAILS = " (fails fidelity)"


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


def latency_rank(job: JobResult) -> tuple[bool, float, str, str, str, str, bool, str]:
    """Fastest first by the mean over all samples (the seed's tables are in ascending mean latency), jobs
    that are not ok last; ties broken by the settings so the order is total."""
    mean = number(job.pooled["mean"]) if job.ok else None
    settings = (job["model_precision"], job["amp_dtype"], job["enabled_precisions"], job["compile_mode"])
    return (mean is None, math.inf if mean is None else mean, *settings, job["cuda_graphs"], job["tf32"])


def seed_setting(spec: SeedTable, job: JobResult) -> str:
    if spec.runtime == "python-eager":
        return amp_label(job["amp_dtype"]) or DASH
    return job["enabled_precisions"] or DASH


def seed_memory_key(spec: SeedTable, job: JobResult) -> str:
    """How the seed names a configuration in its memory sentence: `fp32+fp32` (model + the setting)."""
    setting = job["amp_dtype"] if spec.runtime == "python-eager" else job["enabled_precisions"]
    key = f"{job['model_precision']}+{setting}" if setting else job["model_precision"]
    key += " with CUDA graphs" if job["cuda_graphs"] else ""
    return key + (f" TF32 {job['tf32']}" if job["tf32"] else "")


def memory_entries(jobs: Sequence[JobResult], key: Callable[[JobResult], str]) -> list[tuple[str, float]]:
    return [(key(j), mem) for j in jobs if j.ok and (mem := j.peak_mem_mb) is not None]


def fidelity_cell(job: JobResult, notes: Footnotes) -> str:
    """pass / fail, or a dash with the reason there is no verdict as a footnote."""
    if not job.ok:
        return DASH
    return job.fidelity or f"{DASH}{notes.mark(job.fidelity_note)}"


def seed_block(
    spec: SeedTable, jobs: list[JobResult], fmt: str, names: Names, notes: Footnotes, suffix: str
) -> list[str]:
    """The seed's columns; a CUDA-graphs / TF32 column only where a row has one, a fidelity column only
    where a row has a verdict (rows without one then say why), so tables of the seed's kind keep its bytes."""
    jobs = sorted(jobs, key=latency_rank)

    def latency(job: JobResult) -> str:
        if not job.ok:
            return notes.status(job)
        cell = fmt_mean_std(job.pooled["mean"], job.pooled["std"])
        return cell + FAILS if job.fidelity == "fail" else cell

    columns = [
        Column("model's precision", lambda j: j["model_precision"], SEED_WIDTHS[0]),
        Column(spec.setting, lambda j: seed_setting(spec, j), SEED_WIDTHS[1]),
    ]
    if any(j["cuda_graphs"] for j in jobs):
        columns.append(Column("cuda_graphs", lambda j: "on" if j["cuda_graphs"] else "off"))
    if any(j["tf32"] for j in jobs):
        columns.append(Column("tf32", lambda j: j["tf32"] or "default"))
    columns.append(Column("latency (ms)", latency, SEED_WIDTHS[2]))
    if any(j.fidelity for j in jobs):
        columns.append(Column("fidelity", lambda j: fidelity_cell(j, notes)))
    note = memory_line(memory_entries(jobs, lambda j: seed_memory_key(spec, j)))
    return table_block(
        fmt,
        spec.title,
        names.take(spec.name, suffix),
        markdown_table(columns, jobs),
        note,
        spec.blank_before_close,
        spec.blank_after_close,
    )


def workload_title(key: tuple[str, ...]) -> str:
    model, shapes = key[0], key[1]
    return f"{model or 'unknown model'}, inputs `{shapes}`" if shapes else model or "unknown model"


def seed_section(jobs: list[JobResult], fmt: str, names: Names, notes: Footnotes, suffix: str) -> list[str]:
    """The seed's three tables, one set per workload (model and input shapes) of the machine. The latency
    is the mean ± std over all samples of all processes of a job, as the seed reported it; tables without
    verdicts say so below them."""
    lines: list[str] = []
    workloads = groups(jobs, ("model", "input_shapes", "model_identity"))
    for workload, workload_jobs in workloads.items():
        blocks = []
        for spec in SEED_TABLES:
            chosen = [j for j in workload_jobs if j["runtime"] == spec.runtime]
            if not chosen:
                continue
            block = seed_block(spec, chosen, fmt, names, notes, suffix)
            judged = [j for j in chosen if j.ok]
            if judged and not any(j.fidelity for j in judged):
                reasons = list(dict.fromkeys(j.fidelity_note for j in judged))
                block += ["", "No fidelity verdicts in this table" + "".join(notes.mark(r) for r in reasons) + "."]
            blocks.append(block)
        if blocks and len(workloads) > 1:
            lines += [f"### {workload_title(workload)}", ""]
        for block in blocks:
            lines += [*block, ""]
    return lines
