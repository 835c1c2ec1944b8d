"""A stand-in for DINO (two-stage deformable DETR) on a ViTDet backbone, in plain PyTorch, with static shapes.

Structure follows detrex's `dino_vitdet` configs: a DINOv2-style ViT, ViTDet's simple feature pyramid
(p3-p6) plus DINO's 1x1 channel mapper, and DINO's deformable transformer with two-stage query
selection and iterative box refinement (no denoising queries: inference only). The input size is
fixed at build time so every level shape is a Python int: the same graph runs eagerly, cast to
fp16 / bf16, under autocast, `jit.trace`, `torch.export`, `torch.compile` and AOTInductor.
Weights are random (seeded by the caller), initialised like the original code; the few deviations,
made so that no branch of the random model is a no-op, are noted where they are made.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from sweep.models.deformable import MultiScaleDeformableAttention
from sweep.models.dino_config import PRESETS, DinoConfig, config, input_shapes
from sweep.models.vit import VisionTransformer

__all__ = ["PRESETS", "DinoConfig", "DinoDetector", "build", "config", "input_shapes"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def build(preset: str = "dino-vitdet-b", **options: Any) -> DinoDetector:
    """Build a preset; seed the global generator first (`seeded_init`) for reproducible weights."""
    return DinoDetector(config(preset, **options))


# ----------------------------------------------------------------------------------------------------------
# neck


class ChannelLayerNorm(nn.Module):
    """LayerNorm over the channels of an NCHW map (detectron2's `LayerNorm` in ViTDet's pyramid)."""

    def __init__(self, channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.layer_norm(x.permute(0, 2, 3, 1), self.weight.shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


class SimpleFeaturePyramid(nn.Module):
    """ViTDet's simple feature pyramid from the last ViT map (scales 2, 1, 0.5, plus a max-pool p6),
    followed by DINO's channel mapper (1x1 conv + GroupNorm per level) as in detrex's dino_vitdet."""

    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.scales = nn.ModuleList(
            [
                nn.ConvTranspose2d(in_dim, in_dim // 2, kernel_size=2, stride=2),  # x2 -> p3
                nn.Identity(),  # x1 -> p4
                nn.MaxPool2d(kernel_size=2, stride=2),  # x0.5 -> p5
            ]
        )
        self.lateral = nn.ModuleList()
        self.output = nn.ModuleList()
        for dim in (in_dim // 2, in_dim, in_dim):
            self.lateral.append(
                nn.Sequential(nn.Conv2d(dim, out_dim, 1, bias=False), ChannelLayerNorm(out_dim))
            )
            self.output.append(
                nn.Sequential(nn.Conv2d(out_dim, out_dim, 3, padding=1, bias=False), ChannelLayerNorm(out_dim))
            )
        groups = math.gcd(32, out_dim)
        self.mapper = nn.ModuleList(
            nn.Sequential(nn.Conv2d(out_dim, out_dim, 1), GroupNorm(groups, out_dim)) for _ in range(4)
        )
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """detectron2's c2_msra_fill for the pyramid convs, xavier for the mapper (detrex)."""
        for module in (self.lateral, self.output):
            for conv in module.modules():
                if isinstance(conv, nn.Conv2d):
                    nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
        for conv in self.mapper.modules():
            if isinstance(conv, nn.Conv2d):
                nn.init.xavier_uniform_(conv.weight)
                if conv.bias is not None:
                    nn.init.zeros_(conv.bias)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = [out(lat(scale(x))) for scale, lat, out in zip(self.scales, self.lateral, self.output, strict=True)]
        feats.append(F.max_pool2d(feats[-1], kernel_size=1, stride=2))  # LastLevelMaxPool -> p6
        return [mapper(f) for mapper, f in zip(self.mapper, feats, strict=True)]


class GroupNorm(nn.GroupNorm):
    """nn.GroupNorm through the ATen op: the functional's Python batch-size check makes jit.trace warn."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.group_norm(x, self.num_groups, self.weight, self.bias, self.eps, False)


# ----------------------------------------------------------------------------------------------------------
# head


def inverse_sigmoid(x: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    x = x.clamp(min=0, max=1)
    return torch.log(x.clamp(min=eps) / (1 - x).clamp(min=eps))


def sine_position_map(height: int, width: int, num_feats: int, temperature: float = 10000.0) -> torch.Tensor:
    """detrex `PositionEmbeddingSine(normalize=True, offset=-0.5)` for an unpadded map: [H*W, 2*num_feats]."""
    scale, eps = 2 * math.pi, 1e-6
    y = (torch.arange(1, height + 1, dtype=torch.float32) - 0.5) / (height + eps) * scale
    x = (torch.arange(1, width + 1, dtype=torch.float32) - 0.5) / (width + eps) * scale
    dim_t = temperature ** (2 * torch.div(torch.arange(num_feats), 2, rounding_mode="floor") / num_feats)
    pos_x = x[:, None] / dim_t
    pos_y = y[:, None] / dim_t
    pos_x = torch.stack((pos_x[:, 0::2].sin(), pos_x[:, 1::2].cos()), dim=2).flatten(1)  # [W, F]
    pos_y = torch.stack((pos_y[:, 0::2].sin(), pos_y[:, 1::2].cos()), dim=2).flatten(1)  # [H, F]
    pos = torch.cat([pos_y[:, None, :].expand(-1, width, -1), pos_x[None, :, :].expand(height, -1, -1)], -1)
    return pos.reshape(height * width, 2 * num_feats)


class SineBoxEmbed(nn.Module):
    """detrex `get_sine_pos_embed(exchange_xy=True)`: each box coordinate to `num_feats` sines/cosines."""

    def __init__(self, num_feats: int, temperature: float = 10000.0) -> None:
        super().__init__()
        dim_t = temperature ** (2 * torch.div(torch.arange(num_feats), 2, rounding_mode="floor") / num_feats)
        self.inv_dim_t: torch.Tensor
        self.register_buffer("inv_dim_t", 2 * math.pi / dim_t, persistent=False)

    def forward(self, boxes: torch.Tensor) -> torch.Tensor:
        """boxes [B, Q, 4] (cx, cy, w, h) -> [B, Q, 4 * num_feats] in the order (cy, cx, w, h)."""
        emb = boxes[..., None] * self.inv_dim_t  # [B, Q, 4, F]
        emb = torch.stack((emb[..., 0::2].sin(), emb[..., 1::2].cos()), dim=-1).flatten(-2)
        return torch.cat([emb[:, :, 1:2], emb[:, :, 0:1], emb[:, :, 2:]], dim=2).flatten(-2)


class Mlp(nn.Module):
    """DETR's MLP: `num_layers` linears with ReLU between them."""

    def __init__(self, in_dim: int, hidden: int, out_dim: int, num_layers: int) -> None:
        super().__init__()
        dims = [in_dim] + [hidden] * (num_layers - 1) + [out_dim]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:], strict=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = F.relu(x)
        return x


class Ffn(nn.Module):
    """Linear-ReLU-Linear with the residual added (detrex `FFN`)."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.fc2(F.relu(self.fc1(x)))


class SelfAttention(nn.Module):
    """Multi-head attention with separate q/k/v projections through SDPA (nn.MultiheadAttention's math,
    without its fast-path branches that trace and export handle differently)."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.q_proj = nn.Linear(dim, dim)
        self.k_proj = nn.Linear(dim, dim)
        self.v_proj = nn.Linear(dim, dim)
        self.out_proj = nn.Linear(dim, dim)

    def forward(self, query: torch.Tensor, query_pos: torch.Tensor) -> torch.Tensor:
        batch, tokens, dim = query.shape
        qk = query + query_pos

        def heads(t: torch.Tensor) -> torch.Tensor:
            # The head size is a Python int fixed at build time, never arithmetic on a traced size: a traced
            # `dim // num_heads` becomes a tensor op whose constant sits on the GPU once the TorchScript is
            # loaded there, and reading it back (`int(...)`) synchronizes, which breaks CUDA-graph capture.
            return t.view(batch, tokens, self.num_heads, self.head_dim).transpose(1, 2)

        out = F.scaled_dot_product_attention(heads(self.q_proj(qk)), heads(self.k_proj(qk)), heads(self.v_proj(query)))
        return query + self.out_proj(out.transpose(1, 2).reshape(batch, tokens, dim))


class EncoderLayer(nn.Module):
    """Post-norm: deformable self-attention over all pyramid tokens, norm, FFN, norm."""

    def __init__(self, cfg: DinoConfig) -> None:
        super().__init__()
        dim = cfg.hidden_dim
        self.self_attn = MultiScaleDeformableAttention(dim, cfg.transformer_heads, cfg.level_shapes, cfg.num_points)
        self.norm1 = nn.LayerNorm(dim)
        self.ffn = Ffn(dim, cfg.ffn_dim)
        self.norm2 = nn.LayerNorm(dim)

    def forward(self, src: torch.Tensor, pos: torch.Tensor, reference_points: torch.Tensor) -> torch.Tensor:
        src = self.norm1(self.self_attn(src, src, pos, reference_points))
        return self.norm2(self.ffn(src))


class DecoderLayer(nn.Module):
    """Post-norm: self-attention, norm, deformable cross-attention into the memory, norm, FFN, norm."""

    def __init__(self, cfg: DinoConfig) -> None:
        super().__init__()
        dim = cfg.hidden_dim
        self.self_attn = SelfAttention(dim, cfg.transformer_heads)
        self.norm1 = nn.LayerNorm(dim)
        self.cross_attn = MultiScaleDeformableAttention(
            dim, cfg.transformer_heads, cfg.level_shapes, cfg.num_points, box_reference=True
        )
        self.norm2 = nn.LayerNorm(dim)
        self.ffn = Ffn(dim, cfg.ffn_dim)
        self.norm3 = nn.LayerNorm(dim)

    def forward(
        self, query: torch.Tensor, memory: torch.Tensor, query_pos: torch.Tensor, reference_boxes: torch.Tensor
    ) -> torch.Tensor:
        query = self.norm1(self.self_attn(query, query_pos))
        query = self.norm2(self.cross_attn(query, memory, query_pos, reference_boxes))
        return self.norm3(self.ffn(query))


class DinoHead(nn.Module):
    """DINO's deformable transformer: encoder, two-stage top-k query selection, decoder with iterative
    box refinement. Returns the last decoder layer's class logits [B, Q, classes] and boxes [B, Q, 4]
    (normalised cx, cy, w, h), and the two-stage encoder's class logits [B, N, classes] and box-regression
    deltas [B, N, 4] for every encoder token: continuous outputs, before any top-k, that fidelity judges."""

    pos_embed: torch.Tensor
    level_index: torch.Tensor
    enc_reference_points: torch.Tensor
    proposal_invalid: torch.Tensor
    output_proposals: torch.Tensor

    def __init__(self, cfg: DinoConfig) -> None:
        super().__init__()
        dim, shapes = cfg.hidden_dim, cfg.level_shapes
        self.num_levels = len(shapes)
        self.num_queries = cfg.num_queries
        self.level_embeds = nn.Parameter(torch.empty(self.num_levels, dim))
        self.encoder = nn.ModuleList(EncoderLayer(cfg) for _ in range(cfg.enc_layers))
        self.enc_output = nn.Linear(dim, dim)
        self.enc_output_norm = nn.LayerNorm(dim)
        self.enc_class_embed = nn.Linear(dim, cfg.num_classes)
        self.enc_bbox_embed = Mlp(dim, dim, 4, 3)
        self.tgt_embed = nn.Embedding(cfg.num_queries, dim)
        self.ref_point_head = Mlp(2 * dim, dim, dim, 2)
        self.box_sine = SineBoxEmbed(dim // 2)
        self.decoder = nn.ModuleList(DecoderLayer(cfg) for _ in range(cfg.dec_layers))
        self.decoder_norm = nn.LayerNorm(dim)
        self.bbox_embed = nn.ModuleList(Mlp(dim, dim, 4, 3) for _ in range(cfg.dec_layers))
        self.class_embed = nn.Linear(dim, cfg.num_classes)  # the last layer's (the others only train)

        # Everything that depends only on the (fixed) level shapes is computed once, here.
        pos = torch.cat([sine_position_map(h, w, dim // 2) for h, w in shapes])
        level_index = torch.cat([torch.full((h * w,), i, dtype=torch.long) for i, (h, w) in enumerate(shapes)])
        points, proposals = [], []
        for lvl, (h, w) in enumerate(shapes):
            ys, xs = torch.meshgrid(
                (torch.arange(h, dtype=torch.float32) + 0.5) / h,
                (torch.arange(w, dtype=torch.float32) + 0.5) / w,
                indexing="ij",
            )
            centers = torch.stack([xs.reshape(-1), ys.reshape(-1)], -1)
            points.append(centers)
            proposals.append(torch.cat([centers, torch.full_like(centers, 0.05 * 2.0**lvl)], -1))
        proposal = torch.cat(proposals)
        valid = ((proposal > 0.01) & (proposal < 0.99)).all(-1)
        proposal = torch.log(proposal / (1 - proposal)).masked_fill(~valid[:, None], float("inf"))
        reference = torch.cat(points)[None, :, None, :].expand(1, -1, self.num_levels, -1).contiguous()
        self.register_buffer("pos_embed", pos, persistent=False)  # [N, dim]
        self.register_buffer("level_index", level_index, persistent=False)  # [N]
        self.register_buffer("enc_reference_points", reference, persistent=False)  # [1, N, levels, 2]
        self.register_buffer("proposal_invalid", ~valid[None, :, None], persistent=False)  # [1, N, 1]
        self.register_buffer("output_proposals", proposal[None], persistent=False)  # [1, N, 4], logit space
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """detrex DINO: xavier for the transformer's matrices, deformable-attention's own init, normal
        level embeddings, default nn.Linear class layers with a 0.01 prior on the bias; the other
        prediction MLPs get trunc-normal (.02) weights instead of detrex's zeroed last box layer, so
        that box refinement is not a no-op."""
        transformer: tuple[nn.Module, ...] = (self.encoder, self.decoder, self.tgt_embed)
        for module in transformer:
            for p in module.parameters():
                if p.dim() > 1:
                    nn.init.xavier_uniform_(p)
        for sub in self.modules():
            if isinstance(sub, MultiScaleDeformableAttention):
                sub.reset_parameters()
        nn.init.normal_(self.level_embeds)
        predictors: tuple[nn.Module, ...] = (self.enc_output, self.enc_bbox_embed, self.ref_point_head, self.bbox_embed)
        for module in predictors:
            for sub in module.modules():
                if isinstance(sub, nn.Linear):
                    nn.init.trunc_normal_(sub.weight, std=0.02)
                    nn.init.zeros_(sub.bias)
        prior = -math.log((1 - 0.01) / 0.01)
        for linear in (self.enc_class_embed, self.class_embed):
            linear.reset_parameters()  # detrex keeps nn.Linear's default here: scores spread out
            nn.init.constant_(linear.bias, prior)

    def forward(self, feats: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        src = torch.cat([f.flatten(2).transpose(1, 2) for f in feats], dim=1)  # [B, N, dim]
        batch = src.shape[0]
        pos = (self.pos_embed + self.level_embeds[self.level_index])[None]
        memory = src
        for layer in self.encoder:
            memory = layer(memory, pos, self.enc_reference_points)

        # Two-stage: every encoder token proposes a box; the top-k by best class score seed the decoder.
        output_memory = self.enc_output_norm(self.enc_output(memory.masked_fill(self.proposal_invalid, 0.0)))
        enc_logits = self.enc_class_embed(output_memory)
        enc_deltas = self.enc_bbox_embed(output_memory)  # before the proposals (inf where invalid) are added
        enc_boxes_unact = enc_deltas + self.output_proposals
        topk = enc_logits.max(-1)[0].topk(self.num_queries, dim=1)[1]  # [B, Q]
        reference = torch.gather(enc_boxes_unact, 1, topk[..., None].expand(-1, -1, 4)).sigmoid()
        # repeat, not expand: a view of a parameter made under no_grad still says requires_grad, which
        # trips FlopCounterMode's module tracker (and copying 900 x 256 numbers costs nothing).
        query = self.tgt_embed.weight[None].repeat(batch, 1, 1)

        previous = reference
        for i, layer in enumerate(self.decoder):
            query_pos = self.ref_point_head(self.box_sine(reference))
            boxes_in = reference[:, :, None].expand(-1, -1, self.num_levels, -1)
            query = layer(query, memory, query_pos, boxes_in)
            previous = reference
            if i < len(self.decoder) - 1:  # the last refinement is recomputed below on the normed query
                reference = (self.bbox_embed[i](query) + inverse_sigmoid(reference)).sigmoid()
        hidden = self.decoder_norm(query)
        logits = self.class_embed(hidden)
        boxes = (self.bbox_embed[-1](hidden) + inverse_sigmoid(previous)).sigmoid()
        return logits, boxes, enc_logits, enc_deltas


# ----------------------------------------------------------------------------------------------------------
# detector


class DinoDetector(nn.Module):
    """image [3, H, W] in 0..255 -> (boxes [k, 4] xyxy pixels, scores [k], labels [k] int64, k = num_select;
    encoder class logits [N, classes], encoder box deltas [N, 4], N = encoder tokens).

    The first three are DINO's detections. They sit on near-ties with random weights (two-stage top-k,
    final top-k), so rounding reorders them; the last two are the two-stage encoder's outputs for every
    token, before any top-k: continuous, so a faithful variant lands close to the reference and a wrong one
    far from it. The catalog declares outputs 3 and 4 as the ones fidelity judges."""

    pixel_mean: torch.Tensor
    pixel_std: torch.Tensor
    box_scale: torch.Tensor

    def __init__(self, cfg: DinoConfig) -> None:
        super().__init__()
        self.config = cfg
        height, width = cfg.hw
        self.backbone = VisionTransformer(
            (height, width), cfg.patch_size, cfg.embed_dim, cfg.depth, cfg.num_heads, cfg.mlp_ratio, cfg.layerscale
        )
        self.neck = SimpleFeaturePyramid(cfg.embed_dim, cfg.hidden_dim)
        self.head = DinoHead(cfg)
        self.num_classes = cfg.num_classes
        self.num_select = cfg.num_select
        mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1) * 255.0
        std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1) * 255.0
        self.register_buffer("pixel_mean", mean, persistent=False)
        self.register_buffer("pixel_std", std, persistent=False)
        self.register_buffer("box_scale", torch.tensor([width, height, width, height], dtype=torch.float32),
                             persistent=False)

    def features(self, image: torch.Tensor) -> list[torch.Tensor]:
        """The p3..p6 maps the head reads: the continuous part of the model, before any top-k."""
        x = (image[None] - self.pixel_mean) / self.pixel_std
        return self.neck(self.backbone(x))

    def forward(
        self, image: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        logits, boxes, enc_logits, enc_deltas = self.head(self.features(image))
        # DINO's post-processing: top-k over all (query, class) pairs of the sigmoid scores.
        scores, index = logits.sigmoid().flatten(1).topk(self.num_select, dim=1)
        labels = torch.remainder(index, self.num_classes)
        query = torch.div(index, self.num_classes, rounding_mode="floor")
        cx, cy, w, h = boxes.unbind(-1)
        xyxy = torch.stack([cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h], dim=-1)
        xyxy = torch.gather(xyxy, 1, query[..., None].expand(-1, -1, 4)) * self.box_scale
        return xyxy[0], scores[0], labels[0], enc_logits[0], enc_deltas[0]
