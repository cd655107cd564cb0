"""Every model family as one declaration (see base.Family); this table is the one place they are listed.

Adding a family: a module here declaring its `Family` (timm name rule, note, the ViTConfig fields it needs, its
transformers reading and its authors' checkpoint layout where it has them), its entry in FAMILIES, new layers in
models/layers.py with their config fields in models/config.py, and its tests (docs/models.md says more).
"""
from __future__ import annotations

from typing import Any

from vit_edge.core.errors import ConfigError, did_you_mean
from vit_edge.models.config import ViTConfig
from vit_edge.reading.families.aimv2 import AIMV2
from vit_edge.reading.families.base import Family, HFReading, OriginalWeights
from vit_edge.reading.families.classic import (
    DEIT,
    DEIT3,
    EVA,
    FLEXIVIT,
    HYBRID,
    PATCH14,
    POOLED,
    REGISTERS,
    TEST,
    TRANSREID,
    VIT,
)
from vit_edge.reading.families.clip import CLIP, METACLIP2
from vit_edge.reading.families.depth_anything import DEPTH_ANYTHING
from vit_edge.reading.families.dinov2 import DINOV2, DINOV2_REG
from vit_edge.reading.families.dinov3 import DINOV3, LINGBOT, SAPIENS2
from vit_edge.reading.families.dpt import DPT
from vit_edge.reading.families.eva02 import EVA02, ROPE_VIT
from vit_edge.reading.families.pe import PE
from vit_edge.reading.families.siglip import SIGLIP, SIGLIP2
from vit_edge.reading.families.unsupported import UNSUPPORTED, VITAMIN

__all__ = ["Family", "HFReading", "OriginalWeights", "FAMILIES", "family", "timm_family", "config_family",
           "original_layout", "weights_hint", "refused_timm_family"]

# Searched in this order for a timm name (the first rule that matches wins; none: the plain ViT)
FAMILIES: tuple[Family, ...] = (
    DINOV3, PE, EVA02, ROPE_VIT, LINGBOT, SAPIENS2, DEIT3, DINOV2_REG, DINOV2, CLIP, SIGLIP, HYBRID, DEIT, REGISTERS,
    POOLED, EVA, AIMV2, VITAMIN, FLEXIVIT, TEST, *UNSUPPORTED, PATCH14, VIT, METACLIP2, SIGLIP2, TRANSREID,
    DEPTH_ANYTHING, DPT,
)
_BY_NAME = {entry.name: entry for entry in FAMILIES}


def family(name: str) -> Family:
    """The family of this name; ConfigError (with the nearest name) for one that is not declared."""
    if name not in _BY_NAME:
        raise ConfigError(f"unknown family '{name}'{did_you_mean(name, tuple(_BY_NAME))}")
    return _BY_NAME[name]


def timm_family(timm_name: str) -> Family:
    """The family a timm name belongs to (for `vit-edge models`, `info` and the manifest)."""
    return next((entry for entry in FAMILIES if entry.names_timm(timm_name)), VIT)


def config_family(cfg: ViTConfig) -> Family:
    """A family for models whose source does not say one (reference ViTs, checkpoints, modules)."""
    return next((entry for entry in FAMILIES if entry.recognise_config is not None and entry.recognise_config(cfg)),
                VIT)


def original_layout(state: dict[str, Any]) -> OriginalWeights | None:
    """The authors' checkpoint layout these weights are in (DINOv3's, PE's), None for timm's own names."""
    return next((entry.original_weights for entry in FAMILIES
                 if entry.original_weights is not None and entry.original_weights.recognise(state)), None)


def weights_hint(unexpected: list[str]) -> str:
    """'; these weights need X ...' when an unexpected key shows a family's own weights."""
    for entry in FAMILIES:
        if any(fragment in key for fragment in entry.weight_keys for key in unexpected):
            if entry.missing:
                return f"; these weights need {entry.missing}, which vit-edge's ViT cannot express; nearest that " \
                       f"loads: {entry.nearest}"
            return f"; these weights look like the {entry.name} family's ({entry.note}): load them with one of its " \
                   f"names (vit-edge models --family {entry.name})"
    return ""


def refused_timm_family(timm_name: str) -> Family | None:
    """The unsupported family a timm name belongs to, None when it is not one."""
    entry = timm_family(timm_name)
    return entry if entry.missing else None
