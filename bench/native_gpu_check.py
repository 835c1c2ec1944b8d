"""GPU check of sweep-bench: TorchScript and AOTInductor jobs with and without CUDA graphs, through the binary."""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

INPUTS = [{"shape": [1, 3, 128, 128], "low": -1.0, "high": 1.0}]
SEED = 0


class Net(nn.Module):
    """A small conv net (about 30 kernels a forward at batch 1): launch-bound, where graphs show."""

    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c = 3
        for w in (32, 64, 64, 128, 128, 128, 128, 128):
            layers += [nn.Conv2d(c, w, 3, padding=1), nn.BatchNorm2d(w), nn.ReLU()]
            c = w
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(c, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x).mean(dim=(2, 3)))


class HostSync(nn.Module):
    """Boolean-mask indexing needs a device-to-host copy: a CUDA graph cannot capture it."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[x > 0].sum()


def contract_input() -> torch.Tensor:
    """runners/README.md: input i is drawn on the CPU generator seeded with seed + i."""
    spec = INPUTS[0]
    torch.manual_seed(SEED)
    return spec["low"] + (spec["high"] - spec["low"]) * torch.rand(spec["shape"], dtype=torch.float32)


def job_file(folder: Path, name: str, artifact: Path, kind: str, graphs: bool, tf32: str, warmup: int,
             iters: int, device: str) -> Path:
    job = {
        "job_key": name, "runtime": "cpp-aoti" if kind == "aoti" else "cpp-torchscript", "device": device,
        "inputs": INPUTS, "model_precision": "fp32", "warmup": warmup, "iters": iters, "seed": SEED,
        "artifact": {"dir": str(artifact.parent), "kind": kind, "file": str(artifact)},
        "outputs_path": str(folder / name / "outputs.pt"), "process": 0, "cuda_graphs": graphs, "tf32": tf32,
        "profile_kernels": True, "reference": None, "fidelity": {"measure": "elementwise", "outputs": None},
    }
    path = folder / name / "job.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(job, indent=1))
    return path


def run(binary: Path, job: Path) -> tuple[dict[str, Any], float, str]:
    out = job.with_name("result.json")
    t0 = time.perf_counter()
    proc = subprocess.run([str(binary), "--job", str(job), "--out", str(out)], capture_output=True, text=True,
                          timeout=300)
    wall = time.perf_counter() - t0
    if proc.returncode != 0 or not out.exists():
        return {"status": f"exit {proc.returncode}", "reason": proc.stderr.strip()[-400:]}, wall, proc.stderr
    return json.loads(out.read_text()), wall, proc.stderr


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--binary", type=Path, default=Path("native/build/sweep-bench"))
    parser.add_argument("--out", type=Path, default=Path("/tmp/out"))
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--iters", type=int, default=300)
    parser.add_argument("--device", default="cuda", help="cpu: a smoke test of this script (graphs: unsupported)")
    args = parser.parse_args()
    work = args.out / "native-gpu-check"
    work.mkdir(parents=True, exist_ok=True)
    cuda = args.device.startswith("cuda")
    print("torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.get_device_name() if cuda else "cpu")

    # fp32 without TF32 everywhere (artifacts, reference, jobs), so outputs compare at fp32 tolerance
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.manual_seed(0)
    model = Net().eval().to(args.device)
    x = contract_input().to(args.device)
    with torch.no_grad():
        ref = model(x).cpu()
        ts = work / "net.ts"
        torch.jit.trace(model, (x,)).save(str(ts))
        torch.jit.script(HostSync()).save(str(work / "sync.ts"))
        t0 = time.perf_counter()
        pt2 = Path(torch._inductor.aoti_compile_and_package(torch.export.export(model, (x,)),
                                                            package_path=str(work / "net.pt2")))
        aoti_s = time.perf_counter() - t0
    print(f"AOTInductor compile of the check model: {aoti_s:.1f} s")

    jobs = [
        ("ts", ts, "torchscript", False, "off"),
        ("ts+graphs", ts, "torchscript", True, "off"),
        ("aoti", pt2, "aoti", False, "off"),
        ("aoti+graphs", pt2, "aoti", True, "off"),
        ("ts tf32=on", ts, "torchscript", False, "on"),
        ("ts tf32=''", ts, "torchscript", False, ""),
        ("sync+graphs (expect unsupported)", work / "sync.ts", "torchscript", True, ""),
    ]
    rows = []
    head = (f"{'job':34} {'status':11} {'p50 ms':>8} {'cuda p50':>8} {'cv %':>5} {'mJ/fwd':>8} {'W':>6} "
            f"{'tf32 mm/cudnn':>13} {'rel_err':>8} {'wall s':>6}")
    print(head)
    for name, artifact, kind, graphs, tf32 in jobs:
        tf32 = tf32 if cuda else ""  # on the CPU the binary refuses any tf32 setting
        short = name.split()[0].replace("'", "")
        job = job_file(work, short + ("-" + tf32 if tf32 else ""), artifact, kind, graphs, tf32, args.warmup,
                       args.iters, args.device)
        result, wall, stderr = run(args.binary, job)
        samples = result.get("samples_ms") or []
        cuda = result.get("samples_cuda_ms") or []
        p50 = statistics.median(samples) if samples else float("nan")
        cv = 100 * statistics.pstdev(samples) / statistics.mean(samples) if len(samples) > 1 else float("nan")
        cuda_p50 = statistics.median(cuda) if cuda else float("nan")
        err = float("nan")
        outputs = Path(json.loads(job.read_text())["outputs_path"])
        if result.get("status") == "ok" and outputs.exists() and "sync" not in name:
            (got,) = torch.load(outputs)
            err = float((got.double() - ref.double()).norm() / ref.double().norm())
        energy = result.get("energy_mj_per_forward") or float("nan")
        power = result.get("mean_power_w") or float("nan")
        flags = f"{result.get('tf32_matmul')}/{result.get('tf32_cudnn')}"
        print(f"{name:34} {result.get('status', '?'):11} {p50:8.3f} {cuda_p50:8.3f} {cv:5.1f} "
              f"{energy:8.3f} {power:6.1f} "
              f"{flags:>13} {err:8.1e} {wall:6.1f}")
        for key in ("reason", "energy_note"):
            if result.get(key):
                print(f"    {key}: {result[key]}")
        rows.append({"job": name, "p50_ms": p50, "cuda_p50_ms": cuda_p50, "cv_pct": cv, "rel_err": err,
                     "wall_s": wall, "result": {k: v for k, v in result.items() if not k.startswith("samples")},
                     "stderr_tail": stderr[-2000:]})
    (args.out / "native-gpu-check.json").write_text(json.dumps({"aoti_compile_s": aoti_s, "rows": rows}, indent=1,
                                                               default=str))
    ok = {r["job"]: r["result"].get("status") for r in rows}
    expected = {name: ("unsupported" if graphs and (not cuda or "sync" in name) else "ok")
                for name, _, _, graphs, _ in jobs}
    bad = {k: v for k, v in ok.items() if v != expected[k]}
    print("CHECK", "PASSED" if not bad else f"FAILED: {bad}")


if __name__ == "__main__":
    main()
