"""SigLIP and SigLIP 2 image towers: no class token, an attention-pool (MAP) head or the token mean.

transformers' SiglipVisionModel and Siglip2VisionModel return `pooler_output` of the attention-pooling head; with
`vision_use_head` false transformers has no pooler_output and the reference returns the mean of `last_hidden_state`
(the post-layernormed tokens), as timm's `gap` SigLIP variants do.
"""
from __future__ import annotations

import math
from typing import Any

from vit_edge.reading.families.base import HALF, Family, HFClass, HFReading, Options
from vit_edge.reading.families.hf_config import activation, bad_config, read_int

__all__ = ["SIGLIP", "SIGLIP2"]


def _siglip_options(config: dict[str, Any]) -> Options:
    """SigLIP: no class token, post_layernorm on all tokens, then the MAP head (or the token mean without it)."""
    use_head = config.get("vision_use_head", True) is not False
    return dict(mlp_hidden_dim=read_int(config, "intermediate_size"), act=activation(config, "gelu_pytorch_tanh"),
                class_token=False, global_pool="map" if use_head else "avg")


def _siglip2_options(config: dict[str, Any]) -> Options:
    """SigLIP 2 (NaFlex): SigLIP's encoder and head, built here at a fixed patch grid (num_patches as a square,
    another with --img-size); its position table is resampled bilinearly with antialiasing, as its processor does
    for each image's grid."""
    patches, patch = read_int(config, "num_patches", 256), read_int(config, "patch_size", 16)
    side = math.isqrt(patches)
    if side * side != patches:
        raise bad_config(f"num_patches {patches} is not a square grid")
    return {**_siglip_options(config), "img_size": side * patch, "pos_embed_resize": "bilinear"}


_RENAMES = (("post_layernorm.", "norm."), ("head.probe", "attn_pool.latent"),
            ("head.attention.in_proj_", "attn_pool.in_proj_"), ("head.attention.out_proj.", "attn_pool.proj."),
            ("head.layernorm.", "attn_pool.norm."), ("head.mlp.", "attn_pool.mlp."))


def _pooled(name: str) -> HFClass:
    return HFClass(name, "pooler_output", output_without_pooler="last_hidden_state.mean(1)")


SIGLIP = Family("siglip", "SigLIP image towers: no class token, attention-pool (MAP) head or average pooling",
                r"_siglip", fields=("class_token", "global_pool", "attn_pool_heads", "attn_pool_mlp_dim", "act"),
                hf=HFReading(("vision_model.",), _siglip_options, 1e-6, norm=HALF, renames=_RENAMES,
                             classes=(_pooled("SiglipVisionModel"),)),
                recognise_config=lambda cfg: cfg.global_pool == "map")
SIGLIP2 = Family("siglip2", "SigLIP 2 image towers (transformers, NaFlex at a fixed grid): SigLIP's encoder, position "
                 "table resampled bilinearly", fields=("pos_embed_resize",),
                 hf=HFReading(("vision_model.",), _siglip2_options, 1e-6, norm=HALF, interpolation="bilinear",
                              renames=_RENAMES, antialias=True, classes=(_pooled("Siglip2VisionModel"),)))
