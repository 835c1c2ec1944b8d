"""sweep.atomic: whole files or nothing, permissions from the umask, nothing left behind on failure."""

from __future__ import annotations

import errno
import json
import os
import stat
from pathlib import Path

import pytest

from sweep import atomic
from sweep.paths import PROJECT_ROOT, runner_env


def test_writes_replace_whole_files(tmp_path: Path) -> None:
    target = tmp_path / "a.json"
    atomic.write_json(target, {"x": 1, "p": tmp_path})
    assert json.loads(target.read_text()) == {"x": 1, "p": str(tmp_path)}
    atomic.write_text(target, "second")
    assert target.read_text() == "second"
    atomic.write_bytes(target, b"\x00\x01")
    assert target.read_bytes() == b"\x00\x01"
    assert sorted(os.listdir(tmp_path)) == ["a.json"]


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "row.parquet"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic.atomic_file(target) as fh:
        fh.write(b"half of a new")
        raise RuntimeError("killed mid-write")
    assert target.read_text() == "old"
    assert sorted(os.listdir(tmp_path)) == ["row.parquet"]


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_permissions_follow_the_umask(tmp_path: Path, umask: int, mode: int) -> None:
    old = os.umask(umask)
    try:
        path = atomic.write_text(tmp_path / "f.txt", "x")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == mode


def test_missing_folder_is_an_error_not_a_silent_mkdir(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        atomic.write_text(tmp_path / "no" / "f.txt", "x")


def test_runner_env_puts_this_tree_first(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONPATH", "/somewhere")
    assert runner_env() == {"PYTHONPATH": f"{PROJECT_ROOT}{os.pathsep}/somewhere"}
    monkeypatch.delenv("PYTHONPATH")
    assert runner_env() == {"PYTHONPATH": str(PROJECT_ROOT)}
    assert (PROJECT_ROOT / "sweep" / "paths.py").is_file()


def test_no_hand_made_atomic_writes_left() -> None:
    """One helper: the modules that write files durably go through sweep.atomic (store.py's rows aside)."""
    offenders = []
    for folder in ("sweep", "runners"):
        for source in (PROJECT_ROOT / folder).rglob("*.py"):
            if source.name in ("atomic.py", "store.py"):
                continue
            text = source.read_text()
            if "os.fsync(" in text or ".tmp\")" in text or "with_suffix(\".tmp\")" in text:
                offenders.append(str(source.relative_to(PROJECT_ROOT)))
    assert not offenders


def test_without_replace_an_existing_file_is_kept_and_nothing_is_left(tmp_path: Path) -> None:
    target = tmp_path / "row.parquet"
    target.write_text("first")
    with pytest.raises(FileExistsError), atomic.atomic_file(target, replace=False) as fh:
        fh.write(b"second")
    assert target.read_text() == "first"
    assert sorted(os.listdir(tmp_path)) == ["row.parquet"]
    with atomic.atomic_file(tmp_path / "new.parquet", replace=False) as fh:
        fh.write(b"new")
    assert (tmp_path / "new.parquet").read_bytes() == b"new"
    assert sorted(os.listdir(tmp_path)) == ["new.parquet", "row.parquet"]


def test_without_hard_links_an_existing_file_is_still_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_links(src: object, dst: object) -> None:
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(atomic.os, "link", no_links)
    target = tmp_path / "row.parquet"
    target.write_text("first")
    with pytest.raises(FileExistsError), atomic.atomic_file(target, replace=False) as fh:
        fh.write(b"second")
    assert target.read_text() == "first"
    with atomic.atomic_file(tmp_path / "new.parquet", replace=False) as fh:
        fh.write(b"new")
    assert sorted(os.listdir(tmp_path)) == ["new.parquet", "row.parquet"]
