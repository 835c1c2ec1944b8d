"""Advisory locks (fcntl.flock): one sweep per device on a machine, and one writer per (job_key, process).

flock locks belong to an open file, so the kernel drops them the moment their process dies, kill -9 included:
a lock can never outlive the sweep that took it, and no stale-lock clean-up is needed. Lock files are
removed when released; a process that locked a file which was meanwhile unlinked notices (the path no longer
names its inode) and tries again, so two holders can never both believe they own one name.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sweep.errors import SweepError

LOCK_DIR_ENV = "SWEEP_LOCK_DIR"
DEFAULT_LOCK_DIR = Path("/tmp/sweep-locks")  # machine-wide: every user's sweeps must see the same locks
CLAIMS = ".claims"  # inside the results folder


class DeviceBusy(SweepError):
    """A device is in use by another sweep and the user asked not to wait (--no-wait)."""


def lock_dir() -> Path:
    return Path(os.environ.get(LOCK_DIR_ENV) or DEFAULT_LOCK_DIR)


def _make_shared_dir(folder: Path) -> None:
    """Create the folder; the machine-wide one is world-writable and sticky (like /tmp) so all users share it."""
    if folder.is_dir():
        return
    folder.mkdir(parents=True, exist_ok=True)
    if folder == DEFAULT_LOCK_DIR:
        try:
            os.chmod(folder, 0o1777)
        except OSError:
            pass


class Held:
    """An flock held on a file; release() unlocks and removes the file (idempotent)."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self.fd: int | None = fd

    def write_info(self, info: dict[str, Any]) -> None:
        """Say who holds the lock, for the message of whoever waits for it."""
        if self.fd is None:
            return
        data = json.dumps(info).encode()
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, data, 0)

    def release(self) -> None:
        if self.fd is None:
            return
        try:
            self.path.unlink(missing_ok=True)  # before unlocking: a waiter then sees a stale inode and retries
        except OSError:
            pass
        os.close(self.fd)  # drops the lock
        self.fd = None

    def __enter__(self) -> Held:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _same_file(fd: int, path: Path) -> bool:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    mine = os.fstat(fd)
    return (st.st_ino, st.st_dev) == (mine.st_ino, mine.st_dev)


def acquire(path: Path, wait: bool) -> Held | None:
    """Lock `path` (created if missing). Without wait: None when another process holds it."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                return None
            raise
        except BaseException:
            os.close(fd)
            raise
        if _same_file(fd, path):
            return Held(path, fd)
        os.close(fd)  # we locked a file its holder had just removed: the name is free, try again


def holder(path: Path) -> dict[str, Any]:
    """What the current holder wrote into a lock file ({} when unknown)."""
    try:
        data = json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def describe_holder(info: dict[str, Any]) -> str:
    if not info:
        return "another sweep"
    parts = [f"sweep pid {info.get('pid', '?')} on {info.get('host', '?')}"]
    if info.get("since"):
        parts.append(f"since {info['since']}")
    if info.get("what"):
        parts.append(str(info["what"]))
    return ", ".join(parts)


def me(what: str = "") -> dict[str, Any]:
    return {"pid": os.getpid(), "host": socket.gethostname(),
            "since": datetime.now(timezone.utc).isoformat(timespec="seconds"), "what": what}


# --- devices -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Device:
    """A device a sweep times on: the CPU, or one physical GPU (named by its NVML UUID, stable across
    CUDA_VISIBLE_DEVICES and reboots)."""

    lock_name: str  # "cpu" | "gpu-<uuid>"
    label: str  # for messages: "the CPU", "GPU 0 (NVIDIA H200, GPU-...)"

    @staticmethod
    def cpu() -> Device:
        return Device("cpu", "the CPU")

    @staticmethod
    def gpu(index: int, uuid: str, name: str = "") -> Device:
        safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in uuid) or f"index-{index}"
        label = f"GPU {index}" + (f" ({name}, {uuid})" if name else f" ({uuid})" if uuid else "")
        return Device(f"gpu-{safe}", label)


def lock_device(device: Device, wait: bool, what: str = "",
                on_wait: Callable[[str], None] | None = None) -> Held:
    """Hold a device for this sweep. Busy: with wait, say so once through on_wait and block; else DeviceBusy."""
    folder = lock_dir()
    _make_shared_dir(folder)
    path = folder / f"{device.lock_name}.lock"
    held = acquire(path, wait=False)
    if held is None:
        who = describe_holder(holder(path))
        if not wait:
            raise DeviceBusy(f"{device.label} is in use by {who} (lock {path}); wait for it, or run without "
                             "--no-wait to queue behind it")
        if on_wait is not None:
            on_wait(f"waiting for {device.label}: in use by {who} (lock {path})")
        t0 = time.monotonic()
        held = acquire(path, wait=True)
        assert held is not None
        if on_wait is not None:
            on_wait(f"got {device.label} after {time.monotonic() - t0:.0f} s")
    held.write_info(me(what))
    return held


def device_free(device: Device) -> bool:
    """Is no sweep holding the device right now? (A hint for choosing GPUs; lock_device decides.)"""
    path = lock_dir() / f"{device.lock_name}.lock"
    if not path.exists():
        return True
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


def lock_devices(devices: Sequence[Device], wait: bool, what: str = "",
                 on_wait: Callable[[str], None] | None = None) -> list[Held]:
    """Hold several devices, in one canonical order (CPU first, then GPUs by UUID), so that two sweeps that
    need overlapping sets can never each hold what the other waits for. All or none."""
    held: list[Held] = []
    try:
        for device in sorted(set(devices), key=lambda d: (d.lock_name != "cpu", d.lock_name)):
            held.append(lock_device(device, wait, what, on_wait))
    except BaseException:
        for h in held:
            h.release()
        raise
    return held


# --- claims --------------------------------------------------------------------------------------------------


class Claims:
    """One writer per (job_key, process) among all sweeps sharing a results folder, on any device or host
    (as far as the filesystem's flock reaches: local disks, and NFS v4 / Lustre with locking enabled)."""

    def __init__(self, results_dir: Path) -> None:
        self.folder = results_dir / CLAIMS

    def path(self, job_key: str, process: int) -> Path:
        return self.folder / f"{job_key}-{process}.lock"

    def take(self, job_key: str, process: int, wait: bool = False) -> Held | None:
        """The claim, or None when another sweep holds it now (without wait)."""
        while True:
            self.folder.mkdir(parents=True, exist_ok=True)
            try:
                held = acquire(self.path(job_key, process), wait=wait)
                break
            except FileNotFoundError:  # another sweep removed the emptied folder meanwhile
                continue
        if held is not None:
            held.write_info(me(f"{job_key} process {process}"))
        return held

    def clean(self) -> None:
        """Remove the folder when no claim is left in it (a finished sweep leaves nothing behind)."""
        try:
            self.folder.rmdir()
        except OSError:
            pass
