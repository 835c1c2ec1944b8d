"""What the machine is and what state it is in: environment fingerprint and NVML snapshots."""

from __future__ import annotations

import os
import platform
import socket
from functools import lru_cache
from typing import Any


def cpu_name() -> str:
    """The CPU model as /proc/cpuinfo names it (platform.processor() is often empty on Linux)."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_index(device: str) -> int:
    return int(device.split(":", 1)[1]) if ":" in device else 0


@lru_cache(maxsize=1)
def _nvml() -> Any | None:
    """pynvml, initialised once; None where there is no NVIDIA driver (CPU machines)."""
    try:
        import pynvml

        pynvml.nvmlInit()
        return pynvml
    except Exception:  # no library, no driver, no device: telemetry is simply absent
        return None


def nvml_target(device: str, visible: str | None) -> tuple[str, int | str]:
    """Which physical GPU a CUDA device index means: NVML ignores CUDA_VISIBLE_DEVICES, CUDA does not.

    ("index", n) or ("uuid", "GPU-...") for NVML; the CUDA order is assumed to be NVML's (PCI bus order).
    """
    index = device_index(device)
    entries = [e.strip() for e in (visible or "").split(",") if e.strip()]
    if not entries or index >= len(entries):
        return "index", index
    entry = entries[index]
    return ("index", int(entry)) if entry.isdigit() else ("uuid", entry)


def _handle(device: str) -> Any | None:
    nv = _nvml()
    if nv is None:
        return None
    how, which = nvml_target(device, os.environ.get("CUDA_VISIBLE_DEVICES"))
    try:
        if how == "uuid":
            return nv.nvmlDeviceGetHandleByUUID(which)
        return nv.nvmlDeviceGetHandleByIndex(which)
    except Exception:
        return None


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def device_name(device: str) -> str:
    """The name rows and resume use to tell machines apart, without initialising CUDA in this process."""
    if device == "cpu":
        return cpu_name()
    nv, handle = _nvml(), _handle(device)
    if nv is not None and handle is not None:
        return _text(nv.nvmlDeviceGetName(handle))
    return f"unknown CUDA device ({device})"


def driver_info() -> dict[str, str]:
    nv = _nvml()
    if nv is None:
        return {}
    try:
        cuda = nv.nvmlSystemGetCudaDriverVersion_v2()
        return {"driver_version": _text(nv.nvmlSystemGetDriverVersion()),
                "cuda_driver_version": f"{cuda // 1000}.{cuda % 1000 // 10}"}
    except Exception:
        return {}


def snapshot(device: str) -> dict[str, Any]:
    """Clocks, temperature, power and memory of the GPU now; {} on CPU or without NVML."""
    nv, handle = _nvml(), _handle(device)
    if nv is None or handle is None:
        return {}
    readings = {
        "sm_clock_mhz": lambda: nv.nvmlDeviceGetClockInfo(handle, nv.NVML_CLOCK_SM),
        "mem_clock_mhz": lambda: nv.nvmlDeviceGetClockInfo(handle, nv.NVML_CLOCK_MEM),
        "temperature_c": lambda: nv.nvmlDeviceGetTemperature(handle, nv.NVML_TEMPERATURE_GPU),
        "power_w": lambda: nv.nvmlDeviceGetPowerUsage(handle) / 1000.0,
        "utilization_pct": lambda: nv.nvmlDeviceGetUtilizationRates(handle).gpu,
        "device_mem_used_mb": lambda: nv.nvmlDeviceGetMemoryInfo(handle).used / 2**20,
    }
    out: dict[str, Any] = {}
    for name, read in readings.items():
        try:
            out[name] = read()
        except Exception:  # a reading this driver or virtualisation does not expose
            out[name] = None
    return out


def process_memory_mb(device: str, pid: int | None = None) -> float | None:
    """Device memory NVML attributes to this process (it includes the CUDA context, unlike torch's figures)."""
    nv, handle = _nvml(), _handle(device)
    if nv is None or handle is None:
        return None
    pid = os.getpid() if pid is None else pid
    try:
        for proc in nv.nvmlDeviceGetComputeRunningProcesses(handle):
            if proc.pid == pid and proc.usedGpuMemory is not None:
                return float(proc.usedGpuMemory) / 2**20
    except Exception:
        return None
    return None


def energy_counter_mj(device: str) -> tuple[float | None, str]:
    """NVML's total-energy counter (mJ since the driver loaded; Volta and newer), or (None, why not).

    Read once before and once after a timed loop: the difference is the energy the GPU drew over it,
    idle gaps between kernels included, which is what a deployment pays for.
    """
    if not device.startswith("cuda"):
        return None, "no energy counter on the CPU (NVML measures GPUs)"
    nv = _nvml()
    if nv is None:
        return None, "NVML is not available here (pynvml missing or no NVIDIA driver)"
    handle = _handle(device)
    if handle is None:
        return None, f"NVML has no handle for {device}"
    try:
        return float(nv.nvmlDeviceGetTotalEnergyConsumption(handle)), ""
    except Exception as exc:  # NVMLError_NotSupported on pre-Volta GPUs and some virtualised ones
        return None, f"NVML's total-energy counter is not readable on this GPU ({type(exc).__name__}: {exc})"


# Below this the counter's update steps are a visible share of the difference (NVML does not document them).
SHORT_LOOP_S = 1.0


def energy_figures(before: tuple[float | None, str], after: tuple[float | None, str], forwards: int,
                   seconds: float) -> dict[str, Any]:
    """energy_mj_per_forward and mean_power_w from two counter readings around `forwards` calls that took
    `seconds`; null with energy_note saying why where there is no reading."""
    (start, note_before), (end, note_after) = before, after
    if start is None or end is None:
        return {"energy_mj_per_forward": None, "mean_power_w": None, "energy_note": note_before or note_after}
    delta = end - start
    if delta <= 0 or forwards <= 0 or seconds <= 0:
        return {"energy_mj_per_forward": None, "mean_power_w": None,
                "energy_note": f"the energy counter did not advance over the timed loop ({delta:.0f} mJ "
                               f"in {seconds:.3f} s)"}
    note = (f"timed loop lasted {seconds:.2f} s: NVML's counter advances in steps, so this is approximate"
            if seconds < SHORT_LOOP_S else "")
    return {"energy_mj_per_forward": delta / forwards, "mean_power_w": delta / 1e3 / seconds, "energy_note": note}


def host_counters() -> dict[str, float]:
    """What the host CPUs did so far, read just before and just after a timed loop (Linux /proc; empty
    elsewhere): this thread's CPU time and context switches, and the machine's busy, idle and steal time.

    A launch-bound loop is only as fast as the host thread that issues the launches, so a loop that
    shared the machine with other work, or whose virtual CPUs the hypervisor took away (steal), reads
    slower with nothing in the GPU figures to show it. These counters are what shows it.
    """
    import resource
    import time

    counters: dict[str, float] = {"wall_s": time.perf_counter(), "thread_cpu_s": time.thread_time(),
                                  "process_cpu_s": time.process_time()}
    try:
        usage = resource.getrusage(resource.RUSAGE_THREAD)  # type: ignore[attr-defined]
        counters["voluntary_switches"] = float(usage.ru_nvcsw)
        counters["involuntary_switches"] = float(usage.ru_nivcsw)
    except (AttributeError, OSError):
        pass
    try:
        with open("/proc/stat") as fh:
            fields = [float(v) for v in fh.readline().split()[1:]]
        ticks = float(os.sysconf("SC_CLK_TCK"))
        # user nice system idle iowait irq softirq steal (guest time is already inside user)
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0.0)
        steal = fields[7] if len(fields) > 7 else 0.0
        counters["machine_busy_s"] = (sum(fields[:8]) - idle - steal) / ticks
        counters["machine_steal_s"] = steal / ticks
    except (OSError, ValueError, IndexError):
        pass
    return counters


CANARY_LOOPS = 20_000


def cpu_canary_ms(repeats: int = 5) -> float:
    """How fast this CPU runs plain Python right now: the best of `repeats` runs of a fixed loop, in ms.

    A launch-bound forward is CPU-bound Python and C++ on one thread, so it slows by about as much as this
    loop does. On a virtual machine the core under a vCPU can run slower for seconds at a time (another
    tenant on the same core, or on its hyperthread sibling) with nothing visible inside the guest: no steal,
    no other process, no context switch. Read just before and just after the timed loop, the canary shows
    it: a row whose canary reads well above the machine's usual figure was measured on a slowed core.
    """
    import time

    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        total = 0
        for i in range(CANARY_LOOPS):
            total += i * i % 7
        best = min(best, time.perf_counter() - t0)
    return round(best * 1e3, 4)


def host_figures(before: dict[str, float], after: dict[str, float]) -> dict[str, Any]:
    """The host during a timed loop, from two host_counters() readings (rows keep it in extra.host):

    - loop_s, thread_cpu_share: the measuring thread's CPU time over the loop's wall time (a thread that
      spins in synchronize stays near 1; well below 1 means it was descheduled);
    - other_cpus_busy: how many CPUs' worth of other work ran on the machine meanwhile (the machine's
      busy time minus this process's, per second of loop): near 0 on a quiet machine;
    - steal_cpus: CPUs' worth of time the hypervisor ran something else instead of this machine's CPUs;
    - involuntary_switches: times the scheduler took the CPU away from the measuring thread.
    """
    loop = after["wall_s"] - before["wall_s"]
    if loop <= 0:
        return {}
    cpu = after["thread_cpu_s"] - before["thread_cpu_s"]
    out: dict[str, Any] = {"loop_s": round(loop, 4), "thread_cpu_share": round(cpu / loop, 3)}
    if "machine_busy_s" in before and "machine_busy_s" in after:
        own = after["process_cpu_s"] - before["process_cpu_s"]
        out["other_cpus_busy"] = round(max(after["machine_busy_s"] - before["machine_busy_s"] - own, 0.0) / loop, 2)
        out["steal_cpus"] = round((after["machine_steal_s"] - before["machine_steal_s"]) / loop, 3)
    for key in ("voluntary_switches", "involuntary_switches"):
        if key in before and key in after:
            out[key] = int(after[key] - before[key])
    return out


def environment(device: str) -> dict[str, Any]:
    """Versions and names that make a result comparable or not; read by runners and the orchestrator."""
    import torch

    env: dict[str, Any] = {
        "torch_version": torch.__version__,
        "device_name": device_name(device),
        "hostname": socket.gethostname(),
        "cuda_version": torch.version.cuda or "",
        "python_version": platform.python_version(),
        **driver_info(),
    }
    env.update(trt_versions())
    return env


def trt_versions() -> dict[str, str]:
    """Installed torch-tensorrt / TensorRT versions from package metadata, without importing them."""
    from importlib import metadata

    def first(*dists: str) -> str:
        for dist in dists:
            try:
                return metadata.version(dist)
            except metadata.PackageNotFoundError:
                continue
        return ""

    # torch-tensorrt 2.14 requires tensorrt-cu13 alone (no `tensorrt` meta package): read whichever is there.
    return {"torch_tensorrt_version": first("torch-tensorrt"),
            "tensorrt_version": first("tensorrt", "tensorrt-cu13", "tensorrt-cu12", "tensorrt-cu13-libs")}


@lru_cache(maxsize=1)
def torch_install() -> dict[str, str]:
    """{"torch_version", "cuda_version"} of the installed torch, read from its version.py without importing torch
    (the parent stays torch-free); what `torch.__version__` and `torch.version.cuda` would say."""
    import importlib.util
    import re

    out = {"torch_version": "", "cuda_version": ""}
    spec = importlib.util.find_spec("torch")
    folders = list(spec.submodule_search_locations or []) if spec is not None else []
    for folder in folders:
        try:
            with open(os.path.join(folder, "version.py")) as fh:
                text = fh.read()
        except OSError:
            continue
        version = re.search(r"^__version__\s*(?::[^=]*)?=\s*['\"]([^'\"]+)['\"]", text, re.M)
        cuda = re.search(r"^cuda\s*(?::[^=]*)?=\s*['\"]([^'\"]+)['\"]", text, re.M)
        out["torch_version"] = version.group(1) if version else ""
        out["cuda_version"] = cuda.group(1) if cuda else ""
        break
    if not out["torch_version"]:
        from importlib import metadata

        try:
            out["torch_version"] = metadata.version("torch")
        except metadata.PackageNotFoundError:
            pass
    return out


def gpus() -> list[dict[str, Any]]:
    """The GPUs this process may use, in CUDA's order: [{"index" (physical, NVML), "uuid", "name",
    "visible" (what CUDA_VISIBLE_DEVICES must say to pin a child to it)}]. CUDA_VISIBLE_DEVICES, when set,
    selects and orders them. [] without NVML."""
    nv = _nvml()
    if nv is None:
        return []
    try:
        count = nv.nvmlDeviceGetCount()
    except Exception:
        return []
    found: list[dict[str, Any]] = []
    for i in range(count):
        try:
            handle = nv.nvmlDeviceGetHandleByIndex(i)
            found.append({"index": i, "uuid": _text(nv.nvmlDeviceGetUUID(handle)),
                          "name": _text(nv.nvmlDeviceGetName(handle))})
        except Exception:
            continue
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is None:
        return [{**g, "visible": g["uuid"] or str(g["index"])} for g in found]
    chosen: list[dict[str, Any]] = []
    for entry in (e.strip() for e in visible.split(",")):
        if not entry:
            break  # CUDA stops at the first empty or invalid entry
        match = [g for g in found if (entry.isdigit() and g["index"] == int(entry)) or
                 (not entry.isdigit() and g["uuid"].startswith(entry))]
        if not match:
            break
        chosen.append({**match[0], "visible": match[0]["uuid"] or str(match[0]["index"])})
    return chosen


def physical_gpu(visible: str | None) -> tuple[int | None, str]:
    """(NVML index, UUID) of the first GPU a CUDA_VISIBLE_DEVICES value selects (all GPUs: None -> GPU 0)."""
    entry = (visible or "").split(",")[0].strip() if visible is not None else "0"
    nv = _nvml()
    if nv is not None and entry:
        try:
            handle = (nv.nvmlDeviceGetHandleByIndex(int(entry)) if entry.isdigit()
                      else nv.nvmlDeviceGetHandleByUUID(entry))
            return int(nv.nvmlDeviceGetIndex(handle)), _text(nv.nvmlDeviceGetUUID(handle))
        except Exception:
            pass
    if entry.isdigit():
        return int(entry), ""
    return None, entry if entry.startswith(("GPU-", "MIG-")) else ""


def cpus_of_mask(words: Any, bits: int = 64) -> frozenset[int]:
    """The CPU numbers set in an affinity bitmask given as words of `bits` bits, lowest CPUs first (NVML's
    layout: word k bit b is CPU k * bits + b)."""
    return frozenset(k * bits + b for k, word in enumerate(words) for b in range(bits) if int(word) >> b & 1)


def gpu_local_cpus(index: int) -> frozenset[int] | None:
    """The CPUs close to physical GPU `index` (its NUMA node), as NVML reports them; None where NVML cannot say."""
    nv = _nvml()
    if nv is None:
        return None
    words = max(1, -(-(os.cpu_count() or 1) // 64))
    try:
        handle = nv.nvmlDeviceGetHandleByIndex(index)
        found = cpus_of_mask(nv.nvmlDeviceGetCpuAffinity(handle, words))
    except Exception:  # not supported on this GPU, driver or virtualisation
        return None
    return found or None


def cpu_cores() -> dict[int, tuple[int, int]]:
    """Each CPU's physical core as (package, core) from sysfs, so hyperthread siblings can be kept together;
    {} where the topology is not readable."""
    cores: dict[int, tuple[int, int]] = {}
    root = "/sys/devices/system/cpu"
    try:
        names = os.listdir(root)
    except OSError:
        return {}
    for name in names:
        if not (name.startswith("cpu") and name[3:].isdigit()):
            continue
        try:
            with open(f"{root}/{name}/topology/physical_package_id") as fh:
                package = int(fh.read())
            with open(f"{root}/{name}/topology/core_id") as fh:
                core = int(fh.read())
        except (OSError, ValueError):
            continue
        cores[int(name[3:])] = (package, core)
    return cores
