"""The answers a report opens with (fastest passing variant, speedup, how sure, graphs) and its machines."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from sweep.report.format import DASH, Footnotes, fmt_cv, fmt_fixed, fmt_sig, join_words
from sweep.report.seed import workload_title
from sweep.results import (
    MACHINE_COLUMNS,
    Duplicate,
    JobResult,
    Row,
    baseline,
    groups,
    is_eager_fp32,
    machine_title,
    runtime_rank,
    significance,
    tied,
    variant_label,
)

MAX_LISTED = 8
SWEEP_COLUMNS = ("matrix", "model", "input_shapes", "model_identity")  # one sweep of one workload on a machine
GRAPH_PAIR = ("runtime", "model_precision", "amp_dtype", "enabled_precisions", "compile_mode", "tf32")


def plural(n: int, word: str) -> str:
    if n == 1:
        return f"{n} {word}"
    return f"{n} {word}es" if word.endswith("s") else f"{n} {word}s"


def unique(values: Sequence[str]) -> list[str]:
    return [v for v in dict.fromkeys(values) if v]


def _code_list(values: Sequence[str], limit: int = MAX_LISTED) -> str:
    shown = ", ".join(f"`{v}`" for v in values[:limit])
    return shown + (f" and {len(values) - limit} more" if len(values) > limit else "")


def _date(stamp: object) -> str:
    return stamp.strftime("%Y-%m-%d") if isinstance(stamp, pd.Timestamp) and not pd.isna(stamp) else "?"


# ---------------------------------------------------------------- how a job is quoted


def spread_words(job: JobResult) -> str:
    """`median of 3 processes, range 15.790–16.020 ms, CV between 0.7 %`."""
    s = job.spread
    if s is None:
        return "no p50"
    if s.n == 1:
        return "1 process: the spread between processes was not measured"
    return (f"median of {s.n} processes, range {fmt_fixed(s.low)}–{fmt_fixed(s.high)} ms, "
            f"CV between {fmt_cv(s.cv, False)} %")


def quote(job: JobResult) -> str:
    """`**python-eager · fp16** at p50 15.824 ms (median of 3 processes, ...)`."""
    return f"**{variant_label(job.row)}** at p50 {fmt_fixed(job.p50)} ms ({spread_words(job)})"


def speedup_words(base: JobResult, fast: JobResult) -> str:
    """`2.28× (2.20–2.35× over the ranges; significant by Student's t at 95 % on the process p50s)`."""
    assert base.spread is not None and fast.spread is not None and fast.p50
    ratio = base.spread.median / fast.spread.median
    text = f"**{ratio:.2f}×**"
    if base.spread.n > 1 or fast.spread.n > 1:
        low, high = base.spread.low / fast.spread.high, base.spread.high / fast.spread.low
        text += f" ({low:.2f}–{high:.2f}× between the extremes of the process p50s"
    else:
        text += " (1 process each"
    test = significance(base, fast)
    if not test.basis:
        return text + "; too few values to test whether it differs)"
    verdict = "significant" if test.significant else "**not significant**"
    if test.basis == "samples":
        return text + f"; {verdict} by {test.test}, which cannot see the noise between processes)"
    return text + f"; {verdict} by {test.test})"


# ---------------------------------------------------------------- answers


def graph_lines(jobs: Sequence[JobResult], notes: Footnotes) -> list[str]:
    """What CUDA graphs bring, per runtime and precision: graphs on against the same job with them off; and
    python-inductor's reduce-overhead (its graph form) against its default mode."""
    pairs: list[str] = []
    by_settings = groups(jobs, GRAPH_PAIR)
    for on in sorted((j for j in jobs if j["cuda_graphs"]), key=lambda j: runtime_rank(j["runtime"])):
        off = next((j for j in by_settings.get(tuple(on[c] for c in GRAPH_PAIR), []) if not j["cuda_graphs"]), None)
        pairs.append(graph_pair(variant_label({**on.row, "cuda_graphs": False}), off, on, notes))
    inductor = [j for j in jobs if j["runtime"] == "python-inductor" and j["compile_mode"] == "reduce-overhead"]
    for ro in inductor:
        key = tuple(ro[c] if c != "compile_mode" else "default" for c in GRAPH_PAIR)
        default = next((j for j in by_settings.get(key, []) if j["cuda_graphs"] == ro["cuda_graphs"]), None)
        label = variant_label({**ro.row, "compile_mode": ""}) + ", reduce-overhead (its graph form) vs default"
        pairs.append(graph_pair(label, default, ro, notes))
    if not pairs:
        return ["- CUDA graphs: not measured in this sweep (no job with `cuda_graphs: on`)."]
    return ["- CUDA graphs, on against off:", *(f"  - {p}" for p in pairs)]


def graph_pair(label: str, off: JobResult | None, on: JobResult, notes: Footnotes) -> str:
    if not on.ok:
        return f"{label}: with graphs {on.status}{notes.mark(on.reason)}"
    if off is None or not off.ok:
        why = "not in this sweep" if off is None else f"{off.status}{notes.mark(off.reason)}"
        return f"{label}: {fmt_fixed(on.p50)} ms with graphs; without them {why}"
    assert off.p50 and on.p50
    ratio = off.p50 / on.p50
    test = significance(off, on)
    words = f"{ratio:.2f}× faster" if ratio >= 1 else f"{1 / ratio:.2f}× slower"
    if not test.significant:
        words = f"no significant change ({words} by the medians)"
    fails = " (with graphs fails fidelity)" if on.fidelity == "fail" else ""
    return f"{label}: {fmt_fixed(off.p50)} → {fmt_fixed(on.p50)} ms, {words}{fails}"


def answer_block(jobs: Sequence[JobResult], notes: Footnotes) -> list[str]:
    """One sweep of one workload on one machine: which variant is fastest among those that pass fidelity,
    its speedup over eager fp32 of the same sweep, how sure that is, and what CUDA graphs bring."""
    ok = sorted((j for j in jobs if j.ok and j.p50 is not None), key=lambda j: j.p50 or 0.0)
    if not ok:
        return [f"- No job ended ok ({plural(len(jobs), 'job')}; see the tables for why)."]
    passing = [j for j in ok if j.fidelity == "pass"]
    failing = [j for j in ok if j.fidelity == "fail"]
    unjudged = [j for j in ok if not j.fidelity]
    lines: list[str] = []
    ties: list[JobResult] = []
    if passing:
        fastest = passing[0]
        ties = [j for j in passing[1:] if tied(fastest, j)]
        if ties:
            named = join_words([quote(j) for j in [fastest, *ties]])
            lines.append(f"- Fastest that passes fidelity: **tied**, {named}: within each other's spread between "
                         "processes (or not told apart by the significance test), so neither is faster here.")
        else:
            lines.append(f"- Fastest that passes fidelity: {quote(fastest)}.")
            if len(passing) > 1:
                lines.append(f"- Runner-up: {quote(passing[1])}, significantly slower.")
    else:
        fastest = ok[0]
        why = []
        why += [f"{plural(len(failing), 'variant')} fail"] if failing else []
        reasons = unique([j.fidelity_note for j in unjudged])
        why += [f"{plural(len(unjudged), 'variant')} without a verdict"
                + "".join(notes.mark(r) for r in reasons)] if unjudged else []
        lines.append(f"- No variant passes fidelity ({join_words(why)}). Fastest measured, **correctness not "
                     f"established**: {quote(fastest)}" + (" (fails fidelity)." if fastest.fidelity == "fail" else "."))
    base = baseline(jobs)
    if base is None:
        lines.append("- Speedup over eager fp32: no ok eager fp32 job (python-eager, fp32, no autocast, no graphs) "
                     "in this sweep.")
    elif base is fastest or is_eager_fp32(fastest) and fastest.job_key == base.job_key:
        lines.append("- Eager fp32 itself is the fastest here: no variant beats it.")
    else:
        whose = f" of {variant_label(fastest.row)}" if passing and ties else ""
        lines.append(f"- Speedup{whose} over eager fp32 ({quote(base)}), same machine and sweep: "
                     f"{speedup_words(base, fastest)}.")
    extras = []
    if fastest.energy_mj is not None:
        extras.append(f"{fmt_sig(fastest.energy_mj)} mJ per inference")
    if fastest.power_w is not None:
        extras.append(f"{fmt_sig(fastest.power_w)} W mean power")
    if fastest.compile_s is not None:
        extras.append(f"compile {fmt_sig(fastest.compile_s)} s")
    if extras:
        lines.append(f"- Its cost: {', '.join(extras)}.")
    if passing and failing and failing[0].p50 is not None and failing[0].p50 < (fastest.p50 or 0):
        lines.append(f"- Faster but failing fidelity: {quote(failing[0])}; not counted.")
    return lines + graph_lines(jobs, notes)


def answers(machines: dict[tuple[str, ...], list[JobResult]], notes: Footnotes) -> list[str]:
    """The first lines of a report: per machine and per sweep of a workload, the answers."""
    lines = ["## Answers", ""]
    for machine, jobs in machines.items():
        for key, sweep_jobs in groups(jobs, SWEEP_COLUMNS).items():
            matrix = key[0]
            hosts = unique([h for j in sweep_jobs for h in j.hosts])
            where = f" (rows from {plural(len(hosts), 'host')}: {', '.join(hosts)})" if len(hosts) > 1 else ""
            lines += [f"**{machine_title(machine)}** · {workload_title(key[1:])} · matrix `{matrix or '?'}`{where}",
                      "", *answer_block(sweep_jobs, notes), ""]
    return lines


# ---------------------------------------------------------------- what the numbers come from


def header(all_rows: list[Row], machines: dict[tuple[str, ...], list[JobResult]]) -> list[str]:
    """Which machines and software the numbers come from, and which matrices / runs / dates."""
    lines = ["Measured on:", ""]
    everything = groups(all_rows, MACHINE_COLUMNS)
    for key, jobs in machines.items():
        raw = everything[key]
        cuda, driver = unique([r["cuda_version"] for r in raw]), unique([r["driver_version"] for r in raw])
        hosts = unique([r["hostname"] for r in raw])
        facts = [f"CUDA {', '.join(cuda)}"] if cuda else []
        facts += [f"driver {', '.join(driver)}"] if driver else []
        facts += [f"host {', '.join(hosts)}"] if hosts else []
        first, last = _date(raw[0]["started_at"]), _date(raw[-1]["started_at"])
        dates = first if first == last else f"{first} to {last}"
        processes = sum(len(j.launched_rows) for j in jobs)
        uncompiled = sum(1 for j in jobs if j.not_launched)  # once per job, whatever its rows per process
        failed = f"; {plural(uncompiled, 'configuration')} whose variant failed to compile" if uncompiled else ""
        lines.append(
            f"- **{machine_title(key)}**"
            + "".join(f" · {f}" for f in facts)
            + f": matrix {_code_list(unique([r['matrix'] for r in raw])) or '?'};"
            + f" runs {_code_list(unique([r['run_id'] for r in raw])) or '?'}; {dates};"
            + f" {plural(len(jobs), 'configuration')} ({plural(processes, 'process')} run{failed})"
            + f" from {plural(len(raw), 'row')}."
        )
    return lines


def duplicate_lines(duplicates: Sequence[Duplicate]) -> list[str]:
    """Issue 15.1: the (job, process) pairs with more than one row, named."""
    if not duplicates:
        return []
    have = "has" if len(duplicates) == 1 else "have"
    lines = [f"Duplicate rows: {plural(len(duplicates), '(job, process) pair')} {have} more than one row (a --force "
             "rerun, or two sweeps into one folder); each table uses the latest ok row of a pair:", ""]
    for d in duplicates[:MAX_LISTED]:
        lines.append(f"- {machine_title(d.machine)}: `{d.job_key}` ({d.label}) process {d.process}: "
                     f"runs {_code_list(list(d.run_ids))}; shown: `{d.shown_run}`")
    if len(duplicates) > MAX_LISTED:
        lines.append(f"- and {len(duplicates) - MAX_LISTED} more")
    return lines


def skipped_lines(skipped: Sequence[tuple[str, str]]) -> list[str]:
    """Issue 15.2: `sweep report --skip-bad` renders the rest and lists what it skipped."""
    if not skipped:
        return []
    lines = [f"Skipped {plural(len(skipped), 'unreadable row file')} (--skip-bad); these rows are not in any table:",
             ""]
    return lines + [f"- `{path}`: {' '.join(reason.split()) or DASH}" for path, reason in skipped]
