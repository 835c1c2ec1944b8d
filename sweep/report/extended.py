"""Extended tables: one per runtime of a machine, every figure measured, with the spread between processes."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from sweep.host import BUSY_CPUS, BUSY_MIN_LOOP_S, SLOWED
from sweep.report.calibration import Peak
from sweep.report.format import (
    DASH,
    Column,
    Footnotes,
    Names,
    amp_label,
    fmt_count,
    fmt_cv,
    fmt_fixed,
    fmt_mean_std,
    fmt_percent,
    fmt_range,
    fmt_sci,
    fmt_sig,
    fmt_tflops,
    markdown_table,
    slug,
    table_block,
)
from sweep.report.seed import fidelity_cell
from sweep.results import OK, JobResult, groups, number, runtime_rank
from sweep.stats import LAUNCH_BOUND_BUSY

LAUNCH_BOUND = " launch-bound"

NOTE = (
    "Each job ran in one or more fresh processes. p50 is the median of the process p50s; p50 range is their "
    "min–max and CV between their coefficient of variation: the noise between processes. latency is the mean ± "
    "std over all samples of all processes, CV (%) that of all samples (⚠ above 2 %). GPU busy is the profiled "
    f"kernel time per forward over the p50; below {round(LAUNCH_BOUND_BUSY * 100)} % the GPU idles more than it "
    "works: marked launch-bound. "
    "mJ/inference and power come from NVML's energy counter around the timed loop. fidelity is the verdict: the "
    "judged error (relative L2 of the judged outputs against true fp32 eager on the same device) against the "
    "tolerance of the precision the variant computes in. rel_err is the element-wise relative L2 error of the "
    "outputs against the fp32 eager reference; rel_err (sorted) is the same on each output's sorted values, so "
    "a detector's reordered near-ties do not count."
)


def fmt_floor(p50_ms: object, gflops: object, tflops: object) -> str:
    """How far above the FLOP floor: p50 / (GFLOP / TFLOP/s, which is ms), e.g. `40.1×`."""
    p50, work, peak = number(p50_ms), number(gflops), number(tflops)
    if p50 is None or work is None or peak is None or work <= 0 or peak <= 0:
        return DASH
    return fmt_sig(p50 / (work / peak)) + "×"


def processes_cell(job: JobResult, notes: Footnotes) -> str:
    """`3`, or `2 of 3[^n]` with the failed processes' reasons."""
    done = len(job.ok_rows)
    if not job.ok:
        return f"0 of {job.planned}"
    if done >= job.planned:
        return str(done)
    alike: dict[tuple[str, str], list[int]] = {}  # one footnote per failure, naming the processes it ended
    for r in job.failed_processes:
        alike.setdefault((r["status"], r["reason"]), []).append(r["process"])
    mark = "".join(notes.mark(f"process{'es' if len(ps) > 1 else ''} {', '.join(map(str, ps))}: {status}: {reason}")
                   for (status, reason), ps in alike.items())
    missing = job.planned - done - len(job.failed_processes)
    mark += notes.mark(f"{missing} of {job.planned} processes not run yet (resume the sweep)") if missing > 0 else ""
    return f"{done} of {job.planned}{mark}"


def busy_cell(job: JobResult, notes: Footnotes) -> str:
    busy = job.gpu_busy
    if busy is None:
        return f"{DASH}{notes.mark(job.profile_note)}"
    return fmt_percent(busy) + (LAUNCH_BOUND if job.launch_bound else "")


def measured(value: float | None, note: str, notes: Footnotes, fmt: Callable[[object], str] = fmt_sig) -> str:
    return fmt(value) if value is not None else f"{DASH}{notes.mark(note)}"


def error_cell(job: JobResult) -> str:
    error, tolerance = job.judged("fidelity_error"), job.fidelity_tolerance
    if error is None and tolerance is None:
        return DASH
    precision = f" ({job.fidelity_precision})" if job.fidelity_precision else ""
    return f"{fmt_sci(error)} / {fmt_sci(tolerance)}{precision}"


def extended_columns(jobs: Sequence[JobResult], notes: Footnotes, peak: Peak | None = None) -> list[Column]:
    """Every measured figure; a settings column only where some job of this table has a value;
    `× floor` where the machine has a calibration."""

    def num(fn: Callable[[JobResult], str]) -> Callable[[JobResult], str]:
        return lambda j: fn(j) if j.ok else DASH

    multi_shapes = len({j["input_shapes"] for j in jobs}) > 1
    columns = [Column("model", lambda j: j["model"])]
    columns += [Column("inputs", lambda j: j["input_shapes"])] if multi_shapes else []
    columns.append(Column("model's precision", lambda j: j["model_precision"]))
    settings: list[tuple[str, str, Callable[[JobResult], str]]] = [
        ("amp_dtype", "amp_dtype", lambda j: amp_label(j["amp_dtype"])),
        ("enabled_precisions", "trt.enabled_precisions", lambda j: j["enabled_precisions"]),
        ("compile_mode", "compile_mode", lambda j: j["compile_mode"]),
        ("cuda_graphs", "cuda_graphs", lambda j: "on" if j["cuda_graphs"] else "off"),
        ("tf32", "tf32", lambda j: j["tf32"] or "default"),
    ]
    columns += [Column(head, cell) for name, head, cell in settings if any(j[name] for j in jobs)]
    spread = [
        Column("processes", lambda j: processes_cell(j, notes), right=True),
        Column("latency (ms)", num(lambda j: fmt_mean_std(j.pooled["mean"], j.pooled["std"])), right=True),
        Column("p50 (ms)", num(lambda j: fmt_fixed(j.p50)), right=True),
        Column("p50 range (ms)", num(lambda j: fmt_range(j.spread.low, j.spread.high) if j.spread and j.spread.n > 1
                                     else DASH), right=True),
        Column("CV between (%)", num(lambda j: fmt_cv(j.spread.cv, False) if j.spread else DASH), right=True),
        Column("mJ/inference", num(lambda j: measured(j.energy_mj, j.energy_note, notes)), right=True),
        Column("power (W)", num(lambda j: measured(j.power_w, j.energy_note, notes)), right=True),
    ]
    columns += spread
    if any(j.compile_s is not None for j in jobs):
        columns.append(Column("compile (s)", lambda j: fmt_sig(j.compile_s), right=True))
    columns += [
        Column("p90 (ms)", num(lambda j: fmt_fixed(j.pooled["p90"])), right=True),
        Column("p99 (ms)", num(lambda j: fmt_fixed(j.pooled["p99"])), right=True),
        Column("CV (%)", num(lambda j: fmt_cv(j.pooled["cv"], j.noisy)), right=True),
        Column("GPU busy (%)", num(lambda j: busy_cell(j, notes)), right=True),
    ]
    if any(j.host_slowed is not None for j in jobs):
        columns.append(Column("host slowed", lambda j: fmt_count(j.host_slowed), right=True))
    if any(j.host_busy is not None for j in jobs):
        columns.append(Column("busy host", lambda j: fmt_count(j.host_busy), right=True))
    columns += [
        Column("TFLOP/s", num(lambda j: fmt_tflops(j.gflops, j.p50)), right=True),
    ]
    if peak is not None:
        tflops = peak.tflops
        columns.append(Column("× floor", num(lambda j: fmt_floor(j.p50, j.gflops, tflops)), right=True))
    return columns + [
        Column("peak mem (MB)", num(lambda j: fmt_fixed(j.peak_mem_mb, 0)), right=True),
        Column("fidelity", lambda j: fidelity_cell(j, notes)),
        Column("error / tolerance", num(error_cell), right=True),
        Column("rel_err", num(lambda j: fmt_sci(j.judged("rel_err"))), right=True),
        Column("rel_err (sorted)", num(lambda j: fmt_sci(j.judged("rel_err_sorted"))), right=True),
        Column("status", lambda j: OK if j.ok else notes.status(j)),
    ]


def floor_note(peak: Peak) -> str:
    return (
        f"× floor is p50 over the FLOP floor, the row's GFLOP / {fmt_sig(peak.tflops)} TFLOP/s "
        f"({peak.dtype or '?'} matmul measured by `sweep calibrate`{peak.source}; see Calibration)."
    )


def host_note(jobs: Sequence[JobResult]) -> str:
    """What the host columns mean, for a machine whose rows record the host (empty when none does)."""
    if not any(j.host_slowed is not None or j.host_busy is not None for j in jobs):
        return ""
    reference = next((j.canary_reference_ms for j in jobs if j.canary_reference_ms is not None), None)
    where = (f" ({fmt_sig(reference)} ms here, so above {fmt_sig(SLOWED * reference)} ms)"
             if reference is not None else "")
    return (
        "host slowed: of a job's processes whose rows record it, how many ran on a slowed host core: the slower "
        "of their two CPU canaries (a fixed pure-Python loop, best of 5, timed just before and just after the "
        f"timed loop) read above {SLOWED:g}× this machine's best canary in these rows{where}. The core under a "
        "virtual CPU can be slowed from outside the VM with nothing in the guest to show it, and a launch-bound "
        "forward slows with it. It is an indicator: a flagged process may have run fast; CUDA-graph rows are "
        "barely affected, the host being out of their timed loop. busy host: how many processes had more than "
        f"{BUSY_CPUS:g} CPU's worth of other work on the machine during their timed loop, i.e. were measured "
        f"beside other work (unknown for loops under {BUSY_MIN_LOOP_S:g} s, too short for /proc/stat's ticks). "
        "Empty: not recorded (older rows, C++ runners). Neither drops a process: p50, its range and the CVs keep "
        "them all."
    )


def p50_rank(job: JobResult) -> tuple[bool, float]:
    p50 = job.p50 if job.ok else None
    return (p50 is None, math.inf if p50 is None else p50)


def extended_section(
    jobs: list[JobResult], fmt: str, names: Names, notes: Footnotes, suffix: str, peak: Peak | None = None
) -> list[str]:
    """One table per runtime of the machine, every runtime present, fastest p50 first."""
    note = " ".join(text for text in (NOTE, floor_note(peak) if peak else "", host_note(jobs)) if text)
    lines: list[str] = [note, ""]
    by_runtime = groups(jobs, ("runtime",))
    for (runtime,), runtime_jobs in sorted(by_runtime.items(), key=lambda item: runtime_rank(item[0][0])):
        ordered = sorted(runtime_jobs, key=lambda j: (j["model"], j["input_shapes"], *p50_rank(j)))
        table = markdown_table(extended_columns(ordered, notes, peak), ordered)
        lines += [
            *table_block(fmt, runtime or "unknown runtime", names.take(f"all_{slug(runtime)}", suffix), table),
            "",
        ]
    return lines
