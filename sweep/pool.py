"""Local execution: one worker per GPU, exactly one job per GPU at a time, CPU jobs alone on the machine.

A CUDA launch is placed on whichever GPU of the pool is free ("cuda:N" waits for GPU N); its runner sees
only that GPU (CUDA_VISIBLE_DEVICES = the GPU's UUID). A CPU launch waits until no GPU launch is in flight and
runs alone: a CPU timing must not share cores with another timing, and a GPU job's host thread is a CPU
timing too. Launches start in the order the orchestrator hands them over, so the interleaving of processes
across jobs survives parallelism. Each GPU (and the CPU) is locked machine-wide for the whole sweep
(sweep.locks), so a second sweep on the same device waits for this one, or refuses with --no-wait.

With two GPUs or more, each GPU slot also owns a disjoint set of the sweep's CPUs (`split_cpus`): every launch on
that GPU runs on those CPUs only, with OMP_NUM_THREADS / MKL_NUM_THREADS sized to them, so one job's model build or
kernel-launching host thread never competes with another's.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sweep import execute, locks, telemetry
from sweep.errors import SweepError
from sweep.executor import Launch, Placed, compact, run_here


@dataclass(frozen=True)
class Gpu:
    """A GPU slot: `cuda_index` in this process's CUDA numbering, `index`/`uuid` physical (NVML), `visible` the
    CUDA_VISIBLE_DEVICES value that pins a child to it."""

    cuda_index: int
    index: int
    uuid: str
    name: str
    visible: str

    def device(self) -> locks.Device:
        return locks.Device.gpu(self.index, self.uuid, self.name)


def visible_gpus() -> list[Gpu]:
    """The GPUs of this host that this process may use, in CUDA's order (NVML; [] without a driver)."""
    return [Gpu(i, g["index"], g["uuid"], g["name"], g["visible"]) for i, g in enumerate(telemetry.gpus())]


def parse_gpus(spec: str, available: Sequence[Gpu]) -> tuple[list[Gpu], int | None]:
    """--gpus all | N | 0,2,5 -> (candidate GPUs, how many of them to take; None: all of them)."""
    text = spec.strip().lower()
    if not available:
        raise SweepError(f"--gpus {spec}: no NVIDIA GPU is visible here (NVML found none)")
    if text == "all":
        return list(available), None
    if text.isdigit() and not text.startswith("0"):
        count = int(text)
        if count > len(available):
            raise SweepError(f"--gpus {spec}: only {len(available)} GPU(s) visible here "
                             f"({', '.join(str(g.cuda_index) for g in available)})")
        return list(available), count
    wanted: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if not part.isdigit():
            raise SweepError(f"--gpus {spec}: allowed: all, a count (e.g. 2), or CUDA indices (e.g. 0,2,5)")
        wanted.append(int(part))
    by_index = {g.cuda_index: g for g in available}
    missing = [i for i in wanted if i not in by_index]
    if missing:
        raise SweepError(f"--gpus {spec}: no GPU {', '.join(map(str, missing))}; visible: "
                         f"{', '.join(str(i) for i in by_index)}")
    return [by_index[i] for i in dict.fromkeys(wanted)], None


def default_gpu(cuda_index: int) -> Gpu:
    """The GPU a job's cuda:N means without --gpus (the pool then runs one launch at a time)."""
    for gpu in visible_gpus():
        if gpu.cuda_index == cuda_index:
            return gpu
    index, uuid = telemetry.physical_gpu(str(cuda_index))
    return Gpu(cuda_index, index if index is not None else cuda_index, uuid, "", uuid or str(cuda_index))


def _units(cpus: Sequence[int], core_of: Mapping[int, Hashable] | None) -> list[tuple[int, ...]]:
    """`cpus` grouped by physical core (hyperthread siblings together), ordered by their lowest CPU; one CPU per
    group where the topology is unknown."""
    groups: dict[Hashable, list[int]] = {}
    for cpu in sorted(cpus):
        key = core_of[cpu] if core_of and cpu in core_of else ("cpu", cpu)
        groups.setdefault(key, []).append(cpu)
    return [tuple(group) for group in groups.values()]


def _even(cpus: Sequence[int], count: int, core_of: Mapping[int, Hashable] | None) -> list[tuple[int, ...]] | None:
    """`cpus` cut into `count` contiguous runs of whole cores whose sizes differ by at most one core (single CPUs
    when there are fewer cores than parts); None when there are fewer CPUs than parts."""
    units = _units(cpus, core_of)
    if len(units) < count:
        units = [(cpu,) for cpu in sorted(cpus)]
    if len(units) < count:
        return None
    size, extra = divmod(len(units), count)
    parts, start = [], 0
    for i in range(count):
        end = start + size + (1 if i < extra else 0)
        parts.append(tuple(sorted(cpu for unit in units[start:end] for cpu in unit)))
        start = end
    return parts


def split_cpus(allowed: Iterable[int], count: int, local: Sequence[Iterable[int] | None] | None = None,
               core_of: Mapping[int, Hashable] | None = None) -> tuple[list[tuple[int, ...]], str] | None:
    """Disjoint, non-empty CPU sets for `count` GPU workers, taken from `allowed` (the sweep's affinity).

    `local[i]` is GPU i's local CPUs (NVML; None: unknown). When every GPU's local CPUs, within `allowed`, are
    known and non-empty, and GPUs either share the same local set or have disjoint ones, each GPU gets its local
    CPUs (split evenly among the GPUs sharing them): ("local"). Otherwise `allowed` is split evenly and
    contiguously: ("even"). `core_of` maps a CPU to its physical core so siblings stay on one side. None when
    there are fewer allowed CPUs than GPUs (no disjoint split exists).
    """
    cpus = sorted(set(allowed))
    if count < 1:
        return [], "even"
    if local is not None and len(local) == count and all(s is not None for s in local):
        near = [frozenset(s or ()) & frozenset(cpus) for s in local]
        sharing: dict[frozenset[int], list[int]] = {}
        for i, near_set in enumerate(near):
            sharing.setdefault(near_set, []).append(i)
        disjoint = sum(len(s) for s in sharing) == len(frozenset().union(*sharing))
        if all(sharing) and disjoint:
            sets: list[tuple[int, ...]] = [() for _ in range(count)]
            for near_set, members in sharing.items():
                parts = _even(sorted(near_set), len(members), core_of)
                if parts is None:
                    break
                for i, part in zip(members, parts, strict=True):
                    sets[i] = part
            else:
                return sets, "local"
    parts = _even(cpus, count, core_of)
    return (parts, "even") if parts is not None else None


class LocalPool:
    """The local executor. With `gpus` (from --gpus) it runs one launch per GPU in parallel; without, one
    launch at a time on the device each job names, as a single-GPU machine would."""

    name = "local"

    def __init__(self, gpus: Sequence[Gpu] | None = None, count: int | None = None, wait: bool = True,
                 on_message: Callable[[str], None] | None = None, what: str = "") -> None:
        self.parallel = gpus is not None
        self.candidates = list(gpus or [])
        self.count = count
        self.wait = wait
        self.on_message = on_message
        self.what = what
        self.gpus: list[Gpu] = []
        self.cpu = False
        self.cpus: dict[int, tuple[int, ...]] = {}  # a GPU's CPU set (by cuda_index); empty: no pinning
        self._held: list[locks.Held] = []

    # --- devices ---------------------------------------------------------------------------------------

    def open(self, devices: Sequence[str]) -> None:
        """Lock the devices the pending work needs: the CPU if any launch runs there, and the pool's GPUs."""
        wants_cpu = any(not d.startswith("cuda") for d in devices)
        cuda = [d for d in devices if d.startswith("cuda")]
        if self.parallel:
            pinned = {int(d.split(":", 1)[1]) for d in cuda if ":" in d}
            known = {g.cuda_index for g in self.candidates}
            if pinned - known:
                raise SweepError(f"the matrix pins jobs to cuda:{', cuda:'.join(map(str, sorted(pinned - known)))}"
                                 f" but --gpus gives {', '.join(str(i) for i in sorted(known))}")
            gpus = self._choose(self.candidates, self.count, pinned) if cuda else []
        else:
            indices = sorted({int(d.split(":", 1)[1]) if ":" in d else 0 for d in cuda})
            gpus = [default_gpu(i) for i in indices]
        devices_to_lock = ([locks.Device.cpu()] if wants_cpu else []) + [g.device() for g in gpus]
        self._held += locks.lock_devices(devices_to_lock, self.wait, self.what, self.on_message)
        self.gpus = gpus
        self.cpu = wants_cpu
        self.cpus = self._pin(gpus) if self.parallel and len(gpus) > 1 else {}

    def _pin(self, gpus: list[Gpu]) -> dict[int, tuple[int, ...]]:
        """Each GPU's own CPUs out of the sweep's affinity (see split_cpus); {} when there are too few CPUs."""
        allowed = sorted(os.sched_getaffinity(0))
        plan = split_cpus(allowed, len(gpus), [telemetry.gpu_local_cpus(g.index) for g in gpus],
                          telemetry.cpu_cores())
        say = self.on_message or (lambda text: None)
        if plan is None:
            say(f"{len(gpus)} GPUs but only {len(allowed)} CPU(s) here ({compact(allowed)}): their jobs share them")
            return {}
        sets, basis = plan
        how = "their local CPUs as NVML reports them" if basis == "local" else "this sweep's CPUs split evenly"
        say(f"each GPU's jobs run on CPUs of their own ({how}): "
            + ", ".join(f"GPU {g.cuda_index} on {compact(s)}" for g, s in zip(gpus, sets, strict=True)))
        return {g.cuda_index: s for g, s in zip(gpus, sets, strict=True)}

    def _choose(self, candidates: list[Gpu], count: int | None, pinned: set[int]) -> list[Gpu]:
        """All candidates, or `count` of them: free ones first (pinned ones always), so --gpus 2 on a busy host
        takes two idle GPUs rather than queueing behind another sweep."""
        if count is None or count >= len(candidates):
            return candidates
        chosen = [g for g in candidates if g.cuda_index in pinned]
        for gpu in candidates:
            if len(chosen) >= count:
                break
            if gpu not in chosen and locks.device_free(gpu.device()):
                chosen.append(gpu)
        for gpu in candidates:  # not enough idle ones: queue behind the first busy ones, in order
            if len(chosen) >= count:
                break
            if gpu not in chosen:
                chosen.append(gpu)
        return sorted(chosen, key=lambda g: g.cuda_index)

    def close(self) -> None:
        for held in self._held:
            held.release()
        self._held = []

    # --- running ---------------------------------------------------------------------------------------

    def _slot(self, launch: Launch, free: list[Gpu], busy: int, cpu_busy: bool) -> Gpu | None | bool:
        """Where `launch` can start now: a Gpu, True for the CPU, or False/None when it must wait."""
        if cpu_busy or (not self.parallel and busy):
            return None
        if not launch.cuda:
            return True if busy == 0 else None
        pinned = launch.cuda_index
        if not self.parallel:
            wanted = pinned if pinned is not None else 0
            return next((g for g in free if g.cuda_index == wanted), None)
        for gpu in free:
            if pinned is None or gpu.cuda_index == pinned:
                return gpu
        return None

    def map(self, launches: Iterable[Launch | None]) -> Iterator[tuple[Launch, Placed]]:
        results: queue.Queue[tuple[Launch, Gpu | None, Placed | None, BaseException | None]] = queue.Queue()
        free = list(self.gpus)
        busy = 0
        cpu_busy = False
        head: Launch | None = None
        hold = False  # the iterable asked to wait for a result before the next pull
        exhausted = False
        threads: list[threading.Thread] = []
        source = iter(launches)

        def work(launch: Launch, gpu: Gpu | None) -> None:
            try:
                cpus = self.cpus.get(gpu.cuda_index) if gpu is not None else None
                placed = run_here(launch, gpu.visible if gpu is not None else None, cpus=cpus)
                results.put((launch, gpu, placed, None))
            except BaseException as exc:  # noqa: B036 - handed to the consumer, which re-raises it
                results.put((launch, gpu, None, exc))

        try:
            while True:
                while not exhausted and not hold:
                    if head is None:
                        nxt: Any = next(source, StopIteration)
                        if nxt is StopIteration:
                            exhausted = True
                            break
                        if nxt is None:
                            hold = busy > 0
                            continue
                        head = nxt
                    assert head is not None
                    slot = self._slot(head, free, busy, cpu_busy)
                    if slot is None or slot is False:
                        break
                    gpu = slot if isinstance(slot, Gpu) else None
                    if gpu is not None:
                        free.remove(gpu)
                    else:
                        cpu_busy = True
                    busy += 1
                    thread = threading.Thread(target=work, args=(head, gpu), name=f"sweep-{head.key}", daemon=True)
                    thread.start()
                    threads.append(thread)
                    head = None
                if busy == 0:
                    if exhausted and head is None:
                        return
                    if head is not None:
                        raise RuntimeError(f"launch {head.key} on {head.device} fits no slot of this pool")
                    continue
                launch, gpu, placed, error = results.get()
                busy -= 1
                hold = False
                if gpu is not None:
                    free.append(gpu)
                    free.sort(key=lambda g: g.cuda_index)
                else:
                    cpu_busy = False
                threads = [t for t in threads if t.is_alive()]
                if error is not None:
                    raise error
                assert placed is not None
                yield launch, placed
        finally:
            if busy:
                execute.stop_all()
                for thread in threads:
                    thread.join(timeout=execute.KILL_GRACE_S + 10.0)
            execute.reap_orphans()
