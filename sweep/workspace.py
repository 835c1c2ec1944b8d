"""Work folders (job.json, result.json, logs, outputs) under `<artifacts>/.work/`, never in the system temp folder.

Each sweep (or `sweep compile`) owns one session folder and holds an flock on its `owner.lock` while it lives.
The next start removes every session folder whose lock nobody holds: whatever a kill -9 left behind goes then.
The folder is inside the artifacts folder so that Slurm nodes, which share it, can write there too.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

from sweep import locks

WORK = ".work"


def sweep_stale(root: Path) -> list[Path]:
    """Remove the session folders of sweeps that are gone (their `<name>.lock` is held by nobody); return them.

    A session takes its lock before it creates its folder, so a folder without a held lock is never one
    being born.
    """
    removed: list[Path] = []
    if not root.is_dir():
        return removed
    for folder in sorted(root.iterdir()):
        if not folder.is_dir():
            continue
        lock = root / f"{folder.name}.lock"
        held = locks.acquire(lock, wait=False)
        if held is None:
            continue  # a live sweep's
        shutil.rmtree(folder, ignore_errors=True)
        held.release()
        removed.append(folder)
    for lock in root.glob("*.lock"):  # locks whose folder is already gone
        if not (root / lock.stem).exists():
            held = locks.acquire(lock, wait=False)
            if held is not None:
                held.release()
    return removed


class Session:
    """This process's work folder; close() removes it (and `.work/` when it is empty)."""

    def __init__(self, artifacts_dir: Path, label: str = "sweep") -> None:
        self.root = Path(artifacts_dir).resolve() / WORK
        name = f"{label}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.removed: list[Path] = []
        while True:  # another sweep may remove an empty .work/ between our mkdir and our lock
            try:
                self.root.mkdir(parents=True, exist_ok=True)
                self.removed += sweep_stale(self.root)
                held = locks.acquire(self.root / f"{name}.lock", wait=False)
                break
            except FileNotFoundError:
                continue
        assert held is not None, "a fresh lock name cannot be held by anyone"
        self._owner = held
        self.folder = self.root / name
        self.folder.mkdir()
        self._count = 0

    def new(self, name: str) -> Path:
        """A fresh folder for one launch (names are sanitised and numbered, never reused)."""
        self._count += 1
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[:80]
        folder = self.folder / f"{self._count:05d}-{safe}"
        folder.mkdir()
        return folder

    def close(self) -> None:
        if self._owner.fd is None:
            return
        shutil.rmtree(self.folder, ignore_errors=True)
        self._owner.release()
        try:
            self.root.rmdir()
        except OSError:
            pass

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
