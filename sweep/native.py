"""The C++ runner binary: build native/build/sweep-bench on first need, and the environment it runs in."""

from __future__ import annotations

import fcntl
import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

from sweep.errors import SweepError
from sweep.execute import tail
from sweep.runtimes import NATIVE_BINARY

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
    src = NATIVE_DIR / "src"
    if src.is_dir():
        files += [p for p in src.rglob("*") if p.is_file()]
    return [p for p in files if p.exists()]


def is_stale() -> bool:
    """Missing, or older than a source file: `make native` or this module must build it again."""
    if not NATIVE_BINARY.exists():
        return True
    built = NATIVE_BINARY.stat().st_mtime
    return any(p.stat().st_mtime > built for p in _sources())


def _cmake_prefix_path() -> str:
    import torch.utils

    return str(torch.utils.cmake_prefix_path)


def ensure_native(announce: bool = True) -> Path:
    """The binary, built (cmake configure + build into native/build) when missing or out of date.

    Concurrent sweeps take turns through a lock file. Raises NativeUnavailable without cmake, and
    NativeBuildError with the tail of native/build/sweep-build.log when the build fails.
    """
    if not is_stale():
        return NATIVE_BINARY
    cmake = shutil.which("cmake")
    if cmake is None:
        raise NativeUnavailable(f"{NATIVE_BINARY} is not built and cmake is not installed: install cmake and a "
                                f"C++ compiler (e.g. apt-get install cmake g++), then `make native`")
    BUILD_DIR.mkdir(parents=True, exist_ok=True)
    with (BUILD_DIR / ".sweep-build.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another sweep may be building it right now: wait, then re-check
        if not is_stale():
            return NATIVE_BINARY
        if announce:
            print(f"building {NATIVE_BINARY} (first use of a C++ runtime; log: {BUILD_LOG})", file=sys.stderr,
                  flush=True)
        steps = [
            [cmake, "-S", str(NATIVE_DIR), "-B", str(BUILD_DIR), "-DCMAKE_BUILD_TYPE=Release",
             f"-DCMAKE_PREFIX_PATH={_cmake_prefix_path()}"],
            [cmake, "--build", str(BUILD_DIR), "-j", str(max(1, os.cpu_count() or 1))],
        ]
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
        if not NATIVE_BINARY.exists():
            raise NativeBuildError(f"cmake succeeded but {NATIVE_BINARY} is missing (log: {BUILD_LOG})")
        NATIVE_BINARY.touch()  # cmake leaves an up-to-date binary untouched; mark it checked
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
    if runtime.endswith("-trt"):
        lib = torchtrt_runtime()
        if lib:
            return {"SWEEP_TORCHTRT_RUNTIME": lib}
    return {}
