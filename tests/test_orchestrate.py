"""The orchestrator with the torch-free fixture runner: processes interleaved across jobs, resume by (job, process),
kill -9 and rerun, concurrent sweeps sharing a folder, damaged variants and references, leftovers, refusals."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from sweep import compile as compile_step
from sweep import references, store
from sweep.cli import app
from sweep.digest import sha256_file
from sweep.locks import Device, lock_device
from sweep.matrix import load
from sweep.orchestrate import Machine, Orchestrator, done_keys
from sweep.pool import LocalPool
from sweep.runtimes import RUNTIMES
from tests.fixtures import fixture_runtime

ROOT = Path(__file__).resolve().parent.parent
DRIVER = ROOT / "tests" / "fixtures" / "fixture_sweep.py"

MATRIX = """
name: fx
model: {{factory: "fixture_models:model", input_shape: [2, 8], options: {options}}}
device: cpu
measure: {{warmup: 1, iters: 3, processes: {processes}, timeout_s: 60}}
jobs:
  - runtime: fixture
    amp_dtype: [fp32, bf16]
  - runtime: fixture-compiled
"""


@pytest.fixture(autouse=True)
def fixture_runtimes(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The fixture runtimes in this process, and device locks of this test's own."""
    for name in ("fixture", "fixture-compiled"):
        monkeypatch.delitem(RUNTIMES, name, raising=False)
    monkeypatch.setattr(references, "RUNTIME", references.RUNTIME)
    monkeypatch.setattr(compile_step, "COMPILE_RUNNER", compile_step.COMPILE_RUNNER)
    fixture_runtime.install()
    monkeypatch.setenv("SWEEP_LOCK_DIR", str(tmp_path / "locks"))


def matrix_text(processes: int = 2, **options: Any) -> str:
    return MATRIX.format(options=json.dumps(options), processes=processes)


def log_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def runs(path: Path) -> list[dict[str, Any]]:
    return [line for line in log_lines(path) if not line["reference"]]


def sweep_cmd(matrix: Path, results: Path, artifacts: Path, *extra: str) -> list[str]:
    return [sys.executable, str(DRIVER), "run", str(matrix), "--results", str(results), "--artifacts",
            str(artifacts), *extra]


def env_for(tmp_path: Path, **more: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "SWEEP_LOCK_DIR": str(tmp_path / "locks"), **more}


def pairs(results: Path) -> list[tuple[str, int]]:
    return sorted((r["job_key"], r["process"]) for r in store.resume_rows(results))


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


def test_processes_run_interleaved_each_writes_its_row_and_resume_counts_pairs(write_matrix, cli,
                                                                                tmp_path: Path) -> None:
    log = tmp_path / "log.jsonl"
    path = write_matrix(matrix_text(processes=3, log=str(log)))
    args = ["run", str(path), "--results", str(tmp_path / "r"), "--artifacts", str(tmp_path / "a")]
    res = cli.invoke(app, args)
    assert res.exit_code == 0, res.output
    df = store.load(tmp_path / "r")
    assert len(df) == 9 and (df["status"] == "ok").all()
    assert sorted(df.groupby("job_key")["process"].apply(sorted).tolist()) == [[0, 1, 2]] * 3
    assert (df["processes"] == 3).all() and (df["fidelity"] == "pass").all()
    assert (df["gflops"] == 0.5).all()  # from the reference, computed before the jobs
    order = [line["process"] for line in runs(log)]
    assert order == [0, 0, 0, 1, 1, 1, 2, 2, 2]  # every job's process 0, then every job's process 1, ...
    lines = log_lines(log)
    assert lines[0]["reference"] and sum(line["reference"] for line in lines) == 1  # one model: one reference
    again = cli.invoke(app, args)
    assert again.exit_code == 0 and "9 already done" in again.stderr
    assert len(runs(log)) == 9  # nothing launched
    forced = cli.invoke(app, [*args, "--force"])
    assert forced.exit_code == 0 and len(store.load(tmp_path / "r")) == 18
    assert not (tmp_path / "a" / ".work").exists() and not (tmp_path / "r" / ".claims").exists()


def test_a_compile_failure_is_a_row_per_pair_counted_once_and_retried_by_a_rerun(write_matrix, cli,
                                                                                 tmp_path: Path) -> None:
    """Every pair of a job whose variant fails to compile gets its row (claims, resume and other sweeps see each
    pair handled), the compile runs once for them all, and `sweep run`, report and compare count one failure.
    Resume keeps treating compile_failed as not done: a rerun tries the compile again (once) and nothing else."""
    from sweep import compare
    from sweep.cli import _summary_lines

    compiles = tmp_path / "compiles.jsonl"
    path = write_matrix(matrix_text(processes=3, compile="fail", compile_log=str(compiles)))
    results = tmp_path / "r"
    args = ["run", str(path), "--results", str(results), "--artifacts", str(tmp_path / "a")]
    res = cli.invoke(app, args)
    assert res.exit_code == 1, res.output
    rows = store.load(results)
    failed = rows[rows["status"] == "compile_failed"]
    assert sorted(failed["process"]) == [0, 1, 2] and set(failed["runtime"]) == {"fixture-compiled"}
    assert failed["reason"].str.contains("FixtureCompileError").all() and len(set(failed["reason"])) == 1
    assert (rows["status"] == "ok").sum() == 6
    assert len(log_lines(compiles)) == 1  # one compile for the three pairs
    assert "1 compile_failed job (3 processes not run), 6 ok;" in res.stderr
    table = _summary_lines(rows.to_dict("records"))  # the run's table: one line for the job, naming its processes
    assert len(table) == 7 and [p for r, p in table if r["status"] == "compile_failed"] == ["1,2,3/3"]

    report = cli.invoke(app, ["report", "--results", str(results)])
    assert report.exit_code == 0, report.output
    assert "3 configurations (6 processes run; 1 configuration whose variant failed to compile) from 9 rows" \
        in report.stdout
    assert report.stdout.count("compile_failed[^") == 1  # one status cell, one footnote
    both = compare.compare(rows, rows)
    assert [c.new.status for c in both.comparisons if c.new is not None].count("compile_failed") == 1
    assert not both.base_duplicates

    compile_step.forget()  # a rerun is a new process: it remembers no failure
    again = cli.invoke(app, args)
    assert again.exit_code == 1 and "6 already done" in again.stderr, again.output
    assert len(log_lines(compiles)) == 2  # not done: the rerun tried the compile again, once
    rows = store.load(results)
    assert (rows["status"] == "compile_failed").sum() == 6 and (rows["status"] == "ok").sum() == 6


def test_resume_keys_count_processes_and_tensorrt_versions(tmp_path: Path) -> None:
    from datetime import datetime, timezone

    now = datetime.now(timezone.utc)
    for key, runtime, process in (("a" * 20, "python-trt", 0), ("b" * 20, "python-eager", 1)):
        store.append_row(tmp_path, {"job_key": key, "process": process, "run_id": "r", "runtime": runtime,
                                    "status": "ok", "device_name": "GPU X", "torch_version": "2.11.0",
                                    "torch_tensorrt_version": "2.9.0", "tensorrt_version": "10.0",
                                    "started_at": now, "finished_at": now})
    done = done_keys(tmp_path)
    same = Machine("GPU X", "2.11.0", "h", torch_tensorrt_version="2.9.0", tensorrt_version="10.0")
    upgraded = Machine("GPU X", "2.11.0", "h", torch_tensorrt_version="2.10.0", tensorrt_version="10.0")
    assert same.resume_key("a" * 20, "python-trt", 0) in done
    assert same.resume_key("a" * 20, "python-trt", 1) not in done  # another process of the job
    assert upgraded.resume_key("a" * 20, "python-trt", 0) not in done
    assert upgraded.resume_key("b" * 20, "python-eager", 1) in done
    assert Machine("GPU X", "2.12.0", "h").resume_key("b" * 20, "python-eager", 1) not in done


def test_sigkill_mid_sweep_then_rerun_leaves_every_pair_once(write_matrix, tmp_path: Path) -> None:
    log = tmp_path / "log.jsonl"
    path = write_matrix(matrix_text(processes=3, log=str(log), sleep_ms=40))
    results, art = tmp_path / "r", tmp_path / "a"
    proc = subprocess.Popen(sweep_cmd(path, results, art), env=env_for(tmp_path), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and len(store.row_files(results)) < 3:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    written = len(store.row_files(results))
    assert 3 <= written < 9, "the kill must land mid-sweep"
    rerun = subprocess.run(sweep_cmd(path, results, art), env=env_for(tmp_path), capture_output=True, text=True,
                           timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert len(pairs(results)) == 9 and len(set(pairs(results))) == 9
    assert not (art / ".work").exists()  # the killed sweep's work folder went on the next start
    for line in runs(log):
        assert not alive(line["pid"])


@pytest.mark.parametrize("hosts", ["one machine", "two machines"])
def test_two_sweeps_of_one_matrix_into_one_folder_run_every_pair_once(write_matrix, tmp_path: Path,
                                                                      hosts: str) -> None:
    """Two sweeps share one results folder: on one machine (the second waits for the CPU) or on two (own device
    locks); a pair one of them ran and saw fail is not run again by the other."""
    log = tmp_path / "log.jsonl"
    path = write_matrix(matrix_text(processes=3, log=str(log), sleep_ms=30) + f"""
  - runtime: fixture
    model: {{factory: "fixture_models:model", input_shape: [2, 8], options: {{mode: crash, log: "{log}"}}}}
""")
    results, art = tmp_path / "r", tmp_path / "a"
    homes = [tmp_path, tmp_path] if hosts == "one machine" else [tmp_path / "host0", tmp_path / "host1"]
    procs = [subprocess.Popen(sweep_cmd(path, results, art), env=env_for(home), stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True) for home in homes]
    for proc in procs:
        _, stderr = proc.communicate(timeout=300)
        assert proc.returncode in (0, 1), stderr
    assert len(pairs(results)) == 12 and len(set(pairs(results))) == 12
    statuses = [r["status"] for r in store.resume_rows(results)]
    assert statuses.count("failed") == 3 and statuses.count("ok") == 9


def test_started_at_is_when_the_runner_started_not_when_the_pair_was_queued(write_matrix, tmp_path: Path) -> None:
    """CPU pairs run one at a time; each was handed to the pool while the one before still ran. Its started_at
    is its runner's start (after the one before ended), and finished_at stays after its end."""
    log = tmp_path / "log.jsonl"
    path = write_matrix(matrix_text(processes=2, log=str(log), sleep_ms=150))
    rows = _run_matrix(path, tmp_path)
    ran = {(line["job_key"], line["process"]): line for line in runs(log)}
    assert len(rows) == len(ran) == 6 and all(r["status"] == "ok" for r in rows)
    by_start = sorted(rows, key=lambda r: r["started_at"])
    for before, row in zip(by_start, by_start[1:], strict=False):
        assert row["started_at"].timestamp() >= ran[(before["job_key"], before["process"])]["end"]
    for row in rows:
        line = ran[(row["job_key"], row["process"])]
        assert row["started_at"].timestamp() <= line["start"] < row["started_at"].timestamp() + 30
        assert row["finished_at"].timestamp() >= line["end"]
        assert "started_at" not in json.loads(row["extra"])  # known: no note


def test_a_launch_whose_runner_start_never_came_back_says_so(write_matrix, tmp_path: Path) -> None:
    """A Slurm job that died without a result and that sacct never saw start: started_at falls back to when the
    pair was handed over, and extra.started_at says that is what it is."""
    from datetime import datetime, timezone

    from sweep.execute import Outcome
    from sweep.executor import Placed
    from sweep.orchestrate import Pair

    job = load(write_matrix(matrix_text(processes=1))).jobs[0]
    handed = datetime(2026, 12, 1, 8, 0, tzinfo=timezone.utc)
    orch = Orchestrator(tmp_path / "r", tmp_path / "a")
    lost = Placed(outcome=Outcome(status="failed", reason="Slurm job 5 left the queue"), executor="slurm",
                  slurm_job_id="5")
    row = orch._row(Pair(job, 0), lost.outcome, lost, "run", handed)
    assert row["started_at"] == handed and "handed to the executor" in json.loads(row["extra"])["started_at"]
    ran = Placed(outcome=Outcome(status="failed", reason="x", started_at=handed.replace(hour=9)))
    row = orch._row(Pair(job, 0), ran.outcome, ran, "run", handed)
    assert row["started_at"] == handed.replace(hour=9) and "started_at" not in json.loads(row["extra"])


def test_a_second_sweep_on_a_busy_device_waits_or_refuses(write_matrix, cli, tmp_path: Path) -> None:
    path = write_matrix(matrix_text(processes=1))
    args = ["run", str(path), "--results", str(tmp_path / "r"), "--artifacts", str(tmp_path / "a")]
    with lock_device(Device.cpu(), wait=False, what="a test holding the CPU"):
        res = cli.invoke(app, [*args, "--no-wait"])
        assert res.exit_code == 2
        assert "the CPU is in use by sweep pid" in res.stderr and "a test holding the CPU" in res.stderr
        assert not store.row_files(tmp_path / "r")
    release = tmp_path / "release"
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time, pathlib; sys.path.insert(0, sys.argv[1]); from sweep.locks import Device, lock_device; "
        "h = lock_device(Device.cpu(), wait=False); print('held', flush=True)\n"
        "while not pathlib.Path(sys.argv[2]).exists(): time.sleep(0.02)"), str(ROOT), str(release)],
        env=env_for(tmp_path), stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    messages: list[str] = []

    def on_message(text: str) -> None:  # the other sweep lets go once this one says it waits
        messages.append(text)
        if text.startswith("waiting for"):
            release.touch()

    executor = LocalPool(wait=True, on_message=on_message)
    rows = Orchestrator(tmp_path / "r", tmp_path / "a", executor=executor, on_message=on_message).run(load(path)).rows
    holder.wait(timeout=30)
    assert rows and all(r["status"] == "ok" for r in rows)
    released = release.stat().st_mtime
    assert all(r["started_at"].timestamp() >= released for r in rows)  # the wait for the CPU is not in a row
    assert messages[0].startswith("waiting for the CPU: in use by sweep pid")
    assert messages[1].startswith("got the CPU after")


@pytest.mark.parametrize("where", ["file", "under-file"])
def test_a_results_folder_that_cannot_be_written_is_refused_before_anything_runs(write_matrix, cli, tmp_path: Path,
                                                                                  where: str) -> None:
    log = tmp_path / "log.jsonl"
    path = write_matrix(matrix_text(processes=1, log=str(log)))
    blocker = tmp_path / "blocker"
    blocker.write_text("a file")
    results = blocker if where == "file" else blocker / "sub" / "results"
    res = cli.invoke(app, ["run", str(path), "--results", str(results), "--artifacts", str(tmp_path / "a")])
    assert res.exit_code == 2
    assert len(res.stderr.strip().splitlines()) == 1 and str(blocker) in res.stderr
    assert not log.exists() and not (tmp_path / "a").exists()


def _run_matrix(path: Path, tmp_path: Path, force: bool = False) -> list[dict[str, Any]]:
    summary = Orchestrator(tmp_path / "r", tmp_path / "a", force=force).run(load(path))
    return summary.rows


def test_a_same_size_tampered_variant_is_rebuilt_and_the_row_says_so(write_matrix, tmp_path: Path) -> None:
    path = write_matrix(matrix_text(processes=1))
    first = [r for r in _run_matrix(path, tmp_path) if r["runtime"] == "fixture-compiled"]
    assert first[0]["status"] == "ok" and not first[0]["variant_rebuilt"]
    artifact = tmp_path / "a" / first[0]["variant_key"] / "model.ts"
    data = bytearray(artifact.read_bytes())
    data[-1] ^= 0xFF  # same size, other bytes
    artifact.write_bytes(bytes(data))
    again = [r for r in _run_matrix(path, tmp_path, force=True) if r["runtime"] == "fixture-compiled"]
    assert again[0]["status"] == "ok" and again[0]["variant_rebuilt"]
    assert artifact.read_bytes() != bytes(data)  # rebuilt, not run


def test_a_variant_that_fails_to_load_like_a_broken_build_is_rebuilt_once(write_matrix, tmp_path: Path) -> None:
    path = write_matrix(matrix_text(processes=2))
    first = [r for r in _run_matrix(path, tmp_path) if r["runtime"] == "fixture-compiled"]
    folder = tmp_path / "a" / first[0]["variant_key"]
    artifact = folder / "model.ts"
    broken = b"BROKEN" + artifact.read_bytes()[6:]  # a damaged library whose manifest was rewritten to match
    artifact.write_bytes(broken)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["files"][0]["sha256"] = sha256_file(artifact)
    (folder / "manifest.json").write_text(json.dumps(manifest))
    rows = [r for r in _run_matrix(path, tmp_path, force=True) if r["runtime"] == "fixture-compiled"]
    assert [r["process"] for r in rows] == [0, 1]  # each pair once: the failed load left no row
    assert all(r["status"] == "ok" and r["variant_rebuilt"] for r in rows)
    assert not artifact.read_bytes().startswith(b"BROKEN")


def test_a_damaged_reference_is_recomputed_once_and_the_row_says_so(write_matrix, tmp_path: Path) -> None:
    path = write_matrix(matrix_text(processes=1))
    _run_matrix(path, tmp_path)
    [outputs] = list((tmp_path / "a" / "references").glob("*/outputs.pt"))
    outputs.write_bytes(b"X" * outputs.stat().st_size)
    rows = _run_matrix(path, tmp_path, force=True)
    assert all(r["status"] == "ok" and r["fidelity"] == "pass" for r in rows)
    assert all("reference_recomputed" in json.loads(r["extra"]) for r in rows)
    assert not outputs.read_bytes().startswith(b"X")


def test_no_process_a_job_starts_outlives_it(write_matrix, tmp_path: Path) -> None:
    pidfile = tmp_path / "child.pid"
    path = write_matrix(matrix_text(processes=1, mode="setsid-child", pidfile=str(pidfile)))
    rows = _run_matrix(path, tmp_path)
    child = int(pidfile.read_text())
    assert not alive(child)
    assert all(r["status"] == "ok" for r in rows)
    assert any("killed_leftover_processes" in json.loads(r["extra"]) for r in rows)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_and_ctrl_c_take_the_jobs_in_flight_down(write_matrix, tmp_path: Path, sig: int) -> None:
    pidfile = tmp_path / "runner.pid"
    path = write_matrix(matrix_text(processes=1, mode="hang", runner_pidfile=str(pidfile)))
    # A test run started in the background (nohup, `cmd &` in a script) inherits SIGINT ignored, and Python keeps
    # an ignored SIGINT ignored, as a backgrounded sweep should. Ctrl-C reaches a foreground sweep with the
    # default disposition: give the child that, whatever this test run inherited.
    proc = subprocess.Popen(sweep_cmd(path, tmp_path / "r", tmp_path / "a"), env=env_for(tmp_path),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 60
    while time.time() < deadline and not pidfile.exists():
        time.sleep(0.02)
    runner = int(pidfile.read_text())
    proc.send_signal(sig)
    assert proc.wait(timeout=30) != 0
    time.sleep(0.2)
    assert not alive(runner)
    assert not (tmp_path / "a" / ".work").exists()


def test_a_memory_limit_stops_the_job_with_a_reason(write_matrix, tmp_path: Path) -> None:
    path = write_matrix(matrix_text(processes=1, mode="hog", hog_mb=300, hog_s=10).replace(
        "timeout_s: 60", "timeout_s: 60, memory_limit_gb: 0.1"))
    rows = _run_matrix(path, tmp_path)
    assert rows and all(r["status"] == "failed" for r in rows)
    assert all("memory_limit_gb 0.1 exceeded" in r["reason"] for r in rows)


def _memory_cgroup(tmp_path: Path) -> Path | None:
    base = Path("/sys/fs/cgroup/memory")
    folder = base / f"sweep-test-{os.getpid()}"
    try:
        folder.mkdir()
        (folder / "memory.limit_in_bytes").write_text(str(64 * 2**20))
    except OSError:
        return None
    return folder


def test_an_oom_kill_is_named_in_the_reason(write_matrix, tmp_path: Path) -> None:
    cgroup = _memory_cgroup(tmp_path)
    if cgroup is None:
        pytest.skip("no writable cgroup v1 memory controller here to provoke a contained OOM kill")
    try:
        path = write_matrix(MATRIX.format(options=json.dumps({"mode": "oom", "cgroup": str(cgroup)}), processes=1)
                            .replace("  - runtime: fixture-compiled\n", "").replace("[fp32, bf16]", "fp32"))
        rows = _run_matrix(path, tmp_path)
    finally:
        for _ in range(50):
            try:
                cgroup.rmdir()
                break
            except OSError:
                time.sleep(0.1)
    assert [r["status"] for r in rows] == ["failed"]
    assert "killed by SIGKILL: out of memory" in rows[0]["reason"]


def _overlaps(spans: list[tuple[float, float]]) -> bool:
    spans = sorted(spans)
    return any(b[0] < a[1] for a, b in zip(spans, spans[1:], strict=False))


def test_a_pool_runs_one_job_per_gpu_and_cpu_jobs_alone(write_matrix, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from sweep import pool

    log = tmp_path / "log.jsonl"
    path = write_matrix(f"""
        name: pool
        model: {{factory: "fixture_models:model", input_shape: [2, 8], options: {{log: "{log}", sleep_ms: 60}}}}
        measure: {{warmup: 1, iters: 3, processes: 2}}
        jobs:
          - runtime: fixture
            device: cuda
            amp_dtype: [fp32, bf16, fp16]
          - runtime: fixture
            device: cpu
    """)
    gpus = [pool.Gpu(i, 10 + i, f"GPU-fake-{i}", "Fake GPU", f"GPU-fake-{i}") for i in range(2)]
    executor = pool.LocalPool(gpus)
    summary = Orchestrator(tmp_path / "r", tmp_path / "a", executor=executor).run(load(path))
    rows = summary.rows
    assert len(rows) == 8 and all(r["status"] == "ok" for r in rows)
    cuda_rows = [r for r in rows if r["device"] == "cuda"]
    assert {r["gpu_uuid"] for r in cuda_rows} <= {"GPU-fake-0", "GPU-fake-1"}
    lines = runs(log)
    for uuid in ("GPU-fake-0", "GPU-fake-1"):
        assert not _overlaps([(x["start"], x["end"]) for x in lines if x["visible"] == uuid])
    assert {x["device"] for x in lines if x["visible"]} == {"cuda"}  # the runner sees its one GPU as cuda
    cpu = [(x["start"], x["end"]) for x in lines if x["device"] == "cpu"]
    everything = [(x["start"], x["end"]) for x in lines]
    for span in cpu:
        assert not any(o != span and o[0] < span[1] and span[0] < o[1] for o in everything)
    both = [x for x in lines if x["visible"]]
    assert _overlaps([(x["start"], x["end"]) for x in both]), "two GPUs should have worked at once"


def test_a_killed_pool_leaves_no_runner_and_a_rerun_finishes_what_is_missing(write_matrix, tmp_path: Path) -> None:
    log = tmp_path / "log.jsonl"
    path = write_matrix(f"""
        name: pool
        model: {{factory: "fixture_models:model", input_shape: [2, 8], options: {{log: "{log}", sleep_ms: 50}}}}
        measure: {{warmup: 1, iters: 4, processes: 3}}
        jobs:
          - runtime: fixture
            device: cuda
            amp_dtype: [fp32, bf16]
    """)
    results, art = tmp_path / "r", tmp_path / "a"
    env = env_for(tmp_path, SWEEP_FAKE_GPUS="GPU-fake-0,GPU-fake-1")
    proc = subprocess.Popen(sweep_cmd(path, results, art, "--gpus", "all"), env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and len(store.row_files(results)) < 2:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert len(store.row_files(results)) < 6, "the kill must land mid-sweep"
    time.sleep(0.5)
    for line in log_lines(log):
        assert not alive(line["pid"])
    rerun = subprocess.run(sweep_cmd(path, results, art, "--gpus", "2"), env=env, capture_output=True, text=True,
                           timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert len(pairs(results)) == 6 and len(set(pairs(results))) == 6


def test_gpus_option_is_checked(cli, write_matrix, tmp_path: Path) -> None:
    path = write_matrix(matrix_text(processes=1))
    res = cli.invoke(app, ["run", str(path), "--results", str(tmp_path / "r"), "--gpus", "all"])
    assert res.exit_code == 2 and "--gpus all: no NVIDIA GPU is visible here" in res.stderr


