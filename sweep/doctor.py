"""`sweep doctor`: what works on this machine, and the reason for what does not."""

from __future__ import annotations

import importlib
import shutil
import subprocess

from sweep import telemetry
from sweep.runtimes import NATIVE_BINARY, RUNTIMES, uses_tensorrt

Check = tuple[str, bool, str]


def _torch() -> Check:
    import torch

    return "torch", True, f"{torch.__version__} (CUDA build: {torch.version.cuda or 'no'})"


def _cuda(device: str) -> Check:
    import torch

    if not torch.cuda.is_available():
        return "cuda", False, "torch.cuda.is_available() is False (CPU build of torch, or no driver / GPU)"
    index = telemetry.device_index(device) if device.startswith("cuda") else 0
    if index >= torch.cuda.device_count():
        return "cuda", False, f"{device} asked for, but {torch.cuda.device_count()} CUDA device(s) are visible"
    name = torch.cuda.get_device_name(index)
    driver = telemetry.driver_info().get("driver_version", "unknown driver")
    return "cuda", True, f"{name}, CUDA {torch.version.cuda}, driver {driver}"


def _nvml() -> Check:
    ok = telemetry._nvml() is not None
    return "nvml (pynvml)", ok, "GPU telemetry available" if ok else "no NVML: no clocks/temperature/power in rows"


def import_problem(module: str) -> str:
    """'' when the module imports, else the one-line import error (what users must fix)."""
    try:
        importlib.import_module(module)
    except Exception as exc:  # ImportError, OSError from missing .so, anything at import time
        return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    return ""


def _trt() -> list[Check]:
    versions = telemetry.trt_versions()
    out = []
    for module, key in (("torch_tensorrt", "torch_tensorrt_version"), ("tensorrt", "tensorrt_version")):
        problem = import_problem(module)
        detail = versions.get(key) or ""
        hint = f"{problem}; install with pip install 'sweep[trt]'"
        out.append((module, not problem, detail if not problem else hint))
    return out


def native_status() -> Check:
    if not NATIVE_BINARY.exists():
        hint = "run `make native`" if shutil.which("cmake") else "needs cmake and a C++ compiler, then `make native`"
        return "native binary", False, f"{NATIVE_BINARY} not built: {hint}"
    try:
        version = subprocess.run([str(NATIVE_BINARY), "--version"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return "native binary", False, f"{NATIVE_BINARY} does not run: {exc}"
    text = (version.stdout or version.stderr).strip().splitlines()
    return "native binary", version.returncode == 0, text[0] if text else f"exit code {version.returncode}"


def checks(device: str = "cuda") -> list[Check]:
    base = [_torch(), _cuda(device), _nvml(), *_trt(), native_status()]
    ok = {name: good for name, good, _ in base}
    rows = list(base)
    for name, spec in RUNTIMES.items():
        needs = []
        if spec.runner == "native" and not ok["native binary"]:
            needs.append("native binary")
        if uses_tensorrt(name) and not (ok["torch_tensorrt"] and ok["tensorrt"]):
            needs.append("torch_tensorrt + tensorrt")
        detail = f"needs {', '.join(needs)}" if needs else spec.description
        rows.append((f"runtime {name}", not needs, detail))
    return rows
