"""`sweep doctor`: what works on this machine, and the reason for what does not."""

from __future__ import annotations

import importlib
import shutil
import subprocess

from sweep import telemetry, trt_api
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


def trt_install(torch_version: str, torch_cuda: str | None) -> dict[str, str]:
    """What makes each TensorRT runtime work with this torch: packages and versions, from sweep.trt_api's table.

    The table was read from the torch-tensorrt wheels (Requires-Dist, the runtime library's NEEDED entries),
    so this needs no network. Keys: 'torch_tensorrt', 'tensorrt', 'python-trt', 'cpp-trt'.
    """
    release = trt_api.release_for_torch(torch_version)
    if release is None:
        msg = (f"no torch-tensorrt release that sweep checks ({trt_api.supported_range()}) installs with torch "
               f"{torch_version}; use a torch of those releases")
        return dict.fromkeys(("torch_tensorrt", "tensorrt", "python-trt", "cpp-trt"), msg)
    minor = ".".join(map(str, release.minor))
    trt_major = release.tensorrt_major
    cuda = release.cuda_major
    package = f"torch-tensorrt=={release.version}"
    tensorrt = f"{release.tensorrt_package()} (TensorRT {trt_major})"
    cuda_note = ""
    if not torch_cuda:
        cuda_note = f"; this torch is a CPU build: TensorRT needs a CUDA {cuda} build of torch {minor}"
    elif trt_api.parse_version(torch_cuda)[0] != cuda:
        cuda_note = (f"; the wheel is built for CUDA {cuda} (libcudart.so.{cuda}), this torch for CUDA {torch_cuda}: "
                     f"use a CUDA {cuda} torch, or the torch-tensorrt {minor} build for CUDA {torch_cuda}")
    libs = ", ".join(release.runtime_needs)
    return {
        "torch_tensorrt": f"pip install {package} (the release that matches torch {minor}){cuda_note}",
        "tensorrt": f"{tensorrt}, which pip install {package} brings{cuda_note}",
        "python-trt": f"pip install {package}: brings {tensorrt}{cuda_note}",
        "cpp-trt": (f"pip install {package}: the binary dlopens its {release.runtime_lib}, which needs {libs} "
                    f"(TensorRT {trt_major}: {release.tensorrt_package()}){cuda_note}"),
    }


def _trt(install: dict[str, str]) -> list[Check]:
    versions = telemetry.trt_versions()
    out = []
    for module, key in (("torch_tensorrt", "torch_tensorrt_version"), ("tensorrt", "tensorrt_version")):
        problem = import_problem(module)
        detail = versions.get(key) or ""
        out.append((module, not problem, detail if not problem else f"{problem}; {install[module]}"))
    installed = versions.get("torch_tensorrt_version") or ""
    if installed:
        try:
            release = trt_api.release_for(installed)
            out.append(("torch-tensorrt API", True, f"{installed}: checked against the {release.version} wheel, "
                        f"{trt_api.api_generation(installed)} typing"))
        except trt_api.TrtUnsupported as exc:
            out.append(("torch-tensorrt API", False, f"{exc.reason}; for this torch: {install['torch_tensorrt']}"))
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
    import torch

    install = trt_install(torch.__version__, torch.version.cuda)
    base = [_torch(), _cuda(device), _nvml(), *_trt(install), native_status()]
    ok = {name: good for name, good, _ in base}
    rows = list(base)
    for name, spec in RUNTIMES.items():
        needs = []
        if spec.runner == "native" and not ok["native binary"]:
            needs.append("native binary")
        if uses_tensorrt(name) and not (ok["torch_tensorrt"] and ok["tensorrt"] and ok.get("torch-tensorrt API", True)):
            needs.append(install.get(name, install["python-trt"]))
        detail = f"needs {', '.join(needs)}" if needs else spec.description
        rows.append((f"runtime {name}", not needs, detail))
    return rows
