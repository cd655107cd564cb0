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

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, cast

import torch
import torch.nn.functional as F
from torch import nn

from vit_edge.models.config import (  # re-exported: the architecture record and its vocabularies
    ACTIVATIONS,
    MAX_IMAGE_SIDE,
    MLPS,
    NORMS,
    OUTPUTS,
    POOLS,
    Size,
    ViTConfig,
    to_hw,
)
from vit_edge.models.layers import (
    Attention,
    AttentionPool,
    LayerScale,
    MatMul,
    Mlp,
    PatchEmbed,
    PreLogits,
    RMSNorm,
    make_norm,
)

if TYPE_CHECKING:
    from vit_edge.models.merging import TokenMerge

__all__ = ["ViTConfig", "VisionTransformer", "MatMul", "every_token", "resample_pos_embed", "POOLS", "ACTIVATIONS",
           "MLPS", "NORMS", "OUTPUTS", "RMSNorm", "Attention", "LayerScale", "Block", "to_hw", "MAX_IMAGE_SIDE"]


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

    def input_grid(self, x: torch.Tensor) -> tuple[Any, Any]:
        """The patch grid of input `x`: the config's, or with `dynamic_size` the input's own (symbolic in an
        exported graph)."""
        if not self.cfg.choices.dynamic_size:
            return self.cfg.grid
        return x.shape[-2] // self.cfg.patch_size, x.shape[-1] // self.cfg.patch_size

    def _position(self, grid: tuple[Any, Any]) -> torch.Tensor | None:
        """The position embedding for `grid`: the stored table, or with `dynamic_size` the table resampled to the
        input's grid inside the graph, as the model's source does at every call (an identity at the stored grid)."""
        if self.pos_embed is None or not self.cfg.choices.dynamic_size:
            return self.pos_embed
        prefix = 0 if self.cfg.no_embed_class else self.cfg.num_prefix_tokens
        return resample_pos_embed(self.pos_embed, prefix, self.cfg.grid, grid, self.cfg.pos_embed_antialias,
                                  self.cfg.pos_embed_resize)

    def _embed(self, x: torch.Tensor) -> torch.Tensor:
        pos_embed = self._position(self.input_grid(x))
        x = self.patch_embed(x)
        batch = x.shape[0]
        prefix = [t.expand(batch, -1, -1) for t in (self.cls_token, self.dist_token, self.reg_token) if t is not None]
        if pos_embed is None:
            x = torch.cat(prefix + [x], dim=1)
        elif self.cfg.no_embed_class:
            x = torch.cat(prefix + [x + pos_embed], dim=1)
        else:
            x = torch.cat(prefix + [x], dim=1) + pos_embed
        if self.sie_embed is not None:
            x = x + self.cfg.sie_scale * self.sie_embed[self.cfg.choices.sie_index]
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
        chosen = self.cfg.choices
        if not chosen.head_tokens_only or self.cfg.global_pool != "token" or chosen.output != "pooled":
            return None
        return 2 if self.head_dist is not None else 1

    def _encode(self, x: torch.Tensor, last_queries: int | None) -> torch.Tensor:
        """The blocks and the final norm; the last block computes only `last_queries` tokens when given."""
        x = self._embed(x)
        last = len(self.blocks) - 1
        size: torch.Tensor | None = None
        for index, block in enumerate(self.blocks):
            queries = last_queries if index == last else None
            if self.cfg.choices.merge or queries is not None:
                x, size = cast(Block, block).forward_merging(x, size, queries)
            else:
                x = block(x)
        return self.norm(x)

    def _intermediates(self, x: torch.Tensor) -> torch.Tensor:
        """The tokens after each block in `layers`, final norm applied, stacked: (B, L, tokens, D)."""
        x = self._embed(x)
        taken = []
        for index, block in enumerate(self.blocks[: self.cfg.choices.layers[-1] + 1]):
            x = block(x)
            if index in self.cfg.choices.layers:
                taken.append(self.norm(x))
        return torch.stack(taken, dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        grid = self.input_grid(x)
        if self.cfg.choices.layers:
            stacked = self._intermediates(x)
            return self._dense(stacked.flatten(0, 1), grid).unflatten(0, (stacked.shape[0], stacked.shape[1]))
        x = self._encode(x, self.output_tokens())
        if self.cfg.choices.output != "pooled":
            return self._dense(x, grid)
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

    def _dense(self, x: torch.Tensor, grid: tuple[Any, Any]) -> torch.Tensor:
        """The patch tokens after the final norm: (B, N, D), or as a (B, D, rows, cols) feature map."""
        tokens = x[:, self.cfg.num_prefix_tokens :]
        if self.cfg.choices.output == "tokens":
            return tokens
        rows, cols = grid
        return tokens.transpose(1, 2).reshape(tokens.shape[0], tokens.shape[2], rows, cols)

    def with_layers(self, layers: list[int]) -> "VisionTransformer":
        """A copy that returns the tokens of these blocks (negative: from the end, as timm) and holds no block after
        the last of them (what the artifact computes, and all its weights); ValueError for an index out of range, and
        for blocks not named in order of depth (the stack is in block order: a silent reordering misleads a head)."""
        depth = self.cfg.depth
        wrong = [index for index in layers if not -depth <= index < depth]
        if wrong:
            raise ValueError(f"{', '.join(map(str, wrong))} out of range: the model has {depth} blocks "
                             f"(0 to {depth - 1}, or -{depth} to -1)")
        chosen = tuple(index % depth for index in layers)
        if list(chosen) != sorted(set(chosen)):
            ordered = ",".join(map(str, sorted(set(chosen))))
            raise ValueError(f"blocks {', '.join(map(str, chosen))} of {depth} are not each named once in order of "
                             f"depth, the order the output stacks them in; name them increasing: {ordered}")
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

    def with_img_size(self, img_size: int | Size) -> "VisionTransformer":
        """A copy for another input size; position embeddings resampled as the model's source does (bicubic,
        antialiased as timm, or not as transformers' DINOv2: `pos_embed_antialias`), prefix tokens kept."""
        if to_hw(img_size) == self.cfg.image_hw:
            return self
        cfg = self.cfg.with_(img_size=img_size)
        clone = VisionTransformer(cfg)
        state = dict(self.state_dict())
        prefix = 0 if cfg.no_embed_class else cfg.num_prefix_tokens
        if self.pos_embed is not None:  # rotary tables are rebuilt for the new grid, not resampled
            state["pos_embed"] = resample_pos_embed(self.pos_embed.detach(), prefix, self.cfg.grid, cfg.grid,
                                                    cfg.pos_embed_antialias, cfg.pos_embed_resize)
        clone.load_state_dict(state)
        return clone.eval() if not self.training else clone


@contextmanager
def every_token(model: nn.Module) -> Iterator[nn.Module]:
    """The plain graph for a while (no last-block saving): INT8 calibration sees every token, so the scales are the
    plain graph's and the exported graph, which computes the head tokens alone, gives the same numbers for them."""
    if not isinstance(model, VisionTransformer) or not model.cfg.choices.head_tokens_only:
        yield model
        return
    cfg = model.cfg
    model.cfg = cfg.with_(head_tokens_only=False)
    try:
        yield model
    finally:
        model.cfg = cfg


def resample_pos_embed(pos_embed: torch.Tensor, num_prefix: int, old_grid: int | Size,
                       new_grid: int | tuple[Any, Any], antialias: bool = True, mode: str = "bicubic") -> torch.Tensor:
    """Bicubic (as timm) or bilinear (SigLIP 2's processor) resampling of the patch-grid part of a
    (1, prefix + rows·cols, D) position embedding; `new_grid` may be symbolic (a graph for any input size)."""
    (old_h, old_w) = to_hw(old_grid)
    new_h, new_w = (new_grid, new_grid) if isinstance(new_grid, int) else new_grid
    prefix, grid = pos_embed[:, :num_prefix], pos_embed[:, num_prefix:]
    if grid.shape[1] != old_h * old_w:
        raise ValueError(f"position embedding has {grid.shape[1]} grid tokens, expected {old_h}×{old_w}")
    dim = grid.shape[-1]
    grid = grid.reshape(1, old_h, old_w, dim).permute(0, 3, 1, 2).float()
    grid = F.interpolate(grid, size=(new_h, new_w), mode=mode, antialias=antialias, align_corners=False)
    grid = grid.permute(0, 2, 3, 1).reshape(1, new_h * new_w, dim).to(pos_embed.dtype)
    return torch.cat([prefix, grid], dim=1)
