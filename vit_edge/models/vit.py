"""The reference Vision Transformer (Dosovitskiy et al., 2021), written for export and quantization.

Why our own: every matmul the quantizer needs (qkv, Q·Kᵀ, attn·V, proj, fc1, fc2) is a named module, the graph
uses only ops that ONNX, OpenVINO and LiteRT lower well, and the state-dict names match timm's, so timm
checkpoints load into it without timm installed.

The config grows the options of timm's own `VisionTransformer` that deployed families use, each with timm's
default: LayerScale (DeiT-III, DINOv2), register tokens, no class token with average or attention pooling
(SigLIP's MAP head), `fc_norm`, CLIP's pre-norm, `no_embed_class`, `qk_norm`, GELU variants, packed SwiGLU
(DINOv2-g), any patch size and stride, non-square inputs, no head (the pooled embedding is the output), a
hybrid ResNet stem and TransReID's side-information embedding.

Where the output reads only the class (and distillation) token, the last block computes only those tokens as
queries (`head_tokens_only`): the same output, about 7 % less work at depth 12; `every_token` gives the plain graph back
for calibration, so INT8 scales do not depend on it.
"""
from __future__ import annotations

import operator
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from itertools import accumulate
from typing import TYPE_CHECKING, Any, cast

import torch
import torch.nn.functional as F
from torch import nn

from vit_edge.core.options import OUTPUTS  # one list for the CLI, the API options and the model
from vit_edge.models.rope import ROPES, RopeGrid, RotaryEmbedding

if TYPE_CHECKING:
    from vit_edge.models.merging import TokenMerge

__all__ = ["ViTConfig", "VisionTransformer", "MatMul", "every_token", "resample_pos_embed", "POOLS", "ACTIVATIONS",
           "MLPS", "NORMS", "OUTPUTS", "RMSNorm"]

POOLS = ("token", "avg", "max", "avgmax", "map", "token_avg")  # token_avg: [class token, mean of patches]
ACTIVATIONS = ("gelu", "gelu_tanh", "quick_gelu", "silu")
MLPS = ("mlp", "glu")  # glu: timm's SwiGLUPacked (fc1 → [x, gate] → act(x) · gate → fc2)
NORMS = ("layer", "rms")  # LayerNorm, or RMSNorm (AIMv2): every norm of the model is of the one kind

Size = tuple[int, int]
# bounds on what a config may ask for: the largest ViTs deployed are far inside them (ViT-22B aside)
MAX_IMAGE_SIDE = 8192
MAX_TOKENS = 65536
MAX_PARAMETERS = 20_000_000_000
MAX_CLASSES = 1_000_000


def to_hw(size: int | Size | list[int]) -> Size:
    """An int or (height, width) pair as (height, width)."""
    if isinstance(size, int):
        return (size, size)
    height, width = size
    return (int(height), int(width))


@dataclass(frozen=True)
class ViTConfig:
    """Architecture of a ViT: everything needed to rebuild it from a state dict (timm's option names)."""

    img_size: int | Size = 224  # an int for square inputs, (height, width) otherwise
    patch_size: int = 16
    in_chans: int = 3
    num_classes: int = 1000  # 0: no head, the pooled (and normed) embedding is the output
    embed_dim: int = 768
    depth: int = 12
    num_heads: int = 12
    mlp_hidden_dim: int = 3072
    qkv_bias: bool = True
    ln_eps: float = 1e-6  # every norm's eps (LayerNorm or RMSNorm)
    norm: str = "layer"  # "rms": RMSNorm everywhere (AIMv2)
    patch_norm: bool = False  # a norm on the patch embeddings before the position embedding (AIMv2)
    mlp_bias: bool = True  # False: fc1 and fc2 without biases (AIMv2)
    distilled: bool = False  # DeiT: a distillation token after the class token
    dist_head: bool = True  # with `distilled`: a second head on it, averaged with the first (timm, HF ...WithTeacher)
    patch_stride: int = 0  # 0: the patch size (no overlap); TransReID uses overlapping patches (stride 12 of 16)
    patch_bias: bool = True  # CLIP's patch embedding has no bias
    class_token: bool = True
    reg_tokens: int = 0  # register tokens (DINOv2-reg, Darcet et al. 2024), after the class token
    no_embed_class: bool = False  # DeiT-III/DINOv2-reg: position embeddings cover the patches only
    pre_norm: bool = False  # CLIP: a LayerNorm after the position embedding (timm's norm_pre)
    final_norm: bool = True
    fc_norm: bool = False  # the final norm after pooling instead of before (timm: on for avg pooling)
    global_pool: str = "token"
    init_values: float | None = None  # LayerScale (DeiT-III, DINOv2) when set
    qk_norm: bool = False
    act: str = "gelu"
    mlp: str = "mlp"
    proj_bias: bool = True
    sie_embeds: int = 0  # TransReID: camera × view side-information embeddings
    sie_scale: float = 3.0  # TransReID's sie_xishu
    sie_index: int = 0  # the camera/view entry folded in at export (the artifact has one image input)
    bnneck: bool = False  # TransReID: a BatchNorm1d on the global feature (its test-time output)
    pre_logits: bool = False  # a Linear + tanh on the pooled feature (HF ViTModel's pooler, timm's pre_logits)
    hybrid: tuple[int, ...] | None = None  # a ResNetV2 stem (timm's vit_*_r50_*/r26): blocks per stage
    hybrid_width: int = 64  # the stem's channels (64 in every released hybrid)
    merge: int = 0  # ToMe's r: tokens merged after each block's attention (0: none); see models/merging.py
    rope: str = "none"  # rotary position embeddings on q and k's patch tokens: "dinov3" (see models/rope.py)
    rope_temperature: float = 100.0
    rope_rotate_half: bool = True  # sin/cos laid out [f, f] and x rotated by halves (else interleaved pairs)
    rope_grid_offset: float = 0.0
    rope_ref_grid: Size | None = None  # EVA-02: positions rescaled to the pretraining grid
    rope_xy: bool = False  # the column coordinate first (Perception Encoder)
    mlp_norm: bool = False  # a LayerNorm inside the MLP before fc2 (EVA-02's scale_mlp)
    attn_out_norm: bool = False  # a LayerNorm on the attention output before proj (EVA-02 CLIP's scale_attn_inner)
    abs_pos_embed: bool = True  # False: no learned position embedding (DINOv3: rotary only)
    pos_embed_resize: str = "bicubic"  # how another grid resamples it: "bilinear" for SigLIP 2 (as its processor)
    attn_pool_heads: int = 0  # the attention-pool head's own head count (Perception Encoder: 8); 0: num_heads
    attn_pool_mlp_dim: int = 0  # its MLP width; 0: mlp_hidden_dim
    pool_include_prefix: bool = False  # the pooling reads the prefix tokens too (timm's Eva: PE's MAP head)
    attn_pool_mlp: bool = True  # False: the attention-pool head ends at its projection (transformers' AIMv2 head)
    # what forward returns: "pooled" (logits, or the pooled embedding without a head), "tokens" (the normed patch
    # tokens, (B, N, D): timm's forward_features minus the prefix) or "features" (the same as (B, D, rows, cols))
    output: str = "pooled"
    # with a dense output: the blocks whose tokens are returned (timm's forward_intermediates(norm=True), as DPT-style
    # heads read them), each after the final norm, stacked after the batch: (B, L, N, D) or (B, L, D, rows, cols)
    layers: tuple[int, ...] = ()
    # The last block computes only the tokens the output reads (class-token pooling: the class and distillation
    # tokens); every token is still a key and value there, so the output is the same. False: the plain graph.
    head_tokens_only: bool = True

    def __post_init__(self) -> None:
        if self.global_pool not in POOLS:
            raise ValueError(f"global_pool '{self.global_pool}' is not one of {', '.join(POOLS)}")
        if self.act not in ACTIVATIONS:
            raise ValueError(f"activation '{self.act}' is not one of {', '.join(ACTIVATIONS)}")
        if self.mlp not in MLPS:
            raise ValueError(f"mlp '{self.mlp}' is not one of {', '.join(MLPS)}")
        if self.pos_embed_resize not in ("bicubic", "bilinear"):
            raise ValueError(f"pos_embed_resize '{self.pos_embed_resize}' is not bicubic or bilinear")
        if self.norm not in NORMS:
            raise ValueError(f"norm '{self.norm}' is not one of {', '.join(NORMS)}")
        if self.output not in OUTPUTS:
            raise ValueError(f"output '{self.output}' is not one of {', '.join(OUTPUTS)}")
        if self.layers and (self.output == "pooled" or list(self.layers) != sorted(set(self.layers))
                            or not 0 <= self.layers[0] <= self.layers[-1] < self.depth):
            raise ValueError(f"layers {list(self.layers)} must be increasing block indices below depth {self.depth}, "
                             "with a dense output (tokens or features)")
        if self.output != "pooled" and self.merge:
            raise ValueError("token merging changes the tokens a dense output would return; use one or the other")
        if self.rope not in ROPES:
            raise ValueError(f"rope '{self.rope}' is not one of {', '.join(ROPES)}")
        if self.rope != "none" and ((self.embed_dim // max(self.num_heads, 1)) % 4 or self.merge):
            raise ValueError("rotary embeddings need a head dimension divisible by 4 and no token merging (a merged "
                             "token has no single position to rotate by)")
        if self.global_pool in ("token", "token_avg") and not self.class_token:
            raise ValueError("global_pool 'token' needs a class token")
        positive = {"patch_size": self.patch_size, "in_chans": self.in_chans, "embed_dim": self.embed_dim,
                    "depth": self.depth, "num_heads": self.num_heads, "mlp_hidden_dim": self.mlp_hidden_dim}
        for name, value in positive.items():
            if value <= 0:
                raise ValueError(f"{name} must be positive, got {value}")
        if min(self.num_classes, self.reg_tokens, self.patch_stride, self.attn_pool_heads, self.attn_pool_mlp_dim) < 0:
            raise ValueError("num_classes, reg_tokens, patch_stride and the attention-pool sizes cannot be negative")
        if self.attn_pool_heads and self.embed_dim % self.attn_pool_heads:
            raise ValueError(f"embed_dim {self.embed_dim} is not divisible by attn_pool_heads {self.attn_pool_heads}")
        if self.embed_dim % self.num_heads:
            raise ValueError(f"embed_dim {self.embed_dim} is not divisible by num_heads {self.num_heads}")
        if self.sie_embeds and not 0 <= self.sie_index < self.sie_embeds:
            raise ValueError(f"sie_index {self.sie_index} is outside the {self.sie_embeds} side-information rows")
        if min(self.image_hw) < self.patch_size:
            raise ValueError(f"img_size {self.img_size} is smaller than patch_size {self.patch_size}")
        self._check_bounds()
        self._check_merge()

    def _check_merge(self) -> None:
        from vit_edge.models.merging import max_merge

        most = max_merge(self.num_tokens, self.num_prefix_tokens)
        if not 0 <= self.merge <= most:
            raise ValueError(f"merge {self.merge} is more than {self.num_patches} patch tokens allow: a block merges "
                             f"at most half of them ({most})")

    def _check_bounds(self) -> None:
        """Refuse sizes no exportable ViT has before any tensor is allocated (a typo could ask for terabytes)."""
        if max(self.image_hw) > MAX_IMAGE_SIDE:
            raise ValueError(f"img_size {self.img_size} is over {MAX_IMAGE_SIDE} px per side, beyond any ViT")
        if self.pos_embed_len > MAX_TOKENS:
            raise ValueError(f"{self.pos_embed_len} tokens (img_size {self.img_size}, patch {self.patch_size}) is "
                             f"over {MAX_TOKENS}, beyond what the exporters and runtimes handle")
        params = self.depth * (4 * self.embed_dim**2 + 2 * self.embed_dim * self.mlp_hidden_dim)
        if params > MAX_PARAMETERS:
            raise ValueError(f"the blocks would hold {params / 1e9:.0f} billion parameters (depth {self.depth}, dim "
                             f"{self.embed_dim}, mlp {self.mlp_hidden_dim}); vit-edge stops at "
                             f"{MAX_PARAMETERS / 1e9:.0f} billion")
        if self.num_classes > MAX_CLASSES:
            raise ValueError(f"num_classes {self.num_classes} is over {MAX_CLASSES}")

    @property
    def image_hw(self) -> Size:
        return to_hw(self.img_size)

    @property
    def stride(self) -> int:
        return self.patch_stride or self.patch_size

    @property
    def feature_reduction(self) -> int:
        """How much the hybrid stem shrinks the image before the patch embedding (1 without one)."""
        return 1 if self.hybrid is None else (4 * 2 ** max(len(self.hybrid) - 1, 0))

    @property
    def grid(self) -> Size:
        """Patch grid (rows, columns)."""
        reduction = self.feature_reduction  # the hybrid stem's 'same' padding rounds up
        height, width = (-(-side // reduction) for side in self.image_hw)
        return ((height - self.patch_size) // self.stride + 1, (width - self.patch_size) // self.stride + 1)

    @property
    def num_patches(self) -> int:
        rows, cols = self.grid
        return rows * cols

    @property
    def num_prefix_tokens(self) -> int:
        return int(self.class_token) + int(self.distilled) + self.reg_tokens

    @property
    def num_tokens(self) -> int:
        return self.num_patches + self.num_prefix_tokens

    @property
    def merge_schedule(self) -> list[int]:
        """Tokens merged by each block (ToMe's constant r, capped as the tokens run out)."""
        from vit_edge.models.merging import merge_schedule

        return merge_schedule(self.merge, self.num_tokens, self.num_prefix_tokens, self.depth)

    @property
    def tokens_after_merge(self) -> list[int]:
        """Tokens each block's MLP computes on, once that block has merged (what the runtime sees)."""
        return list(accumulate(self.merge_schedule, operator.sub, initial=self.num_tokens))[1:]

    @property
    def pos_embed_len(self) -> int:
        if not self.abs_pos_embed:
            return 0
        return self.num_patches + (0 if self.no_embed_class else self.num_prefix_tokens)

    @property
    def pooled_dim(self) -> int:
        return 2 * self.embed_dim if self.global_pool == "token_avg" else self.embed_dim

    @property
    def output_dim(self) -> int:
        return self.num_classes or self.pooled_dim

    def with_(self, **changes: Any) -> "ViTConfig":
        return replace(self, **changes)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        if isinstance(self.img_size, tuple):
            data["img_size"] = list(self.img_size)
        if self.hybrid is not None:
            data["hybrid"] = list(self.hybrid)
        if self.rope_ref_grid is not None:
            data["rope_ref_grid"] = list(self.rope_ref_grid)
        data["layers"] = list(self.layers)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "ViTConfig":
        known = {name: data[name] for name in cls.__dataclass_fields__ if name in data}
        if isinstance(known.get("img_size"), list):
            known["img_size"] = to_hw(known["img_size"])
        if isinstance(known.get("rope_ref_grid"), list):
            known["rope_ref_grid"] = to_hw(known["rope_ref_grid"])
        if known.get("hybrid") is not None:
            known["hybrid"] = tuple(int(n) for n in known["hybrid"])
        if "layers" in known:
            known["layers"] = tuple(int(n) for n in known["layers"])
        return cls(**known)


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
    """A matmul of two activations as a module, so Q·Kᵀ and attn·V can be found, observed and quantized by name."""

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.matmul(a, b)


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
    """Multi-head self-attention with the two activation matmuls as named `qk` and `av` modules."""

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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_merging(x, None)[0]

    def forward_merging(self, x: torch.Tensor, size: torch.Tensor | None,
                        queries: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The output and ToMe's metric (keys averaged over heads); with `size`, proportional attention; with
        `queries`, only the first that many tokens ask (every token is still a key and value)."""
        batch, tokens, dim = x.shape
        qkv = self.qkv(x).reshape(batch, tokens, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        if queries is not None:
            q = q[:, :, :queries]
        q, k = self.q_norm(q), self.k_norm(k)
        if self.rope is not None:
            q, k = self.rope(q), self.rope(k)
        logits = self.qk(q * self.scale, k.transpose(-2, -1))
        if size is not None:  # a merged key stands for size[j] patches
            logits = logits + torch.log(size).reshape(batch, 1, 1, tokens)
        out = self.av(self.softmax(logits), v).transpose(1, 2).reshape(batch, q.shape[2], dim)
        return self.proj(self.norm(out)), k.mean(dim=1)


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


class Block(nn.Module):
    """Pre-LayerNorm encoder block, with LayerScale where the config has it."""

    def __init__(self, cfg: ViTConfig, merge: "TokenMerge | None" = None) -> None:
        super().__init__()
        self.token_merge = merge
        self.norm1 = make_norm(cfg, cfg.embed_dim)
        self.attn = Attention(cfg)
        self.ls1 = LayerScale(cfg.embed_dim, cfg.init_values) if cfg.init_values is not None else nn.Identity()
        self.norm2 = make_norm(cfg, cfg.embed_dim)
        self.mlp = Mlp(cfg, cfg.mlp_hidden_dim, glu=cfg.mlp == "glu", inner_norm=cfg.mlp_norm, bias=cfg.mlp_bias)
        self.ls2 = LayerScale(cfg.embed_dim, cfg.init_values) if cfg.init_values is not None else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.ls1(self.attn(self.norm1(x)))
        return x + self.ls2(self.mlp(self.norm2(x)))

    def forward_merging(self, x: torch.Tensor, size: torch.Tensor | None,
                        queries: int | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """ToMe's block: attention weighted by token size, then merge (when this block merges), then the MLP.

        With `queries`, only the first that many tokens come out: no merge then, as prefix tokens never merge.
        """
        attended, keys = self.attn.forward_merging(self.norm1(x), size, queries)
        residual = x if queries is None else x[:, :queries]
        x = residual + self.ls1(attended)
        if self.token_merge is not None and queries is None:
            x, size = self.token_merge(x, size, keys)
        return x + self.ls2(self.mlp(self.norm2(x))), size


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


def _token_merges(cfg: ViTConfig) -> list["TokenMerge | None"]:
    """Each block's merge step (None where it merges nothing)."""
    from vit_edge.models.merging import TokenMerge

    entering = [cfg.num_tokens] + cfg.tokens_after_merge[:-1]
    return [TokenMerge(r, tokens, cfg.num_prefix_tokens) if r else None
            for r, tokens in zip(cfg.merge_schedule, entering)]


class VisionTransformer(nn.Module):
    """ViT and its families: classifier (logits) or encoder (pooled embedding when `num_classes` is 0)."""

    def __init__(self, cfg: ViTConfig) -> None:
        super().__init__()
        self.cfg = cfg  # an image size that is no multiple of the patch: the convolution floors, as in timm
        dim = cfg.embed_dim
        self.patch_embed = PatchEmbed(cfg)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim)) if cfg.class_token else None
        self.dist_token = nn.Parameter(torch.zeros(1, 1, dim)) if cfg.distilled else None
        self.reg_token = nn.Parameter(torch.zeros(1, cfg.reg_tokens, dim)) if cfg.reg_tokens else None
        self.pos_embed = nn.Parameter(torch.zeros(1, cfg.pos_embed_len, dim)) if cfg.abs_pos_embed else None
        self.sie_embed = nn.Parameter(torch.zeros(cfg.sie_embeds, 1, dim)) if cfg.sie_embeds else None
        self.norm_pre = make_norm(cfg, cfg.embed_dim, cfg.pre_norm)
        self.blocks = nn.ModuleList(Block(cfg, merge) for merge in _token_merges(cfg))
        self.norm = make_norm(cfg, cfg.embed_dim, cfg.final_norm and not cfg.fc_norm)
        self.attn_pool = AttentionPool(cfg) if cfg.global_pool == "map" else None
        self.fc_norm = make_norm(cfg, cfg.embed_dim, cfg.final_norm and cfg.fc_norm)
        self.bottleneck = nn.BatchNorm1d(dim) if cfg.bnneck else None
        self.pre_logits = PreLogits(cfg.pooled_dim) if cfg.pre_logits else None
        self.head = nn.Linear(cfg.pooled_dim, cfg.num_classes) if cfg.num_classes else None
        with_dist_head = cfg.distilled and cfg.dist_head and cfg.num_classes
        self.head_dist = nn.Linear(dim, cfg.num_classes) if with_dist_head else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Truncated-normal(0.02) init as in ViT/DeiT; the head is not zeroed so random models have distinct logits."""
        for param in (self.cls_token, self.dist_token, self.reg_token, self.pos_embed, self.sie_embed):
            if param is not None:
                nn.init.trunc_normal_(param, std=0.02)
        if self.attn_pool is not None:
            nn.init.trunc_normal_(self.attn_pool.latent, std=0.02)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.LayerNorm):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def _embed(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x)
        batch = x.shape[0]
        prefix = [t.expand(batch, -1, -1) for t in (self.cls_token, self.dist_token, self.reg_token) if t is not None]
        if self.pos_embed is None:
            x = torch.cat(prefix + [x], dim=1)
        elif self.cfg.no_embed_class:
            x = torch.cat(prefix + [x + self.pos_embed], dim=1)
        else:
            x = torch.cat(prefix + [x], dim=1) + self.pos_embed
        if self.sie_embed is not None:
            x = x + self.cfg.sie_scale * self.sie_embed[self.cfg.sie_index]
        return self.norm_pre(x)

    def _pool(self, x: torch.Tensor) -> torch.Tensor:
        pool = self.cfg.global_pool
        if pool == "token":
            return x[:, 0]
        if pool == "token_avg":
            return torch.cat([x[:, 0], x[:, self.cfg.num_prefix_tokens :].mean(dim=1)], dim=-1)
        if pool == "map" and self.attn_pool is not None:
            return self.attn_pool(x if self.cfg.pool_include_prefix else x[:, self.cfg.num_prefix_tokens :])
        x = x[:, self.cfg.num_prefix_tokens :]
        if pool == "avg":
            return x.mean(dim=1)
        if pool == "max":
            return x.amax(dim=1)
        return 0.5 * (x.amax(dim=1) + x.mean(dim=1))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Tokens after the last block and the final norm: (batch, prefix + patches, dim)."""
        return self._encode(x, None)

    def output_tokens(self) -> int | None:
        """How many leading tokens the output reads (class token, DeiT's distillation token), None for all."""
        if not self.cfg.head_tokens_only or self.cfg.global_pool != "token" or self.cfg.output != "pooled":
            return None
        return 2 if self.head_dist is not None else 1

    def _encode(self, x: torch.Tensor, last_queries: int | None) -> torch.Tensor:
        """The blocks and the final norm; the last block computes only `last_queries` tokens when given."""
        x = self._embed(x)
        last = len(self.blocks) - 1
        size: torch.Tensor | None = None
        for index, block in enumerate(self.blocks):
            queries = last_queries if index == last else None
            if self.cfg.merge or queries is not None:
                x, size = cast(Block, block).forward_merging(x, size, queries)
            else:
                x = block(x)
        return self.norm(x)

    def _intermediates(self, x: torch.Tensor) -> torch.Tensor:
        """The tokens after each block in `layers`, final norm applied, stacked: (B, L, tokens, D)."""
        x = self._embed(x)
        taken = []
        for index, block in enumerate(self.blocks[: self.cfg.layers[-1] + 1]):
            x = block(x)
            if index in self.cfg.layers:
                taken.append(self.norm(x))
        return torch.stack(taken, dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.cfg.layers:
            stacked = self._intermediates(x)
            return self._dense(stacked.flatten(0, 1)).unflatten(0, (stacked.shape[0], stacked.shape[1]))
        x = self._encode(x, self.output_tokens())
        if self.cfg.output != "pooled":
            return self._dense(x)
        pooled = self.fc_norm(self._pool(x))
        if self.bottleneck is not None:
            pooled = self.bottleneck(pooled)
        if self.pre_logits is not None:
            pooled = self.pre_logits(pooled)
        if self.head is None:
            return pooled
        logits = self.head(pooled)
        if self.head_dist is not None:
            logits = (logits + self.head_dist(x[:, 1])) / 2
        return logits

    def _dense(self, x: torch.Tensor) -> torch.Tensor:
        """The patch tokens after the final norm: (B, N, D), or as a (B, D, rows, cols) feature map."""
        tokens = x[:, self.cfg.num_prefix_tokens :]
        if self.cfg.output == "tokens":
            return tokens
        rows, cols = self.cfg.grid
        return tokens.transpose(1, 2).reshape(tokens.shape[0], tokens.shape[2], rows, cols)

    def with_layers(self, layers: list[int]) -> "VisionTransformer":
        """A copy that returns the tokens of these blocks (negative: from the end, as timm) and holds no block after
        the last of them (what the artifact computes, and all its weights); ValueError for an index out of range."""
        depth = self.cfg.depth
        wrong = [index for index in layers if not -depth <= index < depth]
        if wrong:
            raise ValueError(f"{', '.join(map(str, wrong))} out of range: the model has {depth} blocks "
                             f"(0 to {depth - 1}, or -{depth} to -1)")
        chosen = tuple(sorted({index % depth for index in layers}))
        cfg = self.cfg.with_(layers=chosen, depth=chosen[-1] + 1)
        clone = VisionTransformer(cfg)
        kept = {k: v for k, v in self.state_dict().items()
                if not k.startswith("blocks.") or int(k.split(".")[1]) < cfg.depth}
        clone.load_state_dict(kept)
        return clone.train(self.training)

    def with_merge(self, r: int) -> "VisionTransformer":
        """A copy that merges `r` tokens per block (ToMe), same weights; ValueError when the tokens do not allow it."""
        return self.reconfigured(merge=r)

    def reconfigured(self, **changes: Any) -> "VisionTransformer":
        """A copy with other config fields that keep the weights (merge, head_tokens_only); self when unchanged."""
        cfg = self.cfg.with_(**changes)
        if cfg == self.cfg:
            return self
        clone = VisionTransformer(cfg)
        clone.load_state_dict(self.state_dict())
        return clone.train(self.training)

    def with_img_size(self, img_size: int | Size, antialias: bool = True) -> "VisionTransformer":
        """A copy for another input size; position embeddings resampled bicubically (antialiased, as timm; not,
        as transformers' DINOv2), prefix tokens kept."""
        if to_hw(img_size) == self.cfg.image_hw:
            return self
        cfg = self.cfg.with_(img_size=img_size)
        clone = VisionTransformer(cfg)
        state = dict(self.state_dict())
        prefix = 0 if cfg.no_embed_class else cfg.num_prefix_tokens
        if self.pos_embed is not None:  # rotary tables are rebuilt for the new grid, not resampled
            state["pos_embed"] = resample_pos_embed(self.pos_embed.detach(), prefix, self.cfg.grid, cfg.grid,
                                                    antialias, cfg.pos_embed_resize)
        clone.load_state_dict(state)
        return clone.eval() if not self.training else clone


@contextmanager
def every_token(model: nn.Module) -> Iterator[nn.Module]:
    """The plain graph for a while (no last-block saving): INT8 calibration sees every token, so the scales are the
    plain graph's and the exported graph, which computes the head tokens alone, gives the same numbers for them."""
    if not isinstance(model, VisionTransformer) or not model.cfg.head_tokens_only:
        yield model
        return
    cfg = model.cfg
    model.cfg = cfg.with_(head_tokens_only=False)
    try:
        yield model
    finally:
        model.cfg = cfg


def resample_pos_embed(pos_embed: torch.Tensor, num_prefix: int, old_grid: int | Size,
                       new_grid: int | Size, antialias: bool = True, mode: str = "bicubic") -> torch.Tensor:
    """Bicubic (as timm) or bilinear (SigLIP 2's processor) resampling of the patch-grid part of a
    (1, prefix + rows·cols, D) position embedding."""
    (old_h, old_w), (new_h, new_w) = to_hw(old_grid), to_hw(new_grid)
    prefix, grid = pos_embed[:, :num_prefix], pos_embed[:, num_prefix:]
    if grid.shape[1] != old_h * old_w:
        raise ValueError(f"position embedding has {grid.shape[1]} grid tokens, expected {old_h}×{old_w}")
    dim = grid.shape[-1]
    grid = grid.reshape(1, old_h, old_w, dim).permute(0, 3, 1, 2).float()
    grid = F.interpolate(grid, size=(new_h, new_w), mode=mode, antialias=antialias, align_corners=False)
    grid = grid.permute(0, 2, 3, 1).reshape(1, new_h * new_w, dim).to(pos_embed.dtype)
    return torch.cat([prefix, grid], dim=1)
