"""OpenAI CLIP and MetaCLIP 2 image towers (timm and transformers).

transformers' CLIPVisionModel (and MetaClip2VisionModel) returns `pooler_output` = post_layernorm(class token);
CLIPVisionModelWithProjection (MetaClip2VisionModelWithProjection) `image_embeds`.
"""
from __future__ import annotations

from typing import Any

from vit_edge.reading.families.base import OPENAI_CLIP, Family, HFClass, HFReading, Options
from vit_edge.reading.families.hf_config import activation, read_int

__all__ = ["CLIP", "METACLIP2"]


def _clip_options(config: dict[str, Any]) -> Options:
    """CLIP: pre-norm, bias-free patch embedding, post_layernorm on the pooled class token only (fc_norm)."""
    return dict(mlp_hidden_dim=read_int(config, "intermediate_size"), act=activation(config, "quick_gelu"),
                patch_bias=False, pre_norm=True, fc_norm=True)


def _clip_hf(model: str) -> HFReading:
    """The reading CLIP and MetaCLIP 2 share, for the two classes of `model` (CLIP, MetaClip2)."""
    return HFReading(("vision_model.",), _clip_options, 1e-5, norm=OPENAI_CLIP,
                     renames=(("post_layernorm.", "fc_norm."), ("visual_projection.", "head.")),
                     classes=(HFClass(f"{model}VisionModel", "pooler_output"),
                              HFClass(f"{model}VisionModelWithProjection", "image_embeds", "projection")))


CLIP = Family("clip", "CLIP image towers: pre-norm, (quick-)GELU; output is the projected embedding where timm has one",
              r"_clip_", fields=("pre_norm", "patch_bias", "fc_norm", "act"), hf=_clip_hf("CLIP"),
              search_order=1)  # after eva02 (eva02_*_clip_*), before eva (eva_giant_patch14_clip_224 is CLIP's)
METACLIP2 = Family("metaclip2", "MetaCLIP 2 image towers (transformers): CLIP's architecture", fields=CLIP.fields,
                   hf=_clip_hf("MetaClip2"))
