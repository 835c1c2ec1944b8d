"""The parent classifies every way a runner can end; a bad runner never takes the sweep down."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from sweep import execute

FAULT = Path(__file__).parent / "fixtures" / "fault_runner.py"


def launch(mode: str, tmp_path: Path, timeout_s: float = 30.0) -> execute.Outcome:
    return execute.launch([sys.executable, str(FAULT), mode], {"iters": 3}, tmp_path / mode, timeout_s)


@pytest.mark.parametrize(
    ("mode", "status", "reason"),
    [
        ("ok", "ok", ""),
        ("exit123", "failed", "exit code 123: a log line on stderr\nabout to exit 123"),
        ("segfault", "failed", "killed by SIGSEGV"),
        ("sigkill", "failed", "killed by SIGKILL"),
        ("raise", "failed", "RuntimeError: boom from the runner"),
        ("junk", "failed", "result.json is not valid JSON"),
        ("no-result", "failed", "exited 0 without writing result.json"),
        ("bad-status", "failed", "result.json has status 'great'"),
        ("few-samples", "failed", "result.json has 1 samples, the job asked for 3"),
        ("nan-samples", "failed", "non-positive or non-finite samples"),
        ("unavailable", "unavailable", "no such accelerator"),
    ],
)
def test_outcomes(mode: str, status: str, reason: str, tmp_path: Path) -> None:
    outcome = launch(mode, tmp_path)
    assert outcome.status == status
    assert reason in outcome.reason
    if status == "ok":
        assert outcome.result["samples_ms"] == [1.0, 1.0, 1.0]
    if mode == "ok":
        assert (tmp_path / mode / "stdout.log").read_text().startswith("some junk")


@pytest.mark.parametrize("mode", ["hang", "hang-ignoring-term"])
def test_timeout_kills_the_process_group(mode: str, tmp_path: Path) -> None:
    t0 = time.perf_counter()
    outcome = launch(mode, tmp_path, timeout_s=1.0)
    assert outcome.status == "timeout"
    assert "no result after 1 s; process group killed" in outcome.reason
    assert time.perf_counter() - t0 < 1.0 + execute.KILL_GRACE_S + 5
    assert outcome.returncode is not None and outcome.returncode < 0  # it really is dead


def test_grandchildren_die_with_the_group(tmp_path: Path) -> None:
    """A runner that started a helper process (like inductor's compile workers) leaves nothing behind."""
    script = tmp_path / "spawner.py"
    pidfile = tmp_path / "child.pid"
    script.write_text(
        "import subprocess, sys, time\n"
        f"p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(3600)'])\n"
        f"open({str(pidfile)!r}, 'w').write(str(p.pid))\n"
        "time.sleep(3600)\n"
    )
    outcome = execute.launch([sys.executable, str(script)], {}, tmp_path / "w", timeout_s=2.0)
    assert outcome.status == "timeout"
    child = int(pidfile.read_text())
    time.sleep(0.2)
    assert _gone_or_zombie(child)


def _gone_or_zombie(pid: int) -> bool:
    """Dead: no such process, or a zombie waiting for init (which may not reap in a container)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return True
    return state in ("Z", "X")


def test_a_followup_runs_in_the_same_place_only_after_an_ok_launch(tmp_path: Path) -> None:
    """The C++ rows' fidelity check: a plain command whose result is the JSON object it prints on stdout."""
    from sweep.executor import Launch, run_here

    check = Launch(kind="fidelity", key="f", workdir=tmp_path / "f", timeout_s=30, doc={},
                   command=(sys.executable, "-c", "print('log line'); print('{\"error\": 0.5}')"))
    ok = Launch(kind="run", key="r", workdir=tmp_path / "r", timeout_s=30, doc={"iters": 3}, followup=check,
                command=(sys.executable, str(FAULT), "ok"))
    placed = run_here(ok)
    assert placed.outcome.status == "ok" and placed.followup is not None
    assert placed.followup.status == "ok" and placed.followup.result == {"error": 0.5}
    crashed = Launch(kind="run", key="c", workdir=tmp_path / "c", timeout_s=30, doc={"iters": 3}, followup=check,
                     command=(sys.executable, str(FAULT), "exit123"))
    assert run_here(crashed).followup is None


def test_oom_and_memory_limit_reasons() -> None:
    """How the guard's findings read in a row (the real kills are in test_orchestrate)."""
    status, reason, _ = execute.classify(-9, False, 10, Path("/nonexistent"), "", 3, {"oom": True, "maxrss_mb": 2048})
    assert status == "failed"
    assert reason == "killed by SIGKILL: out of memory (the kernel's OOM killer; peak resident 2.00 GB)"
    status, reason, _ = execute.classify(-9, False, 10, Path("/nonexistent"), "", 3, {"oom": False})
    assert reason == "killed by SIGKILL"
    _, reason, _ = execute.classify(-9, False, 10, Path("/nonexistent"), "", 3,
                                    {"memory_exceeded_mb": 1536.0, "memory_limit_mb": 1024.0})
    assert reason.startswith("memory_limit_gb 1 exceeded: the job's processes held 1.50 GB resident")


def test_started_at_is_the_runner_start_after_any_wait_for_the_spawn_lock(tmp_path: Path) -> None:
    """A launch that waits for the lock (another worker spawning, orphans being reaped) reports when its
    runner started, after the wait, not when it was asked for."""
    import threading
    from datetime import datetime, timezone

    got: list[execute.Outcome] = []
    with execute._LOCK:
        asked = datetime.now(timezone.utc)
        worker = threading.Thread(target=lambda: got.append(launch("ok", tmp_path)))
        worker.start()
        time.sleep(1.0)
        released = datetime.now(timezone.utc)
    worker.join(60)
    [outcome] = got
    assert outcome.status == "ok" and outcome.started_at is not None
    assert outcome.started_at >= released > asked
    assert outcome.started_at <= datetime.now(timezone.utc)
