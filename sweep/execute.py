"""Launch one runner in its own process group, with a timeout, and classify how it ended."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

RUNNER_STATUSES = ("ok", "unavailable", "unsupported")
TAIL_CHARS = 2000
KILL_GRACE_S = 5.0


@dataclass
class Outcome:
    """How a subprocess ended, as the parent sees it; `status` is the parent's verdict."""

    status: str  # ok | failed | timeout | unavailable | unsupported
    reason: str = ""
    result: dict[str, Any] = field(default_factory=dict)
    returncode: int | None = None
    wall_s: float = 0.0
    stderr_tail: str = ""


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


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """TERM the whole group (the runner and anything it started), then KILL what is left."""
    for sig, wait in ((signal.SIGTERM, KILL_GRACE_S), (signal.SIGKILL, None)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            if sig == signal.SIGTERM:
                os.killpg(proc.pid, signal.SIGKILL)  # children may outlive the leader
            return
        except subprocess.TimeoutExpired:
            continue
        except ProcessLookupError:
            return


def _reap_stragglers(pgid: int) -> None:
    """Kill what a finished runner left behind in its group (compile workers), so nothing outlives its job."""
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


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
             iters: int | None) -> tuple[str, str, dict[str, Any]]:
    """The parent's verdict from exit status, result file and stderr; runners never decide it alone."""
    def why(headline: str) -> str:
        return f"{headline}: {stderr}" if stderr else headline

    if timed_out:
        return "timeout", why(f"no result after {timeout_s:g} s; process group killed"), {}
    assert returncode is not None
    if returncode < 0:
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


def launch(command: list[str], job_doc: dict[str, Any], workdir: Path, timeout_s: float,
           env: dict[str, str] | None = None, cwd: Path | None = None) -> Outcome:
    """Write job.json, run `command --job job.json --out result.json`, and classify the ending.

    The runner gets its own session (process group) so a timeout kills it and its children alike;
    stdout and stderr go to files, so a chatty or hung runner cannot block the parent on a pipe.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    job_path, result_path = workdir / "job.json", workdir / "result.json"
    stdout_path, stderr_path = workdir / "stdout.log", workdir / "stderr.log"
    job_path.write_text(json.dumps(job_doc, indent=1))
    result_path.unlink(missing_ok=True)
    t0 = time.perf_counter()
    timed_out = False
    with stdout_path.open("wb") as out, stderr_path.open("wb") as err:
        proc = subprocess.Popen(
            [*command, "--job", str(job_path), "--out", str(result_path)],
            stdin=subprocess.DEVNULL, stdout=out, stderr=err, start_new_session=True,
            env={**os.environ, **(env or {})}, cwd=cwd,
        )
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            timed_out = True
            _kill_group(proc)
        except BaseException:  # Ctrl-C or a kill of the sweep: take the runner down with us
            _kill_group(proc)
            raise
        _reap_stragglers(proc.pid)
    wall_s = time.perf_counter() - t0
    stderr = tail(stderr_path)
    status, reason, result = classify(proc.returncode, timed_out, timeout_s, result_path, stderr,
                                      job_doc.get("iters"))
    return Outcome(status=status, reason=reason, result=result, returncode=proc.returncode,
                   wall_s=wall_s, stderr_tail=stderr)
