"""Launch one runner under the job guard, with a timeout, and classify how it ended.

Every runner runs below `sweep/guard.py`, a small child subreaper that kills whatever the runner leaves behind
(setsid'd grandchildren included), enforces an optional memory limit and tells an OOM kill from other
SIGKILLs. The sweep itself is a subreaper too (`become_subreaper`), as a last line: descendants of a guard
that was itself killed come back to the sweep, which kills them (`reap_orphans`).
"""

from __future__ import annotations

import ctypes
import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

RUNNER_STATUSES = ("ok", "unavailable", "unsupported")
TAIL_CHARS = 2000
KILL_GRACE_S = 5.0
GUARD = Path(__file__).resolve().with_name("guard.py")
MARK = "SWEEP_JOB_GUARD"  # in the environment of every process a job starts: how orphans are recognised
PR_SET_CHILD_SUBREAPER = 36

_LOCK = threading.Lock()  # spawning a guard and reaping orphans never interleave
_ACTIVE: set[int] = set()  # pids of guards in flight (pool workers launch concurrently)


@dataclass
class Outcome:
    """How a subprocess ended, as the parent sees it; `status` is the parent's verdict."""

    status: str  # ok | failed | timeout | unavailable | unsupported
    reason: str = ""
    result: dict[str, Any] = field(default_factory=dict)
    returncode: int | None = None
    wall_s: float = 0.0
    stderr_tail: str = ""
    leftovers: list[str] = field(default_factory=list)  # processes still running when the runner ended (killed)
    maxrss_mb: float | None = None  # peak resident memory of the job's largest process
    cpus: list[int] | None = None  # the CPUs the runner was pinned to, as its guard read them back; None: not pinned
    started_at: datetime | None = None  # when the runner process started (UTC); None: it was never launched


def tail(path: Path, chars: int = TAIL_CHARS) -> str:
    """The end of a log file, for a row's reason: where a crash or a traceback says what went wrong."""
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - chars))
            return fh.read().decode(errors="replace").strip()
    except OSError:
        return ""


def _signal_name(returncode: int) -> str:
    try:
        return signal.Signals(-returncode).name
    except ValueError:
        return f"signal {-returncode}"


def _check_samples(result: dict[str, Any], iters: int | None) -> str:
    """Why a result that claims ok cannot be trusted, or '' when it can."""
    samples = result.get("samples_ms")
    if not isinstance(samples, list) or not samples:
        return "result.json has no samples_ms"
    if iters is not None and len(samples) != iters:
        return f"result.json has {len(samples)} samples, the job asked for {iters}"
    if not all(isinstance(s, (int, float)) and math.isfinite(s) and s > 0 for s in samples):
        return "result.json has non-positive or non-finite samples"
    return ""


def classify(returncode: int | None, timed_out: bool, timeout_s: float, result_path: Path, stderr: str,
             iters: int | None, guard: dict[str, Any] | None = None) -> tuple[str, str, dict[str, Any]]:
    """The parent's verdict from exit status, the guard's report, result file and stderr; never the runner's alone."""
    def why(headline: str) -> str:
        return f"{headline}: {stderr}" if stderr else headline

    guard = guard or {}
    if timed_out:
        return "timeout", why(f"no result after {timeout_s:g} s; process group killed"), {}
    if guard.get("spawn_error"):
        return "failed", f"exit code 127: {guard['spawn_error']}", {}
    if guard.get("memory_exceeded_mb") is not None:
        limit_gb = float(guard.get("memory_limit_mb") or 0) / 1024
        used_gb = float(guard["memory_exceeded_mb"]) / 1024
        return "failed", why(f"memory_limit_gb {limit_gb:g} exceeded: the job's processes held {used_gb:.2f} GB "
                             "resident; killed"), {}
    if returncode is None:
        code = guard.get("guard_returncode")
        how = (_signal_name(code) if code < 0 else f"exit code {code}") if isinstance(code, int) else "no status"
        return "failed", why(f"the job guard died ({how}) without saying how the runner ended"), {}
    if returncode < 0:
        if returncode == -signal.SIGKILL and guard.get("oom"):
            peak = guard.get("maxrss_mb")
            figure = f"; peak resident {float(peak) / 1024:.2f} GB" if peak else ""
            return "failed", why(f"killed by SIGKILL: out of memory (the kernel's OOM killer{figure})"), {}
        return "failed", why(f"killed by {_signal_name(returncode)}"), {}
    if returncode != 0:
        return "failed", why(f"exit code {returncode}"), {}
    if not result_path.exists():
        return "failed", why("exited 0 without writing result.json"), {}
    try:
        result = json.loads(result_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        return "failed", why(f"result.json is not valid JSON ({exc})"), {}
    if not isinstance(result, dict) or result.get("status") not in RUNNER_STATUSES:
        status = result.get("status") if isinstance(result, dict) else None
        return "failed", why(f"result.json has status {status!r}; expected one of {', '.join(RUNNER_STATUSES)}"), {}
    if result["status"] != "ok":
        return result["status"], str(result.get("reason") or why("no reason given")), result
    problem = _check_samples(result, iters)
    if problem:
        return "failed", why(problem), result
    return "ok", "", result


def become_subreaper() -> bool:
    """Make this process adopt orphaned descendants (Linux), so none can escape to init; False where unsupported."""
    try:
        return ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except OSError:
        return False


def _has_mark(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/environ", "rb") as fh:
            return f"{MARK}=".encode() in fh.read()
    except OSError:
        return False


def reap_orphans() -> int:
    """Kill and reap children of this process that a job left behind (they carry MARK and are no live guard).

    Only a guard that was itself SIGKILLed leaves such orphans; they were re-parented here because the sweep is
    a subreaper. Returns how many were killed.
    """
    me = os.getpid()
    killed = 0
    with _LOCK:
        for name in os.listdir("/proc"):
            if not name.isdigit() or int(name) in _ACTIVE:
                continue
            try:
                with open(f"/proc/{name}/stat", "rb") as fh:
                    ppid = int(fh.read().rsplit(b")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if ppid != me or not _has_mark(int(name)):
                continue
            try:
                os.kill(int(name), signal.SIGKILL)
                os.waitpid(int(name), 0)
                killed += 1
            except (ProcessLookupError, ChildProcessError):
                pass
    return killed


def _stop_guard(proc: subprocess.Popen[bytes]) -> None:
    """Ask the guard to take its job down (TERM, grace, KILL inside); KILL the guard itself if it does not end."""
    try:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=KILL_GRACE_S + 5.0)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    except ProcessLookupError:
        pass


def _read_guard(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def classify_plain(returncode: int | None, timed_out: bool, timeout_s: float, stdout_path: Path, stderr: str,
                   guard: dict[str, Any] | None = None) -> tuple[str, str, dict[str, Any]]:
    """For a helper that prints one JSON object on stdout (`python -m runners.fidelity`): ok with that object,
    or failed / timeout the way a runner would be."""
    if timed_out or returncode != 0:
        status, reason, _ = classify(returncode, timed_out, timeout_s, stdout_path, stderr, None, guard)
        return status, reason, {}
    try:
        result = json.loads(stdout_path.read_text().strip().splitlines()[-1])
    except (OSError, IndexError, ValueError) as exc:
        return "failed", f"no JSON object on stdout ({exc}){': ' + stderr if stderr else ''}", {}
    if not isinstance(result, dict):
        return "failed", f"stdout holds {type(result).__name__}, not a JSON object", {}
    return "ok", "", result


def stop_all() -> None:
    """Ask every guard in flight to take its job down (a pool shutting down after Ctrl-C or SIGTERM)."""
    with _LOCK:
        pids = list(_ACTIVE)
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass


def launch(command: list[str], job_doc: dict[str, Any], workdir: Path, timeout_s: float,
           env: dict[str, str] | None = None, cwd: Path | None = None,
           memory_limit_gb: float | None = None, contract: bool = True,
           cpus: Sequence[int] | None = None) -> Outcome:
    """Write job.json, run `command --job job.json --out result.json` under the guard, and classify the ending.

    The guard runs in its own session; stdout and stderr go to files, so a chatty or hung runner cannot block
    the parent on a pipe. On a timeout, Ctrl-C or SIGTERM the guard takes the runner and everything it started
    down before this returns (or re-raises). With contract=False the command is run as given and its result is
    the JSON object it prints on stdout (`classify_plain`). `cpus` pins the runner (and what it starts) to those
    CPUs: the guard sets its own affinity before it starts the runner, which inherits it.
    """
    workdir = Path(workdir).resolve()  # the runner may run in another cwd
    workdir.mkdir(parents=True, exist_ok=True)
    job_path, result_path = workdir / "job.json", workdir / "result.json"
    stdout_path, stderr_path = workdir / "stdout.log", workdir / "stderr.log"
    status_path = workdir / "guard.json"
    job_path.write_text(json.dumps(job_doc, indent=1))
    result_path.unlink(missing_ok=True)
    status_path.unlink(missing_ok=True)
    guard = [sys.executable, "-I", "-S", str(GUARD), "--status", str(status_path), "--grace", str(KILL_GRACE_S),
             "--parent", str(os.getpid())]
    if memory_limit_gb is not None:
        guard += ["--memory-limit-mb", str(memory_limit_gb * 1024)]
    if cpus:
        guard += ["--cpus", ",".join(str(cpu) for cpu in sorted(set(cpus)))]
    full_env = {**os.environ, **(env or {}), MARK: str(os.getpid())}
    timed_out = False
    with stdout_path.open("wb") as out, stderr_path.open("wb") as err:
        with _LOCK:
            t0 = time.perf_counter()
            spawned = time.time()  # after any wait for the lock: the start the row reports, unless the guard says
            argv = [*command, "--job", str(job_path), "--out", str(result_path)] if contract else list(command)
            proc = subprocess.Popen([*guard, "--", *argv],
                                    stdin=subprocess.DEVNULL, stdout=out, stderr=err, start_new_session=True,
                                    env=full_env, cwd=cwd)
            _ACTIVE.add(proc.pid)
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            timed_out = True
            _stop_guard(proc)
        except BaseException:  # Ctrl-C or a kill of the sweep: take the job down with us
            _stop_guard(proc)
            raise
        finally:
            with _LOCK:
                _ACTIVE.discard(proc.pid)
    wall_s = time.perf_counter() - t0
    stderr = tail(stderr_path)
    facts = _read_guard(status_path)
    if facts is None:
        facts = {"returncode": None, "guard_returncode": proc.returncode}
    if contract:
        status, reason, result = classify(facts.get("returncode"), timed_out, timeout_s, result_path, stderr,
                                          job_doc.get("iters"), facts)
    else:
        status, reason, result = classify_plain(facts.get("returncode"), timed_out, timeout_s, stdout_path, stderr,
                                                facts)
    runner_wall = facts.get("runner_wall_s")  # the runner alone, spawn to exit, as its guard saw it
    if isinstance(runner_wall, (int, float)):
        wall_s = float(runner_wall)
    runner_started = facts.get("runner_started")  # the runner itself, as its guard started it
    if isinstance(runner_started, (int, float)) and not isinstance(runner_started, bool):
        spawned = float(runner_started)
    return Outcome(status=status, reason=reason, result=result, returncode=facts.get("returncode"),
                   wall_s=wall_s, stderr_tail=stderr, leftovers=list(facts.get("leftovers") or []),
                   maxrss_mb=facts.get("maxrss_mb"),
                   cpus=list(facts["cpus"]) if isinstance(facts.get("cpus"), list) else None,
                   started_at=datetime.fromtimestamp(spawned, timezone.utc))
