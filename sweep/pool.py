"""Local execution: one worker per GPU, exactly one job per GPU at a time, CPU jobs alone on the machine.

A CUDA launch is placed on whichever GPU of the pool is free ("cuda:N" waits for GPU N); its runner sees
only that GPU (CUDA_VISIBLE_DEVICES = the GPU's UUID). A CPU launch waits until no GPU launch is in flight and
runs alone: a CPU timing must not share cores with another timing, and a GPU job's host thread is a CPU
timing too. Launches start in the order the orchestrator hands them over, so the interleaving of processes
across jobs survives parallelism. Each GPU (and the CPU) is locked machine-wide for the whole sweep
(sweep.locks), so a second sweep on the same device waits for this one, or refuses with --no-wait.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from sweep import execute, locks, telemetry
from sweep.errors import SweepError
from sweep.executor import Launch, Placed, run_here


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
                placed = run_here(launch, gpu.visible if gpu is not None else None)
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
