"""The reference ViT's layers, as timm keeps its own in `layers/`: norms, the patch embedding, attention, the MLP,
LayerScale, the attention-pool head and the pre-logits.

Every matmul the quantizer needs is a named module (qkv, `qk` for Q·Kᵀ, `av` for attn·V, proj, fc1, fc2), and
the graph uses only ops that ONNX, OpenVINO and LiteRT lower well. Attention is written once: its heads live in
their own dimension (B, H, T, d) for every target, or in the batch (B·H, T, d) where ExecuTorch's XNNPACK
partitioner needs 3-D batch matmuls (`Attention.fold_heads_into_batch`); both layouts run the same code.
"""
from __future__ import annotations

import torch
from torch import nn

from vit_edge.models.config import ViTConfig
from vit_edge.models.rope import RopeGrid, RotaryEmbedding

__all__ = ["RMSNorm", "make_norm", "MatMul", "QuickGELU", "make_activation", "PatchEmbed", "Attention", "Mlp",
           "LayerScale", "AttentionPool", "PreLogits"]


class RMSNorm(nn.Module):
    """x / sqrt(mean(x²) + eps) · weight over the last dimension (AIMv2; timm's RmsNorm, transformers' Aimv2RMSNorm),
    written as the elementwise ops every converter lowers."""

    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(dim=-1, keepdim=True) + self.eps) * self.weight


def make_norm(cfg: ViTConfig, dim: int, present: bool = True) -> nn.Module:
    """The config's norm over `dim` (Identity when not `present`)."""
    if not present:
        return nn.Identity()
    return RMSNorm(dim, cfg.ln_eps) if cfg.norm == "rms" else nn.LayerNorm(dim, eps=cfg.ln_eps)


class MatMul(nn.Module):
    """A matmul of two activations as a module, so Q·Kᵀ and attn·V can be found, observed and quantized by name.

    `batched`: the operands are 3-D and the product is one `torch.bmm` (the XNNPACK layout); INT8 subclasses
    (quantization's QuantMatMul) quantize the operands and call `product`, so both layouts keep their scales.
    """

    batched: bool = False

    def product(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.bmm(a, b) if self.batched else torch.matmul(a, b)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return self.product(a, b)


class QuickGELU(nn.Module):
    """OpenAI CLIP's x · sigmoid(1.702 x)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(1.702 * x)


def make_activation(name: str) -> nn.Module:
    if name == "gelu_tanh":
        return nn.GELU(approximate="tanh")
    if name == "quick_gelu":
        return QuickGELU()
    if name == "silu":
        return nn.SiLU()
    return nn.GELU()


class PatchEmbed(nn.Module):
    """P×P patches (stride P, or less for TransReID's overlap) projected to the embedding by a convolution."""

    def __init__(self, cfg: ViTConfig) -> None:
        super().__init__()
        if cfg.hybrid is not None:
            from vit_edge.models.hybrid import ResNetV2Stem

            self.backbone: nn.Module | None = ResNetV2Stem(cfg.in_chans, cfg.hybrid, width=cfg.hybrid_width)
            in_chans = self.backbone.out_channels
        else:
            self.backbone, in_chans = None, cfg.in_chans
        self.proj = nn.Conv2d(in_chans, cfg.embed_dim, kernel_size=cfg.patch_size, stride=cfg.stride,
                              bias=cfg.patch_bias)
        self.norm = make_norm(cfg, cfg.embed_dim, cfg.patch_norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.backbone is not None:
            x = self.backbone(x)
        return self.norm(self.proj(x).flatten(2).transpose(1, 2))


class Attention(nn.Module):
    """Multi-head self-attention with the two activation matmuls as named `qk` and `av` modules.

    The heads are a dimension of their own (B, H, T, d), or, once `fold_heads_into_batch` is called, part of the
    batch (B·H, T, d) with q, k and v sliced from the qkv output: what ExecuTorch's XNNPACK partitioner delegates
    whole. The same forward serves both, so every option (qk-norm, rotary embeddings, the output norm, ToMe's
    proportional attention, head-token queries) holds in both.
    """

    heads_in_batch: bool = False

    def __init__(self, cfg: ViTConfig) -> None:
        super().__init__()
        self.num_heads = cfg.num_heads
        self.head_dim = cfg.embed_dim // cfg.num_heads
        self.scale = self.head_dim**-0.5
        self.qkv = nn.Linear(cfg.embed_dim, cfg.embed_dim * 3, bias=cfg.qkv_bias)
        self.q_norm = make_norm(cfg, self.head_dim, cfg.qk_norm)
        self.k_norm = make_norm(cfg, self.head_dim, cfg.qk_norm)
        self.qk = MatMul()
        self.softmax = nn.Softmax(dim=-1)
        self.av = MatMul()
        self.norm = make_norm(cfg, cfg.embed_dim, cfg.attn_out_norm)
        self.proj = nn.Linear(cfg.embed_dim, cfg.embed_dim, bias=cfg.proj_bias)
        where = RopeGrid(cfg.grid, cfg.rope_grid_offset, cfg.rope_ref_grid, cfg.rope_xy)
        self.rope = (RotaryEmbedding(cfg.rope, where, self.head_dim, cfg.num_prefix_tokens, cfg.rope_temperature,
                                     cfg.rope_rotate_half) if cfg.rope != "none" else None)

    def fold_heads_into_batch(self) -> None:
        """Switch to the (B·H, T, d) layout: 3-D batch matmuls (their quantizers, when INT8, unchanged)."""
        self.heads_in_batch = True
        for matmul in (self.qk, self.av):
            if isinstance(matmul, MatMul):
                matmul.batched = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_merging(x, None)[0]

    def forward_merging(self, x: torch.Tensor, size: torch.Tensor | None,
                        queries: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The output and ToMe's metric (keys averaged over heads); with `size`, proportional attention; with
        `queries`, only the first that many tokens ask (every token is still a key and value)."""
        batch, tokens, dim = x.shape
        asking = tokens if queries is None else queries
        q, k, v = self._split(self.qkv(x), asking)
        q, k = self.q_norm(q), self.k_norm(k)
        if self.rope is not None:  # works on (B·H, T, d) as on (B, H, T, d)
            q, k = self.rope(q), self.rope(k)
        logits = self.qk(q * self.scale, k.transpose(-2, -1))
        if size is not None:  # a merged key stands for size[j] patches
            logits = logits + self._per_head(torch.log(size).reshape(batch, 1, 1, tokens))
        out = self._unfold(self.av(self.softmax(logits), v), batch)
        keys = self._unfold(k, batch).mean(dim=1)
        return self.proj(self.norm(out.transpose(1, 2).reshape(batch, asking, dim))), keys

    def _split(self, qkv: torch.Tensor, asking: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """q (the first `asking` tokens), k and v in this layout."""
        batch, tokens, _ = qkv.shape
        if not self.heads_in_batch:
            q, k, v = qkv.reshape(batch, tokens, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
            return (q if asking == tokens else q[:, :, :asking]), k, v
        dim = self.num_heads * self.head_dim
        return (self._folded(qkv[:, :asking, :dim]), self._folded(qkv[..., dim : 2 * dim]),
                self._folded(qkv[..., 2 * dim :]))

    def _folded(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, H·d) → (B·H, T, d)."""
        batch, tokens, _ = x.shape
        return x.reshape(batch, tokens, self.num_heads, self.head_dim).permute(0, 2, 1, 3).reshape(
            batch * self.num_heads, tokens, self.head_dim)

    def _unfold(self, x: torch.Tensor, batch: int) -> torch.Tensor:
        """This layout's (…, T, d) tensor as (B, H, T, d)."""
        return x.reshape(batch, self.num_heads, x.shape[-2], x.shape[-1]) if self.heads_in_batch else x

    def _per_head(self, bias: torch.Tensor) -> torch.Tensor:
        """A (B, 1, 1, T) bias on the logits of this layout (every head alike)."""
        if not self.heads_in_batch:
            return bias
        batch, tokens = bias.shape[0], bias.shape[-1]
        return bias.expand(batch, self.num_heads, 1, tokens).reshape(batch * self.num_heads, 1, tokens)


class Mlp(nn.Module):
    """fc1 → activation → fc2; with `glu`, fc1 yields [x, gate] and the activation gates (SwiGLU, packed); a norm
    before fc2 with `inner_norm` (EVA-02's scale_mlp)."""

    def __init__(self, cfg: ViTConfig, hidden: int, glu: bool, inner_norm: bool = False, bias: bool = True) -> None:
        super().__init__()
        self.glu = glu
        self.fc1 = nn.Linear(cfg.embed_dim, hidden, bias=bias)
        self.act = make_activation(cfg.act)
        inner = hidden // 2 if glu else hidden
        self.norm = make_norm(cfg, inner, inner_norm)
        self.fc2 = nn.Linear(inner, cfg.embed_dim, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.fc1(x)
        if self.glu:
            x, gate = x.chunk(2, dim=-1)
            return self.fc2(self.norm(self.act(x) * gate))
        return self.fc2(self.norm(self.act(x)))


class LayerScale(nn.Module):
    """Per-channel residual scaling (Touvron et al., 2021), timm's `ls1`/`ls2`."""

    def __init__(self, dim: int, init_values: float) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.full((dim,), float(init_values)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma


class AttentionPool(nn.Module):
    """timm's AttentionPoolLatent (SigLIP's MAP head): one learned query attends over the tokens, then an MLP.

    Its projections and matmuls are named like a block's, so they quantize like a block's.
    """

    def __init__(self, cfg: ViTConfig) -> None:
        super().__init__()
        dim = cfg.embed_dim
        self.num_heads = cfg.attn_pool_heads or cfg.num_heads
        self.head_dim = dim // self.num_heads
        self.scale = self.head_dim**-0.5
        self.latent = nn.Parameter(torch.zeros(1, 1, dim))
        self.q = nn.Linear(dim, dim, bias=cfg.qkv_bias)
        self.kv = nn.Linear(dim, dim * 2, bias=cfg.qkv_bias)
        self.qk = MatMul()
        self.softmax = nn.Softmax(dim=-1)
        self.av = MatMul()
        self.proj = nn.Linear(dim, dim)
        self.norm = make_norm(cfg, dim, cfg.attn_pool_mlp)
        self.mlp = (Mlp(cfg, cfg.attn_pool_mlp_dim or cfg.mlp_hidden_dim, glu=cfg.mlp == "glu") if cfg.attn_pool_mlp
                    else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, tokens, dim = x.shape
        q = self.q(self.latent.expand(batch, -1, -1)).reshape(batch, 1, self.num_heads, self.head_dim)
        kv = self.kv(x).reshape(batch, tokens, 2, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        k, v = kv.unbind(0)
        attn = self.softmax(self.qk(q.transpose(1, 2) * self.scale, k.transpose(-2, -1)))
        out = self.proj(self.av(attn, v).transpose(1, 2).reshape(batch, 1, dim))
        if self.mlp is not None:
            out = out + self.mlp(self.norm(out))
        return out[:, 0]


class PreLogits(nn.Module):
    """Linear + tanh before the head: timm's `pre_logits.fc` (representation_size), HF ViTModel's pooler."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.fc = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.fc(x))

