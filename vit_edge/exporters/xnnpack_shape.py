"""The ViT's forward in the shapes ExecuTorch's XNNPACK partitioner takes, with the same numbers.

ExecuTorch 1.4's partitioner has no LayerNorm, and leaves `unbind` (squeeze_copy) and the expand that a 4-D
`torch.matmul` decomposes into on portable kernels; each such op cuts the graph into another delegate (62 for
ViT-Ti). Rewritten here, on a copy, module by module:
- LayerNorm → mean and variance as two linears with a constant 1/D weight, then sub/mul/rsqrt/add (RMSNorm:
  the mean of x² alike);
- attention → its own (B·H, T, d) layout (`Attention.fold_heads_into_batch`: q, k, v sliced from the qkv output,
  Q·Kᵀ and attn·V as 3-D `torch.bmm`); the same forward as every other target's, and, when the model is INT8,
  the same quantizers;
- GELU's tanh approximation → written out (the partitioner would run the exact GELU instead).
The parameters and the INT8 scales are shared with the model, so the artifact computes what was verified.
"""
from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from vit_edge.models.layers import Attention, RMSNorm

__all__ = ["xnnpack_shaped"]


class LinearMeanLayerNorm(nn.Module):
    """LayerNorm over the last dimension, its mean and variance computed by a linear with weight 1/D."""

    average: torch.Tensor

    def __init__(self, norm: nn.LayerNorm) -> None:
        super().__init__()
        dim = int(norm.normalized_shape[-1])
        self.eps = float(norm.eps)
        self.weight, self.bias = norm.weight, norm.bias
        self.register_buffer("average", torch.full((1, dim), 1.0 / dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        centered = x - F.linear(x, self.average)
        scaled = centered * torch.rsqrt(F.linear(centered * centered, self.average) + self.eps)
        if self.weight is not None:
            scaled = scaled * self.weight
        return scaled + self.bias if self.bias is not None else scaled


class LinearMeanRMSNorm(nn.Module):
    """RMSNorm (AIMv2) with the mean of x² computed by a linear with weight 1/D, as for LayerNorm above."""

    average: torch.Tensor

    def __init__(self, norm: RMSNorm) -> None:
        super().__init__()
        dim = int(norm.weight.shape[0])
        self.eps, self.weight = norm.eps, norm.weight
        self.register_buffer("average", torch.full((1, dim), 1.0 / dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(F.linear(x * x, self.average) + self.eps) * self.weight


class TanhGELU(nn.Module):
    """GELU's tanh approximation written out: ExecuTorch 1.4 lowers aten.gelu to XNNPACK's exact (erf) GELU
    whatever its `approximate` says, 6e-4 away from SigLIP's own activation (measured); tanh is delegated."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 0.5 * x * (1.0 + torch.tanh(0.7978845608028654 * (x + 0.044715 * x * x * x)))


def xnnpack_shaped(model: nn.Module) -> nn.Module:
    """A copy of `model` with LayerNorms and attention blocks rewritten as above (other modules shared as copied)."""
    model = copy.deepcopy(model)
    for module in model.modules():
        if isinstance(module, Attention):
            module.fold_heads_into_batch()
    _replace(model, nn.LayerNorm, LinearMeanLayerNorm)
    _replace(model, RMSNorm, LinearMeanRMSNorm)
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.GELU) and child.approximate == "tanh":
                setattr(parent, name, TanhGELU())
    return model


def _replace(model: nn.Module, kind: type[nn.Module], rewrite: type[nn.Module]) -> None:
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is kind:
                setattr(parent, name, rewrite(child))
