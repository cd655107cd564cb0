"""The ViT's forward in the shapes ExecuTorch's XNNPACK partitioner takes, with the same numbers.

ExecuTorch 1.4's partitioner has no LayerNorm, and leaves `unbind` (squeeze_copy) and the expand that a 4-D
`torch.matmul` decomposes into on portable kernels; each such op cuts the graph into another delegate (62 for
ViT-Ti). Rewritten here, on a copy, module by module:
- LayerNorm → mean and variance as two linears with a constant 1/D weight, then sub/mul/rsqrt/add (RMSNorm:
  the mean of x² alike);
- attention → q, k, v sliced from the qkv output and the heads folded into the batch, so Q·Kᵀ and attn·V are
  3-D batch matmuls (`torch.bmm`); their quantizers, when the model is INT8, are the same modules;
- GELU's tanh approximation → written out (the partitioner would run the exact GELU instead).
The parameters and the INT8 scales are shared with the model, so the artifact computes what was verified.
"""
from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from vit_edge.models.vit import Attention, RMSNorm

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


class BatchMatMul(nn.Module):
    """A (quantized) attention matmul on 3-D tensors as one `torch.bmm`, keeping the module's quantizers."""

    def __init__(self, matmul: nn.Module) -> None:
        super().__init__()
        self.matmul = matmul

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        a_quant, b_quant = getattr(self.matmul, "a_quant", None), getattr(self.matmul, "b_quant", None)
        if a_quant is not None and b_quant is not None:  # an INT8 matmul (QuantMatMul): the same quantizers
            a, b = a_quant(a), b_quant(b)
        out = torch.bmm(a, b)
        output_quant = getattr(self.matmul, "output_quant", None)
        return output_quant(out) if output_quant is not None else out


class SlicedAttention(nn.Module):
    """Attention with the heads in the batch dimension: (B·H, T, d) tensors from slices of the qkv output."""

    def __init__(self, attention: Attention) -> None:
        super().__init__()
        self.num_heads, self.head_dim, self.scale = attention.num_heads, attention.head_dim, attention.scale
        self.qkv, self.proj, self.softmax = attention.qkv, attention.proj, attention.softmax
        self.q_norm, self.k_norm = attention.q_norm, attention.k_norm
        self.rope = attention.rope  # works on (B·H, T, d) as on (B, H, T, d)
        self.qk, self.av = BatchMatMul(attention.qk), BatchMatMul(attention.av)

    def _heads(self, x: torch.Tensor, batch: int, tokens: int) -> torch.Tensor:
        return x.reshape(batch, tokens, self.num_heads, self.head_dim).permute(0, 2, 1, 3).reshape(
            batch * self.num_heads, tokens, self.head_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_merging(x, None)[0]

    def forward_merging(self, x: torch.Tensor, size: torch.Tensor | None,
                        queries: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """As Attention.forward_merging: the output and the keys averaged over heads (ToMe's metric)."""
        batch, tokens, dim = x.shape
        qkv = self.qkv(x)
        asking = tokens if queries is None else queries
        q = self.q_norm(self._heads(qkv[:, :asking, :dim], batch, asking))
        k = self.k_norm(self._heads(qkv[..., dim : 2 * dim], batch, tokens))
        v = self._heads(qkv[..., 2 * dim :], batch, tokens)
        if self.rope is not None:
            q, k = self.rope(q), self.rope(k)
        logits = self.qk(q * self.scale, k.transpose(1, 2))
        if size is not None:  # proportional attention: the log-size of each key, for every head
            log_size = torch.log(size).reshape(batch, 1, 1, tokens).expand(batch, self.num_heads, 1, tokens)
            logits = logits + log_size.reshape(batch * self.num_heads, 1, tokens)
        out = self.av(self.softmax(logits), v).reshape(batch, self.num_heads, asking, self.head_dim)
        keys = k.reshape(batch, self.num_heads, tokens, self.head_dim).mean(dim=1)
        return self.proj(out.permute(0, 2, 1, 3).reshape(batch, asking, dim)), keys


def xnnpack_shaped(model: nn.Module) -> nn.Module:
    """A copy of `model` with LayerNorms and attention blocks rewritten as above (other modules shared as copied)."""
    model = copy.deepcopy(model)
    _replace(model, Attention, SlicedAttention)  # first: the attention's own norms (qk-norm) are rewritten next
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
