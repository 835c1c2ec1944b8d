"""`sweep compare BASE NEW`: per job, base p50 against new p50, and whether the change beats the rows' own noise.

Rows are matched by job_key (the job's identity: the same runtime, model, precisions and measurement settings).
A job's p50 is the median of its process p50s. Whether a change is significant is decided by
`sweep.stats.significance`: between processes (Student's two-sample t-test at 95 % on the process p50s, as
pyperf's `compare_to` does, pyperf/_utils.py `is_significant`) when both sides ran at least 3 processes, and
within the samples otherwise (the Mann-Whitney U test at p < 0.002, as asv's `asv compare` does in
asv/statistics.py `is_different`). A folder compared with itself is therefore never significant.

Each side's processes are also counted where their rows say the host was slowed (sweep.host: a CPU canary
above 1.3× the lowest of that side's machine) or busy with other work: the figures keep every process, but a
significant change that coincides with a slowed host may be the host's, not the code's.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from sweep.errors import SweepError
from sweep.host import BUSY_CPUS, SLOWED, Count
from sweep.report.format import DASH, Column, fmt_fixed, markdown_table
from sweep.results import Duplicate, JobResult, jobs_of, machine_title, significance, variant_label
from sweep.stats import MIN_PROCESSES, SAMPLES_P, Significance


@dataclass(frozen=True)
class Comparison:
    """One job_key: its aggregate on each side (None where the side lacks it) and the verdict."""

    job_key: str
    base: JobResult | None
    new: JobResult | None
    test: Significance | None  # None unless both sides have an ok p50

    @property
    def any_side(self) -> JobResult:
        side = self.new or self.base
        assert side is not None
        return side

    @property
    def ratio(self) -> float | None:
        """new / base p50 (above 1 is slower)."""
        if self.test is None or self.base is None or self.new is None or not self.base.p50 or self.new.p50 is None:
            return None
        return self.new.p50 / self.base.p50

    @property
    def significant(self) -> bool:
        return bool(self.test and self.test.significant)

    @property
    def fidelity_changed(self) -> bool:
        return bool(self.base and self.new and self.base.fidelity != self.new.fidelity)

    @property
    def host_flagged(self) -> bool:
        """Some process on either side ran on a slowed or busy host."""
        counts = [c for side in (self.base, self.new) if side for c in (side.host_slowed, side.host_busy)]
        return any(c is not None and c.flagged for c in counts)

    def slower_by_more_than(self, pct: float) -> bool:
        ratio = self.ratio
        return self.significant and ratio is not None and ratio > 1 + pct / 100


def _side(df: pd.DataFrame, name: str) -> tuple[dict[str, JobResult], list[Duplicate]]:
    """The side's jobs by job_key, and its duplicate rows; a job measured on more than one machine on one side
    is ambiguous."""
    jobs, duplicates, _ = jobs_of(df)
    out: dict[str, JobResult] = {}
    for job in jobs:
        if job.job_key in out:
            machines = f"{machine_title(out[job.job_key].machine)} and {machine_title(job.machine)}"
            raise SweepError(f"{name}: job {job.job_key} ({variant_label(job.row)}) was measured on {machines}; "
                             "compare one machine per side (pass that machine's results folder)")
        out[job.job_key] = job
    return out, duplicates


@dataclass(frozen=True)
class Result:
    """The comparisons, and each side's duplicate (job, process) rows (the latest ok row of each was used)."""

    comparisons: list[Comparison]
    base_duplicates: list[Duplicate]
    new_duplicates: list[Duplicate]


def compare(base: pd.DataFrame, new: pd.DataFrame, base_name: str = "BASE", new_name: str = "NEW") -> Result:
    """Every job_key of either side, in the order BASE lists them, then those only NEW has."""
    (left, base_dups), (right, new_dups) = _side(base, base_name), _side(new, new_name)
    out = []
    for key in [*left, *(k for k in right if k not in left)]:
        b, n = left.get(key), right.get(key)
        test = None
        if b is not None and n is not None and b.ok and n.ok and b.p50 is not None and n.p50 is not None:
            test = significance(b, n)
        out.append(Comparison(key, b, n, test))
    return Result(out, base_dups, new_dups)


def _num(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else x


def _flagged(count: Count | None) -> int | None:
    return None if count is None else count.flagged


def _known(count: Count | None) -> int:
    return 0 if count is None else count.known


def to_json(comparisons: Sequence[Comparison]) -> list[dict[str, Any]]:
    """`--json`: one object per job_key. `*_host_slowed` / `*_busy_host`: how many of the side's ok processes
    ran on a slowed host core / beside other work, of `*_host_known` / `*_busy_known` whose rows record it
    (null where none does)."""
    out = []
    for c in comparisons:
        job, b, n = c.any_side, c.base, c.new
        out.append({
            "job_key": c.job_key,
            "side": "both" if b and n else "base" if b else "new",
            "runtime": job["runtime"],
            "model": job["model"],
            "model_precision": job["model_precision"],
            "amp_dtype": job["amp_dtype"],
            "enabled_precisions": job["enabled_precisions"],
            "compile_mode": job["compile_mode"],
            "cuda_graphs": bool(job["cuda_graphs"]),
            "tf32": job["tf32"],
            "device": job["device"],
            "base_machine": machine_title(b.machine) if b else None,
            "new_machine": machine_title(n.machine) if n else None,
            "base_status": b.status if b else None,
            "new_status": n.status if n else None,
            "base_p50_ms": _num(b.p50) if b else None,
            "new_p50_ms": _num(n.p50) if n else None,
            "base_processes": len(b.p50s) if b else 0,
            "new_processes": len(n.p50s) if n else 0,
            "ratio": c.ratio,
            "significant": c.significant,
            "basis": c.test.basis if c.test else "",
            "test": c.test.test if c.test else "",
            "statistic": _num(c.test.statistic) if c.test and c.test.statistic is not None else None,
            "base_fidelity": (b.fidelity or None) if b else None,
            "new_fidelity": (n.fidelity or None) if n else None,
            "fidelity_changed": c.fidelity_changed,
            "base_host_slowed": _flagged(b.host_slowed) if b else None,
            "new_host_slowed": _flagged(n.host_slowed) if n else None,
            "base_host_known": _known(b.host_slowed) if b else 0,
            "new_host_known": _known(n.host_slowed) if n else 0,
            "base_busy_host": _flagged(b.host_busy) if b else None,
            "new_busy_host": _flagged(n.host_busy) if n else None,
            "base_busy_known": _known(b.host_busy) if b else 0,
            "new_busy_known": _known(n.host_busy) if n else 0,
        })
    return out


def _change(c: Comparison) -> str:
    ratio = c.ratio
    if c.test is None or ratio is None:
        return DASH
    if not c.significant:
        return "no"
    return f"yes, {(ratio - 1) * 100:.1f} % slower" if ratio > 1 else f"yes, {(1 - ratio) * 100:.1f} % faster"


def _basis(c: Comparison) -> str:
    if c.test is None or c.base is None or c.new is None:
        return DASH
    counts = f"{len(c.base.p50s)} + {len(c.new.p50s)} processes"
    return counts if c.test.basis == "processes" else f"samples ({counts})"


def _fidelity(c: Comparison) -> str:
    b = (c.base.fidelity or DASH) if c.base else DASH
    n = (c.new.fidelity or DASH) if c.new else DASH
    return f"{b} → {n} (changed)" if c.fidelity_changed else n


def _p50(job: JobResult | None) -> str:
    if job is None:
        return DASH
    return fmt_fixed(job.p50) if job.ok else job.status


def _host_words(job: JobResult | None) -> str:
    if job is None:
        return DASH
    if job.host_slowed is None and job.host_busy is None:
        return "not recorded"
    words = [f"{c.flagged}/{c.known} {what}" for c, what in ((job.host_slowed, "slowed"), (job.host_busy, "busy"))
             if c is not None and c.flagged]
    return ", ".join(words) or "none"


def host_lines(both: Sequence[Comparison]) -> list[str]:
    """The footnote on hosts, when some job has processes on a slowed or busy host (significant ones first)."""
    flagged = sorted((c for c in both if c.host_flagged), key=lambda c: not c.significant)
    if not flagged:
        return []
    listed = "; ".join(f"{c.job_key[:12]}{' (significant)' if c.significant else ''}: base "
                       f"{_host_words(c.base)}, new {_host_words(c.new)}" for c in flagged[:8])
    more = f"; and {len(flagged) - 8} more" if len(flagged) > 8 else ""
    return [f"Host: {len(flagged)} of {len(both)} jobs had processes on a slowed host core (CPU canary above "
            f"{SLOWED:g}× the lowest of its side's machine; an indicator, it can flag a fast process) or beside "
            f"more than {BUSY_CPUS:g} CPU's worth of other work: {listed}{more}. Their figures keep every "
            "process; a change there may be the host's."]


def render_text(result: Result, base_name: str, new_name: str) -> str:
    """A markdown table of the jobs both sides have, then the jobs found on one side only."""
    comparisons = result.comparisons
    both = [c for c in comparisons if c.base and c.new]
    lines = [f"BASE: {base_name}", f"NEW:  {new_name}"]
    machines = {(machine_title(c.base.machine), machine_title(c.new.machine)) for c in both if c.base and c.new}
    for b, n in sorted(machines):
        lines.append(f"machine: {b}" if b == n else f"machines differ: BASE {b}, NEW {n}")
    lines.append("")
    if both:
        columns = [
            Column("job_key", lambda c: c.job_key[:12]),
            Column("variant", lambda c: variant_label(c.any_side.row)),
            Column("base p50 (ms)", lambda c: _p50(c.base), right=True),
            Column("new p50 (ms)", lambda c: _p50(c.new), right=True),
            Column("ratio", lambda c: DASH if c.ratio is None else f"{c.ratio:.3f}", right=True),
            Column("significant", _change),
            Column("noise from", _basis),
            Column("fidelity", _fidelity),
        ]
        lines += markdown_table(columns, both)
        lines += ["", f"p50: median of the process p50s; ratio: new / base. Significant: Student t at 95 % on the "
                      f"process p50s where both sides ran >= {MIN_PROCESSES} processes (pyperf), else Mann-Whitney U "
                      f"on the samples at p < {SAMPLES_P} (asv)."]
        significant = sum(c.significant for c in both)
        lines.append(f"{significant} of {len(both)} jobs changed significantly.")
        lines += host_lines(both)
    else:
        lines.append("No job is in both result sets.")
    for name, side in (("BASE", "base"), ("NEW", "new")):
        only = [c for c in comparisons if getattr(c, side) is not None and not (c.base and c.new)]
        if only:
            lines += ["", f"Only in {name} ({len(only)}):"]
            lines += [f"- {c.job_key[:12]} {variant_label(c.any_side.row)}: {_p50(c.any_side)}" for c in only]
    for name, duplicates in (("BASE", result.base_duplicates), ("NEW", result.new_duplicates)):
        if duplicates:
            lines += ["", f"{name} has more than one row for {len(duplicates)} (job, process) pairs; the latest ok "
                          "row of each is used: " + ", ".join(f"{d.job_key[:12]} process {d.process}"
                                                               for d in duplicates[:8])
                      + (f" and {len(duplicates) - 8} more" if len(duplicates) > 8 else "")]
    return "\n".join(lines) + "\n"
