"""Run a matrix: skip what is done, compile what is missing, launch each job, and store its row at once."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sweep import atomic, execute, fidelity, store, telemetry
from sweep.errors import SweepError
from sweep.jobs import Job, canonical_key
from sweep.matrix import Matrix
from sweep.paths import runner_env
from sweep.rows import make_row
from sweep.runtimes import RUNTIMES, uses_tensorrt

FAILING = ("failed", "timeout", "compile_failed")


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


@dataclass(frozen=True)
class Machine:
    """What makes a result comparable, read once by the parent for every row of a device.

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

    @staticmethod
    def of(device: str) -> Machine:
        import torch

        trt = telemetry.trt_versions()
        return Machine(telemetry.device_name(device), torch.__version__, os.uname().nodename,
                       cuda_version=torch.version.cuda or "",
                       driver_version=telemetry.driver_info().get("driver_version", ""),
                       torch_tensorrt_version=trt["torch_tensorrt_version"], tensorrt_version=trt["tensorrt_version"])

    def resume_key(self, job_key: str, runtime: str) -> tuple[str, ...]:
        """What an ok row must match to count as done: TensorRT upgrades rerun only the TensorRT jobs."""
        trt = (self.torch_tensorrt_version, self.tensorrt_version) if uses_tensorrt(runtime) else ("", "")
        return (job_key, self.device_name, self.torch_version, *trt)


@dataclass
class Summary:
    """What a run did: counts by status and the rows it wrote."""

    run_id: str
    total: int
    counts: dict[str, int] = field(default_factory=dict)
    rows: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[Job] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return 1 if any(self.counts.get(s, 0) for s in FAILING) else 0


Event = Callable[[str, Job, dict[str, Any] | None], None]  # ("start" | "done" | "skip", job, row)


def job_document(job: Job, outputs_path: Path, artifact: dict[str, Any] | None) -> dict[str, Any]:
    """The job.json of runners/README.md."""
    return {
        "job_key": job.key,
        "runtime": job.runtime,
        "device": job.device,
        "model": job.model.to_runner(),
        "inputs": job.model.inputs(),
        "model_precision": job.model_precision,
        "amp_dtype": job.amp_dtype,
        "enabled_precisions": list(job.enabled_precisions),
        "compile_mode": job.compile_mode,
        "warmup": job.warmup,
        "iters": job.iters,
        "seed": job.seed,
        "artifact": artifact,
        "outputs_path": str(outputs_path),
    }


class References:
    """fp32 eager reference outputs (and the model's GFLOPs), computed once per model/device/seed and cached."""

    def __init__(self, cache_dir: Path, machine: Machine) -> None:
        self.cache_dir = cache_dir
        self.machine = machine
        self._failed: dict[str, str] = {}

    def key(self, job: Job) -> str:
        return canonical_key({"model": job.model.identity(), "device": job.device, "seed": job.seed,
                              "device_name": self.machine.device_name, "torch": self.machine.torch_version})

    def get(self, job: Job, timeout_s: float) -> tuple[Path | None, dict[str, Any]]:
        """(outputs file, facts) or (None, {"error": why}) when the reference itself cannot run."""
        key = self.key(job)
        folder = self.cache_dir / key
        outputs, facts_path = folder / "outputs.pt", folder / "reference.json"
        if outputs.exists() and facts_path.exists():
            return outputs, json.loads(facts_path.read_text())
        if key in self._failed:
            return None, {"error": self._failed[key]}
        with tempfile.TemporaryDirectory(prefix="sweep-ref-") as tmp:
            tmp_dir = Path(tmp)
            doc = fidelity.reference_job(job_document(job, tmp_dir / "outputs.pt", None))
            outcome = execute.launch(RUNTIMES["python-eager"].command(), doc, tmp_dir, timeout_s, env=runner_env())
            if outcome.status != "ok":
                self._failed[key] = f"reference {outcome.status}: {outcome.reason}"[:500]
                return None, {"error": self._failed[key]}
            facts = {"gflops": outcome.result.get("extra", {}).get("gflops"), "job": doc}
            staging = Path(tempfile.mkdtemp(prefix=".tmp-", dir=self._ensure_dir()))
            shutil.move(str(tmp_dir / "outputs.pt"), staging / "outputs.pt")
            atomic.write_json(staging / "reference.json", facts)
            try:
                os.replace(staging, folder)
            except OSError:  # already there (a concurrent sweep): keep theirs
                shutil.rmtree(staging, ignore_errors=True)
        return outputs, facts

    def _ensure_dir(self) -> Path:
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        return self.cache_dir


def done_keys(results_dir: Path) -> set[tuple[str, ...]]:
    """Machine.resume_key of every ok row already stored."""
    keys = set()
    for row in store.resume_rows(results_dir):
        if row["status"] != "ok":
            continue
        trt = (row["torch_tensorrt_version"], row["tensorrt_version"]) if uses_tensorrt(row["runtime"]) else ("", "")
        keys.add((row["job_key"], row["device_name"], row["torch_version"], *trt))
    return keys


class Orchestrator:
    """Runs the jobs of a matrix one at a time; each row is durable before the next job starts."""

    def __init__(self, results_dir: Path, artifacts_dir: Path, force: bool = False,
                 timeout_s: float | None = None, on_event: Event | None = None) -> None:
        self.results_dir = results_dir
        self.artifacts_dir = artifacts_dir
        self.force = force
        self.timeout_s = timeout_s
        self.on_event = on_event or (lambda kind, job, row: None)
        self._machines: dict[str, Machine] = {}
        self._references: dict[str, References] = {}
        self._variant_extra: dict[str, dict[str, Any]] = {}  # compile facts by variant key, for rows' extra
        self._native_ready = False
        self._native_failure: execute.Outcome | None = None

    def machine(self, device: str) -> Machine:
        if device not in self._machines:
            self._machines[device] = Machine.of(device)
        return self._machines[device]

    def references(self, device: str) -> References:
        if device not in self._references:
            self._references[device] = References(self.artifacts_dir / "references", self.machine(device))
        return self._references[device]

    def pending(self, matrix: Matrix) -> tuple[list[Job], list[Job]]:
        """(to run, already done) under the resume rule; --force runs everything."""
        if self.force:
            return list(matrix.jobs), []
        done = done_keys(self.results_dir)
        todo: list[Job] = []
        skipped: list[Job] = []
        for job in matrix.jobs:
            key = self.machine(job.device).resume_key(job.key, job.runtime)
            (skipped if key in done else todo).append(job)
        return todo, skipped

    def run(self, matrix: Matrix) -> Summary:
        todo, skipped = self.pending(matrix)
        summary = Summary(run_id=f"{utcnow():%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}", total=len(matrix.jobs),
                          skipped=skipped)
        for job in skipped:
            self.on_event("skip", job, None)
        for job in todo:
            self.on_event("start", job, None)
            row = self.run_job(job, summary.run_id)
            store.append_row(self.results_dir, row)
            summary.rows.append(row)
            summary.counts[row["status"]] = summary.counts.get(row["status"], 0) + 1
            self.on_event("done", job, row)
        return summary

    def _artifact(self, job: Job, timeout_s: float) -> tuple[dict[str, Any] | None, str, float | None,
                                                              execute.Outcome | None]:
        """(artifact for job.json, variant key, compile seconds, failure outcome) for runtimes that need one."""
        if RUNTIMES[job.runtime].artifact is None:
            return None, "", None, None
        from sweep import compile as compile_step

        built = compile_step.ensure(job, self.artifacts_dir, timeout_s, env=runner_env())
        if built.extra:
            self._variant_extra[built.key] = built.extra
        if built.status in ("built", "cached"):
            return built.artifact, built.key, built.seconds, None
        status = {"failed": "compile_failed"}.get(built.status, built.status)
        return None, built.key, built.seconds, execute.Outcome(status=status, reason=built.reason)

    def _native(self) -> execute.Outcome | None:
        """Build the C++ binary before the first native job; if that fails, every native job's row says why."""
        if not self._native_ready and self._native_failure is None:
            from sweep import native

            try:
                native.ensure_native()
                self._native_ready = True
            except native.NativeUnavailable as exc:
                self._native_failure = execute.Outcome(status="unavailable", reason=str(exc))
            except SweepError as exc:
                self._native_failure = execute.Outcome(status="failed", reason=str(exc))
        return self._native_failure

    def _fidelity(self, job: Job, outputs: Path, outcome: execute.Outcome,
                  timeout_s: float) -> tuple[dict[str, float] | None, float | None]:
        """Errors against the reference, and the model's GFLOPs. A job whose measurement is fine but whose
        outputs cannot be compared keeps its row (with the reason in extra), and the sweep goes on."""
        extra = outcome.result.setdefault("extra", {})
        try:
            ref_path, facts = self.references(job.device).get(job, timeout_s)
            if ref_path is None:
                extra["fidelity"] = facts.get("error", "no reference")
                return None, None
            if not outputs.exists():
                extra["fidelity"] = "the runner saved no outputs"
                return None, facts.get("gflops")
            return fidelity.compare(outputs, ref_path), facts.get("gflops")
        except Exception as exc:  # a truncated or foreign outputs file must not cost the row
            extra["fidelity"] = f"outputs could not be compared: {type(exc).__name__}: {exc}"[:500]
            return None, None

    def run_job(self, job: Job, run_id: str) -> dict[str, Any]:
        timeout_s = self.timeout_s or job.timeout_s
        started = utcnow()
        machine = self.machine(job.device)
        artifact, variant_key, compile_s, failure = self._artifact(job, timeout_s)
        errors: dict[str, float] | None = None
        gflops = None
        if failure is None and RUNTIMES[job.runtime].runner == "native":
            failure = self._native()
        if failure is not None:
            outcome = failure
        else:
            with tempfile.TemporaryDirectory(prefix="sweep-job-") as tmp:
                work = Path(tmp)
                outputs = work / "outputs.pt"
                spec = RUNTIMES[job.runtime]
                env = runner_env()
                if spec.runner == "native":
                    from sweep import native

                    env.update(native.runner_env(job.runtime))
                outcome = execute.launch(spec.command(), job_document(job, outputs, artifact), work, timeout_s,
                                         env=env)
                if outcome.status == "ok" and self._variant_extra.get(variant_key):
                    outcome.result.setdefault("extra", {})["variant"] = self._variant_extra[variant_key]
                if outcome.status == "ok":
                    errors, gflops = self._fidelity(job, outputs, outcome, timeout_s)
        return make_row(job, outcome, run_id=run_id, machine=machine, started_at=started, finished_at=utcnow(),
                        errors=errors, gflops=gflops, variant_key=variant_key, compile_s=compile_s)
