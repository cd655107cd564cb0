"""A timm `VisionTransformer` object → the reference ViT's config, read from the module's structure (timm not imported).

Why by structure: timm builds each name from keyword arguments spread over dozens of registry functions; the
module that comes out says plainly which options are on (a LayerScale, a register token, an attention-pool
head). The same reading serves two uses: the table of timm names shipped with vit-edge (made once from real timm
by `tests/fixtures/make_timm_golden.py`) and models handed to `vit_edge.export(model, ...)` in memory.

What the reference cannot express is named (`UnsupportedFeature`), so a user hears which feature is missing.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import nn

from vit_edge.core.errors import UnsupportedModelError
from vit_edge.core.types import InputSpec
from vit_edge.models.config import ViTConfig

__all__ = ["UnsupportedFeature", "timm_config", "is_timm_vit", "timm_input_spec", "eva_state_to_reference",
           "is_eva_state_dict"]

_TIMM_VIT_CLASSES = ("VisionTransformer", "VisionTransformerDistilled", "Eva")
_NORMS = {"LayerNorm": "layer", "LayerNorm2d": "layer", "RmsNorm": "rms"}


class UnsupportedFeature(UnsupportedModelError):
    """A timm option the reference ViT has no counterpart for (RoPE, post-norm blocks, RMSNorm, ...)."""


# A module of another library (timm), read by its attributes: typed as what it is, not as torch's Module.
Foreign = Any


def is_timm_vit(module: nn.Module) -> bool:
    """A timm VisionTransformer (by class and module path: no timm import needed)."""
    cls = type(module)
    return cls.__name__ in _TIMM_VIT_CLASSES and cls.__module__.startswith("timm.")


def _kind(module: Foreign) -> str:
    return "none" if module is None else type(module).__name__


def _need(condition: bool, feature: str) -> None:
    if not condition:
        raise UnsupportedFeature(feature)


def _layer_norm_eps(module: Foreign, where: str) -> float:
    """A norm's eps; LayerNorm or timm's RmsNorm (with a weight), else the feature is named."""
    _need(_kind(module) in _NORMS or isinstance(module, nn.LayerNorm), f"{_kind(module)} normalisation ({where})")
    _need(getattr(module, "weight", None) is not None, f"a norm without a weight ({where})")
    return float(module.eps)


def _norm_kind(module: Foreign) -> str:
    return "layer" if isinstance(module, nn.LayerNorm) else _NORMS.get(_kind(module), "layer")


def _activation(act: Foreign) -> str:
    name = type(act).__name__
    if name == "QuickGELU":
        return "quick_gelu"
    if name in ("GELUTanh",) or (name == "GELU" and getattr(act, "approximate", "none") == "tanh"):
        return "gelu_tanh"
    if name == "GELU":
        return "gelu"
    if name == "SiLU":
        return "silu"
    raise UnsupportedFeature(f"{name} activation")


@dataclass(frozen=True)
class _Mlp:
    """A block's MLP as the reference builds it: kind (mlp, or glu for timm's gated MLPs), width, activation."""

    kind: str
    hidden_dim: int
    act: str
    bias: bool = True  # False: neither linear has a bias (AIMv2)
    norm: bool = False  # a LayerNorm before fc2 (Eva's scale_mlp)


@dataclass(frozen=True)
class _Block:
    """What every block of the model shares (timm builds them alike; one that differs is refused)."""

    num_heads: int
    qkv_bias: bool
    proj_bias: bool
    qk_norm: bool
    ln_eps: float
    init_values: float | None  # LayerScale's, when the block has one
    mlp: _Mlp
    norm: str = "layer"  # LayerNorm, or "rms" (RMSNorm everywhere: AIMv2)
    attn_out_norm: bool = False  # a LayerNorm on the attention output (EVA-02 CLIP's scale_attn_inner)


@dataclass(frozen=True)
class _PatchEmbed:
    """The patch embedding (or a hybrid ResNetV2 stem with its projection) and the input size it was built for."""

    patch_size: int
    patch_stride: int  # 0: the patch size (no overlap)
    patch_bias: bool
    img_size: tuple[int, int]
    in_chans: int = 3
    patch_norm: bool = False
    hybrid: tuple[int, ...] | None = None
    hybrid_width: int = 64


@dataclass(frozen=True)
class _Pool:
    """How the tokens are pooled; with timm's AttentionPoolLatent (MAP), its own head count and MLP."""

    global_pool: str
    include_prefix: bool = False
    act: str | None = None  # the attention pool's MLP activation (the reference uses the blocks')
    heads: int = 0
    mlp_dim: int = 0


@dataclass(frozen=True)
class _Head:
    """The pooling, the final norms and the classifier (0 classes: no head, the pooled embedding)."""

    pool: _Pool
    num_classes: int
    fc_norm: bool
    final_norm: bool


@dataclass(frozen=True)
class _Rope:
    """Rotary position embeddings on q and k (DINOv3's, or EVA-02's and PE's axial ones)."""

    kind: str
    temperature: float
    rotate_half: bool
    grid_offset: float = 0.0
    ref_grid: tuple[int, int] | None = None
    xy: bool = False


@dataclass(frozen=True)
class _Trunk:
    """The model's width and depth and the tokens before the patches."""

    embed_dim: int
    depth: int
    class_token: bool
    reg_tokens: int
    no_embed_class: bool
    pre_norm: bool
    distilled: bool = False
    abs_pos_embed: bool = True


def _mlp(mlp: Foreign, allow_norm: bool = False) -> _Mlp:
    """The MLP's kind, width and activation; a LayerNorm before fc2 (timm's scale_mlp) is expressed only with
    `allow_norm` (Eva blocks), and checked here once for every MLP kind."""
    norm = getattr(mlp, "norm", None)
    if _kind(norm) in ("Identity", "none"):
        return _mlp_kind(mlp)
    _need(allow_norm, f"a norm inside the {type(mlp).__name__} MLP (scale_mlp)")
    _layer_norm_eps(norm, "the MLP")
    return replace(_mlp_kind(mlp), norm=True)


def _mlp_kind(mlp: Foreign) -> _Mlp:
    kind = type(mlp).__name__
    if kind == "Mlp":
        return _Mlp("mlp", mlp.fc1.out_features, _activation(mlp.act), _mlp_bias(mlp.fc1, mlp.fc2))
    if kind == "GluMlp":
        _need(not getattr(mlp, "gate_last", True) and getattr(mlp, "chunk_dim", -1) == -1,
              "a GLU MLP with the gate last")
        return _Mlp("glu", mlp.fc1.out_features, _activation(mlp.act), _mlp_bias(mlp.fc1, mlp.fc2))
    if kind == "SwiGLU":  # fc1_g and fc1_x, packed into one fc1 as [gate, x] on load: act(gate) · x
        _need((mlp.fc1_g.bias is None) == (mlp.fc1_x.bias is None), "a SwiGLU MLP with one of two input biases")
        return _Mlp("glu", 2 * mlp.fc1_g.out_features, _activation(mlp.act), _mlp_bias(mlp.fc1_g, mlp.fc2))
    raise UnsupportedFeature(f"{kind} MLP")


def _mlp_bias(fc1: Foreign, fc2: Foreign) -> bool:
    """Both MLP linears with biases (the default) or neither (AIMv2)."""
    _need((fc1.bias is None) == (fc2.bias is None), "an MLP with a bias on one of its two linears")
    return fc1.bias is not None


def _block(block: Foreign) -> _Block:
    _need(type(block).__name__ == "Block", f"{type(block).__name__} blocks (post-norm or parallel blocks)")
    attn = block.attn
    _need(type(attn).__name__ == "Attention", f"{type(attn).__name__} attention")
    _need(_kind(getattr(attn, "norm", None)) in ("Identity", "none"), "a norm inside attention (scale_attn_norm)")
    _need(getattr(attn, "gate", None) is None, "gated attention")
    qk_norm = _kind(attn.q_norm) != "Identity"
    if qk_norm:
        _layer_norm_eps(attn.q_norm, "qk_norm")
    ls = _kind(block.ls1)
    _need(ls in ("LayerScale", "Identity"), f"{ls} residual scaling")
    _need(_kind(getattr(block, "drop_path1", None)) in ("Identity", "DropPath", "none"), "drop path variant")
    return _Block(num_heads=attn.num_heads, qkv_bias=attn.qkv.bias is not None, proj_bias=attn.proj.bias is not None,
                  qk_norm=qk_norm, ln_eps=_layer_norm_eps(block.norm1, "blocks"),
                  init_values=float(getattr(block.ls1, "init_values", 1e-5)) if ls == "LayerScale" else None,
                  mlp=_mlp(block.mlp), norm=_norm_kind(block.norm1))


def _patch_embed(embed: Foreign) -> _PatchEmbed:
    kind = type(embed).__name__
    img_size = (int(embed.img_size[0]), int(embed.img_size[1]))
    if kind == "HybridEmbed":
        backbone = embed.backbone
        if type(backbone).__name__ == "ResNetV2":
            layers, width = tuple(len(stage.blocks) for stage in backbone.stages), backbone.stem.conv.out_channels
        elif type(backbone).__name__ == "Sequential" and hasattr(backbone, "conv"):
            layers, width = (), backbone.conv.out_channels
        else:
            raise UnsupportedFeature(f"a {type(backbone).__name__} hybrid stem (ResNetV2 stems are supported)")
        proj = embed.proj
        return _PatchEmbed(patch_size=int(proj.kernel_size[0]), patch_stride=0, patch_bias=proj.bias is not None,
                           img_size=img_size, hybrid=layers, hybrid_width=int(width))
    _need(kind == "PatchEmbed", f"{kind} patch embedding")
    patch_norm = _kind(embed.norm) != "Identity"
    if patch_norm:
        _layer_norm_eps(embed.norm, "the patch embedding")
    proj = embed.proj
    _need(proj.kernel_size[0] == proj.kernel_size[1], "non-square patches")
    stride = int(proj.stride[0])
    return _PatchEmbed(patch_size=int(proj.kernel_size[0]), patch_stride=0 if stride == proj.kernel_size[0] else stride,
                       patch_bias=proj.bias is not None, img_size=img_size, in_chans=int(proj.in_channels),
                       patch_norm=patch_norm)


def _attn_pool(attn_pool: Foreign, include_prefix: bool) -> _Pool:
    """timm's AttentionPoolLatent (SigLIP's and PE's MAP head): one latent, its own head count and MLP width."""
    _need(type(attn_pool).__name__ == "AttentionPoolLatent", f"{type(attn_pool).__name__} pooling")
    _need(attn_pool.latent.shape[1] == 1 and attn_pool.pos_embed is None and attn_pool.mlp is not None,
          "an attention-pool head with several latents or its own position embedding")
    _need(_kind(attn_pool.q_norm) == "Identity", "qk_norm in the attention-pool head")
    _need(type(attn_pool.mlp).__name__ == "Mlp", "an attention-pool head with another MLP")
    _layer_norm_eps(attn_pool.norm, "the attention-pool head")
    return _Pool("map", include_prefix, _activation(attn_pool.mlp.act), int(attn_pool.num_heads),
                 int(attn_pool.mlp.fc1.out_features))


def _head(model: Foreign) -> _Head:
    """Pooling, norms and classifier; an Eva's attention pool reads the prefix tokens too (timm's Eva.pool)."""
    pool = _Pool(model.global_pool or "token")
    attn_pool = getattr(model, "attn_pool", None)
    if attn_pool is not None:
        eva = type(model).__name__ == "Eva"
        pool = _attn_pool(attn_pool, eva or bool(getattr(model, "pool_include_prefix", False)))
    _need(pool.global_pool in ("token", "avg", "max", "avgmax", "map"), f"'{pool.global_pool}' pooling")
    head = model.head
    num_classes = head.out_features if isinstance(head, nn.Linear) else 0
    _need(_kind(getattr(model, "head_drop", None)) in ("Dropout", "Identity", "none"), "a head with extra layers")
    return _Head(pool, num_classes, fc_norm=_kind(model.fc_norm) != "Identity",
                 final_norm=_kind(model.fc_norm) != "Identity" or _kind(model.norm) != "Identity")


def _config(trunk: _Trunk, embed: _PatchEmbed, block: _Block, head: _Head, rope: _Rope | None) -> ViTConfig:
    """The reference's config from what the modules say. The attention-pool head's MLP is built as the blocks'
    (kind and activation), so another is refused; its sizes that equal the blocks' stay 0 ('as the blocks')."""
    pool, mlp = head.pool, block.mlp
    _need((pool.act or mlp.act) == mlp.act and (pool.global_pool != "map" or mlp.kind == "mlp"),
          "an attention-pool MLP unlike the blocks' MLP")
    height, width = embed.img_size
    rope = rope or _NO_ROPE
    return ViTConfig(
        img_size=height if height == width else (height, width), patch_size=embed.patch_size,
        in_chans=embed.in_chans, num_classes=head.num_classes, embed_dim=trunk.embed_dim, depth=trunk.depth,
        num_heads=block.num_heads, mlp_hidden_dim=mlp.hidden_dim, qkv_bias=block.qkv_bias, ln_eps=block.ln_eps,
        norm=block.norm, patch_norm=embed.patch_norm, mlp_bias=mlp.bias, distilled=trunk.distilled,
        patch_stride=embed.patch_stride, patch_bias=embed.patch_bias, class_token=trunk.class_token,
        reg_tokens=trunk.reg_tokens, no_embed_class=trunk.no_embed_class, pre_norm=trunk.pre_norm,
        final_norm=head.final_norm, fc_norm=head.fc_norm, global_pool=pool.global_pool,
        init_values=block.init_values, qk_norm=block.qk_norm, act=mlp.act, mlp=mlp.kind, proj_bias=block.proj_bias,
        hybrid=embed.hybrid, hybrid_width=embed.hybrid_width, rope=rope.kind, rope_temperature=rope.temperature,
        rope_rotate_half=rope.rotate_half, rope_grid_offset=rope.grid_offset, rope_ref_grid=rope.ref_grid,
        rope_xy=rope.xy, mlp_norm=mlp.norm, attn_out_norm=block.attn_out_norm, abs_pos_embed=trunk.abs_pos_embed,
        attn_pool_heads=0 if pool.heads == block.num_heads else pool.heads,
        attn_pool_mlp_dim=0 if pool.mlp_dim == mlp.hidden_dim else pool.mlp_dim,
        pool_include_prefix=pool.include_prefix)


_NO_ROPE = _Rope("none", temperature=100.0, rotate_half=True)  # ViTConfig's defaults: no rotary embedding


def _rope(rope: Foreign) -> _Rope | None:
    """timm's RoPE module → the reference's rope options; DINOv3's and EVA-02's (PE's) layouts are expressed."""
    kind = _kind(rope)
    if kind == "none":
        return None
    if kind == "RotaryEmbeddingCat":
        return _rope_cat(rope)
    _need(kind == "RotaryEmbeddingDinoV3", f"{kind} rotary position embeddings")
    _need(rope.normalize_coords == "separate" and float(rope.grid_offset) == 0.0 and rope.grid_indexing == "ij",
          "DINOv3 rotary embeddings with another coordinate normalisation, offset or indexing")
    _need(rope.temperature is not None and rope.min_period is None and rope.max_period is None,
          "DINOv3 rotary embeddings with min/max periods")
    return _Rope("dinov3", float(rope.temperature), bool(rope.rotate_half))


def _rope_cat(rope: Foreign) -> _Rope:
    """EVA-02's (and PE's) axial rotary embedding: patch indices, inverse-frequency bands, a reference grid."""
    _need(not rope.in_pixels and getattr(rope, "grid_type", "index") == "index" and not rope.linear_bands,
          "pixel-frequency rotary embeddings")
    ref = (int(rope.ref_feat_shape[0]), int(rope.ref_feat_shape[1])) if rope.ref_feat_shape is not None else None
    return _Rope("eva", float(rope.temperature), bool(rope.rotate_half), float(rope.grid_offset), ref,
                 rope.grid_indexing == "xy")


def _eva_qkv_bias(attn: Foreign) -> bool:
    """Whether q/k/v have a bias: EvaAttention keeps q_bias and v_bias apart, timm's AttentionRope (PE) in qkv."""
    if attn.qkv is None:
        return attn.q_proj.bias is not None
    if type(attn).__name__ == "AttentionRope":
        return attn.qkv.bias is not None
    _need(not getattr(attn, "qkv_bias_separate", False) or attn.q_bias is None, "a separately added qkv bias")
    return attn.q_bias is not None


def _eva_block(block: Foreign) -> _Block:
    _need(type(block).__name__ == "EvaBlock", f"{type(block).__name__} blocks (post-norm Eva blocks)")
    attn = block.attn
    _need(type(attn).__name__ in ("EvaAttention", "AttentionRope"), f"{type(attn).__name__} attention")
    _need(getattr(attn, "num_kv_heads", attn.num_heads) == attn.num_heads, "grouped-query attention")
    _need(attn.head_dim * attn.num_heads == block.norm1.normalized_shape[0], "an attention head dimension of its own")
    out_norm = _kind(attn.norm) != "Identity"
    if out_norm:
        _need(_layer_norm_eps(attn.norm, "the attention output") == block.norm1.eps, "an attention-output norm eps "
              "unlike the blocks'")
    _need(_kind(attn.q_norm) == "Identity" and getattr(attn, "gate", None) is None, "qk_norm or gated attention")
    _need(getattr(block, "gamma_1", None) is not None or getattr(block, "gamma_2", None) is None,
          "LayerScale on the MLP only")
    return _Block(num_heads=attn.num_heads, qkv_bias=_eva_qkv_bias(attn), proj_bias=attn.proj.bias is not None,
                  qk_norm=False, ln_eps=_layer_norm_eps(block.norm1, "blocks"),
                  init_values=1e-5 if getattr(block, "gamma_1", None) is not None else None,
                  mlp=_mlp(block.mlp, allow_norm=True), attn_out_norm=out_norm)


def _eva_config(model: Foreign) -> ViTConfig:
    """An `Eva` (EVA-01/02, DINOv3, PE): the blocks, the rotary embeddings where it has them, and the optional
    absolute position embedding."""
    _need(not getattr(model, "rope_mixed", False), "mixed (learned) rotary frequencies")
    reg = model.reg_token.shape[1] if getattr(model, "reg_token", None) is not None else 0
    trunk = _Trunk(embed_dim=int(model.embed_dim), depth=len(model.blocks), class_token=model.cls_token is not None,
                   reg_tokens=int(reg), no_embed_class=bool(getattr(model, "no_embed_class", False)),
                   pre_norm=_kind(model.norm_pre) != "Identity", abs_pos_embed=model.pos_embed is not None)
    rope, embed = _rope(getattr(model, "rope", None)), _patch_embed(model.patch_embed)
    blocks = [_eva_block(block) for block in model.blocks]
    _need(all(b == blocks[0] for b in blocks), "blocks that differ from one another")
    _need(rope is None or all(bool(getattr(b.attn, "rotate_half", False)) == rope.rotate_half for b in model.blocks),
          "attention and rotary embeddings with different rotation layouts")
    return _config(trunk, embed, blocks[0], _head(model), rope)


def eva_state_to_reference(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """An Eva state dict in the reference's names: gamma_1/2 → ls1/ls2.gamma, q_bias and v_bias → one qkv.bias with
    k's zero between them (Eva's k_bias is a zero buffer); other keys as they are."""
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if key.endswith(".gamma_1") or key.endswith(".gamma_2"):
            out[key[: -len("gamma_1")] + ("ls1.gamma" if key.endswith("1") else "ls2.gamma")] = value
        elif key.endswith(".attn.q_bias"):
            v_bias = state[key[: -len("q_bias")] + "v_bias"]
            out[key[: -len("q_bias")] + "qkv.bias"] = torch.cat([value, torch.zeros_like(value), v_bias])
        elif key.endswith(".attn.q_proj.weight") or key.endswith(".attn.q_proj.bias"):  # EVA-02 B/L: unfused
            k_key, v_key = key.replace("q_proj", "k_proj"), key.replace("q_proj", "v_proj")
            k_part = state[k_key] if k_key in state else torch.zeros_like(value)  # no k bias
            out[key.replace("q_proj", "qkv")] = torch.cat([value, k_part, state[v_key]])
        elif ".attn.k_proj." in key or ".attn.v_proj." in key:
            continue
        elif key.endswith(".mlp.fc1_g.weight") or key.endswith(".mlp.fc1_g.bias"):
            out[key.replace("fc1_g", "fc1")] = torch.cat([value, state[key.replace("fc1_g", "fc1_x")]])
        elif not (key.endswith(".attn.v_bias") or key.endswith(".attn.k_bias") or ".mlp.fc1_x." in key):
            out[key] = value
    return out


def is_eva_state_dict(state: dict[str, Any]) -> bool:
    return any(key in state for key in ("blocks.0.gamma_1", "blocks.0.attn.q_bias", "blocks.0.mlp.fc1_g.weight",
                                        "blocks.0.attn.q_proj.weight"))


def timm_config(model: Foreign) -> ViTConfig:
    """The reference ViT's config for a timm VisionTransformer or Eva; UnsupportedFeature names what does not map."""
    if not is_timm_vit(model):
        raise UnsupportedModelError(f"{type(model).__name__} is not a timm VisionTransformer")
    if type(model).__name__ == "Eva":
        return _eva_config(model)
    _need(model.pos_embed is not None, "no absolute position embedding (rotary or none)")
    _need(not getattr(model, "dynamic_img_pad", False), "dynamic image padding")
    trunk = _Trunk(embed_dim=int(model.embed_dim), depth=len(model.blocks), class_token=model.cls_token is not None,
                   reg_tokens=int(getattr(model, "num_reg_tokens", 0)), no_embed_class=bool(model.no_embed_class),
                   pre_norm=_kind(model.norm_pre) != "Identity",
                   distilled=type(model).__name__ == "VisionTransformerDistilled")
    embed = _patch_embed(model.patch_embed)
    blocks = [_block(block) for block in model.blocks]
    _need(all(b == blocks[0] for b in blocks), "blocks that differ from one another")
    config = _config(trunk, embed, blocks[0], _head(model), None)
    for norm_name in ("norm", "fc_norm", "norm_pre", "patch_embed.norm"):
        norm = model.get_submodule(norm_name) if norm_name != "patch_embed.norm" else getattr(
            model.patch_embed, "norm", None)
        if _kind(norm) not in ("Identity", "none"):
            _need(_layer_norm_eps(norm, norm_name) == config.ln_eps, f"a {norm_name} eps unlike the blocks'")
            _need(_norm_kind(norm) == config.norm, f"a {norm_name} of another kind than the blocks' norms")
    return config


def timm_input_spec(pretrained_cfg: dict[str, Any]) -> InputSpec:
    """The input spec timm's pretrained_cfg (a plain dict of timm's) gives: mean, std, interpolation, crop_pct and
    input_size."""
    _, height, width = pretrained_cfg.get("input_size", (3, 224, 224))
    return InputSpec(img_size=height if height == width else (height, width),
                     mean=tuple(pretrained_cfg.get("mean", (0.485, 0.456, 0.406))),
                     std=tuple(pretrained_cfg.get("std", (0.229, 0.224, 0.225))),
                     interpolation=pretrained_cfg.get("interpolation", "bicubic"),
                     crop_pct=float(pretrained_cfg.get("crop_pct", 0.875)))
