"""The job guard: runs one runner as a child subreaper, so nothing the runner starts outlives its job.

`sweep/execute.py` starts it as `python -I -S guard.py --status FILE [options] -- COMMAND...`. Standard
library only (it runs isolated, without `sweep` on the path), and it stays asleep in wait4() while the runner
times, unless a memory limit asks it to look at resident memory twice a second.

- It is a child subreaper (prctl PR_SET_CHILD_SUBREAPER): a grandchild that called setsid() or whose parent
  died is re-parented to the guard instead of init, so when the runner ends the guard finds every
  descendant among its own children and kills them, repeatedly, until none is left.
- --cpus 0,1,2: the guard pins itself to those CPUs before it starts the runner, which inherits the affinity
  (and so does everything the runner starts); the status file says what the guard read back.
- PR_SET_PDEATHSIG(SIGTERM): if the sweep dies (even kill -9) the guard is told and takes the job down.
- SIGTERM / SIGINT / SIGHUP: TERM the runner's process group, wait a grace period, KILL, then the rest.
- It tells the parent how the runner ended in a small JSON status file: the exit status, peak resident
  memory, whether the kernel's OOM killer acted (its counters rose while the runner died of SIGKILL), whether
  the memory limit was hit, and the processes it had to kill after the runner exited; and when it started the
  runner (wall clock, `runner_started`) and for how long it ran (`runner_wall_s`).
"""

from __future__ import annotations

import ctypes
import json
import os
import resource
import select
import signal
import sys
import time
from typing import Any

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
POLL_S = 0.5  # how often resident memory is read when a limit is set


class Terminate(Exception):
    """The guard was asked to stop (the parent's timeout, Ctrl-C, or the parent died)."""


def _prctl(option: int, value: int) -> bool:
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        return libc.prctl(option, value, 0, 0, 0) == 0
    except OSError:
        return False


def _stat(pid: int) -> tuple[str, int] | None:
    """(state, parent pid) of a process, or None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            fields = fh.read().rsplit(b")", 1)[1].split()
        return fields[0].decode(), int(fields[1])
    except (OSError, IndexError, ValueError):
        return None


def children(pid: int) -> list[int]:
    """Direct children of a process, found by scanning /proc (no /proc/PID/task/*/children on every kernel)."""
    kids = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            st = _stat(int(name))
            if st is not None and st[1] == pid:
                kids.append(int(name))
    return kids


def _name(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            words = [w.decode(errors="replace") for w in fh.read().split(b"\0") if w]
    except OSError:
        return f"pid {pid}"
    return f"pid {pid}: {' '.join(words)[:120]}"


def descendants(pid: int) -> list[int]:
    """Every live descendant of a process (one /proc scan)."""
    parent_of: dict[int, int] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            st = _stat(int(name))
            if st is not None and st[0] not in ("Z", "X"):
                parent_of[int(name)] = st[1]
    found, frontier = [], [pid]
    while frontier:
        nxt = [p for p, pp in parent_of.items() if pp in frontier]
        found += nxt
        frontier = nxt
    return found


def rss_mb(pids: list[int]) -> float:
    total = 0
    page = os.sysconf("SC_PAGE_SIZE")
    for pid in pids:
        try:
            with open(f"/proc/{pid}/statm") as fh:
                total += int(fh.read().split()[1]) * page
        except (OSError, IndexError, ValueError):
            continue
    return total / 2**20


def oom_kills() -> int:
    """The kernel's count of OOM kills, machine-wide plus this cgroup's where readable (0 where neither is)."""
    total = 0
    for path, key in (("/proc/vmstat", "oom_kill"), ("/sys/fs/cgroup/memory.events", "oom_kill"),
                      ("/sys/fs/cgroup/memory/memory.oom_control", "oom_kill")):
        try:
            with open(path) as fh:
                for line in fh:
                    parts = line.split()
                    if len(parts) == 2 and parts[0] == key:
                        total += int(parts[1])
        except (OSError, ValueError):
            continue
    return total


def kill_all_descendants(me: int) -> None:
    """SIGKILL every child of the guard, reap it, and repeat: killed processes' children are re-parented to us."""
    for _ in range(1000):
        kids = children(me)
        if not kids:
            break
        for pid in kids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for pid in kids:
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass


def _on_signal(signum: int, frame: Any) -> None:
    raise Terminate(signum)


class Runner:
    """The runner process: spawned in a session of its own (its process group is its pid), waited with wait4."""

    def __init__(self, command: list[str]) -> None:
        devnull = os.open(os.devnull, os.O_RDONLY)
        try:
            self.pid = os.posix_spawnp(command[0], command, os.environ,
                                       file_actions=[(os.POSIX_SPAWN_DUP2, devnull, 0)], setsid=True)
        finally:
            os.close(devnull)
        self.returncode: int | None = None

    def _status(self, status: int) -> int:
        self.returncode = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
        return self.returncode

    def poll(self) -> int | None:
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self._status(status)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int | None:
        """The exit status (negative: the signal), or None when `timeout` seconds pass first."""
        if self.returncode is not None:
            return self.returncode
        if timeout is None:
            return self._status(os.waitpid(self.pid, 0)[1])
        deadline = time.monotonic() + timeout
        while self.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.returncode

    def killpg(self, sig: int) -> None:
        try:
            os.killpg(self.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def _wait(proc: Runner, limit_mb: float | None) -> tuple[int, float | None]:
    """Wait for the runner; with a memory limit, look at the tree's resident memory every POLL_S seconds.

    Returns (exit status as Runner.returncode, resident MB when the limit was exceeded, else None).
    """
    if limit_mb is None:
        code = proc.wait()
        assert code is not None
        return code, None
    pidfd = os.pidfd_open(proc.pid) if hasattr(os, "pidfd_open") else None
    try:
        while True:
            if pidfd is not None:
                select.select([pidfd], [], [], POLL_S)
            else:
                time.sleep(POLL_S / 5)
            code = proc.poll()
            if code is not None:
                return code, None
            used = rss_mb(descendants(os.getpid()))
            if used > limit_mb:
                return -1, used
    finally:
        if pidfd is not None:
            os.close(pidfd)


def _stop_group(proc: Runner, grace_s: float) -> None:
    """TERM the runner's group, give it grace_s to end, then KILL it."""
    proc.killpg(signal.SIGTERM)
    if grace_s <= 0 or proc.wait(grace_s) is None:
        proc.killpg(signal.SIGKILL)
        proc.wait()


def _options(argv: list[str]) -> tuple[dict[str, str], list[str]]:
    """--name value pairs before `--`, and the command after it."""
    split = argv.index("--")
    head = argv[:split]
    if len(head) % 2 or not all(name.startswith("--") for name in head[::2]):
        raise ValueError("options come as --name value pairs")
    return {name[2:]: value for name, value in zip(head[::2], head[1::2], strict=True)}, argv[split + 1:]


def main(argv: list[str]) -> int:
    try:
        opts, command = _options(argv)
        status_path = opts["status"]
        if not command:
            raise ValueError("no command after --")
        cpus = {int(cpu) for cpu in opts["cpus"].split(",")} if "cpus" in opts else None
    except (ValueError, KeyError):
        print("usage: guard.py --status FILE [--grace S] [--memory-limit-mb N] [--parent PID] [--cpus 0,1,..] "
              "-- COMMAND...", file=sys.stderr)
        return 2
    grace = float(opts.get("grace", 5.0))
    limit_mb = float(opts["memory-limit-mb"]) if "memory-limit-mb" in opts else None
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, _on_signal)
    subreaper = _prctl(PR_SET_CHILD_SUBREAPER, 1)
    _prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    status: dict[str, Any] = {"returncode": None, "subreaper": subreaper, "terminated": False, "oom": False,
                              "memory_limit_mb": limit_mb, "memory_exceeded_mb": None,
                              "leftovers": [], "maxrss_mb": None, "spawn_error": "", "runner_wall_s": None,
                              "runner_started": None, "cpus": None}
    if "parent" in opts and os.getppid() != int(opts["parent"]):
        status["terminated"] = True  # the sweep died before PDEATHSIG was armed
        return _finish(status_path, status, 0)
    if cpus is not None:
        try:
            os.sched_setaffinity(0, cpus)
            status["cpus"] = sorted(os.sched_getaffinity(0))
        except OSError as exc:  # none of those CPUs is allowed here (any more): never run unpinned instead
            status["spawn_error"] = f"cannot pin the runner to CPUs {opts['cpus']}: {exc.strerror or exc}"
            status["returncode"] = 127
            return _finish(status_path, status, 0)
    oom_before = oom_kills()
    proc: Runner | None = None
    try:
        try:
            spawned = time.monotonic()
            status["runner_started"] = time.time()  # the row's started_at: no queue or lock wait in it
            proc = Runner(command)
        except OSError as exc:
            status["spawn_error"] = f"cannot start {command[0]}: {exc.strerror or exc}"
            status["returncode"] = 127
            return _finish(status_path, status, 0)
        code, exceeded = _wait(proc, limit_mb)
        status["runner_wall_s"] = time.monotonic() - spawned
        if exceeded is not None:
            status["memory_exceeded_mb"] = round(exceeded, 1)
            _stop_group(proc, 0.0)
            code = proc.returncode if proc.returncode is not None else -signal.SIGKILL
        status["returncode"] = code
    except Terminate:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)  # one stop is enough; the parent escalates with SIGKILL
        status["terminated"] = True
        if proc is not None:
            _stop_group(proc, grace)
            status["returncode"] = proc.returncode
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)  # the rest is quick and must finish
    if not status["terminated"] and status["memory_exceeded_mb"] is None:
        status["leftovers"] = [_name(pid) for pid in descendants(os.getpid())]  # still running after the runner
    if proc is not None:
        proc.killpg(signal.SIGKILL)  # what is left of the runner's group
    kill_all_descendants(os.getpid())
    status["maxrss_mb"] = round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1)
    if status["returncode"] == -signal.SIGKILL and not status["terminated"] and status["memory_exceeded_mb"] is None:
        status["oom"] = oom_kills() > oom_before
    return _finish(status_path, status, 0)


def _finish(path: str, status: dict[str, Any], code: int) -> int:
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as fh:
        json.dump(status, fh)
    os.replace(tmp, path)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
