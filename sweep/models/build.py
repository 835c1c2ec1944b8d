"""Build or load the model a job describes, draw its inputs, count its FLOPs: the torch side of sweep.models.

Imported by runners, `sweep models` and tests; never by the orchestrator, which reads the torch-free catalog
in sweep/models/__init__.py.
"""

from __future__ import annotations

import functools
import importlib
import sys
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from sweep.models import BUILTINS, dino, tiny

BUILDERS: dict[str, Callable[..., nn.Module]] = {
    "tiny": tiny.build,
    **{name: functools.partial(dino.build, name) for name in dino.PRESETS},
}


def build_builtin(name: str, **options: Any) -> nn.Module:
    """A built-in model with random weights from the global generator (seed it first: `seeded_init`)."""
    if name not in BUILDERS:
        raise ValueError(f"unknown builtin model {name!r}; known: {', '.join(BUILDERS)}")
    return BUILDERS[name](**options)


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
        module = build_builtin(model["name"], **options)
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
    module = build_builtin(name, **options).eval()
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
