"""Which way of loading an AOTInductor package works from Python here? Each candidate in a fresh process.

    PYTHONPATH=. python3 bench/aoti_loaders.py                        # small model, every candidate, CUDA
    PYTHONPATH=. python3 bench/aoti_loaders.py --artifacts artifacts  # also every cached aoti variant there
    PYTHONPATH=. python3 bench/aoti_loaders.py --device cpu           # the same on the CPU (a dry run)
    options: --only NAME[,NAME] --timeout S (per candidate, default 180) --gdb (native backtrace of the
             first crashing candidate, where gdb exists) --keep DIR (where the small package is built)

First one process builds a small package (conv + attention-free MLP, fp32, a few seconds of kernels) with
torch._inductor.aoti_compile_and_package and lists what the package holds (.so, .cpp, kernel binaries).
Then each candidate loader runs in its own process under faulthandler, with a timeout: load, call once on
the inputs, synchronize, check the outputs against eager where the package is the small model. The child
prints a line per phase with the seconds since it started, so a crash shows how far it got (visit A: the
documented loader took ~52 s, then SIGSEGV in _package.py `_load_aoti`).

Candidates (runners.python_aoti.LOADERS are the ones the python-aoti runner can use):
- aoti_load_package, aoti_load_package(single_threaded): the documented API (the runner with graphs
  needs run_single_threaded=True);
- package_loader: torch._C._aoti.AOTIModelPackageLoader alone (what the C++ runner uses), no
  torch._inductor import, CUDA not touched before it;
- package_loader+cuda_init: the same after initialising CUDA (a tensor on the device first);
- probe+package_loader: `_load_aoti`'s device probe (torch._inductor.codecache.get_device_information,
  which compiles and loads CPU-ISA test programs and queries the device) first, then the loader: if this
  crashes and package_loader does not, the probe is the trigger;
- container_runner: the package's .so extracted and run by AOTIModelContainerRunnerCuda/Cpu.
One JSON line per (package, candidate) on stdout: rc (-11 = SIGSEGV), seconds, last phase, stderr tail.
Last, the python-aoti runner itself (its CUDA_LOADER) runs the small package without and with CUDA graphs.
Budget: ~1-3 min for the build, then up to --timeout per candidate (visit A: ~52 s per crashing load).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

BUILD = """
import sys, time, torch
t0 = time.perf_counter()
device, out = sys.argv[1], sys.argv[2]

class Small(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 16, 3, padding=1)
        self.norm = torch.nn.LayerNorm(16)
        self.fc = torch.nn.Linear(16, 8)
        self.register_buffer("scale", torch.full((8,), 0.5))

    def forward(self, x):
        y = self.conv(x).flatten(2).transpose(1, 2)
        return self.fc(self.norm(y)).softmax(-1) * self.scale, y.mean()

torch.manual_seed(0)
model = Small().eval().to(device)
x = torch.rand(1, 3, 16, 16, device=device)
with torch.no_grad():
    ep = torch.export.export(model, (x,))
    torch._inductor.aoti_compile_and_package(ep, package_path=out)
    torch.save({"x": x.cpu(), "out": [t.cpu() for t in model(x)]}, out + ".io")
print("built", round(time.perf_counter() - t0, 1), flush=True)
"""

CHILD = """
import faulthandler, sys, time
t0 = time.perf_counter()
def phase(name):
    print(f"phase {name} {time.perf_counter() - t0:.1f}s", file=sys.stderr, flush=True)
faulthandler.enable()
import torch
phase("import torch " + torch.__version__)
candidate, path, device, shapes, dtype = sys.argv[1], sys.argv[2], sys.argv[3], eval(sys.argv[4]), sys.argv[5]
cuda = device.startswith("cuda")
index = 0 if cuda else -1
from runners.python_aoti import LOADERS
if candidate.startswith("aoti_load_package"):
    import torch._inductor
    phase("import torch._inductor")
    model = torch._inductor.aoti_load_package(path, run_single_threaded="single" in candidate, device_index=index)
elif candidate == "package_loader+cuda_init":
    torch.zeros(1, device=device)
    phase("cuda initialised")
    model = LOADERS["package_loader"](path, index, False)
elif candidate == "probe+package_loader":
    from torch._inductor.codecache import get_device_information
    phase("import torch._inductor.codecache")
    print(get_device_information("cuda" if cuda else "cpu"), file=sys.stderr)
    phase("device probe done")
    model = LOADERS["package_loader"](path, index, False)
else:
    model = LOADERS[candidate](path, index, False)
phase("loaded")
io = path + ".io"
import os
if os.path.exists(io):
    ref = torch.load(io)
    xs = [ref["x"].to(device)]
else:
    xs = [torch.rand(s).mul(255).to(device, getattr(torch, dtype)) for s in shapes]
with torch.inference_mode():
    out = model(*xs)
    if cuda:
        torch.cuda.synchronize()
    phase("ran once")
    t1 = time.perf_counter()
    for _ in range(10):
        out = model(*xs)
    if cuda:
        torch.cuda.synchronize()
    per_call_ms = (time.perf_counter() - t1) * 100
flat = list(out) if isinstance(out, (list, tuple)) else [out]
agree = None
if os.path.exists(io):
    agree = all(torch.allclose(o.cpu().float(), r.float(), rtol=1e-3, atol=1e-4) for o, r in zip(flat, ref["out"]))
print("ok", round(time.perf_counter() - t0, 1), "outputs", len(flat), "agree_with_eager", agree,
      "ms_per_call", round(per_call_ms, 3), flush=True)
"""

CANDIDATES = ("package_loader", "package_loader+cuda_init", "container_runner", "probe+package_loader",
              "aoti_load_package(single_threaded)", "aoti_load_package")


def package_contents(path: Path) -> dict[str, object]:
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        sizes = {i.filename: i.file_size for i in archive.infolist()}
    by_ext: dict[str, int] = {}
    for name in names:
        ext = Path(name).suffix or Path(name).name
        by_ext[ext] = by_ext.get(ext, 0) + 1
    so = [n for n in names if n.endswith(".so")]
    return {"files": len(names), "by_extension": by_ext, "so": {n: sizes[n] for n in so},
            "cpp_only": not so and any(n.endswith(".cpp") for n in names)}


def run_child(args: list[str], timeout: float, env: dict[str, str]) -> dict[str, object]:
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(args, capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT)
        rc, out, err = proc.returncode, proc.stdout, proc.stderr
    except subprocess.TimeoutExpired as exc:
        rc = "timeout"
        out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        err = exc.stderr.decode() if isinstance(exc.stderr, bytes) else (exc.stderr or "")
    phases = [line for line in err.splitlines() if line.startswith("phase ")]
    return {"rc": rc, "s": round(time.perf_counter() - t0, 1), "last_phase": phases[-1] if phases else "",
            "stdout": out.strip()[-300:], "stderr": err.strip()[-1500:]}


def runner_job(package: Path, device: str, graphs: bool, timeout: float, env: dict[str, str]) -> dict[str, object]:
    """The python-aoti runner itself on the small package, as the orchestrator starts it (job.json in,
    result.json out), with and without CUDA graphs: status, reason, p50 and what it reported."""
    folder = Path(tempfile.mkdtemp(prefix="aoti-runner-"))
    job = {"job_key": "aoti-bench", "runtime": "python-aoti", "device": device, "model": {"kind": "builtin"},
           "inputs": [{"shape": [1, 3, 16, 16], "low": 0.0, "high": 1.0}], "model_precision": "fp32",
           "amp_dtype": "", "enabled_precisions": [], "compile_mode": "", "warmup": 5, "iters": 50, "seed": 0,
           "artifact": {"dir": str(package.parent), "kind": "aoti", "file": str(package)},
           "outputs_path": str(folder / "outputs.pt"), "process": 0, "cuda_graphs": graphs, "tf32": "",
           "profile_kernels": True, "reference": None, "fidelity": None}
    (folder / "job.json").write_text(json.dumps(job))
    outcome = run_child([sys.executable, "-m", "runners.python_aoti", "--job", str(folder / "job.json"),
                         "--out", str(folder / "result.json")], timeout, env)
    result = json.loads((folder / "result.json").read_text()) if (folder / "result.json").exists() else {}
    samples = sorted(result.get("samples_ms") or [0.0])
    shutil.rmtree(folder, ignore_errors=True)
    return {"rc": outcome["rc"], "s": outcome["s"], "status": result.get("status"),
            "reason": str(result.get("reason", ""))[-500:], "p50_ms": round(samples[len(samples) // 2], 4),
            "cuda_graphs_reported": result.get("cuda_graphs"), "kernel_busy_ms": result.get("kernel_busy_ms"),
            "aoti_loader": (result.get("extra") or {}).get("aoti_loader"),
            "stderr": "" if result.get("status") == "ok" else str(outcome["stderr"])[-800:]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--artifacts", type=Path, help="also test every aoti variant cached under this folder")
    parser.add_argument("--only", default="", help="comma-separated candidate names")
    parser.add_argument("--timeout", type=float, default=180.0)
    parser.add_argument("--gdb", action="store_true", help="native backtrace of the first crash (needs gdb)")
    parser.add_argument("--keep", type=Path, help="folder for the small package (default: a temporary one)")
    parser.add_argument("--no-runner", action="store_true", help="skip the python-aoti runner on the small package")
    args = parser.parse_args()
    import os

    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    candidates = [c for c in CANDIDATES if not args.only or c in args.only.split(",")]
    folder = args.keep or Path(tempfile.mkdtemp(prefix="aoti-loaders-"))
    folder.mkdir(parents=True, exist_ok=True)
    packages: list[tuple[str, Path, list[list[int]], str]] = []
    small = folder / "small.pt2"
    if not small.exists():
        built = run_child([sys.executable, "-c", BUILD, args.device, str(small)], 900, env)
        print(json.dumps({"step": "build small package", **built}), flush=True)
    if small.exists():
        packages.append(("small", small, [[1, 3, 16, 16]], "float32"))
    if args.artifacts:
        for manifest_path in sorted(args.artifacts.glob("*/manifest.json")):
            manifest = json.loads(manifest_path.read_text())
            if manifest.get("backend") != "aoti" or not (manifest_path.parent / "model.pt2").exists():
                continue
            variant = manifest["variant"]
            dtype = {"fp16": "float16", "bf16": "bfloat16"}.get(variant["model_precision"], "float32")
            label = f"{variant['model']['ref']} {variant['model_precision']}"
            packages.append((label, manifest_path.parent / "model.pt2", variant["input_shapes"], dtype))
    crashed: list[str] = []
    for label, path, shapes, dtype in packages:
        print(json.dumps({"package": label, "path": str(path), **package_contents(path)}), flush=True)
        for name in candidates:
            child = [sys.executable, "-c", CHILD, name, str(path), args.device, repr(shapes), dtype]
            outcome = run_child(child, args.timeout, env)
            print(json.dumps({"package": label, "loader": name, **outcome}), flush=True)
            if outcome["rc"] not in (0, "timeout") and not crashed:
                crashed = child
    if not args.no_runner and small.exists():
        for graphs in (False, True):
            print(json.dumps({"runner": "python-aoti", "loader_used": "runners.python_aoti.CUDA_LOADER",
                              "cuda_graphs": graphs, **runner_job(small, args.device, graphs, args.timeout, env)}),
                  flush=True)
    if args.gdb and crashed:
        if shutil.which("gdb") is None:
            print(json.dumps({"gdb": "not installed here"}), flush=True)
        else:
            gdb = ["gdb", "-batch", "-ex", "run", "-ex", "bt 40", "--args", *crashed]
            proc = subprocess.run(gdb, capture_output=True, text=True, timeout=args.timeout, env=env, cwd=ROOT)
            print(json.dumps({"gdb_backtrace": proc.stdout[-6000:]}), flush=True)
    if not args.keep:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
