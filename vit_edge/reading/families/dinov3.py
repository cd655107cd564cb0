"""DINOv3 (timm, transformers and Meta's own checkpoints) and the timm encoders built like it (LingBot, Sapiens2).

transformers' DINOv3ViTModel returns `pooler_output`, the class token after the final norm.
"""
from __future__ import annotations

from typing import Any

import torch

from vit_edge.models.config import ViTConfig
from vit_edge.reading.families.base import (
    IMAGENET,
    Family,
    HFClass,
    HFReading,
    Options,
    OriginalWeights,
    StateDict,
)
from vit_edge.reading.families.hf_config import activation, positive_number, read_int

__all__ = ["DINOV3", "LINGBOT", "SAPIENS2", "original_dinov3_to_reference", "is_original_dinov3_state_dict"]


def _dinov3_options(config: dict[str, Any]) -> Options:
    """DINOv3: rotary embeddings (rope_theta), registers, LayerScale, no absolute position embedding, the class
    token after the final norm; k has no bias (zero in the joined qkv bias); a gated MLP is silu(gate) · up."""
    theta = positive_number(config, "rope_theta", 100.0, 1e9)
    hidden, gated = read_int(config, "intermediate_size"), bool(config.get("use_gated_mlp", False))
    return dict(init_values=1.0, reg_tokens=read_int(config, "num_register_tokens", 0, minimum=0), abs_pos_embed=False,
                rope="dinov3", rope_temperature=theta, rope_rotate_half=True, global_pool="token",
                qkv_bias=any(bool(config.get(k, True)) for k in ("query_bias", "key_bias", "value_bias")),
                mlp_bias=bool(config.get("mlp_bias", True)), proj_bias=bool(config.get("proj_bias", True)),
                mlp="glu" if gated else "mlp", mlp_hidden_dim=2 * hidden if gated else hidden,
                act=activation(config, "silu" if gated else "gelu"))


def original_dinov3_to_reference(state: StateDict, cfg: ViTConfig) -> StateDict:
    """A checkpoint as facebookresearch/dinov3 saves it, in the reference's names, as timm's filter reads it:
    storage_tokens are the registers; the k third of qkv.bias is zero (the original masks it, bias_mask); periods,
    bias_mask and mask_token are not weights; a qkv.bias on a model without one (the distilled B/L: all zeros) goes."""
    out: StateDict = {}
    for key, value in state.items():
        if key.endswith((".periods", ".bias_mask")) or key == "mask_token" or key.startswith(
                ("rope_embed.", "projectors.", "local_cls_norm")):
            continue
        if key.endswith("attn.qkv.bias"):
            if not cfg.qkv_bias:
                continue
            q, _, v = value.chunk(3, dim=-1)
            value = torch.cat([q, torch.zeros_like(q), v])
        out["reg_token" if key == "storage_tokens" else key] = value
    return out


def is_original_dinov3_state_dict(state: dict[str, Any]) -> bool:
    return "storage_tokens" in state


DINOV3 = Family("dinov3", "DINOv3: rotary position embeddings, 4 registers, LayerScale; SwiGLU from S+ up", r"_dinov3",
                fields=("rope", "rope_temperature", "rope_rotate_half", "abs_pos_embed", "reg_tokens", "init_values",
                        "mlp", "mlp_bias"),
                hf=HFReading(("dinov3_vit.",), _dinov3_options, 1e-5, norm=IMAGENET,
                             classes=(HFClass("DINOv3ViTModel", "pooler_output"),)),
                original_weights=OriginalWeights(is_original_dinov3_state_dict, original_dinov3_to_reference))
LINGBOT = Family("lingbot", "LingBot: DINOv3-style rotary ViT encoders", r"_lingbot$",
                 fields=("rope", "abs_pos_embed", "reg_tokens"))
SAPIENS2 = Family("sapiens2", "Sapiens2: human-centric DINOv3-style encoders", r"_sapiens2$")
