"""Built-in models and the one function every Python runner uses to build or load a model."""

from __future__ import annotations

import functools
import importlib
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from sweep.models import dino, tiny


@dataclass(frozen=True)
class BuiltinModel:
    """A model `sweep` ships: how to build it and what it eats by default."""

    build: Callable[..., nn.Module]
    input_shapes: Callable[..., list[list[int]]]
    input_range: tuple[float, float] = (-1.0, 1.0)
    description: str = ""
    parts: tuple[str, ...] = field(default=())  # submodule names whose parameters `sweep models` counts apart
    judged_outputs: tuple[int, ...] | None = None  # outputs fidelity judges by default; None: all of them


BUILTINS: dict[str, BuiltinModel] = {
    "tiny": BuiltinModel(
        build=tiny.build,
        input_shapes=lambda **_: [[1, 3, 64, 64]],
        description="small conv net (tests, CPU demo)",
        parts=("stem", "blocks", "head"),
    ),
    "dino-vitdet-b": BuiltinModel(
        build=functools.partial(dino.build, "dino-vitdet-b"),
        input_shapes=functools.partial(dino.input_shapes, "dino-vitdet-b"),
        input_range=(0.0, 255.0),
        description="DINO detector (two-stage deformable DETR), ViT-B/16 + ViTDet pyramid, 512x512, 900 queries",
        parts=("backbone", "neck", "head"),
        judged_outputs=(3, 4),  # the encoder's class logits and box deltas: continuous, before any top-k
    ),
    "dino-vitdet-s": BuiltinModel(
        build=functools.partial(dino.build, "dino-vitdet-s"),
        input_shapes=functools.partial(dino.input_shapes, "dino-vitdet-s"),
        input_range=(0.0, 255.0),
        description="DINO detector (two-stage deformable DETR), ViT-S/16 + ViTDet pyramid, 512x512, 900 queries",
        parts=("backbone", "neck", "head"),
        judged_outputs=(3, 4),  # the encoder's class logits and box deltas: continuous, before any top-k
    ),
    "dino-vitdet-tiny": BuiltinModel(
        build=functools.partial(dino.build, "dino-vitdet-tiny"),
        input_shapes=functools.partial(dino.input_shapes, "dino-vitdet-tiny"),
        input_range=(0.0, 255.0),
        description="small DINO-ViTDet (tests, CPU demo): 128x128, ViT 64-dim x2, 1+2 layers, 64 queries",
        parts=("backbone", "neck", "head"),
        judged_outputs=(3, 4),  # the encoder's class logits and box deltas: continuous, before any top-k
    ),
}


def import_factory(spec: str, root: str | None) -> Callable[..., nn.Module]:
    """Resolve "pkg.module:function"; the matrix file's folder is importable so users keep models beside it."""
    module_name, _, attr = spec.partition(":")
    if root and root not in sys.path:
        sys.path.insert(0, root)
    module = importlib.import_module(module_name)
    fn = getattr(module, attr)
    if not callable(fn):
        raise TypeError(f"{spec} is not callable")
    return fn  # type: ignore[no-any-return]


def seeded_init(seed: int) -> None:
    """Weights are drawn from the matrix seed so every runtime and every run sees the same model."""
    torch.manual_seed(seed)


def load_model(model: dict[str, Any], seed: int) -> nn.Module:
    """Build or load the model a job describes (see runners/README.md, `model`), in eval mode on the CPU."""
    kind = model["kind"]
    options = model.get("options") or {}
    seeded_init(seed)
    if kind == "builtin":
        module = BUILTINS[model["name"]].build(**options)
    elif kind == "factory":
        module = import_factory(model["factory"], model.get("root"))(**options)
    elif kind == "torchscript":
        module = torch.jit.load(model["path"], map_location="cpu")
    elif kind == "exported":
        module = torch.export.load(model["path"]).module()
    else:
        raise ValueError(f"unknown model kind {kind!r}")
    if model.get("checkpoint"):
        state = torch.load(model["checkpoint"], map_location="cpu", weights_only=True)
        module.load_state_dict(state)
    if kind == "exported":
        # The graph was captured in the mode it was exported in; the unlifted module's eval() and
        # train() raise NotImplementedError (torch 2.5 - 2.13 at least), so leave it as it is.
        return module
    return module.eval()


def draw_inputs(shapes: list[list[int]], low: float, high: float, seed: int = 0) -> list[torch.Tensor]:
    """The inputs every runner draws (runners/README.md): input i from seed + i, low + (high - low) * U[0, 1)."""
    inputs = []
    for i, shape in enumerate(shapes):
        torch.manual_seed(seed + i)
        inputs.append(low + (high - low) * torch.rand(shape, dtype=torch.float32))
    return inputs


def describe(name: str, **options: Any) -> dict[str, Any]:
    """Size of a built-in model: parameters (in total and by part) and forward GFLOPs on its default inputs.

    FLOPs are what `torch.utils.flop_counter.FlopCounterMode` counts: matmuls, convolutions and
    attention (2 per multiply-add); element-wise ops, norms and `grid_sample` are not counted.
    """
    if name not in BUILTINS:
        raise ValueError(f"unknown builtin model {name!r}; known: {', '.join(BUILTINS)}")
    spec = BUILTINS[name]
    seeded_init(0)
    module = spec.build(**options).eval()
    shapes = spec.input_shapes(**options)
    inputs = draw_inputs(shapes, *spec.input_range)
    with torch.no_grad():
        gflops = count_gflops(module, inputs)
    return {
        "name": name,
        "params": sum(p.numel() for p in module.parameters()),
        "params_by_part": {
            part: sum(p.numel() for p in getattr(module, part).parameters()) for part in spec.parts
        },
        "input_shapes": shapes,
        "gflops": gflops,
    }


def count_gflops(module: nn.Module, inputs: list[torch.Tensor]) -> float:
    """Forward GFLOPs at these shapes as torch's FlopCounterMode counts them (runs one forward)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        module(*inputs)
    return counter.get_total_flops() / 1e9
