"""The reference Vision Transformer (Dosovitskiy et al., 2021), written for export and quantization.

Why our own: every matmul the quantizer needs (qkv, Q·Kᵀ, attn·V, proj, fc1, fc2) is a named module, the graph
uses only ops that ONNX, OpenVINO and LiteRT lower well, and the state-dict names match timm's, so timm
ViT/DeiT checkpoints load into it without timm installed.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["ViTConfig", "VisionTransformer", "MatMul", "resample_pos_embed"]


@dataclass(frozen=True)
class ViTConfig:
    """Architecture of a ViT: everything needed to rebuild it from a state dict."""

    img_size: int = 224
    patch_size: int = 16
    in_chans: int = 3
    num_classes: int = 1000
    embed_dim: int = 768
    depth: int = 12
    num_heads: int = 12
    mlp_hidden_dim: int = 3072
    qkv_bias: bool = True
    ln_eps: float = 1e-6
    distilled: bool = False  # DeiT: a distillation token after the class token
    dist_head: bool = True  # with `distilled`: a second head on it, averaged with the first (timm, HF ...WithTeacher)

    @property
    def grid_size(self) -> int:
        return self.img_size // self.patch_size

    @property
    def num_prefix_tokens(self) -> int:
        return 2 if self.distilled else 1

    def with_(self, **changes: Any) -> "ViTConfig":
        return replace(self, **changes)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "ViTConfig":
        known = {name: data[name] for name in cls.__dataclass_fields__ if name in data}
        return cls(**known)


class MatMul(nn.Module):
    """A matmul of two activations as a module, so Q·Kᵀ and attn·V can be found, observed and quantized by name."""

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.matmul(a, b)


class PatchEmbed(nn.Module):
    """Non-overlapping P×P patches projected to the embedding by a stride-P convolution."""

    def __init__(self, cfg: ViTConfig) -> None:
        super().__init__()
        self.proj = nn.Conv2d(cfg.in_chans, cfg.embed_dim, kernel_size=cfg.patch_size, stride=cfg.patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


class Attention(nn.Module):
    """Multi-head self-attention with the two activation matmuls as named `qk` and `av` modules."""

    def __init__(self, cfg: ViTConfig) -> None:
        super().__init__()
        if cfg.embed_dim % cfg.num_heads:
            raise ValueError(f"embed_dim {cfg.embed_dim} is not divisible by num_heads {cfg.num_heads}")
        self.num_heads = cfg.num_heads
        self.head_dim = cfg.embed_dim // cfg.num_heads
        self.scale = self.head_dim**-0.5
        self.qkv = nn.Linear(cfg.embed_dim, cfg.embed_dim * 3, bias=cfg.qkv_bias)
        self.qk = MatMul()
        self.softmax = nn.Softmax(dim=-1)
        self.av = MatMul()
        self.proj = nn.Linear(cfg.embed_dim, cfg.embed_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, tokens, dim = x.shape
        qkv = self.qkv(x).reshape(batch, tokens, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        attn = self.softmax(self.qk(q * self.scale, k.transpose(-2, -1)))
        out = self.av(attn, v).transpose(1, 2).reshape(batch, tokens, dim)
        return self.proj(out)


class Mlp(nn.Module):
    def __init__(self, cfg: ViTConfig) -> None:
        super().__init__()
        self.fc1 = nn.Linear(cfg.embed_dim, cfg.mlp_hidden_dim)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(cfg.mlp_hidden_dim, cfg.embed_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    """Pre-LayerNorm encoder block."""

    def __init__(self, cfg: ViTConfig) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(cfg.embed_dim, eps=cfg.ln_eps)
        self.attn = Attention(cfg)
        self.norm2 = nn.LayerNorm(cfg.embed_dim, eps=cfg.ln_eps)
        self.mlp = Mlp(cfg)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class VisionTransformer(nn.Module):
    """ViT / DeiT classifier; the head reads the class token (DeiT-distilled: mean of class and distillation heads)."""

    def __init__(self, cfg: ViTConfig) -> None:
        super().__init__()
        if cfg.img_size % cfg.patch_size:
            raise ValueError(f"img_size {cfg.img_size} is not a multiple of patch_size {cfg.patch_size}")
        self.cfg = cfg
        self.patch_embed = PatchEmbed(cfg)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, cfg.embed_dim))
        self.dist_token = nn.Parameter(torch.zeros(1, 1, cfg.embed_dim)) if cfg.distilled else None
        self.pos_embed = nn.Parameter(torch.zeros(1, cfg.grid_size**2 + cfg.num_prefix_tokens, cfg.embed_dim))
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.depth))
        self.norm = nn.LayerNorm(cfg.embed_dim, eps=cfg.ln_eps)
        self.head = nn.Linear(cfg.embed_dim, cfg.num_classes)
        self.head_dist = nn.Linear(cfg.embed_dim, cfg.num_classes) if cfg.distilled and cfg.dist_head else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Truncated-normal(0.02) init as in ViT/DeiT; the head is not zeroed so random models have distinct logits."""
        for param in (self.cls_token, self.dist_token, self.pos_embed):
            if param is not None:
                nn.init.trunc_normal_(param, std=0.02)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.LayerNorm):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x)
        prefix = [self.cls_token.expand(x.shape[0], -1, -1)]
        if self.dist_token is not None:
            prefix.append(self.dist_token.expand(x.shape[0], -1, -1))
        x = torch.cat(prefix + [x], dim=1) + self.pos_embed
        for block in self.blocks:
            x = block(x)
        x = self.norm(x)
        logits = self.head(x[:, 0])
        if self.head_dist is not None:
            logits = (logits + self.head_dist(x[:, 1])) / 2
        return logits

    def with_img_size(self, img_size: int) -> "VisionTransformer":
        """A copy for another input size; position embeddings resampled bicubically, prefix tokens kept."""
        if img_size == self.cfg.img_size:
            return self
        cfg = self.cfg.with_(img_size=img_size)
        clone = VisionTransformer(cfg)
        state = dict(self.state_dict())
        state["pos_embed"] = resample_pos_embed(
            self.pos_embed.detach(), cfg.num_prefix_tokens, self.cfg.grid_size, cfg.grid_size
        )
        clone.load_state_dict(state)
        return clone.eval() if not self.training else clone


def resample_pos_embed(pos_embed: torch.Tensor, num_prefix: int, old_grid: int, new_grid: int) -> torch.Tensor:
    """Bicubic resampling of the patch-grid part of a (1, prefix + old², D) position embedding (as timm does)."""
    prefix, grid = pos_embed[:, :num_prefix], pos_embed[:, num_prefix:]
    if grid.shape[1] != old_grid**2:
        raise ValueError(f"position embedding has {grid.shape[1]} grid tokens, expected {old_grid}²")
    dim = grid.shape[-1]
    grid = grid.reshape(1, old_grid, old_grid, dim).permute(0, 3, 1, 2).float()
    grid = F.interpolate(grid, size=(new_grid, new_grid), mode="bicubic", antialias=True, align_corners=False)
    grid = grid.permute(0, 2, 3, 1).reshape(1, new_grid * new_grid, dim).to(pos_embed.dtype)
    return torch.cat([prefix, grid], dim=1)
