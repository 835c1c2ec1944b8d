"""The DINO-ViTDet stand-in's sizes, presets and input shapes, torch-free: the orchestrator validates a
matrix's detector options and learns its input shapes here without importing torch."""

from __future__ import annotations

import dataclasses
from typing import Any

FLOAT_FIELDS = ("mlp_ratio", "layerscale")  # every other size but image_size is a positive int


@dataclasses.dataclass(frozen=True)
class DinoConfig:
    """Every size of the model; a preset is one of these, and builder options replace its fields."""

    image_size: int | tuple[int, int] | list[int] = 512  # one int (square) or [height, width]
    # backbone (ViT)
    patch_size: int = 16
    embed_dim: int = 768
    depth: int = 12
    num_heads: int = 12
    mlp_ratio: float = 4.0
    layerscale: float = 0.1  # LayerScale init; DINOv2 trains from 1e-5, trained ViT-B values are ~0.1-1
    # neck and head (DINO transformer)
    hidden_dim: int = 256
    transformer_heads: int = 8
    num_points: int = 4
    ffn_dim: int = 2048
    enc_layers: int = 6
    dec_layers: int = 6
    num_queries: int = 900
    num_classes: int = 80
    num_select: int = 100  # detections returned: top-k over queries x classes

    @property
    def hw(self) -> tuple[int, int]:
        size = self.image_size
        if isinstance(size, int) and not isinstance(size, bool) and size > 0:
            return size, size
        if (isinstance(size, (list, tuple)) and len(size) == 2
                and all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in size)):
            return int(size[0]), int(size[1])
        raise ValueError(f"image_size must be a positive int or [height, width], got {size!r}")

    @property
    def level_shapes(self) -> tuple[tuple[int, int], ...]:
        """(H, W) of p3..p6, computed as the convolutions and poolings of the neck compute them."""
        h4, w4 = self.hw[0] // self.patch_size, self.hw[1] // self.patch_size
        h5, w5 = h4 // 2, w4 // 2  # max_pool2d(2, 2)
        h6, w6 = (h5 - 1) // 2 + 1, (w5 - 1) // 2 + 1  # max_pool2d(1, 2)
        return ((2 * h4, 2 * w4), (h4, w4), (h5, w5), (h6, w6))

    def validate(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.name == "image_size":
                continue  # checked by hw
            kinds = (int, float) if field.name in FLOAT_FIELDS else (int,)
            if isinstance(value, bool) or not isinstance(value, kinds) or value <= 0:
                kind = "number" if field.name in FLOAT_FIELDS else "integer"
                raise ValueError(f"{field.name} must be a positive {kind}, got {value!r}")
        height, width = self.hw
        if height % self.patch_size or width % self.patch_size:
            raise ValueError(f"image_size {height}x{width} is not a multiple of patch_size {self.patch_size}")
        if min(height, width) < 2 * self.patch_size:
            raise ValueError(f"image_size {height}x{width} is too small: at least {2 * self.patch_size}")
        tokens = sum(h * w for h, w in self.level_shapes)
        if not 0 < self.num_queries <= tokens:
            raise ValueError(f"num_queries {self.num_queries} must be in 1..{tokens} (encoder tokens)")
        if not 0 < self.num_select <= self.num_queries * self.num_classes:
            raise ValueError(f"num_select {self.num_select} exceeds num_queries x num_classes")
        if self.hidden_dim % 2 or self.hidden_dim % self.transformer_heads:
            raise ValueError(f"hidden_dim {self.hidden_dim} must be even and divisible by transformer_heads")


PRESETS: dict[str, DinoConfig] = {
    "dino-vitdet-b": DinoConfig(image_size=512, embed_dim=768, depth=12, num_heads=12),
    "dino-vitdet-s": DinoConfig(image_size=512, embed_dim=384, depth=12, num_heads=6),
    "dino-vitdet-tiny": DinoConfig(
        image_size=128, embed_dim=64, depth=2, num_heads=2, hidden_dim=64, transformer_heads=4,
        ffn_dim=256, enc_layers=1, dec_layers=2, num_queries=64,
    ),
}


def config(preset: str, **options: Any) -> DinoConfig:
    """The preset's config with `options` replacing fields; an unknown option names the known ones."""
    if preset not in PRESETS:
        raise ValueError(f"unknown DINO preset {preset!r}; known: {', '.join(PRESETS)}")
    known = {f.name for f in dataclasses.fields(DinoConfig)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise TypeError(f"unknown option(s) {', '.join(unknown)} for {preset}; known: {', '.join(sorted(known))}")
    cfg = dataclasses.replace(PRESETS[preset], **options)
    cfg.validate()
    return cfg


def input_shapes(preset: str, **options: Any) -> list[list[int]]:
    """One [3, H, W] image (no batch dimension), as the runners draw it."""
    height, width = config(preset, **options).hw
    return [[3, height, width]]
