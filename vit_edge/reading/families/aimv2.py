"""AIMv2 (Apple): RMSNorm throughout, bias-free SwiGLU, an attention head without a q projection or MLP.

transformers' Aimv2VisionModel returns `pooler_output` of its attention-pooling head (or, with `use_head` false, the
mean of `last_hidden_state`), RMSNorm throughout.
"""
from __future__ import annotations

from typing import Any

from vit_edge.core.errors import UnsupportedModelError
from vit_edge.reading.families.base import OPENAI_CLIP, Family, HFClass, HFReading, Options
from vit_edge.reading.families.hf_config import activation, positive_number, read_int

__all__ = ["AIMV2"]


def _aimv2_options(config: dict[str, Any]) -> Options:
    """AIMv2: RMSNorm everywhere (a norm on the patch embeddings too), no class token, SwiGLU; q/k/v, the output
    projection and the MLP have biases only as the config says; the head is one attention over the tokens with
    the learned query as it is (no q projection, no MLP), or, without it, the mean of the tokens."""
    if config.get("is_native"):
        raise UnsupportedModelError("native-resolution AIMv2 (is_native: sinusoidal positions for any grid) is not "
                                    "supported; the fixed-resolution checkpoints (aimv2-*-patch14-224/336/448) are")
    eps = positive_number(config, "rms_norm_eps", 1e-5, 1)
    bias, use_head = bool(config.get("qkv_bias", False)), config.get("use_head", True) is not False
    return dict(norm="rms", ln_eps=eps, patch_norm=True, class_token=False, qkv_bias=bias, proj_bias=bias,
                mlp="glu", mlp_hidden_dim=2 * read_int(config, "intermediate_size"), act=activation(config, "silu"),
                mlp_bias=bool(config.get("mlp_bias", False)), global_pool="map" if use_head else "avg",
                attn_pool_mlp=False)


AIMV2 = Family("aimv2", "AIMv2: RMSNorm throughout, bias-free SwiGLU and attention, average pooling", r"^aimv2_",
               fields=("norm", "patch_norm", "mlp_bias", "proj_bias", "attn_pool_mlp", "mlp"),
               hf=HFReading(("vision_model.",), _aimv2_options, 1e-5, norm=OPENAI_CLIP, renames=(
                   ("embeddings.rms_norm.", "patch_embed.norm."), ("embeddings.patch_embed.", "patch_embed.proj."),
                   ("rms_norm.", "norm."), ("head.cls_token", "attn_pool.latent"),
                   ("head.output_proj.", "attn_pool.proj.")),
                   classes=(HFClass("Aimv2VisionModel", "pooler_output",
                                    output_without_pooler="last_hidden_state.mean(1)"),)))
