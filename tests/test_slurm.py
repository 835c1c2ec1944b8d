"""The Slurm executor against a real Slurm (make slurm-up): rows' facts for ok, crash, time limit, scancel, deadline."""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from sweep.executor import Launch, Placed
from sweep.slurm import SlurmExecutor, SlurmOptions, sacct_time

ROOT = Path(__file__).resolve().parent.parent
FAULT = Path(__file__).parent / "fixtures" / "fault_runner.py"
pytestmark = pytest.mark.slurm


def slurm_down_reason() -> str:
    """Why the Slurm tests cannot run here, or '' when a cluster answers (controller, an idle node, sacct)."""
    if shutil.which("sbatch") is None:
        return "Slurm is not installed here (no sbatch); `make slurm-up` (root) installs and starts one"
    status = subprocess.run(["bash", str(ROOT / "scripts/slurm/slurm.sh"), "status"], capture_output=True, text=True)
    if status.returncode != 0:
        return f"Slurm is not up ({status.stdout.strip() or status.stderr.strip()}); run `make slurm-up`"
    return ""


@pytest.fixture(scope="module", autouse=True)
def slurm() -> None:
    reason = slurm_down_reason()
    if reason:
        pytest.skip(reason)


def launch(mode: str, base: Path, device: str = "cpu", timeout_s: float = 60.0) -> Launch:
    return Launch(kind="run", key=mode, command=(sys.executable, str(FAULT), mode), doc={"iters": 3},
                  workdir=base / mode, timeout_s=timeout_s, env={}, device=device)


def options(tmp_path: Path, **kw: object) -> SlurmOptions:
    return SlurmOptions(folder=tmp_path / "slurm", poll_s=0.3, sacct_s=1.0, **kw)  # type: ignore[arg-type]


def sacct_state(job_id: str) -> str:
    out = subprocess.run(["sacct", "-X", "-n", "-P", "-o", "State", "-j", job_id], capture_output=True, text=True)
    return out.stdout.strip()


def final_state(job_id: str) -> str:
    """sacct's state once the job has left RUNNING/COMPLETING (its result file comes a moment before)."""
    for _ in range(100):
        state = sacct_state(job_id)
        if state not in ("", "PENDING", "RUNNING", "COMPLETING"):
            return state
        time.sleep(0.2)
    return sacct_state(job_id)


def runner_alive(workdir: Path) -> bool:
    """A fault runner of this test (its --job path names the workdir) is still running somewhere on the node."""
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if str(workdir) in cmdline.read_bytes().decode(errors="replace"):
                return True
        except OSError:
            continue
    return False


def run_all(ex: SlurmExecutor, launches: list[Launch]) -> dict[str, Placed]:
    ex.open(sorted({lc.device for lc in launches}))
    try:
        return {lc.key: placed for lc, placed in ex.map(launches)}
    finally:
        ex.close()


def test_ok_and_crash_come_back_with_their_slurm_job(tmp_path: Path) -> None:
    ex = SlurmExecutor(options(tmp_path))
    got = run_all(ex, [launch("ok", tmp_path), launch("segfault", tmp_path)])
    assert got["ok"].outcome.status == "ok" and got["ok"].outcome.result["samples_ms"] == [1.0, 1.0, 1.0]
    assert got["segfault"].outcome.status == "failed"
    assert "killed by SIGSEGV" in got["segfault"].outcome.reason
    ids = {jid for jid, _ in ex.submitted}
    for placed in got.values():
        assert placed.executor == "slurm" and placed.slurm_job_id in ids and placed.hostname
    assert [final_state(jid) for jid in sorted(ids)] == ["COMPLETED"] * 2  # the workers ended cleanly, crash or not
    # CPU launches take the whole node: the second waited in the queue for the first; its started_at is when its
    # runner started on the node, after the first ended, not when it was submitted.
    first, second = sorted(got.values(), key=lambda placed: str(placed.outcome.started_at))  # UTC: sorts as text
    assert first.outcome.started_at is not None and second.outcome.started_at is not None
    assert second.outcome.started_at >= first.outcome.started_at + timedelta(seconds=first.outcome.wall_s)


def test_scancel_becomes_a_failed_row_from_sacct(tmp_path: Path) -> None:
    ex = SlurmExecutor(options(tmp_path, time_min=10))

    def cancel_when_running() -> None:
        for _ in range(300):
            if ex.submitted and sacct_state(ex.submitted[0][0]) == "RUNNING" and (tmp_path / "hang").exists():
                time.sleep(1.0)  # let the runner start
                subprocess.run(["scancel", ex.submitted[0][0]], check=True)
                return
            time.sleep(0.2)

    killer = threading.Thread(target=cancel_when_running, daemon=True)
    killer.start()
    got = run_all(ex, [launch("hang", tmp_path, timeout_s=3600)])["hang"]
    killer.join(5)
    assert got.outcome.status == "failed"
    assert "CANCELLED" in got.outcome.reason and "scancel" in got.outcome.reason
    # no result came back: the start is sacct's (the job's start on the node), not the submission
    assert got.outcome.started_at is not None and got.outcome.started_at <= datetime.now(timezone.utc)
    assert got.slurm_job_id == ex.submitted[0][0]
    assert not runner_alive(tmp_path / "hang")


def test_none_holds_the_next_launch_and_the_deadline_scancels_what_is_left(tmp_path: Path) -> None:
    ex = SlurmExecutor(options(tmp_path, time_min=10, deadline_min=0.12))
    ex.open(["cpu"])

    def launches() -> Iterator[Launch | None]:
        yield launch("ok", tmp_path)
        yield None  # "nothing more until one of yours ends"
        yield launch("hang", tmp_path, timeout_s=3600)

    it = ex.map(launches())
    first, placed = next(it)
    assert first.key == "ok" and placed.outcome.status == "ok"
    assert [key for _, key in ex.submitted] == ["ok"]  # the None held the hang back until ok had ended
    second, placed = next(it)
    assert second.key == "hang" and placed.outcome.status == "timeout"
    assert "deadline (0.12 min) passed" in placed.outcome.reason
    assert next(it, None) is None
    assert final_state(placed.slurm_job_id).startswith("CANCELLED")


def test_a_consumer_that_stops_leaves_nothing_behind(tmp_path: Path) -> None:
    ex = SlurmExecutor(options(tmp_path, time_min=10))
    ex.open(["cpu"])
    it = ex.map([launch("ok", tmp_path), launch("hang", tmp_path, timeout_s=3600)])
    first, placed = next(it)  # ok ends first: the hang is queued behind it (CPU jobs take a whole node)
    assert first.key == "ok" and placed.outcome.status == "ok"
    it.close()  # the sweep stops (Ctrl-C, an error): the hang's Slurm job must go with it
    ex.close()
    hang_id = dict((key, jid) for jid, key in ex.submitted)["hang"]
    for _ in range(100):
        queued = subprocess.run(["squeue", "-h", "-r", "-o", "%i %T", "-j", hang_id.split("_")[0]],
                                capture_output=True, text=True).stdout.split("\n")
        if not any(line.startswith(hang_id + " ") for line in queued):
            break
        time.sleep(0.2)
    assert not any(line.startswith(hang_id + " ") for line in queued), queued
    assert not runner_alive(tmp_path / "hang")


def test_machine_is_asked_of_a_node(tmp_path: Path) -> None:
    ex = SlurmExecutor(options(tmp_path))
    machine = ex.machine("cpu")
    node = subprocess.run(["sinfo", "-h", "-N", "-o", "%N"], capture_output=True, text=True).stdout.split()
    assert machine.hostname in node and machine.torch_version and machine.device_name
    assert ex.machine("cpu") is machine  # asked once


def sweep_run(cli, matrix: Path, tmp_path: Path, *extra: str) -> tuple[int, str]:
    from sweep.cli import app

    res = cli.invoke(app, ["run", str(matrix), "--executor", "slurm", "--results", str(tmp_path / "results"),
                           "--artifacts", str(tmp_path / "artifacts"), *extra])
    return res.exit_code, res.output


def test_a_user_matrix_through_slurm_and_a_rerun_that_submits_only_what_is_missing(
        cli, write_matrix, tmp_path: Path) -> None:
    from sweep import store

    matrix = write_matrix("""
        name: slurm-small
        device: cpu
        measure: {warmup: 1, iters: 3, timeout_s: 120}
        jobs:
          - {runtime: python-eager, model: {factory: "fault_models:small", input_shape: [2, 8]},
             model_precision: [fp32, bf16]}
          - {runtime: python-eager, model: {factory: "fault_models:segfault", input_shape: [2, 8]}}
    """)
    code, output = sweep_run(cli, matrix, tmp_path)
    assert code == 1, output  # a job failed; every row is still written
    rows = store.load(tmp_path / "results")
    assert sorted(rows["status"]) == ["failed", "ok", "ok"], output
    assert set(rows["executor"]) == {"slurm"} and rows["slurm_job_id"].str.match(r"^\d+(_\d+)?$").all()
    assert len(set(rows["slurm_job_id"])) == 3
    crash = rows[rows["status"] == "failed"].iloc[0]
    assert crash["model"] == "fault_models:segfault" and "SIGSEGV" in crash["reason"]
    assert rows["hostname"].isin(subprocess.run(["sinfo", "-h", "-N", "-o", "%N"], capture_output=True,
                                                text=True).stdout.split()).all()
    before = set(rows["slurm_job_id"])
    # The rerun submits the crash alone: both ok rows count as done.
    code, output = sweep_run(cli, matrix, tmp_path)
    rows = store.load(tmp_path / "results")
    new = rows[~rows["slurm_job_id"].isin(before)]
    assert code == 1 and list(new["model"]) == ["fault_models:segfault"], output


def test_a_slurm_time_limit_becomes_a_timeout_row(cli, write_matrix, tmp_path: Path) -> None:
    from sweep import store

    matrix = write_matrix("""
        device: cpu
        measure: {warmup: 1, iters: 3, timeout_s: 3600}
        jobs: [{runtime: python-eager, model: {factory: "fault_models:hang", input_shape: [2, 8]}}]
    """)
    # A 1-minute limit with USR2 30 s before it: Slurm's timer is coarse and sends USR2 early, the node kills
    # the runner's process group (the reference's too: the model hangs there as well) and the row says why.
    code, output = sweep_run(cli, matrix, tmp_path, "--slurm-time-min", "1", "--slurm-signal-s", "30")
    rows = store.load(tmp_path / "results")
    assert code == 1 and list(rows["status"]) == ["timeout"], output
    assert rows["reason"][0].startswith("Slurm time limit (1 min)") and rows["slurm_job_id"][0]
    assert not runner_alive(tmp_path)


@pytest.mark.slow
def test_the_compile_step_runs_on_the_cluster_too(cli, write_matrix, tmp_path: Path) -> None:
    from sweep import store

    matrix = write_matrix("""
        device: cpu
        measure: {warmup: 1, iters: 3, timeout_s: 600}
        model: {factory: "fault_models:small", input_shape: [2, 8]}
        jobs: [{runtime: python-aoti}]
    """)
    code, output = sweep_run(cli, matrix, tmp_path)
    rows = store.load(tmp_path / "results")
    assert code == 0 and list(rows["status"]) == ["ok"] and rows["variant_key"][0], output
    # one Slurm job each: the probe that asks a node for its machine (variant and resume keys come from
    # there), the AOTInductor compile, the fp32 reference, the run
    assert len([p for p in (tmp_path / "artifacts" / "slurm").iterdir() if p.is_dir()]) == 4
    assert (tmp_path / "artifacts" / rows["variant_key"][0]).is_dir()


def test_sacct_start_is_read_as_this_hosts_local_time() -> None:
    local = datetime(2026, 11, 29, 22, 40, 13).astimezone()  # what sacct prints here is local time
    assert sacct_time("2026-11-29T22:40:13") == local.astimezone(timezone.utc)
    assert sacct_time("Unknown") is None and sacct_time("None") is None and sacct_time(None) is None
