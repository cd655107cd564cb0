"""Perception Encoder (Meta; timm's vit_pe_* and the authors' own checkpoints)."""
from __future__ import annotations

from typing import Any

import torch

from vit_edge.models.config import ViTConfig
from vit_edge.reading.families.base import Family, OriginalWeights, StateDict

__all__ = ["PE", "original_pe_to_reference", "is_original_pe_state_dict"]

_PE_SWAPS = (
    ("conv1", "patch_embed.proj"), ("positional_embedding", "pos_embed"), ("transformer.resblocks.", "blocks."),
    ("ln_pre", "norm_pre"), ("ln_post", "norm"), ("ln_", "norm"), ("ls_1.gamma", "ls1.gamma"),
    ("ls_2.gamma", "ls2.gamma"), ("in_proj_", "qkv."), ("out_proj", "proj"), ("mlp.c_fc", "mlp.fc1"),
    ("mlp.c_proj", "mlp.fc2"), ("attn_pool.attn", "attn_pool"), ("attn_pool.layernorm", "attn_pool.norm"),
    ("attn_pool.probe", "attn_pool.latent"),
)


def original_pe_to_reference(state: StateDict, cfg: ViTConfig | None = None) -> StateDict:
    """A checkpoint as facebookresearch/perception_models saves it (its `visual.` tower, OpenCLIP-style names), in
    the reference's names, as timm's _convert_pe reads it: the projection `proj` (D, out) is the head, transposed,
    with a zero bias; the pool's packed in-projection splits into q and kv."""
    prefix = "visual." if any(key.startswith("visual.") for key in state) else ""
    out: StateDict = {}
    for key, value in state.items():
        key = key.replace("module.", "")
        if prefix and not key.startswith(prefix):
            continue  # the text tower
        key = key[len(prefix):]
        for old, new in _PE_SWAPS:
            key = key.replace(old, new)
        if key.startswith("attn_pool.qkv."):
            dim, param = value.shape[0] // 3, key.rsplit(".", 1)[1]
            out[f"attn_pool.q.{param}"], out[f"attn_pool.kv.{param}"] = value[:dim], value[dim:]
        elif key == "proj":
            out["head.weight"], out["head.bias"] = value.t(), torch.zeros(value.shape[1], dtype=value.dtype)
        elif key == "class_embedding":
            out["cls_token"] = value.reshape(1, 1, -1)
        else:
            out[key] = value.unsqueeze(0) if key == "pos_embed" and value.ndim == 2 else value
    return out


def is_original_pe_state_dict(state: dict[str, Any]) -> bool:
    bare = "conv1.weight" in state and "transformer.resblocks.0.ln_1.weight" in state
    return "visual.conv1.weight" in state or bare


PE = Family("pe", "Perception Encoder (core, lang, spatial): offset xy rotary embeddings; core ends in an 8-head MAP "
            "head and the image projection", r"^vit_pe_",
            fields=("rope", "rope_grid_offset", "rope_xy", "rope_ref_grid", "attn_pool_heads", "attn_pool_mlp_dim",
                    "pool_include_prefix", "pre_norm", "patch_bias"),
            original_weights=OriginalWeights(is_original_pe_state_dict, original_pe_to_reference))
