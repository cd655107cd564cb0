"""OpenAI CLIP and MetaCLIP 2 image towers (timm and transformers)."""
from __future__ import annotations

from typing import Any

from vit_edge.reading.families.base import OPENAI_CLIP, Family, HFReading, Options
from vit_edge.reading.families.hf_config import activation, read_int

__all__ = ["CLIP", "METACLIP2"]


def _clip_options(config: dict[str, Any]) -> Options:
    """CLIP: pre-norm, bias-free patch embedding, post_layernorm on the pooled class token only (fc_norm)."""
    return dict(mlp_hidden_dim=read_int(config, "intermediate_size"), act=activation(config, "quick_gelu"),
                patch_bias=False, pre_norm=True, fc_norm=True)


_CLIP_HF = HFReading(("vision_model.",), _clip_options, 1e-5, norm=OPENAI_CLIP,
                     renames=(("post_layernorm.", "fc_norm."), ("visual_projection.", "head.")))
CLIP = Family("clip", "CLIP image towers: pre-norm, (quick-)GELU; output is the projected embedding where timm has one",
              r"_clip_", fields=("pre_norm", "patch_bias", "fc_norm", "act"), hf=_CLIP_HF)
METACLIP2 = Family("metaclip2", "MetaCLIP 2 image towers (transformers): CLIP's architecture", fields=CLIP.fields,
                   hf=_CLIP_HF)
