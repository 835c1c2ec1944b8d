"""Run a matrix: plan the missing (job, process) pairs, compile and compute references first, then run every
job's process 0, every job's process 1, ..., each pair claimed, launched by an executor and stored at once.

The unit of work is the pair (job, process): one fresh runner process is one sample of a job. A pair is done
when an ok row with its job_key, process and machine identity exists (`--force` runs it again). Pairs run
interleaved across jobs, so drift in clocks, heat or neighbours hits every variant alike. Each pair is
claimed in the results folder (sweep.locks.Claims) before it starts, so sweeps sharing a folder never run it
twice, and its row is durable before the claim is released. The parent stays free of torch and pandas.

A pair that cannot launch (its variant failed to compile, TensorRT is missing, the C++ binary did not build) is
claimed and gets its row like any other, so every pair a sweep reaches has one and sweeps sharing the folder see
it handled. A compile failure therefore leaves one `compile_failed` row per planned process, alike but for
`process`; `sweep run`, report and compare count them as one failure of the job (sweep.schema.NOT_LAUNCHED).
Only ok rows make a pair done, so a rerun tries a failed compile again, once per variant.
"""

from __future__ import annotations

import os
import platform
import sys
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sweep import compile as compile_step
from sweep import execute, store, telemetry
from sweep.errors import SweepError
from sweep.executor import Executor, Launch, Placed
from sweep.jobs import Job
from sweep.locks import Claims, Held
from sweep.matrix import Matrix
from sweep.paths import runner_env
from sweep.references import Reference, References, reference_key
from sweep.rows import make_row
from sweep.runtimes import RUNTIMES, uses_tensorrt
from sweep.workspace import Session

FAILING = ("failed", "timeout", "compile_failed")
WAIT_POLL_S = 0.5  # how often a pair claimed by another sweep is looked at again


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


@dataclass(frozen=True)
class Machine:
    """What makes a result comparable, read once by the parent for every row of a device (without torch).

    Resume trusts an ok row only from the same device name and torch (and, for TensorRT runtimes, the
    same torch-tensorrt and TensorRT). Rows take these from here, not from each runner, so rows the
    parent decided (timeouts, crashes) carry them too and one machine renders as one machine.
    """

    device_name: str
    torch_version: str
    hostname: str
    cuda_version: str = ""
    driver_version: str = ""
    torch_tensorrt_version: str = ""
    tensorrt_version: str = ""
    python_version: str = ""

    @staticmethod
    def of(device: str) -> Machine:
        trt = telemetry.trt_versions()
        installed = telemetry.torch_install()
        return Machine(telemetry.device_name(device), installed["torch_version"], os.uname().nodename,
                       cuda_version=installed["cuda_version"],
                       driver_version=telemetry.driver_info().get("driver_version", ""),
                       torch_tensorrt_version=trt["torch_tensorrt_version"], tensorrt_version=trt["tensorrt_version"],
                       python_version=platform.python_version())

    def resume_key(self, job_key: str, runtime: str, process: int = 0) -> tuple[str | int, ...]:
        """What an ok row must match to count as done: TensorRT upgrades rerun only the TensorRT jobs."""
        trt = (self.torch_tensorrt_version, self.tensorrt_version) if uses_tensorrt(runtime) else ("", "")
        return (job_key, process, self.device_name, self.torch_version, *trt)


def row_resume_key(row: dict[str, Any]) -> tuple[str | int, ...]:
    trt = (row["torch_tensorrt_version"] or "", row["tensorrt_version"] or "") if uses_tensorrt(row["runtime"]) \
        else ("", "")
    return (row["job_key"], int(row.get("process") or 0), row["device_name"] or "", row["torch_version"] or "", *trt)


def done_keys(results_dir: Path) -> set[tuple[str | int, ...]]:
    """Machine.resume_key of every ok row already stored (pyarrow only)."""
    return {row_resume_key(r) for r in store.resume_rows(results_dir) if r["status"] == "ok"}


@dataclass(frozen=True)
class Pair:
    """One fresh process of a job: the unit the sweep plans, claims, runs and stores."""

    job: Job
    process: int
    order: int = field(default=0, compare=False)  # the job's place in the matrix

    @property
    def key(self) -> str:
        return f"{self.job.key}/{self.process}"

    def describe(self) -> str:
        text = self.job.describe()
        return f"{text} [{self.process + 1}/{self.job.processes}]" if self.job.processes > 1 else text


@dataclass
class Summary:
    """What a run did: counts by status and the rows it wrote."""

    run_id: str
    total: int  # pairs in the matrix
    counts: dict[str, int] = field(default_factory=dict)
    rows: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[Pair] = field(default_factory=list)  # already done
    elsewhere: list[Pair] = field(default_factory=list)  # done meanwhile by another sweep sharing the folder

    @property
    def exit_code(self) -> int:
        return 1 if any(self.counts.get(s, 0) for s in FAILING) else 0


Event = Callable[[str, Pair, dict[str, Any] | None], None]  # ("start" | "done" | "skip", pair, row)
Message = Callable[[str], None]


def check_writable(folder: Path, option: str) -> None:
    """Refuse, before anything runs, a results or artifacts folder that cannot be written: one line, exit 2."""
    path = Path(folder)
    probe = path
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        where = "is a file" if probe == path else f"is under {probe}, which is a file"
        raise SweepError(f"{option} {folder}: {where}, not a folder; choose another {option}")
    try:
        path.mkdir(parents=True, exist_ok=True)
        test = path / f".sweep-write-test-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        test.write_bytes(b"")
        test.unlink()
    except OSError as exc:
        raise SweepError(f"{option} {folder}: cannot write there ({exc.strerror or exc}); "
                         f"choose another {option} or fix its permissions") from None


class DoneIndex:
    """The resume keys of ok rows, refreshed cheaply: only row files not seen before are read.

    `recent` holds the keys of every row (any status) written since this sweep began: a pair another sweep
    sharing the folder ran meanwhile, even if it failed there, is not run a second time by this one.
    """

    def __init__(self, results_dir: Path, force: bool) -> None:
        self.results_dir = results_dir
        self.keys: set[tuple[str | int, ...]] = set()
        self.recent: set[tuple[str | int, ...]] = set()
        self.seen: set[Path] = set(store.row_files(results_dir))
        if not force:
            self.keys = done_keys(results_dir)

    def refresh(self) -> None:
        """Read the rows other sweeps wrote since (a claim was just taken: was the pair run meanwhile?)."""
        new = [p for p in store.row_files(self.results_dir) if p not in self.seen]
        if not new:
            return
        self.seen.update(new)
        for row in store.resume_rows(self.results_dir, files=new):
            key = row_resume_key(row)
            self.recent.add(key)
            if row["status"] == "ok":
                self.keys.add(key)


@dataclass
class Ticket:
    """A launch handed to the executor, and what its result needs."""

    kind: str  # run | compile | reference
    pair: Pair | None = None
    claim: Held | None = None
    handed_at: datetime = field(default_factory=utcnow)  # to the executor: started_at only if the runner's is unknown
    build: compile_step.Build | None = None
    waiting: list[tuple[Pair, Held]] = field(default_factory=list)  # runs to redo once this finishes


class Orchestrator:
    """Runs the pairs of a matrix through an executor; each row is durable before its claim is released."""

    def __init__(self, results_dir: Path, artifacts_dir: Path, force: bool = False,
                 timeout_s: float | None = None, on_event: Event | None = None,
                 executor: Executor | None = None, on_message: Message | None = None) -> None:
        self.results_dir = Path(results_dir)
        self.artifacts_dir = Path(artifacts_dir)
        self.force = force
        self.timeout_s = timeout_s
        self.on_event: Event = on_event or (lambda kind, pair, row: None)
        self.on_message: Message = on_message or (lambda text: None)
        if executor is None:
            from sweep.pool import LocalPool

            executor = LocalPool(on_message=self.on_message)
        self.executor = executor
        self._machines: dict[str, Machine] = {}
        self.verifier = compile_step.Verifier()
        self.references = References(self.artifacts_dir, self.verifier)
        self._variants: dict[str, compile_step.VariantResult] = {}  # by variant key
        self._variant_of: dict[str, str] = {}  # job key -> variant key
        self._rebuilt: dict[str, str] = {}  # variant key -> why it was rebuilt in this sweep
        self._native_failure: execute.Outcome | None = None
        self._native_ready = False
        self._prepared: tuple[Matrix, DoneIndex, list[Pair], list[Pair]] | None = None

    # --- planning -------------------------------------------------------------------------------------

    def machine(self, device: str) -> Machine:
        """The machine the pairs of `device` run on: the executor's answer where it has one (a Slurm node, not
        the submitting host), else this host's."""
        if device not in self._machines:
            self._machines[device] = getattr(self.executor, "machine", Machine.of)(device)
        return self._machines[device]

    def resume_key(self, pair: Pair) -> tuple[str | int, ...]:
        return self.machine(pair.job.device).resume_key(pair.job.key, pair.job.runtime, pair.process)

    def plan(self, matrix: Matrix, done: DoneIndex | None = None) -> tuple[list[Pair], list[Pair]]:
        """(to run, already done), to run in interleaved order: every job's process 0, then process 1, ..."""
        done = done or DoneIndex(self.results_dir, self.force)
        pairs = [Pair(job, p, i) for i, job in enumerate(matrix.jobs) for p in range(job.processes)]
        pairs.sort(key=lambda pair: (pair.process, pair.order))
        todo = [p for p in pairs if self.resume_key(p) not in done.keys]
        skipped = [p for p in pairs if self.resume_key(p) in done.keys]
        return todo, skipped

    # --- running --------------------------------------------------------------------------------------

    def prepare(self, matrix: Matrix) -> None:
        """What can fail before anything runs, done before anything is printed: the folders can be written and
        the stored rows can be read (bad row files: one line, exit 2). run() then uses this plan."""
        check_writable(self.results_dir, "--results")
        check_writable(self.artifacts_dir, "--artifacts")
        done = DoneIndex(self.results_dir, self.force)
        self._prepared = (matrix, done, *self.plan(matrix, done))

    def run(self, matrix: Matrix) -> Summary:
        prepared = self._prepared
        if prepared is None or prepared[0] is not matrix:
            self.prepare(matrix)
            prepared = self._prepared
        assert prepared is not None
        _, done, todo, skipped = prepared
        self._prepared = None
        execute.become_subreaper()
        total = sum(job.processes for job in matrix.jobs)
        summary = Summary(run_id=f"{utcnow():%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}", total=total, skipped=skipped)
        for pair in skipped:
            self.on_event("skip", pair, None)
        if not todo:
            return summary
        session = Session(self.artifacts_dir)
        claims = Claims(self.results_dir)
        try:
            self.executor.open(sorted({p.job.device for p in todo}))
            self._compile_all(todo, session)
            self._native(todo)
            self._reference_all(todo, session)
            self._run_all(todo, summary, session, claims, done)
        finally:
            self.executor.close()
            session.close()
            claims.clean()
            execute.reap_orphans()
        return summary

    def _timeout(self, job: Job) -> float:
        return self.timeout_s or job.timeout_s

    def _native(self, todo: list[Pair]) -> None:
        """Build the C++ binary (after the compiles, before the references) when a native job can run; if the
        build fails, every native job's row says why."""
        if self._native_ready or self._native_failure is not None:
            return
        if not any(RUNTIMES[p.job.runtime].runner == "native" and self._blocked(p.job) is None for p in todo):
            return  # no native job can run (its variant is unavailable or failed): nothing to build it for
        from sweep import native

        try:
            native.ensure_native()
            self._native_ready = True
        except native.NativeUnavailable as exc:
            self._native_failure = execute.Outcome(status="unavailable", reason=str(exc))
        except SweepError as exc:
            self._native_failure = execute.Outcome(status="failed", reason=str(exc))

    def _blocked(self, job: Job) -> execute.Outcome | None:
        """Why a job cannot launch at all (native build, compile), as the outcome its rows get; None if it can."""
        if RUNTIMES[job.runtime].runner == "native" and self._native_failure is not None:
            return self._native_failure
        key = self._variant_of.get(job.key)
        if key is not None:
            built = self._variants.get(key)
            if built is None:
                return execute.Outcome(status="compile_failed", reason="the variant was not built")
            if built.status not in ("built", "cached"):
                status = {"failed": "compile_failed"}.get(built.status, built.status)
                return execute.Outcome(status=status, reason=built.reason)
        return None

    def _compile_all(self, todo: list[Pair], session: Session) -> None:
        """Every variant the pending pairs need, once, before any of them runs (cached ones are verified)."""
        builds: dict[str, compile_step.Build] = {}
        for pair in todo:
            job = pair.job
            if RUNTIMES[job.runtime].artifact is None or job.key in self._variant_of:
                continue
            machine = self.machine(job.device)
            vkey = compile_step.Variant.of(job, machine).key
            self._variant_of[job.key] = vkey
            if vkey in self._variants or vkey in builds:
                continue
            prepared = compile_step.prepare(job, self.artifacts_dir, self._timeout(job), session.new(f"compile-{vkey}"),
                                            runner_env(), self.verifier, machine=machine)
            if isinstance(prepared, compile_step.Build):
                builds[vkey] = prepared
            else:
                self._variants[vkey] = prepared
        if not builds:
            return
        for build in builds.values():
            what = f"{build.variant.describe()}" + (f" ({build.rebuilt})" if build.rebuilt else "")
            self.on_message(f"compiling {what}")
        with finishing(self.executor.map(b.launch for b in builds.values())) as results:
            for launch, placed in results:
                result = compile_step.finish(builds[launch.key], placed.outcome)
                self._variants[launch.key] = result
                if result.rebuilt:
                    self._rebuilt[launch.key] = result.rebuilt
                first = result.reason.splitlines()[0][:160] if result.reason else ""
                self.on_message(f"compile {result.status}: {builds[launch.key].variant.describe()} "
                                f"{result.spent_s:.1f} s {first}".rstrip())

    def _reference_of(self, job: Job) -> str:
        machine = self.machine(job.device)
        return reference_key(job, machine.device_name, machine.torch_version)

    def _reference_all(self, todo: list[Pair], session: Session) -> None:
        """The fp32 reference of every pending job that can run, verified or computed, before any job runs."""
        wanted: dict[str, Launch] = {}
        for pair in todo:
            if self._blocked(pair.job) is not None:
                continue
            key = self._reference_of(pair.job)
            if key in wanted or self.references.lookup(key) is not None:
                continue
            wanted[key] = self.references.launch(key, pair.job, session.new(f"reference-{key}"),
                                                 self._timeout(pair.job))
        if not wanted:
            return
        self.on_message(f"computing {len(wanted)} fp32 reference(s)")
        with finishing(self.executor.map(wanted.values())) as results:
            for launch, placed in results:
                self.references.finish(launch.key, launch, placed.outcome)

    def _run_launch(self, pair: Pair, session: Session) -> Launch:
        from sweep import contract

        job = pair.job
        spec = RUNTIMES[job.runtime]
        work = session.new(f"{job.key}-p{pair.process}")
        key = self._variant_of.get(job.key)
        artifact = self._variants[key].artifact if key is not None else None
        ref = self.references.lookup(self._reference_of(job))
        reference = ref.for_job() if ref is not None else None
        doc = contract.job_document(job, work / "outputs.pt", artifact, process=pair.process, reference=reference)
        env = runner_env()
        followup = None
        if spec.runner == "native":
            from sweep import native

            env.update(native.runner_env(job.runtime))
            if reference is not None:
                followup = fidelity_launch(work, reference, doc["fidelity"], self._timeout(job))
        return Launch(kind="run", key=pair.key, command=tuple(spec.command()), doc=doc, workdir=work,
                      timeout_s=self._timeout(job), env=env, device=job.device, memory_limit_gb=job.memory_limit_gb,
                      followup=followup)

    def _run_all(self, todo: list[Pair], summary: Summary, session: Session, claims: Claims, done: DoneIndex) -> None:
        queue: deque[Pair] = deque(todo)
        deferred: list[Pair] = []  # claimed by another sweep right now
        ready: deque[tuple[Pair, Held]] = deque()  # claimed pairs to (re)launch first: after a rebuild
        extra_launches: deque[tuple[Launch, Ticket]] = deque()  # rebuilds and recomputed references
        inflight: dict[str, Ticket] = {}
        said: list[str] = []  # the last "waiting for another sweep" message, said once

        def record(pair: Pair, claim: Held, outcome: execute.Outcome, placed: Placed | None,
                   handed: datetime | None) -> None:
            row = self._row(pair, outcome, placed, summary.run_id, handed)
            store.append_row(self.results_dir, row)
            claim.release()
            summary.rows.append(row)
            summary.counts[row["status"]] = summary.counts.get(row["status"], 0) + 1
            self.on_event("done", pair, row)

        def start(pair: Pair, claim: Held) -> Launch | None:
            """The pair's launch, or None when its row is written at once (it cannot launch)."""
            blocked = self._blocked(pair.job)
            if blocked is not None:
                self.on_event("start", pair, None)
                record(pair, claim, blocked, None, None)
                return None
            launch = self._run_launch(pair, session)
            inflight[launch.key] = Ticket("run", pair, claim)
            self.on_event("start", pair, None)
            return launch

        def take(pair: Pair, wait: bool) -> Held | None:
            claim = claims.take(pair.job.key, pair.process, wait=wait)
            if claim is None:
                return None
            done.refresh()
            key = self.resume_key(pair)
            if key in done.keys or key in done.recent:  # run meanwhile by another sweep sharing the folder
                claim.release()
                summary.elsewhere.append(pair)
                self.on_event("skip", pair, None)
                return None
            return claim

        def launches() -> Iterator[Launch | None]:
            while True:
                if extra_launches:
                    extra, ticket = extra_launches.popleft()
                    inflight[extra.key] = ticket
                    yield extra
                elif ready:
                    again = start(*ready.popleft())
                    if again is not None:
                        yield again
                elif queue:
                    pair = queue.popleft()
                    claim = take(pair, wait=False)
                    if claim is None:
                        if pair not in summary.elsewhere:
                            deferred.append(pair)
                        continue
                    first = start(pair, claim)
                    if first is not None:
                        yield first
                elif deferred:
                    for pair in list(deferred):
                        claim = take(pair, wait=False)
                        if claim is not None or pair in summary.elsewhere:
                            deferred.remove(pair)
                        if claim is not None:
                            late = start(pair, claim)
                            if late is not None:
                                yield late
                            break
                    else:
                        if inflight:
                            yield None  # wait for one of ours to end, then look again
                        else:
                            names = ", ".join(p.describe() for p in deferred[:3])
                            text = f"waiting for another sweep to finish {len(deferred)} pair(s): {names}"
                            if said != [text]:
                                self.on_message(text)
                                said[:] = [text]
                            time.sleep(WAIT_POLL_S)
                elif inflight:
                    yield None  # a result may bring a rebuild and a rerun
                else:
                    return

        with finishing(self.executor.map(launches())) as results:
            for launch, placed in results:
                ticket = inflight.pop(launch.key)
                if ticket.kind == "compile":
                    assert ticket.build is not None
                    result = compile_step.finish(ticket.build, placed.outcome)
                    self._variants[launch.key] = result
                    self._rebuilt[launch.key] = result.rebuilt or self._rebuilt.get(launch.key, "rebuilt")
                    ready.extend(ticket.waiting)
                    continue
                if ticket.kind == "reference":
                    self.references.finish(launch.key, launch, placed.outcome)
                    ready.extend(ticket.waiting)
                    continue
                assert ticket.pair is not None and ticket.claim is not None
                pair, claim = ticket.pair, ticket.claim
                redo = self._redo(pair, claim, placed.outcome, session)
                if redo is not None:
                    extra_launches.append(redo)
                    continue
                record(pair, claim, placed.outcome, placed, ticket.handed_at)

    def _redo(self, pair: Pair, claim: Held, outcome: execute.Outcome,
              session: Session) -> tuple[Launch, Ticket] | None:
        """A run that failed because its cached input was damaged: the rebuild (or recomputation) to do first,
        once per sweep, after which the pair runs again under the same claim."""
        if outcome.status != "failed":
            return None
        job = pair.job
        vkey = self._variant_of.get(job.key)
        if vkey is not None and vkey not in self._rebuilt and compile_step.broken_load(outcome.returncode,
                                                                                    outcome.reason):
            first = next((line for line in outcome.reason.splitlines() if line.strip()), "")[:200]
            why = f"the cached variant failed to load like a broken build ({first})"
            self._rebuilt[vkey] = why
            self.on_message(f"rebuilding variant {vkey}: {why}")
            compile_step.discard(self.artifacts_dir, vkey)
            self.verifier.forget(self.artifacts_dir.resolve() / vkey)
            prepared = compile_step.prepare(job, self.artifacts_dir, self._timeout(job), session.new(f"rebuild-{vkey}"),
                                            runner_env(), self.verifier, rebuild=why, machine=self.machine(job.device))
            if isinstance(prepared, compile_step.VariantResult):
                self._variants[vkey] = prepared
                return None
            return prepared.launch, Ticket("compile", build=prepared, waiting=[(pair, claim)])
        rkey = self._reference_of(job)
        if "reference outputs" in outcome.reason and "damaged" in outcome.reason and \
                self.references.forget(rkey, "found damaged by the runner"):
            self.on_message(f"recomputing reference {rkey}: the runner found it damaged")
            launch = self.references.launch(rkey, job, session.new(f"reference-{rkey}"), self._timeout(job))
            return launch, Ticket("reference", waiting=[(pair, claim)])
        return None

    # --- rows -----------------------------------------------------------------------------------------

    def _row(self, pair: Pair, outcome: execute.Outcome, placed: Placed | None, run_id: str,
             handed: datetime | None) -> dict[str, Any]:
        """The pair's row. started_at is when its runner process started (the guard's clock, on the node that
        ran it), so time spent waiting for a free GPU, the CPU, a lock or a Slurm queue is not in it; a launch
        that came back without that time (a Slurm job that died without a result) says so in extra.started_at
        and falls back to when it was handed to the executor; a pair that never launched (its variant failed to
        compile, TensorRT missing) has its row's time. finished_at is when the row was made."""
        job = pair.job
        vkey = self._variant_of.get(job.key, "")
        built = self._variants.get(vkey) if vkey else None
        ref: Reference | None = self.references.known.get(self._reference_of(job))
        result = outcome.result if outcome.status == "ok" else {}
        facts: dict[str, Any] = {}  # what the parent knows of the run, kept in the row's extra whatever its status
        if built is not None and built.extra:
            facts["variant"] = built.extra
        if placed is not None and placed.cpus:
            facts["cpus"] = placed.cpus  # the CPUs the pool pinned the runner to (several GPUs at once)
        if outcome.leftovers:
            facts["killed_leftover_processes"] = outcome.leftovers[:10]
        if ref is not None and ref.recomputed:
            facts["reference_recomputed"] = ref.recomputed
        started = outcome.started_at or handed or utcnow()
        if placed is not None and outcome.started_at is None:
            facts["started_at"] = ("unknown: no runner start came back; started_at is when the pair was handed to "
                                   "the executor")
        errors: dict[str, Any] | None = None
        reason = ""
        if outcome.status == "ok" and placed is not None and placed.followup is not None:
            if placed.followup.status == "ok":
                errors = placed.followup.result
            else:
                reason = f"python -m runners.fidelity {placed.followup.status}: {placed.followup.reason}"[:500]
        if ref is None or ref.path is None:
            reason = ref.error if ref is not None and ref.error else "no fp32 reference for this job"
        verdict = judge(job, result.get("fidelity") if isinstance(result.get("fidelity"), dict) else errors,
                        reason) if outcome.status == "ok" else None
        return make_row(job, outcome, run_id=run_id, machine=self.machine(job.device), started_at=started,
                        finished_at=utcnow(), errors=errors, gflops=ref.gflops if ref is not None else None,
                        variant_key=vkey, compile_s=built.seconds if built is not None else None,
                        variant_rebuilt=vkey in self._rebuilt and built is not None and built.status in ("built",
                                                                                                          "cached"),
                        verdict=verdict, process=pair.process, processes=job.processes,
                        gpu_index=placed.gpu_index if placed else None, gpu_uuid=placed.gpu_uuid if placed else "",
                        executor=placed.executor if placed else getattr(self.executor, "name", "local"),
                        slurm_job_id=placed.slurm_job_id if placed else "", facts=facts)


@contextmanager
def finishing(results: Iterator[tuple[Launch, Placed]]) -> Iterator[Iterator[tuple[Launch, Placed]]]:
    """An executor's results, closed however the loop over them ends: an exception in the consumer (Ctrl-C
    while a row is written) stops the launches in flight at once, not whenever its traceback is collected."""
    try:
        yield results
    finally:
        close = getattr(results, "close", None)
        if close is not None:
            close()


def judge(job: Job, measured: dict[str, Any] | None, reason: str) -> dict[str, Any]:
    """The verdict columns of an ok row: sweep.fidelity's pass / fail / none for what the runner measured."""
    from sweep import fidelity

    spec = fidelity.job_fidelity(job)
    verdict, note = fidelity.verdict(measured, spec["tolerance"], reason)
    return {"fidelity": verdict, "fidelity_precision": spec["precision"], "fidelity_tolerance": spec["tolerance"],
            "fidelity_measure": spec["spec"]["measure"], "fidelity_note": note or None}


def fidelity_launch(work: Path, reference: dict[str, str], spec: dict[str, Any] | None, timeout_s: float) -> Launch:
    """`python -m runners.fidelity` for a runner that cannot compare its own outputs (the C++ binary)."""
    import json

    command = (sys.executable, "-m", "runners.fidelity", "--outputs", str(work / "outputs.pt"),
               "--reference", reference["path"], "--sha256", reference["sha256"], "--spec", json.dumps(spec or {}))
    return Launch(kind="fidelity", key=f"fidelity-{work.name}", command=command, doc={}, workdir=work / "fidelity",
                  timeout_s=min(timeout_s, 600.0), env=runner_env(), device="cpu")
