"""The `sweep` command line (Typer): parse, dispatch, print; user errors become one line and exit code 2."""

from __future__ import annotations

import json
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from sweep.errors import SweepError
from sweep.paths import DEFAULT_ARTIFACTS, DEFAULT_RESULTS

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Precision-matrix sweeps of deep-learning inference: which runtime and precision is fastest, "
                       "and is it still correct?")
err = Console(stderr=True)
out = Console(highlight=False, soft_wrap=True)

F = TypeVar("F", bound=Callable[..., Any])

ResultsOpt = Annotated[Path, typer.Option(
    "--results", help="Results folder (Parquet rows); results/ holds the committed GPU rows, for reading.")]
ArtifactsOpt = Annotated[Path, typer.Option("--artifacts", help="Compiled-variant and reference cache.")]
MatrixArg = Annotated[Path, typer.Argument(help="Matrix YAML file.", show_default=False)]
RuntimeOpt = Annotated[list[str] | None, typer.Option(
    "--runtime", help="Only the jobs of this runtime (repeatable); the rest of the matrix is left for later.")]
MaxJobsOpt = Annotated[int, typer.Option(
    "--max-jobs", min=1, help="Refuse a matrix that expands to more jobs than this (counted before any is made).")]
AnyFactoryOpt = Annotated[bool, typer.Option(
    "--allow-any-factory", help="Accept model factories from anywhere, the standard library included (SECURITY.md).")]


def load_matrix(path: Path, runtimes: list[str] | None, allow_any_factory: bool = False,
                max_jobs: int | None = None) -> Any:
    """Load and validate; with --runtime, keep only those runtimes' jobs (an unknown name is a user error)."""
    import dataclasses

    from sweep.matrix import DEFAULT_MAX_JOBS, load
    from sweep.runtimes import RUNTIMES

    m = load(path, allow_any_factory=allow_any_factory, max_jobs=max_jobs or DEFAULT_MAX_JOBS)
    if not runtimes:
        return m
    for name in runtimes:
        if name not in RUNTIMES:
            raise SweepError(f"--runtime: unknown runtime {name!r}; known: {', '.join(RUNTIMES)}")
    jobs = tuple(j for j in m.jobs if j.runtime in runtimes)
    if not jobs:
        raise SweepError(f"{path}: no jobs of runtime {', '.join(runtimes)} in this matrix")
    return dataclasses.replace(m, jobs=jobs)


def user_errors(fn: F) -> F:
    """SweepError -> one line on stderr, exit code 2; anything else is a bug and keeps its traceback."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except SweepError as exc:
            err.print(f"[bold red]error:[/] {exc}", markup=True, highlight=False, soft_wrap=True)
            raise typer.Exit(exc.exit_code) from None

    return wrapper  # type: ignore[return-value]


@app.command()
@user_errors
def plan(matrix: MatrixArg,
         runtime: RuntimeOpt = None,
         as_json: Annotated[bool, typer.Option("--json", help="One JSON list of job objects on stdout.")] = False,
         allow_any_factory: AnyFactoryOpt = False,
         max_jobs: MaxJobsOpt = 20_000,
         ) -> None:
    """Show the jobs a matrix expands to; run nothing."""

    m = load_matrix(matrix, runtime, allow_any_factory, max_jobs)
    if as_json:
        out.print_json(json.dumps([j.to_dict() for j in m.jobs]))
        return
    columns: dict[str, Callable[[Any], str]] = {
        "job_key": lambda j: j.key[:12], "runtime": lambda j: j.runtime, "model": lambda j: j.model.label,
        "precision": lambda j: j.model_precision, "amp": lambda j: j.amp_dtype, "trt": lambda j: j.enabled_label,
        "mode": lambda j: j.compile_mode, "graphs": lambda j: "on" if j.cuda_graphs else "",
        "tf32": lambda j: j.tf32, "device": lambda j: j.device, "warmup": lambda j: str(j.warmup),
        "iters": lambda j: str(j.iters), "processes": lambda j: str(j.processes),
    }
    cells = {name: [get(j) for j in m.jobs] for name, get in columns.items()}
    shown = [name for name, values in cells.items() if any(values)]  # axes no job uses would only take room
    table = Table(title=f"{m.name}: {len(m.jobs)} jobs", title_justify="left")
    for col in ("#", *shown):
        table.add_column(col)
    for i in range(len(m.jobs)):
        table.add_row(str(i + 1), *(cells[name][i] for name in shown))
    out.print(table)


@app.command()
@user_errors
def run(matrix: MatrixArg,
        runtime: RuntimeOpt = None,
        results: ResultsOpt = DEFAULT_RESULTS,
        artifacts: ArtifactsOpt = DEFAULT_ARTIFACTS,
        force: Annotated[bool, typer.Option("--force", help="Run jobs that already have an ok row.")] = False,
        timeout: Annotated[float | None, typer.Option("--timeout", min=0.001,
                                                      help="Seconds per job, overriding the matrix.")] = None,
        allow_any_factory: AnyFactoryOpt = False,
        max_jobs: MaxJobsOpt = 20_000,
        gpus: Annotated[str | None, typer.Option(
            "--gpus", help="Run CUDA jobs on several GPUs at once, one job per GPU: all, a count (2), or CUDA "
                           "indices (0,2,5). CPU jobs still run alone.")] = None,
        no_wait: Annotated[bool, typer.Option(
            "--no-wait", help="Refuse (exit 2) instead of waiting when another sweep holds a device.")] = False,
        executor_name: Annotated[str, typer.Option(
            "--executor", help="local (this host) or slurm (one Slurm job per launch, via submitit; results, "
                               "artifacts and the matrix folder must be on a filesystem the nodes share).")] = "local",
        slurm_partition: Annotated[str | None, typer.Option("--slurm-partition", help="Slurm partition.")] = None,
        slurm_gpus_per_job: Annotated[int, typer.Option("--slurm-gpus-per-job", min=1,
                                                        help="GPUs per CUDA launch.")] = 1,
        slurm_cpus_per_job: Annotated[int, typer.Option("--slurm-cpus-per-job", min=1,
                                                        help="Cores per CUDA launch (CPU launches get a node).")] = 4,
        slurm_time_min: Annotated[int | None, typer.Option(
            "--slurm-time-min", min=1, help="Slurm time limit per job; default: the job's timeout + margins.")] = None,
        slurm_deadline_min: Annotated[float, typer.Option(
            "--slurm-deadline-min", min=0.01, help="Stop waiting after this; what is left is scancelled.")] = 1440.0,
        slurm_signal_s: Annotated[int, typer.Option(
            "--slurm-signal-s", min=1, help="USR2 this long before the time limit kills the runner.")] = 90,
        slurm_max_jobs: Annotated[int, typer.Option("--slurm-max-jobs", min=1,
                                                    help="Slurm jobs queued or running at once.")] = 256,
        slurm_folder: Annotated[Path | None, typer.Option(
            "--slurm-folder", help="submitit's pickles and logs (shared filesystem); default ARTIFACTS/slurm.")] = None,
        slurm_opt: Annotated[list[str] | None, typer.Option(
            "--slurm-opt", help="Another sbatch option: KEY=VALUE or a flag, e.g. account=abc, exclusive (repeatable).")
        ] = None,
        ) -> None:
    """Run every job of the matrix, each process in its own subprocess; append one row per (job, process)."""
    from sweep.orchestrate import Orchestrator, check_writable
    from sweep.pool import LocalPool, parse_gpus, visible_gpus

    m = load_matrix(matrix, runtime, allow_any_factory, max_jobs)
    check_writable(results, "--results")  # before anything runs or is printed
    check_writable(artifacts, "--artifacts")
    if executor_name not in ("local", "slurm"):
        raise SweepError(f"--executor: unknown executor {executor_name!r}; allowed: local, slurm")
    slurm_options = None
    if executor_name == "slurm":
        from sweep.slurm import SlurmOptions, parse_opts

        if gpus is not None:
            raise SweepError("--gpus: places jobs on this host's GPUs; with --executor slurm use --slurm-gpus-per-job")
        slurm_options = SlurmOptions(
            partition=slurm_partition, gpus_per_job=slurm_gpus_per_job, cpus_per_job=slurm_cpus_per_job,
            time_min=slurm_time_min, deadline_min=slurm_deadline_min, signal_s=slurm_signal_s,
            max_jobs=slurm_max_jobs, folder=(slurm_folder or artifacts / "slurm").absolute(),
            additional=parse_opts(slurm_opt or []))
    pool_gpus, count = parse_gpus(gpus, visible_gpus()) if gpus is not None else (None, None)
    t0 = time.perf_counter()
    # Refreshed on events only: a progress bar redrawing ten times a second is a neighbour of every timing.
    progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TextColumn("{task.fields[current]}"), TimeElapsedColumn(), TextColumn("eta"),
                        TimeRemainingColumn(), console=err, transient=False, auto_refresh=False)
    task = progress.add_task(m.name, total=sum(j.processes for j in m.jobs), current="")
    colors = {"ok": "green", "unavailable": "yellow", "unsupported": "yellow"}

    def on_event(kind: str, pair: Any, row: dict[str, Any] | None) -> None:
        if kind == "start":
            progress.update(task, current=pair.describe())
        elif kind == "skip":
            progress.advance(task)
        elif row is not None:
            status = row["status"]
            mean = row.get("latency_ms_mean")
            reason = (row["reason"] or "").splitlines()
            figure = f"{mean:.3f} ms" if mean is not None else (reason[0][:100] if reason else "")
            if row.get("fidelity") == "fail":
                figure += " (fails fidelity)"
            where = f" gpu {row['gpu_index']}" if row.get("gpu_index") is not None and gpus else ""
            line = f"[{colors.get(status, 'red')}]{status:>12}[/] {escape(pair.describe())}{where}  {escape(figure)}"
            progress.console.print(line, highlight=False, markup=True)
            progress.advance(task)
        progress.refresh()

    def on_message(text: str) -> None:
        progress.console.print(escape(text), highlight=False, markup=True)
        progress.refresh()

    executor: Any
    if slurm_options is not None:
        from sweep.slurm import SlurmExecutor

        executor = SlurmExecutor(slurm_options)
    else:
        executor = LocalPool(pool_gpus, count, wait=not no_wait, on_message=on_message, what=f"matrix {matrix}")
    # SIGTERM (a CI timeout, `timeout`, a batch system) unwinds like Ctrl-C: the jobs in flight are taken down
    # on the way out, and every finished row is already on disk.
    signal.signal(signal.SIGTERM, _terminate)
    orch = Orchestrator(results, artifacts, force=force, timeout_s=timeout, on_event=on_event, executor=executor,
                        on_message=on_message)
    orch.prepare(m)  # bad row files, unwritable folders: one line before the progress bar shows
    with progress:
        summary = orch.run(m)
    _print_summary(summary, time.perf_counter() - t0, results)
    raise typer.Exit(summary.exit_code)


def _check_device(device: str) -> None:
    from sweep.matrix import DEVICE_RE

    if not DEVICE_RE.match(device):
        raise SweepError(f"--device: unknown device {device!r}; allowed: cpu, cuda, cuda:N")


def _terminate(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)


def _summary_lines(rows: list[dict[str, Any]]) -> list[tuple[dict[str, Any], str]]:
    """(row, process cell) per line of the run's table: the rows of a job that never launched (its variant failed
    to compile: one row per planned process, alike) are one line naming their processes."""
    from sweep.schema import NOT_LAUNCHED

    lines: list[tuple[dict[str, Any], list[int]]] = []
    together: dict[tuple[str, str], list[int]] = {}
    for row in rows:
        if row["status"] in NOT_LAUNCHED and (row["job_key"], row["status"]) in together:
            together[(row["job_key"], row["status"])].append(row["process"] + 1)
            continue
        processes = [row["process"] + 1]
        if row["status"] in NOT_LAUNCHED:
            together[(row["job_key"], row["status"])] = processes
        lines.append((row, processes))
    return [(row, f"{','.join(map(str, sorted(ps)))}/{row['processes']}") for row, ps in lines]


def _counts(summary: Any) -> str:
    """`6 ok, 1 failed`; rows of jobs that never launched count once per job: `3 compile_failed (1 job)`."""
    from sweep.schema import NOT_LAUNCHED

    parts = []
    for status, n in sorted(summary.counts.items()):
        text = f"{n} {status}"
        if status in NOT_LAUNCHED:
            jobs = len({row["job_key"] for row in summary.rows if row["status"] == status})
            text = f"{jobs} {status} job{'s' if jobs != 1 else ''} ({n} process{'es' if n != 1 else ''} not run)"
        parts.append(text)
    return ", ".join(parts)


def _print_summary(summary: Any, wall_s: float, results: Path) -> None:
    table = Table(title=f"run {summary.run_id}: {summary.total} job processes in {wall_s:.1f} s",
                  title_justify="left")
    for col in ("runtime", "model", "precision", "amp / trt / mode", "process", "status", "mean ± std (ms)", "p50",
                "fidelity"):
        table.add_column(col)
    for row, process in _summary_lines(summary.rows):
        setting = row["amp_dtype"] or "+".join(row["enabled_precisions"] or []) or row["compile_mode"]
        mean, std = row["latency_ms_mean"], row["latency_ms_std"]
        figures = f"{mean:.3f} ± {std:.3f}" if mean is not None else "—"
        p50 = f"{row['latency_ms_p50']:.3f}" if row["latency_ms_p50"] is not None else "—"
        error = row.get("fidelity_error")
        verdict = (row.get("fidelity") or "—") + (f" ({error:.1e})" if error is not None else "")
        table.add_row(row["runtime"], row["model"], row["model_precision"], setting, process, row["status"],
                      figures, p50, verdict)
    err.print(table)
    counts = _counts(summary)
    skipped = f", {len(summary.skipped)} already done (use --force to rerun)" if summary.skipped else ""
    elsewhere = f", {len(summary.elsewhere)} done by another sweep meanwhile" if summary.elsewhere else ""
    err.print(f"{counts or 'nothing run'}{skipped}{elsewhere}; rows in {results}/", highlight=False)


@app.command()
@user_errors
def report(results: ResultsOpt = DEFAULT_RESULTS,
           out_file: Annotated[Path | None, typer.Option("--out", help="Write the markdown here too.")] = None,
           fmt: Annotated[str, typer.Option("--format", help="md or myst (the seed's {table} directives).")] = "md",
           plot: Annotated[bool, typer.Option("--plot/--no-plot",
                                              help="With --out: also write a latency PNG beside it.")] = True,
           skip_bad: Annotated[bool, typer.Option("--skip-bad", help="Render the readable row files and list the "
                                                  "unreadable ones, instead of refusing.")] = False,
           ) -> None:
    """Render the stored rows: the answers, the seed's markdown tables, every runtime in full, calibrations."""
    from sweep import atomic, store
    from sweep import report as report_mod

    if fmt not in ("md", "myst"):
        raise SweepError(f"--format: unknown value {fmt!r}; allowed: md, myst")
    if skip_bad:
        df, bad_files = store.load(results, skip_bad=True)
        skipped = [(str(b.path), b.why) for b in bad_files]
    else:
        df, skipped = store.load(results), []
    calibrations: list[dict[str, Any]] = []
    for path in sorted(results.rglob("calibration-*.json")) if results.is_dir() else []:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise SweepError(f"{path}: not a readable calibration JSON file ({' '.join(str(exc).split())})") from None
        if not isinstance(data, dict):
            raise SweepError(f"{path}: a calibration file must hold a JSON object, not {type(data).__name__}")
        calibrations.append(data)
    plot_rel = None
    if out_file is not None and plot and len(df):
        png = out_file.with_suffix(".png")
        if report_mod.plot_latency(df, png) is not None:
            plot_rel = png.name
    text = report_mod.render(df, fmt=fmt, plot=plot_rel, calibrations=calibrations, skipped=skipped)
    if out_file is not None:
        out_file.parent.mkdir(parents=True, exist_ok=True)
        atomic.write_text(out_file, text)
    sys.stdout.write(text)
    for bad, why in skipped:
        err.print(f"skipped {bad}: {why}", markup=False, highlight=False, soft_wrap=True)


@app.command()
@user_errors
def compare(base: Annotated[Path, typer.Argument(help="Results folder to compare against.", show_default=False)],
            new: Annotated[Path, typer.Argument(help="Results folder with the new rows.", show_default=False)],
            as_json: Annotated[bool, typer.Option("--json", help="JSON list on stdout.")] = False,
            fail_above: Annotated[float | None, typer.Option(
                "--fail-above", metavar="PCT", min=0.0,
                help="Exit 1 when any job is significantly slower by more than PCT %.")] = None,
            ) -> None:
    """Compare two result sets job by job: base p50, new p50, ratio and whether the change beats the noise."""
    from sweep import compare as compare_mod
    from sweep import store

    for name, folder in (("BASE", base), ("NEW", new)):
        if not folder.is_dir():
            raise SweepError(f"{name}: {folder} is not a results folder")
    result = compare_mod.compare(store.load(base), store.load(new))
    if as_json:
        sys.stdout.write(json.dumps(compare_mod.to_json(result.comparisons), indent=1) + "\n")
    else:
        sys.stdout.write(compare_mod.render_text(result, str(base), str(new)))
    if fail_above is not None:
        slower = [c for c in result.comparisons if c.slower_by_more_than(fail_above)]
        for c in slower:
            err.print(f"slower by {((c.ratio or 1) - 1) * 100:.1f} % (> {fail_above:g} %): {c.job_key} "
                      f"{compare_mod.variant_label(c.any_side.row)}", markup=False, highlight=False, soft_wrap=True)
        if slower:
            raise typer.Exit(1)


@app.command()
@user_errors
def doctor(device: Annotated[str, typer.Option(help="Device to check: cpu, cuda or cuda:N.")] = "cuda") -> None:
    """Say which runtimes work on this machine, and why not."""
    from sweep.doctor import checks

    _check_device(device)
    table = Table(title="sweep doctor", title_justify="left")
    for col in ("check", "ok", "detail"):
        table.add_column(col)
    for name, ok, detail in checks(device):
        table.add_row(name, "[green]yes[/]" if ok else "[red]no[/]", escape(detail))  # details hold [extras]
    out.print(table)


@app.command()
@user_errors
def models(as_json: Annotated[bool, typer.Option("--json", help="JSON list on stdout.")] = False) -> None:
    """List the built-in models with parameter counts, default input shapes and forward GFLOPs."""
    from sweep.models import BUILTINS
    from sweep.models.build import describe

    infos = [describe(name) for name in BUILTINS]
    if as_json:
        out.print_json(json.dumps(infos))
        return
    table = Table(title="built-in models", title_justify="left")
    for col in ("name", "params (M)", "by part (M)", "input_shapes", "GFLOPs", "description"):
        table.add_column(col)
    for info in infos:
        parts = ", ".join(f"{k} {v / 1e6:.2f}" for k, v in info.get("params_by_part", {}).items())
        table.add_row(info["name"], f"{info['params'] / 1e6:.2f}", parts, json.dumps(info["input_shapes"]),
                      f"{info['gflops']:.2f}", BUILTINS[info["name"]].description)
    out.print(table)


@app.command()
@user_errors
def calibrate(model: Annotated[str, typer.Option(help="Built-in model to time.")] = "tiny",
              device: Annotated[str, typer.Option(help="cpu, cuda or cuda:N.")] = "cpu",
              precision: Annotated[str, typer.Option(help="fp32, fp16 or bf16.")] = "fp32",
              iters: Annotated[int, typer.Option(min=1)] = 100,
              results: ResultsOpt = DEFAULT_RESULTS,
              ) -> None:
    """Check our timer against independent ones and measure the device's ceilings (a benchmark, not a test)."""
    from sweep import calibrate as cal
    from sweep.models import BUILTINS

    if model not in BUILTINS:
        raise SweepError(f"--model: unknown model {model!r}; built-in: {', '.join(BUILTINS)}")
    if precision not in ("fp32", "fp16", "bf16"):
        raise SweepError(f"--precision: unknown value {precision!r}; allowed: fp32, fp16, bf16")
    _check_device(device)
    report = cal.calibrate(model, device, precision, iters=iters)
    path = cal.save(report, results)
    table = Table(title=f"calibrate {model} {precision} on {report['env']['device_name']}", title_justify="left")
    for col in ("form", "ours host p50 (ms)", "ours events p50", "torch.utils.benchmark", "do_bench", "ratio"):
        table.add_column(col)
    for name, e in report["forms"].items():
        def f(v: Any) -> str:
            return f"{v:.3f}" if isinstance(v, float) else "—"
        table.add_row(name, f(e["ours_host_ms"]), f(e.get("ours_cuda_events_ms")), f(e["torch_benchmark_ms"]),
                      f(e.get("triton_do_bench_ms")), f"{e['ratio_ours_host_vs_independent']:.3f}")
    out.print(table)
    peak = report["peak"]
    out.print(f"{peak['matmul_dtype']} matmul {peak['matmul_tflops']:.3g} TFLOP/s, copy {peak['copy_gbps']:.0f} GB/s; "
              f"model {report['model_gflops']:.2f} GFLOP -> floor {report['floor_ms']:.3f} ms; "
              f"clocks before {report['clocks_before']} after {report['clocks_after']}; saved {path}")


def _mb(size_bytes: int) -> str:
    return f"{size_bytes / 2**20:.1f}"


@app.command("compile")
@user_errors
def compile_cmd(matrix: MatrixArg,
                runtime: RuntimeOpt = None,
                artifacts: ArtifactsOpt = DEFAULT_ARTIFACTS,
                as_json: Annotated[bool, typer.Option("--json", help="One JSON list, an object per variant.")] = False,
                timeout: Annotated[float | None, typer.Option(
                    "--timeout", min=0.001, help="Seconds per compile, overriding the matrix.")] = None,
                allow_any_factory: AnyFactoryOpt = False,
                ) -> None:
    """Build the compiled variants a matrix needs and run nothing; what is already built is reused."""
    from sweep import compile as compile_step
    from sweep.orchestrate import check_writable
    from sweep.paths import runner_env
    from sweep.workspace import Session

    m = load_matrix(matrix, runtime, allow_any_factory)
    check_writable(artifacts, "--artifacts")
    planned = compile_step.plan(m.jobs)
    results: list[dict[str, Any]] = []
    session = Session(artifacts, "compile")
    for item in planned:
        job = item.jobs[0]
        err.print(f"[bold]compiling[/] {item.variant.describe()} ({', '.join(item.runtimes)})", markup=True,
                  highlight=False)
        try:
            built = compile_step.ensure(job, artifacts, timeout or job.timeout_s, env=runner_env(), deep=True,
                                        session=session)
        except BaseException:
            session.close()
            raise
        color = {"built": "green", "cached": "green", "failed": "red"}.get(built.status, "yellow")
        first = built.reason.splitlines()[0][:160] if built.reason else ""
        err.print(f"[{color}]{built.status:>11}[/] {built.key}  {built.spent_s:.1f} s  {first}", markup=True,
                  highlight=False, soft_wrap=True)
        results.append({
            "key": built.key, "status": built.status, "seconds": round(built.spent_s, 3),
            "compile_s": built.seconds, "backend": item.variant.backend, "model": item.variant.model.label,
            "model_precision": item.variant.model_precision,
            "enabled_precisions": "+".join(item.variant.enabled_precisions), "device": job.device,
            "runtimes": item.runtimes, "dir": built.artifact["dir"] if built.artifact else None,
            "reason": built.reason,
        })
    session.close()
    if as_json:
        out.print_json(json.dumps(results))
    else:
        table = Table(title=f"{m.name}: {len(results)} variants in {artifacts}/", title_justify="left")
        for col in ("key", "backend", "model", "precision", "trt", "runtimes", "status", "seconds"):
            table.add_column(col)
        for r in results:
            table.add_row(r["key"][:12], r["backend"], r["model"], r["model_precision"], r["enabled_precisions"],
                          ", ".join(r["runtimes"]), r["status"], f"{r['seconds']:.1f}")
        out.print(table)
    raise typer.Exit(1 if any(r["status"] == "failed" for r in results) else 0)


@app.command()
@user_errors
def artifacts(artifacts: ArtifactsOpt = DEFAULT_ARTIFACTS,
              prune_older_than: Annotated[float | None, typer.Option(
                  "--prune-older-than", min=0.0, help="Remove variants built more than DAYS ago.")] = None,
              prune_all: Annotated[bool, typer.Option("--prune-all", help="Remove every compiled variant.")] = False,
              as_json: Annotated[bool, typer.Option("--json", help="One JSON object on stdout.")] = False,
              ) -> None:
    """List the compiled-variant cache (the reference outputs are shown apart and never pruned); prune it."""
    from sweep import compile as compile_step

    pruned = []
    if prune_all or prune_older_than is not None:
        pruned = compile_step.prune(artifacts, older_than_days=prune_older_than, everything=prune_all)
    listing = compile_step.entries(artifacts)
    refs = compile_step.references_summary(artifacts)
    if as_json:
        out.print_json(json.dumps({"artifacts": str(artifacts), "variants": [e.to_dict() for e in listing],
                                   "references": refs, "pruned": [e.to_dict() for e in pruned]}))
        return
    for e in pruned:
        err.print(f"pruned {e.kind} {e.name} ({_mb(e.size_bytes)} MB)", highlight=False)
    table = Table(title=f"{artifacts}/: {sum(e.kind == 'variant' for e in listing)} variants, "
                        f"{_mb(sum(e.size_bytes for e in listing))} MB", title_justify="left")
    for col in ("key", "kind", "backend", "model", "precision", "device", "size (MB)", "age (days)", "compile (s)"):
        table.add_column(col)
    for e in listing:
        table.add_row(e.name[:20], e.kind, e.backend, e.model, e.precision, e.device, _mb(e.size_bytes),
                      f"{e.age_s / 86400:.1f}", f"{e.compile_s:.1f}" if e.compile_s is not None else "")
    out.print(table)
    out.print(f"references: {refs['count']} cached fp32 outputs, {_mb(refs['size_bytes'])} MB (kept)")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
