"""Where do correct variants of a built-in detector land against the fp32 reference? (to set tolerances)

    PYTHONPATH=. python3 bench/fidelity_landing.py dino-vitdet-b cuda
    PYTHONPATH=. python3 bench/fidelity_landing.py dino-vitdet-tiny cpu > bench/results/fidelity-landing-tiny-cpu.jsonl

The reference is true fp32 (TF32 off) on the same device and the contract's seeded input. Each variant is
judged exactly as a sweep row is: runners.fidelity.compare on the detector's outputs with the catalog's
judged outputs (3: the two-stage encoder's class logits, 4: its box deltas; continuous, before any top-k)
and the elementwise measure; `error` is the largest of the two, the figure the verdict compares with the
tolerance of the variant's compute precision (sweep.fidelity). The detections' scores, element-wise and
sorted, are printed beside them to show why they cannot be judged (near-ties reorder). Deliberately broken
variants (1 % and 10 % noise on the encoder's weights) show where a wrong model lands. On CUDA the fp16 and
fp32 models are also captured in CUDA graphs and their replay outputs judged (with the replay p50).
"""

from __future__ import annotations

import copy
import json
import sys
import time
from typing import Any

import torch

from runners.common import apply_tf32, autocast, make_forward
from runners.fidelity import compare
from sweep.fidelity import DEFAULT_TOLERANCES, compute_precision, verdict
from sweep.models import BUILTINS
from sweep.models.build import build_builtin, draw_inputs

JUDGED = [3, 4]
name = sys.argv[1] if len(sys.argv) > 1 else "dino-vitdet-tiny"
device = sys.argv[2] if len(sys.argv) > 2 else "cpu"
spec = BUILTINS[name]
DT = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def build(precision: str) -> tuple[torch.nn.Module, torch.Tensor]:
    torch.manual_seed(0)
    model = build_builtin(name).eval().to(device=device, dtype=DT[precision])
    x = draw_inputs(spec.input_shapes(), *spec.input_range)[0].to(device=device, dtype=DT[precision])
    return model, x


def outputs(model: torch.nn.Module, x: torch.Tensor, amp: str) -> list[torch.Tensor]:
    with torch.inference_mode(), autocast(device, amp):
        out = model(x)
    return [t.detach().cpu() for t in out]


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    a64, b64 = a.double(), b.double()
    return float((a64 - b64).norm() / b64.norm()) if torch.isfinite(a64).all() else float("inf")


def row(label: str, out: list[torch.Tensor], ref: list[torch.Tensor], precision: str, seconds: float,
        **extra: Any) -> dict[str, Any]:
    fid = compare(out, ref, "elementwise", JUDGED)
    tol = DEFAULT_TOLERANCES[precision]
    result, note = verdict(fid, tol)
    return {"model": name, "device": device, "variant": label, "compute_precision": precision,
            "enc_logits": float(f"{rel(out[3], ref[3]):.3g}"), "enc_deltas": float(f"{rel(out[4], ref[4]):.3g}"),
            "error": float(f"{fid['error']:.3g}"), "tolerance": tol, "verdict": result, "margin": (
                float(f"{tol / fid['error']:.3g}") if fid["error"] else None),
            "scores_elementwise": float(f"{rel(out[1], ref[1]):.3g}"),
            "scores_sorted": float(f"{rel(out[1].sort().values, ref[1].sort().values):.3g}"),
            "forward_s": round(seconds, 2), **extra, **({"note": note} if note else {})}


def torch_default_tf32() -> None:
    """PyTorch's default: cuDNN convolutions in TF32, matmuls in full fp32 (with the API this torch has)."""
    if hasattr(torch.backends.cuda.matmul, "fp32_precision"):
        torch.backends.cuda.matmul.fp32_precision = "ieee"
        torch.backends.cudnn.conv.fp32_precision = "tf32"  # type: ignore[attr-defined]
    else:
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = True


def timed(fn: Any) -> tuple[Any, float]:
    t0 = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - t0


def graph_replay(model: torch.nn.Module, x: torch.Tensor) -> tuple[list[torch.Tensor], float]:
    """Capture one forward in a CUDA graph (warm-up on a side stream first) and time 100 replays."""
    forward = make_forward(model, [x.clone()], device)
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.inference_mode(), torch.cuda.stream(side):
        for _ in range(3):
            forward()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.inference_mode(), torch.cuda.graph(graph):
        static = forward()
    times = []
    for _ in range(100):
        t0 = time.perf_counter()
        graph.replay()
        torch.cuda.synchronize()
        times.append((time.perf_counter() - t0) * 1e3)
    return [t.detach().cpu() for t in static], sorted(times)[50]


def main() -> None:
    cuda = device.startswith("cuda")
    apply_tf32("off")
    ref_model, ref_x = build("fp32")
    ref, ref_s = timed(lambda: outputs(ref_model, ref_x, ""))
    rows: list[dict[str, Any]] = []
    variants = [("fp32 again", "fp32", "", "off"), ("fp32 autocast fp16", "fp32", "fp16", "off"),
                ("fp32 autocast bf16", "fp32", "bf16", "off"), ("fp16 weights", "fp16", "", "off"),
                ("bf16 weights", "bf16", "", "off")]
    if cuda:
        variants[1:1] = [("fp32 tf32 on", "fp32", "", "on"), ("fp32 torch default (cuDNN tf32)", "fp32", "", "")]
    for label, precision, amp, tf32 in variants:
        if cuda and tf32:
            apply_tf32(tf32)
        elif cuda:
            torch_default_tf32()
        model, x = (ref_model, ref_x) if precision == "fp32" else build(precision)
        out, seconds = timed(lambda model=model, x=x, amp=amp: outputs(model, x, amp))
        cp = compute_precision("python-eager", device, precision, amp, (), tf32 if cuda else "")
        rows.append(row(label, out, ref, cp, seconds))
        print(json.dumps(rows[-1]), flush=True)
    apply_tf32("off")
    for noise in (0.01, 0.1):
        broken = copy.deepcopy(ref_model)
        with torch.no_grad():
            for p in broken.head.encoder.parameters():
                p.add_(torch.randn_like(p) * p.abs().mean() * noise)
        out, seconds = timed(lambda broken=broken: outputs(broken, ref_x, ""))
        fid = compare(out, ref, "elementwise", JUDGED)
        judged = {p: verdict(fid, t)[0] for p, t in DEFAULT_TOLERANCES.items()}
        rows.append(row(f"BROKEN: {noise:.0%} noise on encoder weights", out, ref, "fp32", seconds,
                        verdict_at_each_default=judged))
        print(json.dumps(rows[-1]), flush=True)
    if cuda:
        for precision in ("fp16", "fp32"):
            model, x = build(precision)
            out, replay_ms = graph_replay(model, x)
            cp = compute_precision("python-eager", device, precision, "", (), "off")
            print(json.dumps(row(f"{precision} CUDA graph replay", out, ref, cp, 0.0, p50_ms=round(replay_ms, 3))),
                  flush=True)
    print(json.dumps({"model": name, "device": device, "reference_forward_s": round(ref_s, 2),
                      "torch": torch.__version__}), flush=True)


if __name__ == "__main__":
    main()
