"""Slurm executor: each launch of a sweep runs as one Slurm job (array task) via submitit; deaths read from sacct.

A row's started_at is when its runner started on the node (the node's clock; the guard there reports it), so
the time a job waited in Slurm's queue is not in it. A job that died without a result (scancel, time limit,
node failure) has no runner start to report: its row takes the Slurm job's Start from sacct (queue time still
left out), and when sacct has none either (it never started), when the pair was handed to Slurm, which the
row's extra.started_at then says.
"""

from __future__ import annotations

import math
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from types import FrameType
from typing import Any

from sweep import execute
from sweep.errors import SweepError
from sweep.executor import Launch, Placed, run_here

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# States in which a Slurm job may still produce its result; anything else is final.
LIVE_STATES = ("PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "REQUEUED", "RESIZING", "SUSPENDED",
               "REQUEUE_HOLD", "REQUEUE_FED", "SIGNALING", "STAGE_OUT")
RESULT_GRACE_S = 15.0  # a finished job's result file may show up late on a network filesystem (submitit waits 15 s too)
_END = object()  # the end of the launches map() pulls


@dataclass(frozen=True)
class SlurmOptions:
    """What `sweep run --executor slurm` asks of the cluster; every field has a command-line option."""

    partition: str | None = None
    gpus_per_job: int = 1  # CUDA launches only; CPU launches get a whole node (--exclusive)
    cpus_per_job: int = 4  # CUDA launches only
    time_min: int | None = None  # Slurm time limit per job; default: the launch's timeout plus margins
    deadline_min: float = 24 * 60.0  # the sweep's own limit on waiting for the cluster
    signal_s: int = 90  # USR2 this long before the time limit: the runner is killed and the row says so
    max_jobs: int = 256  # Slurm jobs in flight (queued or running) at once
    poll_s: float = 1.0  # how often result files are looked for
    sacct_s: float = 5.0  # how often sacct is asked about jobs without a result
    folder: Path = Path("artifacts/slurm")  # submitit's pickles and logs; on a filesystem the nodes share
    additional: tuple[tuple[str, str | bool], ...] = field(default=())  # extra sbatch options (--slurm-opt)

    def time_for(self, launch: Launch) -> int:
        """Minutes of Slurm time for a launch: its own timeout, the USR2 margin and a minute for Python to start."""
        if self.time_min is not None:
            return self.time_min
        return max(1, math.ceil((launch.timeout_s + self.signal_s + 60) / 60))


def parse_opts(items: list[str]) -> tuple[tuple[str, str | bool], ...]:
    """--slurm-opt KEY=VALUE (or a bare KEY flag such as exclusive) as submitit's additional sbatch parameters."""
    pairs: list[tuple[str, str | bool]] = []
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip().lstrip("-")
        if not key or (sep and not value.strip()):
            raise SweepError(f"--slurm-opt: {item!r} is not KEY=VALUE or KEY (an sbatch option without its dashes, "
                             "e.g. account=abc, constraint=h100, exclusive)")
        pairs.append((key, value.strip() if sep else True))
    return tuple(pairs)


class _SlurmTimeLimit(BaseException):
    """USR2 from Slurm: the time limit is near. A BaseException so execute.launch kills the runner on the way out."""


class _SlurmTerminated(BaseException):
    """SIGTERM from Slurm: scancel, preemption or the time limit itself. sacct tells the parent which."""


def _node_job_id() -> str:
    array, task = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    return f"{array}_{task}" if array and task else os.environ.get("SLURM_JOB_ID", "")


def on_node(launch: Launch, time_min: int, signal_s: int) -> Placed:
    """What a Slurm job runs (through submitit): the launch, as a local run would, under Slurm's signals.

    USR2 (`signal_s` before the time limit) kills the runner's process group and returns a timeout that says
    "Slurm time limit"; SIGTERM (scancel, or the limit reached without USR2) kills it and leaves no result, so
    the parent learns from sacct how the job ended. Replaces submitit's handlers (requeue, ignore TERM).
    """
    got: list[str] = []

    def on_usr2(signum: int, frame: FrameType | None) -> None:
        got.append("USR2")
        raise _SlurmTimeLimit

    def on_term(signum: int, frame: FrameType | None) -> None:
        got.append("TERM")
        raise _SlurmTerminated

    signal.signal(signal.SIGUSR2, on_usr2)
    signal.signal(signal.SIGTERM, on_term)
    limit = (f"Slurm time limit ({time_min} min): USR2 came {signal_s} s before it, on {os.uname().nodename}; "
             "the runner's process group was killed")
    begun = datetime.now(timezone.utc)  # out of the queue, on the node: the runner starts a moment later
    try:
        placed = run_here(launch, executor="slurm")
    except _SlurmTimeLimit:
        placed = Placed(outcome=execute.Outcome(status="timeout", reason=limit, started_at=begun),
                        hostname=os.uname().nodename)
    except _SlurmTerminated:
        os._exit(128 + signal.SIGTERM)  # no result on purpose: sacct says CANCELLED or TIMEOUT
    if "TERM" in got:
        os._exit(128 + signal.SIGTERM)
    if "USR2" in got and placed.outcome.status != "ok":  # the runner died of the USR2 before our handler ran
        placed.outcome = execute.Outcome(status="timeout", reason=limit, wall_s=placed.outcome.wall_s,
                                         started_at=placed.outcome.started_at or begun)
    placed.executor = "slurm"
    placed.slurm_job_id = _node_job_id()
    return placed


def probe(device: str) -> Any:
    """What a Slurm job runs to describe the machine its launches of `device` land on (orchestrate.Machine)."""
    from sweep.orchestrate import Machine

    return Machine.of(device)


def sacct_time(text: str | None) -> datetime | None:
    """sacct's Start ("2026-11-29T22:40:13", this host's local time, as sacct prints it here) in UTC; None for
    a job that never started ("Unknown", "None") or a format this does not read (SLURM_TIME_FORMAT set)."""
    try:
        return datetime.strptime(text or "", "%Y-%m-%dT%H:%M:%S").astimezone(timezone.utc)
    except ValueError:
        return None


def _run(command: list[str]) -> str:
    return subprocess.run(command, check=True, capture_output=True, text=True, timeout=60).stdout


@dataclass
class _Flight:
    """One launch handed to Slurm and not yet back."""

    launch: Launch
    job: Any  # submitit.SlurmJob
    submitted: float
    final_since: float | None = None  # when sacct first said it ended without a result file


class SlurmExecutor:
    """Executor (sweep/executor.py) that runs every launch as its own Slurm job, submitted through submitit.

    Launches are pulled while fewer than `max_jobs` are in flight and submitted as one job array per
    round and kind of resources. Each ends as a Placed: the node's own (result file), or one made here from
    sacct when the job died without a result (scancel, time limit, OOM, node failure). Nothing waits longer
    than the sweep's deadline: past it, what is left is scancelled and comes back as a timeout.
    """

    name = "slurm"

    def __init__(self, options: SlurmOptions) -> None:
        self.options = options
        self._executors: dict[tuple[Any, ...], Any] = {}
        self._flights: dict[str, _Flight] = {}
        self._sacct: dict[str, dict[str, str]] = {}
        self._sacct_at = 0.0
        self._machines: dict[str, Any] = {}
        self.submitted: list[tuple[str, str]] = []  # (slurm job id, launch key), in submission order

    # --- Executor protocol -------------------------------------------------------------------------------

    def open(self, devices: Sequence[str]) -> None:
        try:
            import submitit  # noqa: F401
        except ImportError:
            raise SweepError("--executor slurm: submitit is not installed; pip install 'sweep[slurm]'") from None
        for tool in ("sbatch", "sacct", "squeue", "scancel"):
            if shutil.which(tool) is None:
                raise SweepError(f"--executor slurm: {tool} not found on PATH; run sweep where Slurm's client "
                                 "commands work (make slurm-up starts a local one)")
        if self.options.partition is not None:
            known = _run(["sinfo", "-h", "-o", "%R"]).split()
            if self.options.partition not in known:
                raise SweepError(f"--slurm-partition: no partition {self.options.partition!r} on this cluster; "
                                 f"known: {', '.join(known) or 'none'}")
        self.options.folder.mkdir(parents=True, exist_ok=True)

    def map(self, launches: Iterable[Launch | None]) -> Iterator[tuple[Launch, Placed]]:
        """Submit launches as they are pulled (up to max_jobs in flight); yield each as its Slurm job ends.

        A None from `launches` means "nothing until one of yours ends": pulling resumes after the next yield.
        """
        source = iter(launches)
        exhausted = hold = finished = False
        deadline = time.monotonic() + self.options.deadline_min * 60
        try:
            while True:
                if not exhausted and not hold and time.monotonic() < deadline:
                    batch: list[Launch] = []
                    while len(self._flights) + len(batch) < self.options.max_jobs:
                        nxt = next(source, _END)
                        if nxt is _END:
                            exhausted = True
                            break
                        if nxt is None:
                            hold = True
                            break
                        assert isinstance(nxt, Launch)
                        batch.append(nxt)
                    self._submit(batch)
                if not self._flights:
                    if exhausted or time.monotonic() >= deadline:
                        finished = True
                        return
                    hold = False  # nothing in flight: pull again at once
                    continue
                if time.monotonic() >= deadline:
                    yield from self._abandon(f"the sweep's Slurm deadline ({self.options.deadline_min:g} min) "
                                             "passed")
                    continue
                done = list(self._ended())
                if done:
                    hold = False
                    yield from done
                else:
                    time.sleep(self.options.poll_s)
        finally:
            if not finished and self._flights:  # the consumer stopped (Ctrl-C, an error): nothing outlives the sweep
                self._scancel(list(self._flights))
                self._flights.clear()

    def machine(self, device: str) -> Any:
        """orchestrate.Machine of a node that runs `device` launches, asked once per device by a small Slurm job.

        The submitting host may have no GPU (or another one): resume keys, variant keys and rows' device_name
        must come from where the work runs.
        """
        if device not in self._machines:
            job = self._executor(device, 5).submit(probe, device)
            deadline = time.monotonic() + self.options.deadline_min * 60
            while not job.paths.result_pickle.exists():
                state = job.watcher.get_state(job.job_id, mode="force")
                if state.split(" ")[0] not in (*LIVE_STATES, "UNKNOWN") or time.monotonic() > deadline:
                    self._scancel([job.job_id])
                    raise SweepError(f"--executor slurm: the probe job {job.job_id} that asks a node for its "
                                     f"{device} ended {state} without an answer; see {job.paths.stderr}")
                time.sleep(self.options.poll_s)
            self._machines[device] = job.result()
        return self._machines[device]

    def close(self) -> None:
        if self._flights:
            self._scancel(list(self._flights))
            self._flights.clear()

    # --- submission ---------------------------------------------------------------------------------------

    def _executor(self, device: str, time_min: int) -> Any:
        """One submitit executor per kind of resources: CPU launches get a whole node, CUDA ones N GPUs."""
        import submitit

        cpu = device == "cpu"
        key = (cpu, time_min)
        if key not in self._executors:
            ex = submitit.SlurmExecutor(folder=self.options.folder / "%j", max_num_timeout=0)
            params: dict[str, Any] = {
                "job_name": "sweep", "time": time_min, "signal_delay_s": self.options.signal_s,
                "array_parallelism": self.options.max_jobs,
                # the nodes import this sweep, and its runners, like the submitting host does
                "setup": [f"export PYTHONPATH={PROJECT_ROOT}${{PYTHONPATH:+:$PYTHONPATH}}"],
                "additional_parameters": dict(self.options.additional),
            }
            if self.options.partition:
                params["partition"] = self.options.partition
            if cpu:
                params["exclusive"] = True  # a CPU timing never shares cores, as locally
            else:
                params["gpus_per_node"] = self.options.gpus_per_job
                params["cpus_per_task"] = self.options.cpus_per_job
            ex.update_parameters(**params)
            self._executors[key] = ex
        return self._executors[key]

    def _submit(self, batch: list[Launch]) -> None:
        groups: dict[tuple[bool, int], list[Launch]] = {}
        for launch in batch:
            groups.setdefault((launch.device == "cpu", self.options.time_for(launch)), []).append(launch)
        for (cpu, time_min), group in groups.items():
            ex = self._executor("cpu" if cpu else "cuda", time_min)
            with ex.batch():
                jobs = [ex.submit(on_node, launch, time_min, self.options.signal_s) for launch in group]
            now = time.monotonic()
            for launch, job in zip(group, jobs, strict=True):
                self._flights[job.job_id] = _Flight(launch, job, now)
                self.submitted.append((job.job_id, launch.key))

    # --- waiting --------------------------------------------------------------------------------------------

    def _ended(self) -> Iterator[tuple[Launch, Placed]]:
        """The launches whose job ended since the last look, each with its Placed."""
        missing = [jid for jid, f in self._flights.items() if not f.job.paths.result_pickle.exists()]
        now = time.monotonic()
        if missing and now - self._sacct_at >= self.options.sacct_s:
            self._sacct = self._states(missing)
            self._sacct_at = now
        for jid in list(self._flights):
            flight = self._flights[jid]
            if flight.job.paths.result_pickle.exists():
                del self._flights[jid]
                yield flight.launch, self._from_result(flight)
                continue
            info = self._sacct.get(jid)
            if info is None:
                continue  # neither sacct nor squeue answered for it yet: wait (the deadline bounds this)
            state = info.get("State", "").split(" ")[0]
            if state in LIVE_STATES:
                continue
            flight.final_since = flight.final_since or now
            if now - flight.final_since < RESULT_GRACE_S and state in ("COMPLETED", "GONE"):
                continue  # its result may still be on its way through the filesystem
            del self._flights[jid]
            yield flight.launch, self._from_sacct(jid, flight, info)

    def _states(self, job_ids: list[str]) -> dict[str, dict[str, str]]:
        """sacct's view (State, ExitCode, Elapsed, Timelimit, NodeList, Start) by job id. squeue answers for the jobs
        sacct does not list (no accounting, or slurmdbd lagging): live ones, or "GONE" when it no longer lists
        them. A job neither could answer for is left out: it is waited for, within the deadline."""
        from submitit.slurm.slurm import SlurmInfoWatcher

        mains = sorted({j.split("_")[0] for j in job_ids})
        info: dict[str, dict[str, str]] = {}
        try:
            out = _run(["sacct", "-X", "--parsable2", "-o",
                        "JobID,State,ExitCode,Elapsed,Timelimit,NodeList,Start",
                        "-j", ",".join(mains)])
            info = SlurmInfoWatcher().read_info(out)
        except (subprocess.SubprocessError, OSError):
            pass
        unknown = [j for j in job_ids if j not in info or info[j].get("State", "").startswith("PENDING")]
        if unknown:
            try:
                out = _run(["squeue", "-h", "-r", "-o", "%i|%T", "-j", ",".join(sorted({j.split("_")[0]
                                                                                        for j in unknown}))])
            except (subprocess.SubprocessError, OSError):
                return info
            live = dict(line.split("|", 1) for line in out.splitlines() if "|" in line)
            for j in unknown:
                if j in live:
                    info[j] = {**info.get(j, {}), "State": live[j]}
                elif j not in info:
                    info[j] = {"State": "GONE", "NodeList": ""}
        return info

    def _from_result(self, flight: _Flight) -> Placed:
        outcome, value = flight.job._get_outcome_and_result()
        if outcome == "success" and isinstance(value, Placed):
            return value
        trace = str(value).strip().splitlines()
        return Placed(outcome=execute.Outcome(status="failed", reason=(
            f"sweep's worker in Slurm job {flight.job.job_id} raised: {' | '.join(trace[-3:])}")[:execute.TAIL_CHARS]),
            executor="slurm", slurm_job_id=flight.job.job_id)

    def _from_sacct(self, jid: str, flight: _Flight, info: dict[str, str] | None) -> Placed:
        """How a job that left no result died, in a row's words."""
        info = info or {}
        state = info.get("State", "") or "UNKNOWN"
        word = state.split(" ")[0]
        elapsed = info.get("Elapsed", "?")
        if word == "TIMEOUT":
            status = "timeout"
            reason = (f"Slurm time limit ({info.get('Timelimit', '?')}) reached: job {jid} TIMEOUT after {elapsed}, "
                      "no result (killed before its USR2 was handled)")
        elif word == "CANCELLED":
            status, reason = "failed", f"Slurm job {jid} {state} (scancel) after {elapsed}; no result"
        elif word == "PREEMPTED":
            status, reason = "failed", f"Slurm job {jid} was PREEMPTED after {elapsed} (another job took its node)"
        elif word == "OUT_OF_MEMORY":
            status, reason = "failed", f"Slurm killed job {jid} for exceeding its memory (OUT_OF_MEMORY), {elapsed}"
        elif word in ("GONE", "UNKNOWN"):
            status, reason = "failed", f"Slurm job {jid} left the queue without a result (sacct does not know it)"
        else:
            status = "failed"
            reason = f"Slurm job {jid} ended {state} (exit {info.get('ExitCode', '?')}) after {elapsed}; no result"
        log = execute.tail(flight.job.paths.stderr) if flight.job.paths.stderr.exists() else ""
        said = [line.strip() for line in log.splitlines() if "slurmstepd" in line or "oom" in line.lower()]
        if said:  # Slurm's own words from the job's log, e.g. "*** JOB 6 ON node CANCELLED AT ... ***"
            reason += ": " + " | ".join(said[-2:])
        node = info.get("NodeList", "")
        return Placed(outcome=execute.Outcome(status=status, reason=reason, started_at=sacct_time(info.get("Start"))),
                      hostname="" if node in ("None assigned", "") else node, executor="slurm", slurm_job_id=jid)

    def _abandon(self, why: str) -> Iterator[tuple[Launch, Placed]]:
        jids = list(self._flights)
        states = self._states(jids)
        self._scancel(jids)
        for jid in jids:
            flight = self._flights.pop(jid)
            state = states.get(jid, {}).get("State", "UNKNOWN")
            yield flight.launch, Placed(outcome=execute.Outcome(status="timeout", reason=(
                f"{why} while Slurm job {jid} was {state}; scancelled"),
                started_at=sacct_time(states.get(jid, {}).get("Start"))), executor="slurm", slurm_job_id=jid)

    def _scancel(self, job_ids: list[str]) -> None:
        if job_ids:
            subprocess.run(["scancel", *job_ids], capture_output=True, timeout=60)
