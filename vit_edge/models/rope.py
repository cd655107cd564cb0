"""Rotary position embeddings (RoPE) for the patch tokens of q and k, as DINOv3 uses them (timm's `Eva` class).

Why tables: at a fixed input size the rotation angles are constants, so q·cos + rotate_half(q)·sin is elementwise
multiply-adds on two constant (patches, head_dim) tables and a slice-and-concatenate: no gathers, no complex numbers,
nothing a runtime lowers badly (TFLite keeps it in one XNNPACK partition). A new input size builds new tables for
the new grid; nothing is resampled. The tables are non-persistent buffers: state dicts are timm's.

DINOv3 (timm `RotaryEmbeddingDinoV3`, Siméoni et al. 2025): patch centres 0.5, 1.5, … of each axis divided by that
axis's length and mapped to [-1, 1]; periods temperature ** (2i / (head_dim / 2)) for i < head_dim / 4; angle
2π · coordinate / period; the row angles then the column angles; `rotate_half` lays sin and cos out as [f, f]
(else interleaved). Prefix tokens (class, registers) are not rotated.
"""
from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["ROPES", "RotaryEmbedding", "dinov3_tables"]

ROPES = ("none", "dinov3")


def dinov3_tables(grid: tuple[int, int], head_dim: int, temperature: float,
                  rotate_half: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """(sin, cos), each (rows · columns, head_dim), in timm's float32 arithmetic."""
    if head_dim % 4:
        raise ValueError(f"rotary embeddings need a head dimension divisible by 4, got {head_dim}")
    quarter = head_dim // 4
    axes = [(torch.arange(0.5, side, dtype=torch.float32)) / float(side) for side in grid]
    coords = torch.stack(torch.meshgrid(axes, indexing="ij"), dim=-1)
    coords = (2.0 * coords - 1.0).flatten(0, 1)  # (patches, 2) in [-1, 1]
    periods = temperature ** (2.0 * torch.arange(quarter, dtype=torch.float32) / (head_dim // 2))
    angles = (2 * math.pi * coords[:, :, None] / periods[None, None, :]).flatten(1)  # (patches, head_dim / 2)
    sin, cos = angles.sin(), angles.cos()
    if rotate_half:
        return torch.cat([sin, sin], dim=-1), torch.cat([cos, cos], dim=-1)
    return sin.repeat_interleave(2, -1), cos.repeat_interleave(2, -1)


class RotaryEmbedding(nn.Module):
    """Rotates the patch tokens of q or k (..., tokens, head_dim): (batch, heads, …) or, for ExecuTorch, heads
    folded into the batch; the first `prefix` tokens stay."""

    sin: torch.Tensor
    cos: torch.Tensor

    def __init__(self, grid: tuple[int, int], head_dim: int, prefix: int, temperature: float,
                 rotate_half: bool = True) -> None:
        super().__init__()
        self.prefix = prefix
        self.rotate_half = rotate_half
        sin, cos = dinov3_tables(grid, head_dim, temperature, rotate_half)
        self.register_buffer("sin", sin, persistent=False)  # (patches, head_dim): broadcast over batch and heads
        self.register_buffer("cos", cos, persistent=False)

    def _rotated(self, x: torch.Tensor) -> torch.Tensor:
        if self.rotate_half:
            first, second = x.chunk(2, dim=-1)
            return torch.cat([-second, first], dim=-1)
        even, odd = x[..., 0::2], x[..., 1::2]
        return torch.stack([-odd, even], dim=-1).reshape(x.shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2] <= self.prefix:  # the last block's class-token queries: nothing to rotate
            return x
        patches = x[..., self.prefix :, :]
        patches = patches * self.cos + self._rotated(patches) * self.sin
        return torch.cat([x[..., : self.prefix, :], patches], dim=-2) if self.prefix else patches
