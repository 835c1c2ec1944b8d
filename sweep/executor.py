"""The seam between planning and where processes run: Launch, Placed, run_here and the Executor protocol.

The orchestrator decides what runs, in which order, and records every row; an executor only decides where
each subprocess runs: `sweep.pool.LocalPool` on this host (one job per GPU at a time), `sweep.slurm` on a
cluster. Both run a launch through `run_here`, so a row looks the same wherever it was measured.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from sweep import execute, telemetry

KINDS = ("compile", "reference", "run", "fidelity")


@dataclass(frozen=True)
class Launch:
    """One subprocess the sweep needs run somewhere.

    `command` gets `--job <workdir>/job.json --out <workdir>/result.json` appended (kind "fidelity" excepted:
    it is run as given and prints its JSON object on stdout). `env` is added to the worker's environment.
    `device` is the job's ("cpu" | "cuda" | "cuda:N"); placing it on a physical GPU is the executor's job.
    `followup` runs in the same place right after this one, only if this one ended ok.
    """

    kind: str
    key: str
    command: tuple[str, ...]
    doc: dict[str, Any] = field(compare=False, hash=False)
    workdir: Path
    timeout_s: float
    env: dict[str, str] = field(default_factory=dict, compare=False, hash=False)
    device: str = "cpu"
    memory_limit_gb: float | None = None
    followup: Launch | None = None

    @property
    def cuda(self) -> bool:
        return self.device.startswith("cuda")

    @property
    def cuda_index(self) -> int | None:
        """The CUDA index a job pinned itself to (cuda:N), or None for "cuda" (any GPU) and the CPU."""
        return int(self.device.split(":", 1)[1]) if self.cuda and ":" in self.device else None


@dataclass
class Placed:
    """Where a launch ran and how it ended."""

    outcome: execute.Outcome
    followup: execute.Outcome | None = None
    gpu_index: int | None = None  # physical (NVML) index
    gpu_uuid: str = ""
    hostname: str = ""
    executor: str = "local"
    slurm_job_id: str = ""
    cpus: str = ""  # the CPUs the runner was pinned to ("0-7"), as its guard read them back; "" when not pinned

THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")  # sized to a pinned launch's CPUs unless the user set them


def run_here(launch: Launch, visible: str | None = None, executor: str = "local",
             cpus: Sequence[int] | None = None) -> Placed:
    """Run a launch on this machine: what a local worker or a Slurm node runs.

    `visible` pins a CUDA launch to one physical GPU (a CUDA_VISIBLE_DEVICES value: NVML index or UUID); None
    keeps the environment's (e.g. Slurm's allocation). A CUDA job then sees its GPU as "cuda", so job.json's
    device is rewritten to that. `cpus` pins the runner and everything it starts to those CPUs, with
    OMP_NUM_THREADS and MKL_NUM_THREADS set to their number unless the user set them; None keeps this
    process's affinity.
    """
    env = dict(launch.env)
    if cpus:
        for name in THREAD_VARIABLES:
            if name not in env and name not in os.environ:
                env[name] = str(len(set(cpus)))
    doc = launch.doc
    gpu_index: int | None = None
    gpu_uuid = ""
    if launch.cuda:
        if visible is not None:
            env["CUDA_VISIBLE_DEVICES"] = visible
        if "device" in doc:
            doc = {**doc, "device": "cuda"}
        gpu_index, gpu_uuid = telemetry.physical_gpu(env.get("CUDA_VISIBLE_DEVICES",
                                                             os.environ.get("CUDA_VISIBLE_DEVICES")))
    # cwd = the work folder: `python -m` puts the cwd first on sys.path, where a stray module could shadow the
    # factory the matrix named.
    launch.workdir.mkdir(parents=True, exist_ok=True)
    outcome = execute.launch(list(launch.command), doc, launch.workdir, launch.timeout_s, env=env,
                             cwd=launch.workdir, memory_limit_gb=launch.memory_limit_gb,
                             contract=launch.kind != "fidelity", cpus=cpus)
    followup = None
    if launch.followup is not None and outcome.status == "ok":
        followup = run_here(launch.followup, visible, executor, cpus).outcome
    return Placed(outcome=outcome, followup=followup, gpu_index=gpu_index, gpu_uuid=gpu_uuid,
                  hostname=socket.gethostname(), executor=executor,
                  cpus=compact(outcome.cpus) if outcome.cpus else "")


def compact(cpus: Iterable[int]) -> str:
    """A CPU set as Linux writes it: "0-7,16-23"."""
    runs: list[list[int]] = []
    for cpu in sorted(set(cpus)):
        if runs and cpu == runs[-1][1] + 1:
            runs[-1][1] = cpu
        else:
            runs.append([cpu, cpu])
    return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)


class Executor(Protocol):
    """Where launches run. See TEAM.md ("Executor interface") for the contract slurm.py implements."""

    name: str

    def open(self, devices: Sequence[str]) -> None:
        """Before anything runs: take what the pending work needs (local: device locks; may wait, or raise
        SweepError with --no-wait)."""

    def map(self, launches: Iterable[Launch | None]) -> Iterator[tuple[Launch, Placed]]:
        """Pull launches lazily and in order, only when one can start; yield each (launch, placed) as it ends.

        The orchestrator claims a (job_key, process) pair when it hands its launch over. A None from the
        iterable means "nothing to hand over until one of yours ends": pull again only after yielding the
        next result (or at once when nothing is in flight). If the consumer stops (an exception, close(),
        Ctrl-C), kill what is in flight before returning.
        """
        ...

    def close(self) -> None:
        """Release what open() took; idempotent."""
