"""Where do correct variants of a built-in detector land against the fp32 reference? (to set tolerances)

    PYTHONPATH=. python3 bench/fidelity_landing.py dino-vitdet-b cuda
    PYTHONPATH=. python3 bench/fidelity_landing.py dino-vitdet-tiny cpu

The reference is true fp32 (TF32 off) on the same device and the contract's seeded input. For each
variant it prints the relative L2 error of: the neck's features, the two-stage encoder's class logits
and boxes (continuous: before any top-k), and the final detections element-wise and sorted. A
deliberately broken variant (1 % noise on the encoder weights) shows where a wrong model lands.
"""

from __future__ import annotations

import copy
import json
import sys
import time
from contextlib import nullcontext
from typing import Any

import torch

from sweep.models import BUILTINS
from sweep.models.build import build_builtin, draw_inputs

name = sys.argv[1] if len(sys.argv) > 1 else "dino-vitdet-tiny"
device = sys.argv[2] if len(sys.argv) > 2 else "cpu"
spec = BUILTINS[name]
DT = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def tf32(on: bool, cudnn: bool | None = None) -> None:
    torch.backends.cuda.matmul.allow_tf32 = on
    torch.backends.cudnn.allow_tf32 = on if cudnn is None else cudnn


def capture(model: torch.nn.Module, x: torch.Tensor, amp: str | None) -> dict[str, torch.Tensor]:
    got: dict[str, torch.Tensor] = {}
    head = model.head
    hooks = [
        head.enc_class_embed.register_forward_hook(lambda m, i, o: got.__setitem__("enc_logits", o)),
        head.enc_bbox_embed.register_forward_hook(lambda m, i, o: got.__setitem__("enc_boxes", o)),
        model.neck.register_forward_hook(lambda m, i, o: got.__setitem__("features", torch.cat(
            [f.flatten() for f in o]))),
    ]
    ctx = torch.autocast(device_type=device.split(":")[0], dtype=DT[amp]) if amp else nullcontext()
    with torch.inference_mode(), ctx:
        boxes, scores, labels = model(x)
    for h in hooks:
        h.remove()
    got.update(boxes=boxes, scores=scores)
    return {k: v.detach().double().cpu() for k, v in got.items()}


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    if not torch.isfinite(a).all():
        return float("inf")
    return float((a - b).norm() / b.norm())


def errors(out: dict[str, torch.Tensor], ref: dict[str, torch.Tensor]) -> dict[str, float]:
    e = {k: rel(out[k], ref[k]) for k in ("features", "enc_logits", "enc_boxes", "scores", "boxes")}
    e["scores_sorted"] = rel(out["scores"].sort().values, ref["scores"].sort().values)
    return {k: float(f"{v:.3g}") for k, v in e.items()}


def build(precision: str) -> tuple[torch.nn.Module, torch.Tensor]:
    torch.manual_seed(0)
    model = build_builtin(name).eval().to(device=device, dtype=DT[precision])
    x = draw_inputs(spec.input_shapes(), *spec.input_range)[0].to(device=device, dtype=DT[precision])
    return model, x


def graph_replay(model: torch.nn.Module, x: torch.Tensor) -> tuple[Any, float]:
    """Capture one forward in a CUDA graph and time 100 replays (host clock around synchronize)."""
    static = x.clone()
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.inference_mode(), torch.cuda.stream(s):
        for _ in range(3):
            model(static)
    torch.cuda.current_stream().wait_stream(s)
    g = torch.cuda.CUDAGraph()
    with torch.inference_mode(), torch.cuda.graph(g):
        out = model(static)
    times = []
    for _ in range(100):
        t0 = time.perf_counter()
        g.replay()
        torch.cuda.synchronize()
        times.append((time.perf_counter() - t0) * 1e3)
    return out, sorted(times)[50]


tf32(False)
ref_model, ref_x = build("fp32")
ref = capture(ref_model, ref_x, None)
rows: list[dict[str, Any]] = []
variants = [("fp32 again", "fp32", None, (False, None)), ("fp32 autocast fp16", "fp32", "fp16", (False, None)),
            ("fp32 autocast bf16", "fp32", "bf16", (False, None)), ("fp16 weights", "fp16", None, (False, None)),
            ("bf16 weights", "bf16", None, (False, None))]
if device.startswith("cuda"):
    variants[1:1] = [("fp32 tf32 on", "fp32", None, (True, None)),
                     ("fp32 torch default (cudnn tf32)", "fp32", None, (False, True))]
for label, precision, amp, (on, cudnn) in variants:
    tf32(on, cudnn)
    model, x = (ref_model, ref_x) if precision == "fp32" else build(precision)
    rows.append({"variant": label, **errors(capture(model, x, amp), ref)})
tf32(False)
broken = copy.deepcopy(ref_model)
with torch.no_grad():
    for p in broken.head.encoder.parameters():
        p.add_(torch.randn_like(p) * p.abs().mean() * 0.1)
rows.append({"variant": "BROKEN: 10% noise on encoder weights", **errors(capture(broken, ref_x, None), ref)})
if device.startswith("cuda"):
    for precision in ("fp16", "fp32"):
        model, x = build(precision)
        _, replay_ms = graph_replay(model, x)
        rows.append({"variant": f"{precision} CUDA graph replay", "p50_ms": round(replay_ms, 3)})
for r in rows:
    print(json.dumps({"model": name, "device": device, **r}), flush=True)
