"""What the orchestrator itself costs on this machine (issue 12.1): `python bench/overhead.py [--out FILE]`.

Three figures, each from fresh `sweep` processes as a user starts them (wall time on a shared machine varies
with its load, so CPU seconds are shown beside it and the median of several runs is reported):

1. `sweep plan matrices/cpu.yaml` (goal < 1.5 s).
2. Rerunning a finished 3-job matrix (matrices/cpu.yaml, run once first), which launches nothing (goal < 3 s).
3. Orchestration overhead per job: `sweep run` of N jobs of the torch-free fixture runner (tests/fixtures), so
   torch's start-up is not counted, minus the runners' own wall time (the rows' wall_s) and minus the fixed
   cost of a `sweep run` that launches nothing (the rerun of the same matrix), divided by N (goal < 0.3 s).
   The one fp32 reference run the fixture matrix needs is counted as orchestration, amortised over N. The
   median of three such sweeps is reported.

Each measured process is also checked for torch: figures 1 and 2 are only meaningful without it. Device
locks are taken in a folder of the benchmark's own (SWEEP_LOCK_DIR), so other sweeps on a shared machine
do not make it wait.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DRIVER = ROOT / "tests" / "fixtures" / "fixture_sweep.py"  # `sweep` with the fixture runtimes registered
GOALS = {"plan_s": 1.5, "rerun_s": 3.0, "overhead_per_job_s": 0.3}


def timed(command: list[str], cwd: Path, importtime: bool = False) -> dict[str, Any]:
    """Wall and CPU seconds of one command; with importtime (which slows it), whether it imported torch/pandas.

    Device locks go to a folder of the benchmark's own: on a shared machine another user's sweep holds the
    machine-wide CPU lock for minutes, and waiting for it is not what this measures."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "120", "SWEEP_LOCK_DIR": str(cwd / "locks")}
    if importtime:
        env["PYTHONPROFILEIMPORTTIME"] = "1"
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    imported = {line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")}
    if done.returncode != 0:
        tail = "\n".join(line for line in done.stderr.splitlines() if not line.startswith("import time:"))[-2000:]
        raise SystemExit(f"{' '.join(command)} failed with exit code {done.returncode}:\n{tail}")
    return {"wall_s": wall, "cpu_s": (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
            "torch": "torch" in imported, "pandas": "pandas" in imported}


def repeat(command: list[str], cwd: Path, runs: int) -> dict[str, Any]:
    """The median of `runs` fresh processes, and one more under -X importtime for what it imports."""
    samples = [timed(command, cwd) for _ in range(runs)]
    imports = timed(command, cwd, importtime=True)
    return {"median_s": statistics.median(s["wall_s"] for s in samples),
            "min_s": min(s["wall_s"] for s in samples),
            "cpu_median_s": statistics.median(s["cpu_s"] for s in samples),
            "torch_imported": imports["torch"], "pandas_imported": imports["pandas"], "runs": runs}


def rows_wall_s(results: Path) -> list[float]:
    import pyarrow.parquet as pq

    walls: list[float] = []
    for path in sorted(results.rglob("*.parquet")):
        walls += [w for w in pq.read_table(path, columns=["wall_s"]).column("wall_s").to_pylist() if w is not None]
    return walls


def fixture_matrix(folder: Path, jobs: int) -> Path:
    """N distinct jobs of one model (so one reference): blocks that differ only in iters, 5 ms per iteration."""
    (folder / "fixture_models.py").write_text((ROOT / "tests" / "fixtures" / "fixture_models.py").read_text())
    blocks = "\n".join(f"  - {{runtime: fixture, measure: {{iters: {i + 1}}}}}" for i in range(jobs))
    path = folder / "overhead.yaml"
    path.write_text("model: {factory: 'fixture_models:model', input_shape: [1], options: {sleep_ms: 5}}\n"
                    f"device: cpu\nmeasure: {{warmup: 1, seed: 0}}\njobs:\n{blocks}\n")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5, help="fresh processes per figure (median reported)")
    parser.add_argument("--jobs", type=int, default=20, help="jobs of the fixture matrix (figure 3)")
    parser.add_argument("--out", type=Path, help="also write the figures here as JSON")
    args = parser.parse_args()
    sweep = [sys.executable, "-m", "sweep"]
    report: dict[str, Any] = {"machine": {"cpus": os.cpu_count(), "load_avg": os.getloadavg(),
                                          "python": platform.python_version(), "node": platform.node()}}
    with tempfile.TemporaryDirectory(prefix="sweep-bench-") as tmp:
        work = Path(tmp)
        report["plan"] = repeat([*sweep, "plan", str(ROOT / "matrices" / "cpu.yaml")], work, args.runs)

        results, artifacts = work / "cpu-results", work / "cpu-artifacts"
        run = [*sweep, "run", str(ROOT / "matrices" / "cpu.yaml"), "--results", str(results),
               "--artifacts", str(artifacts)]
        first = timed(run, work)  # measures the 3 jobs for real (torch in the runners); not a figure
        report["rerun"] = {**repeat(run, work, args.runs), "first_run_s": first["wall_s"]}

        if DRIVER.exists():
            matrix = fixture_matrix(work, args.jobs)
            sweeps = []
            for i in range(3):  # fresh results and caches each time: every job (and the reference) runs
                results, artifacts = work / f"fixture-results-{i}", work / f"fixture-artifacts-{i}"
                command = [sys.executable, str(DRIVER), "run", str(matrix), "--results", str(results),
                           "--artifacts", str(artifacts)]
                sweeps.append({**timed(command, work), "walls": rows_wall_s(results)})
            nothing = repeat(command, work, args.runs)  # the last sweep again: everything is done
            for one in sweeps:
                one["per_job_s"] = (one["wall_s"] - nothing["median_s"] - sum(one["walls"])) / len(one["walls"])
            mid = sorted(sweeps, key=lambda one: one["per_job_s"])[1]
            report["overhead"] = {"jobs": len(mid["walls"]), "sweep_run_s": mid["wall_s"],
                                  "sweep_run_cpu_s": mid["cpu_s"], "runners_wall_s": sum(mid["walls"]),
                                  "runner_wall_median_s": statistics.median(mid["walls"]),
                                  "fixed_s": nothing["median_s"], "per_job_s": mid["per_job_s"],
                                  "per_job_s_of_3_sweeps": [round(one["per_job_s"], 4) for one in sweeps]}
        else:
            report["overhead"] = {"skipped": f"{DRIVER.relative_to(ROOT)} is not in this tree"}
    figures = {"plan_s": report["plan"]["median_s"], "rerun_s": report["rerun"]["median_s"],
               "overhead_per_job_s": report["overhead"].get("per_job_s")}
    report["goals"] = {k: {"measured": v, "goal": GOALS[k], "met": v is not None and v < GOALS[k]}
                       for k, v in figures.items()}
    lines = [
        f"machine: {report['machine']['cpus']} CPUs, load average {', '.join(f'{x:.1f}' for x in os.getloadavg())} "
        f"at the end (shared: wall times vary with it; CPU seconds less so)",
        f"sweep plan matrices/cpu.yaml: median {report['plan']['median_s']:.2f} s (min {report['plan']['min_s']:.2f}, "
        f"CPU {report['plan']['cpu_median_s']:.2f} s, {args.runs} runs); torch imported: "
        f"{report['plan']['torch_imported']}, pandas imported: {report['plan']['pandas_imported']}",
        f"rerun of the finished 3-job matrices/cpu.yaml (nothing launched): median {report['rerun']['median_s']:.2f} s "
        f"(min {report['rerun']['min_s']:.2f}, CPU {report['rerun']['cpu_median_s']:.2f} s); torch imported: "
        f"{report['rerun']['torch_imported']}, pandas imported: {report['rerun']['pandas_imported']} "
        f"(first run, 3 jobs measured: {report['rerun']['first_run_s']:.1f} s)",
    ]
    o = report["overhead"]
    if "per_job_s" in o:
        lines.append(f"orchestration overhead per job: {o['per_job_s']:.3f} s = ({o['sweep_run_s']:.2f} s sweep run of "
                     f"{o['jobs']} fixture jobs - {o['fixed_s']:.2f} s fixed cost of a run launching nothing - "
                     f"{o['runners_wall_s']:.2f} s in the runners, median {o['runner_wall_median_s']:.3f} s each) "
                     f"/ {o['jobs']}; the median of 3 sweeps: {o['per_job_s_of_3_sweeps']}")
    else:
        lines.append(f"orchestration overhead per job: skipped ({o['skipped']})")
    lines += [f"goal {k}: {g['measured'] if g['measured'] is None else round(g['measured'], 3)} < {g['goal']}: "
              f"{'met' if g['met'] else 'NOT met'}" for k, g in report["goals"].items()]
    print("\n".join(lines))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({**report, "summary": lines}, indent=1) + "\n")


if __name__ == "__main__":
    main()
