"""Multi-scale deformable attention (Deformable DETR) in plain PyTorch: `F.grid_sample`, no custom kernel.

Level shapes are Python ints fixed when the module is built, so eager, `jit.trace`, `torch.export`,
`torch.compile` and AOTInductor all see the same static graph and no shape is read from a tensor.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

LevelShapes = tuple[tuple[int, int], ...]  # (height, width) of each pyramid level, finest first


def multi_scale_deformable_attn(
    value: torch.Tensor,
    level_shapes: LevelShapes,
    sampling_locations: torch.Tensor,
    attention_weights: torch.Tensor,
) -> torch.Tensor:
    """Bilinearly sample every level at the given locations and sum with the attention weights.

    value [B, sum(H*W), heads, head_dim]; sampling_locations [B, Q, heads, levels, points, 2] in [0, 1]
    (x, y); attention_weights [B, Q, heads, levels, points]. Returns [B, Q, heads * head_dim].
    Same result as detrex's `multi_scale_deformable_attn_pytorch` (up to the order of the sum).
    """
    batch, _, heads, head_dim = value.shape
    _, queries, _, levels, points, _ = sampling_locations.shape
    # grid_sample wants one dtype; under autocast the locations stay fp32 while the value is bf16/fp16.
    if value.dtype != sampling_locations.dtype:
        value = value.to(sampling_locations.dtype)
    value_list = value.split([h * w for h, w in level_shapes], dim=1)
    grids = 2 * sampling_locations - 1
    # [B, Q, heads, L, P] -> [B*heads, 1, Q, L, P]
    # -1 rather than batch * heads (and below): no arithmetic on traced sizes, which a TorchScript loaded on
    # the GPU would compute there and read back with a synchronize (breaking CUDA-graph capture; dino.py).
    weights = attention_weights.transpose(1, 2).reshape(-1, 1, queries, levels, points)
    weights = weights.to(value.dtype)
    out: torch.Tensor | None = None
    for level, (h, w) in enumerate(level_shapes):
        # [B, H*W, heads, D] -> [B*heads, D, H, W]. contiguous() is load-bearing: on torch 2.13's CPU,
        # grid_sample on fp16/bf16 input with these strides (once it is >= ~32k elements) returns
        # NaN / 1e38 garbage; fp32 is right either way, and the copy is small.
        value_l = value_list[level].flatten(2).transpose(1, 2).reshape(-1, head_dim, h, w).contiguous()
        # [B, Q, heads, P, 2] -> [B*heads, Q, P, 2]
        grid_l = grids[:, :, :, level].transpose(1, 2).flatten(0, 1).contiguous()
        sampled = F.grid_sample(value_l, grid_l, mode="bilinear", padding_mode="zeros", align_corners=False)
        # Weighted sum level by level: detrex stacks all levels first, a copy as big as the samples.
        term = (sampled * weights[:, :, :, level]).sum(-1)  # [B*heads, D, Q]
        out = term if out is None else out + term
    assert out is not None, "no pyramid levels"
    return out.view(batch, -1, queries).transpose(1, 2).contiguous()


class MultiScaleDeformableAttention(nn.Module):
    """Deformable attention over a fixed set of pyramid levels, with the residual added (detrex style).

    Reference points are either points [B, Q, levels, 2] (`box_reference=False`, the encoder: offsets
    in pixels of each level) or boxes [B, Q, levels, 4] (`box_reference=True`, the decoder: offsets
    scaled by half the box size). The kind is fixed at build time rather than read from a shape.
    """

    def __init__(
        self,
        embed_dim: int,
        num_heads: int,
        level_shapes: LevelShapes,
        num_points: int = 4,
        box_reference: bool = False,
    ) -> None:
        super().__init__()
        if embed_dim % num_heads:
            raise ValueError(f"embed_dim {embed_dim} is not divisible by num_heads {num_heads}")
        self.embed_dim = embed_dim
        self.num_heads = num_heads
        self.level_shapes = tuple((int(h), int(w)) for h, w in level_shapes)
        self.num_levels = len(self.level_shapes)
        self.num_points = num_points
        self.box_reference = box_reference
        self.sampling_offsets = nn.Linear(embed_dim, num_heads * self.num_levels * num_points * 2)
        self.attention_weights = nn.Linear(embed_dim, num_heads * self.num_levels * num_points)
        self.value_proj = nn.Linear(embed_dim, embed_dim)
        self.output_proj = nn.Linear(embed_dim, embed_dim)
        # (width, height) of each level: divides pixel offsets into [0, 1] units.
        normalizer = torch.tensor([[w, h] for h, w in self.level_shapes], dtype=torch.float32)
        self.offset_normalizer: torch.Tensor
        self.register_buffer("offset_normalizer", normalizer, persistent=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """detrex's init (offsets start on a ring of directions per head, growing with the point index),
        except that the offset and weight projections get small random weights instead of zeros, so the
        sampling depends on the query as in a trained model and precision errors there stay visible."""
        nn.init.trunc_normal_(self.sampling_offsets.weight, std=0.02)
        thetas = torch.arange(self.num_heads, dtype=torch.float32) * (2.0 * math.pi / self.num_heads)
        grid = torch.stack([thetas.cos(), thetas.sin()], -1)
        grid = (grid / grid.abs().max(-1, keepdim=True)[0]).view(self.num_heads, 1, 1, 2)
        grid = grid.repeat(1, self.num_levels, self.num_points, 1)
        for i in range(self.num_points):
            grid[:, :, i, :] *= i + 1
        with torch.no_grad():
            self.sampling_offsets.bias.copy_(grid.view(-1))
        nn.init.trunc_normal_(self.attention_weights.weight, std=0.02)
        nn.init.zeros_(self.attention_weights.bias)
        nn.init.xavier_uniform_(self.value_proj.weight)
        nn.init.zeros_(self.value_proj.bias)
        nn.init.xavier_uniform_(self.output_proj.weight)
        nn.init.zeros_(self.output_proj.bias)

    def forward(
        self,
        query: torch.Tensor,
        value: torch.Tensor,
        query_pos: torch.Tensor,
        reference_points: torch.Tensor,
    ) -> torch.Tensor:
        """query [B, Q, C], value [B, sum(H*W), C]; returns query + attention output."""
        batch, queries, _ = query.shape
        heads, levels, points = self.num_heads, self.num_levels, self.num_points
        q = query + query_pos
        v = self.value_proj(value).view(batch, -1, heads, self.embed_dim // heads)
        offsets = self.sampling_offsets(q).view(batch, queries, heads, levels, points, 2)
        weights = self.attention_weights(q).view(batch, queries, heads, levels * points).softmax(-1)
        weights = weights.view(batch, queries, heads, levels, points)
        if not self.box_reference:
            locations = (
                reference_points[:, :, None, :, None, :]
                + offsets / self.offset_normalizer[None, None, None, :, None, :]
            )
        else:
            locations = (
                reference_points[:, :, None, :, None, :2]
                + offsets / points * reference_points[:, :, None, :, None, 2:] * 0.5
            )
        out = multi_scale_deformable_attn(v, self.level_shapes, locations, weights)
        return query + self.output_proj(out.to(query.dtype))
