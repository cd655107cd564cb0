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
from dataclasses import dataclass

import torch
from torch import nn

__all__ = ["ROPES", "RopeGrid", "RotaryEmbedding", "as_half_layout", "dinov3_tables", "rope_tables"]

ROPES = ("none", "dinov3", "eva")


@dataclass(frozen=True)
class RopeGrid:
    """Where each patch sits for the rotation: the grid, an offset, a reference grid the positions are rescaled
    to (EVA-02: the pretraining grid), and whether the column coordinate comes first ('xy', Perception Encoder)."""

    grid: tuple[int, int]
    offset: float = 0.0
    reference: tuple[int, int] | None = None
    xy: bool = False


def _coordinates(kind: str, where: RopeGrid) -> torch.Tensor:
    """(patches, 2) coordinates, rows then columns (columns first with `xy`), in timm's float32 arithmetic."""
    if kind == "dinov3":  # patch centres over each axis's length, mapped to [-1, 1]
        axes = [(torch.arange(0.5, side, dtype=torch.float32) + where.offset) / float(side) for side in where.grid]
    else:  # EVA-02: patch indices (+ offset), rescaled so that the grid spans the reference grid
        axes = [torch.arange(side, dtype=torch.int64).to(torch.float32) + where.offset for side in where.grid]
        if where.reference is not None:
            axes = [axis / side * ref for axis, side, ref in zip(axes, where.grid, where.reference)]
    coords = torch.stack(torch.meshgrid(axes, indexing="ij"), dim=-1)
    if kind == "dinov3":
        coords = 2.0 * coords - 1.0
    if where.xy:
        coords = coords.flip(-1)
    return coords.flatten(0, 1)


def rope_tables(kind: str, where: RopeGrid, head_dim: int, temperature: float,
                rotate_half: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """(sin, cos), each (rows · columns, head_dim): head_dim / 4 frequencies per axis, rows' angles then columns'."""
    if head_dim % 4:
        raise ValueError(f"rotary embeddings need a head dimension divisible by 4, got {head_dim}")
    quarter = head_dim // 4
    coords = _coordinates(kind, where)
    if kind == "dinov3":  # periods temperature^(2i / (d/2)); angle 2π · x / period
        periods = temperature ** (2.0 * torch.arange(quarter, dtype=torch.float32) / (head_dim // 2))
        angles = (2 * math.pi * coords[:, :, None] / periods[None, None, :]).flatten(1)
    else:  # timm's freq_bands: 1 / temperature^(i / quarter); angle x · band
        bands = 1.0 / (temperature ** (torch.arange(0, quarter, 1, dtype=torch.int64).to(torch.float32) / quarter))
        angles = (coords[:, :, None] * bands).flatten(1)
    sin, cos = angles.sin(), angles.cos()
    if rotate_half:
        return torch.cat([sin, sin], dim=-1), torch.cat([cos, cos], dim=-1)
    return sin.repeat_interleave(2, -1), cos.repeat_interleave(2, -1)


def dinov3_tables(grid: tuple[int, int], head_dim: int, temperature: float,
                  rotate_half: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """DINOv3's tables for `grid` (timm's RotaryEmbeddingDinoV3 with its defaults)."""
    return rope_tables("dinov3", RopeGrid(grid), head_dim, temperature, rotate_half)


class RotaryEmbedding(nn.Module):
    """Rotates the patch tokens of q or k (..., tokens, head_dim): (batch, heads, …) or, for ExecuTorch, heads
    folded into the batch; the first `prefix` tokens stay."""

    sin: torch.Tensor
    cos: torch.Tensor

    def __init__(self, kind: str, where: RopeGrid, head_dim: int, prefix: int, temperature: float,
                 rotate_half: bool = True) -> None:
        super().__init__()
        self.prefix = prefix
        self.rotate_half = rotate_half
        sin, cos = rope_tables(kind, where, head_dim, temperature, rotate_half)
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


def as_half_layout(num_heads: int, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Interleaved rotation (EVA-02's pairs 2i, 2i+1) rewritten as rotate-half on the same weights: within each
    head, q's and k's channels are reordered evens first, then odds, in the qkv projection's rows.

    Why: q·k is unchanged when q and k are permuted alike, and the permuted rotation is rotate-half, which is
    slices of unit stride; the interleaved one needs stride-2 slices, which XNNPACK leaves outside its partition.
    """
    out = dict(state)
    for key, value in state.items():
        if not (key.endswith(".attn.qkv.weight") or key.endswith(".attn.qkv.bias")):
            continue
        dim = value.shape[0] // 3
        head_dim = dim // num_heads
        order = torch.cat([torch.arange(0, head_dim, 2), torch.arange(1, head_dim, 2)])
        per_head = torch.cat([order + head * head_dim for head in range(num_heads)])
        rows = torch.cat([per_head, per_head + dim, torch.arange(2 * dim, 3 * dim)])  # q and k reordered, v kept
        out[key] = value[rows]
    return out
