"""The native binary's stamp: a binary built against another torch (or without a stamp) is rebuilt. No real build."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from sweep import native

OLD = {"torch": "2.0.0+cpu", "cmake_prefix_path": "/old/venv/torch/share/cmake"}
NEW = {"torch": "2.13.0+cpu", "cmake_prefix_path": "/new/venv/torch/share/cmake"}


@dataclass
class Fake:
    src: Path
    build: Path
    binary: Path
    runs: list[list[list[str]]] = field(default_factory=list)  # the cmake steps of each build
    cache_expected: bool = False  # whether CMakeCache.txt must still be there when cmake runs


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Fake:
    """native/ in tmp_path with old sources, the installed torch faked as NEW, cmake steps recorded, not run."""
    src = tmp_path / "native"
    (src / "src").mkdir(parents=True)
    (src / "CMakeLists.txt").write_text("project(x)\n")
    (src / "src" / "main.cpp").write_text("int main() {}\n")
    for path in (src / "CMakeLists.txt", src / "src" / "main.cpp"):
        os.utime(path, (1_000_000, 1_000_000))
    f = Fake(src, src / "build", src / "build" / "sweep-bench")
    monkeypatch.setattr(native, "NATIVE_DIR", f.src)
    monkeypatch.setattr(native, "BUILD_DIR", f.build)
    monkeypatch.setattr(native, "BUILD_LOG", f.build / "sweep-build.log")
    monkeypatch.setattr(native, "NATIVE_BINARY", f.binary)
    monkeypatch.setattr(native, "torch_identity", lambda: dict(NEW))
    monkeypatch.setattr(native.shutil, "which", lambda name: f"/usr/bin/{name}")

    def fake_steps(steps: list[list[str]]) -> None:
        f.runs.append(steps)
        assert (f.build / "CMakeCache.txt").exists() == f.cache_expected
        f.binary.write_bytes(b"\x7fELF")

    monkeypatch.setattr(native, "_run_steps", fake_steps)
    return f


def test_stamp_decides_staleness(fake: Fake) -> None:
    assert native.is_stale(NEW)  # no binary
    fake.build.mkdir(parents=True)
    fake.binary.write_bytes(b"\x7fELF")
    assert native.stamp_path() == fake.build / "sweep-bench.stamp"
    assert native.is_stale(NEW)  # binary newer than the sources, but no stamp: built against which torch?
    native.stamp_path().write_text(json.dumps(NEW))
    assert not native.is_stale(NEW) and not native.is_stale()  # is_stale() asks torch_identity (faked: NEW)
    assert native.is_stale(OLD)  # the installed torch changed
    native.stamp_path().write_text(json.dumps({**NEW, "torch": "2.14.0+cpu"}))
    assert native.is_stale(NEW)  # same location, another version
    native.stamp_path().write_text("not json")
    assert native.is_stale(NEW)
    native.stamp_path().write_text(json.dumps(NEW))
    os.utime(fake.src / "src" / "main.cpp", (fake.binary.stat().st_mtime + 10,) * 2)
    assert native.is_stale(NEW)  # a source newer than the binary, stamp or not


def test_a_build_writes_the_stamp_and_is_not_repeated(fake: Fake) -> None:
    assert native.ensure_native(announce=False) == fake.binary and fake.binary.exists()
    assert json.loads(native.stamp_path().read_text()) == NEW
    assert len(fake.runs) == 1
    configure, build = fake.runs[0]
    assert f"-DCMAKE_PREFIX_PATH={NEW['cmake_prefix_path']}" in configure and "--clean-first" not in build
    native.ensure_native(announce=False)
    assert len(fake.runs) == 1  # up to date: nothing run


def test_a_torch_upgrade_rebuilds_from_clean(fake: Fake) -> None:
    fake.build.mkdir(parents=True)
    fake.binary.write_bytes(b"old")
    native.stamp_path().write_text(json.dumps({**NEW, "torch": "2.12.0+cpu"}))  # same location, older torch
    (fake.build / "CMakeCache.txt").write_text(f"CMAKE_PREFIX_PATH:UNINITIALIZED={NEW['cmake_prefix_path']}\n")
    fake.cache_expected = True  # same location: the cache is kept
    native.ensure_native(announce=False)
    assert len(fake.runs) == 1 and "--clean-first" in fake.runs[0][1]
    assert json.loads(native.stamp_path().read_text()) == NEW


@pytest.mark.parametrize("record", ["stamp", "cache"])
def test_a_moved_torch_drops_the_cmake_cache(fake: Fake, record: str) -> None:
    fake.build.mkdir(parents=True)
    fake.binary.write_bytes(b"old")
    cache = fake.build / "CMakeCache.txt"
    if record == "stamp":  # the stamp says where the old torch was
        native.stamp_path().write_text(json.dumps(OLD))
        cache.write_text("Torch_DIR:PATH=/old/venv/torch/share/cmake/Torch\n")
    else:  # no stamp (built by `make native`, or before stamps): the cache says
        cache.write_text(f"CMAKE_PREFIX_PATH:UNINITIALIZED={OLD['cmake_prefix_path']}\n")
    native.ensure_native(announce=False)  # fake_steps checks that the cache is gone when cmake runs
    assert len(fake.runs) == 1 and ("--clean-first" in fake.runs[0][1]) == (record == "stamp")
    assert json.loads(native.stamp_path().read_text()) == NEW


def test_no_cmake_or_compiler_is_unavailable(fake: Fake, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CXX", raising=False)
    monkeypatch.setattr(native.shutil, "which", lambda name: "/usr/bin/cmake" if name == "cmake" else None)
    with pytest.raises(native.NativeUnavailable, match="no C\\+\\+ compiler"):
        native.ensure_native(announce=False)
    monkeypatch.setattr(native.shutil, "which", lambda name: None)
    with pytest.raises(native.NativeUnavailable, match="cmake is not installed"):
        native.ensure_native(announce=False)
    assert fake.runs == []
