"""The built-in models as data (names, default input shapes, input ranges, judged outputs), torch-free.

The orchestrator reads this catalog to validate a matrix and plan its jobs without importing torch;
`sweep.models.build` builds the models (in runners, `sweep models` and tests).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sweep.models import dino_config


@dataclass(frozen=True)
class BuiltinModel:
    """A model `sweep` ships: what it eats by default and how its outputs are judged."""

    name: str
    description: str
    # default input shapes for the model's options; TypeError / ValueError for options it does not take
    input_shapes: Callable[..., list[list[int]]]
    input_range: tuple[float, float] = (-1.0, 1.0)
    parts: tuple[str, ...] = ()  # submodule names whose parameters `sweep models` counts apart
    judged_outputs: tuple[int, ...] | None = None  # outputs fidelity judges by default; None: all of them


def _positive_int(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def tiny_input_shapes(width: int = 32, classes: int = 10) -> list[list[int]]:
    """tiny takes width and classes (see sweep/models/tiny.py); its input is one 64x64 RGB image."""
    _positive_int("width", width)
    _positive_int("classes", classes)
    return [[1, 3, 64, 64]]


def _detector(name: str, description: str) -> BuiltinModel:
    return BuiltinModel(
        name=name,
        description=description,
        input_shapes=functools.partial(dino_config.input_shapes, name),
        input_range=(0.0, 255.0),
        parts=("backbone", "neck", "head"),
        judged_outputs=(3, 4),  # the encoder's class logits and box deltas: continuous, before any top-k
    )


BUILTINS: dict[str, BuiltinModel] = {
    "tiny": BuiltinModel(name="tiny", description="small conv net (tests, CPU demo)",
                         input_shapes=tiny_input_shapes, parts=("stem", "blocks", "head")),
    "dino-vitdet-b": _detector(
        "dino-vitdet-b",
        "DINO detector (two-stage deformable DETR), ViT-B/16 + ViTDet pyramid, 512x512, 900 queries"),
    "dino-vitdet-s": _detector(
        "dino-vitdet-s",
        "DINO detector (two-stage deformable DETR), ViT-S/16 + ViTDet pyramid, 512x512, 900 queries"),
    "dino-vitdet-tiny": _detector(
        "dino-vitdet-tiny",
        "small DINO-ViTDet (tests, CPU demo): 128x128, ViT 64-dim x2, 1+2 layers, 64 queries"),
}

# Before the catalog was split from the torch code, these lived here; they stay reachable (loaded on first
# use, so importing the catalog never imports torch) until every caller imports sweep.models.build.
_MOVED_TO_BUILD = ("load_model", "draw_inputs", "count_gflops", "describe", "import_factory", "seeded_init")


def __getattr__(name: str) -> Any:
    if name in _MOVED_TO_BUILD:
        from sweep.models import build

        return getattr(build, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
