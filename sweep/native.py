"""The C++ runner binary: build native/build/sweep-bench on first need, and the environment it runs in."""

from __future__ import annotations

import fcntl
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from sweep import atomic
from sweep.errors import SweepError
from sweep.execute import tail
from sweep.runtimes import NATIVE_BINARY, uses_tensorrt

NATIVE_DIR = NATIVE_BINARY.parent.parent
BUILD_DIR = NATIVE_BINARY.parent
BUILD_LOG = BUILD_DIR / "sweep-build.log"
BUILD_TIMEOUT_S = 1800.0


class NativeUnavailable(SweepError):
    """The binary cannot be built on this machine (no cmake / compiler): native jobs are `unavailable`."""


class NativeBuildError(SweepError):
    """cmake ran and failed: native jobs are `failed`, with the log's tail."""


def _sources() -> list[Path]:
    files = [NATIVE_DIR / "CMakeLists.txt"]
    for folder in (NATIVE_DIR / "src", NATIVE_DIR / "third_party"):
        if folder.is_dir():
            files += [p for p in folder.rglob("*") if p.is_file()]
    return [p for p in files if p.exists()]


def stamp_path() -> Path:
    """native/build/sweep-bench.stamp: which torch the binary was built against (JSON, written after a build)."""
    return NATIVE_BINARY.with_name(NATIVE_BINARY.name + ".stamp")


def torch_identity() -> dict[str, str]:
    """The installed torch as far as the binary cares: its version and where its CMake config (libtorch) lives."""
    import torch
    import torch.utils

    return {"torch": str(torch.__version__), "cmake_prefix_path": str(torch.utils.cmake_prefix_path)}


def read_stamp() -> dict[str, Any] | None:
    try:
        stamp = json.loads(stamp_path().read_text())
    except (OSError, ValueError):
        return None
    return stamp if isinstance(stamp, dict) else None


def _write_stamp(identity: dict[str, str]) -> None:
    path = stamp_path()
    atomic.write_json(path, identity, indent=1, sort_keys=True)


def _stamp_matches(stamp: dict[str, Any] | None, identity: dict[str, str]) -> bool:
    return stamp is not None and all(stamp.get(k) == v for k, v in identity.items())


def is_stale(identity: dict[str, str] | None = None) -> bool:
    """Missing, older than a source file, or built against another torch (the stamp is missing or disagrees with
    torch.__version__ / torch.utils.cmake_prefix_path, e.g. after a torch upgrade): it must be built again."""
    if not NATIVE_BINARY.exists():
        return True
    built = NATIVE_BINARY.stat().st_mtime
    if any(p.stat().st_mtime > built for p in _sources()):
        return True
    return not _stamp_matches(read_stamp(), identity if identity is not None else torch_identity())


def _cached_prefix() -> str | None:
    """The CMAKE_PREFIX_PATH recorded in native/build/CMakeCache.txt, if any."""
    try:
        lines = (BUILD_DIR / "CMakeCache.txt").read_text(errors="replace").splitlines()
    except OSError:
        return None
    for line in lines:
        if line.startswith("CMAKE_PREFIX_PATH:"):
            return line.partition("=")[2]
    return None


def _has_compiler() -> bool:
    cxx = os.environ.get("CXX", "").split()
    if cxx:
        return shutil.which(cxx[0]) is not None
    return any(shutil.which(cc) for cc in ("c++", "g++", "clang++"))


def _run_steps(steps: list[list[str]]) -> None:
    """Run the cmake steps one after the other into BUILD_LOG; NativeBuildError with the log's tail on failure."""
    with BUILD_LOG.open("wb") as log:
        for step in steps:
            log.write(f"$ {' '.join(step)}\n".encode())
            log.flush()
            try:
                done = subprocess.run(step, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                      timeout=BUILD_TIMEOUT_S, check=False)
            except subprocess.TimeoutExpired as exc:
                raise NativeBuildError(f"building {NATIVE_BINARY} took over {BUILD_TIMEOUT_S:g} s "
                                       f"(log: {BUILD_LOG})") from exc
            if done.returncode != 0:
                raise NativeBuildError(f"building {NATIVE_BINARY} failed (exit code {done.returncode}; "
                                       f"log: {BUILD_LOG}): {tail(BUILD_LOG, 1500)}")


def ensure_native(announce: bool = True) -> Path:
    """The binary, built (cmake configure + build into native/build) when missing, out of date, or built against
    another torch than the installed one (see is_stale); a successful build writes the stamp (stamp_path()).

    A changed torch location drops CMakeCache.txt (its Torch_DIR would still name the old one) and a stamp naming
    another torch rebuilds from clean. Concurrent sweeps take turns through a lock file. Raises NativeUnavailable
    without cmake or a C++ compiler, and NativeBuildError with the tail of native/build/sweep-build.log when the
    build fails.
    """
    identity = torch_identity()
    if not is_stale(identity):
        return NATIVE_BINARY
    cmake = shutil.which("cmake")
    if cmake is None:
        raise NativeUnavailable(f"{NATIVE_BINARY} is not built and cmake is not installed: install cmake and a "
                                f"C++ compiler (e.g. apt-get install cmake g++), then `make native`")
    if not _has_compiler():
        raise NativeUnavailable(f"{NATIVE_BINARY} is not built and no C++ compiler (c++, g++, clang++ or $CXX) is "
                                f"on PATH: install one (e.g. apt-get install g++), then `make native`")
    BUILD_DIR.mkdir(parents=True, exist_ok=True)
    with (BUILD_DIR / ".sweep-build.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another sweep may be building it right now: wait, then re-check
        if not is_stale(identity):
            return NATIVE_BINARY
        if announce:
            print(f"building {NATIVE_BINARY} (first use of a C++ runtime, or torch changed; log: {BUILD_LOG})",
                  file=sys.stderr, flush=True)
        prefix = identity["cmake_prefix_path"]
        stamp = read_stamp()
        cache = BUILD_DIR / "CMakeCache.txt"
        configured = {p for p in ((stamp or {}).get("cmake_prefix_path"), _cached_prefix()) if p}
        if cache.exists() and configured - {prefix}:
            cache.unlink()  # configured against another torch: Torch_DIR and its libraries are cached there
        clean = stamp is not None and not _stamp_matches(stamp, identity)  # known to be linked to another libtorch
        build = [cmake, "--build", str(BUILD_DIR), "-j", str(max(1, os.cpu_count() or 1))]
        _run_steps([
            [cmake, "-S", str(NATIVE_DIR), "-B", str(BUILD_DIR), "-DCMAKE_BUILD_TYPE=Release",
             f"-DCMAKE_PREFIX_PATH={prefix}"],
            [*build, "--clean-first"] if clean else build,
        ])
        if not NATIVE_BINARY.exists():
            raise NativeBuildError(f"cmake succeeded but {NATIVE_BINARY} is missing (log: {BUILD_LOG})")
        NATIVE_BINARY.touch()  # cmake leaves an up-to-date binary untouched; mark it checked
        _write_stamp(identity)
    return NATIVE_BINARY


def torchtrt_runtime() -> str | None:
    """libtorchtrt_runtime.so from the torch_tensorrt wheel's lib/, found without importing torch_tensorrt."""
    try:
        spec = importlib.util.find_spec("torch_tensorrt")
    except (ImportError, ValueError):
        return None
    for location in (spec.submodule_search_locations or []) if spec else []:
        lib = Path(location) / "lib" / "libtorchtrt_runtime.so"
        if lib.is_file():
            return str(lib)
    return None


def runner_env(runtime: str) -> dict[str, str]:
    """What the binary needs for this runtime: cpp-trt dlopens the Torch-TensorRT runtime it is told about."""
    if uses_tensorrt(runtime):
        lib = torchtrt_runtime()
        if lib:
            return {"SWEEP_TORCHTRT_RUNTIME": lib}
    return {}
