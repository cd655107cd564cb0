"""Depth Anything V1/V2 (transformers' `DepthAnythingForDepthEstimation`; V1 and V2 share the class): a DINOv2
encoder whose blocks `out_indices` are read after the final norm, DPT's neck, a depth head (models/dense_heads.py).

What transformers computes and the reference repeats: the backbone returns hidden state k (after block k - 1) through
its final LayerNorm (`apply_layernorm`), unreshaped (`reshape_hidden_states` false); the reassemble stage drops the
class token (no readout) and lays the patch tokens out on the grid. Any other backbone (registers, a timm backbone,
ViT) would change what those tokens are, so it is refused in one line.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable

from vit_edge.core.errors import UnsupportedModelError
from vit_edge.models.dense_heads import DepthHeadConfig, NeckConfig
from vit_edge.reading.families.base import IMAGENET, Family, HFClass, HFReading
from vit_edge.reading.families.dinov2 import dinov2_options
from vit_edge.reading.families.dpt import HF_NECK_RENAMES, rename_table
from vit_edge.reading.families.hf_config import bad_config, positive_number, read_int, read_size

__all__ = ["DEPTH_ANYTHING", "backbone_config", "read_blocks", "read_head", "HEAD_RENAMES", "V2Encoder", "V2_ENCODERS",
           "V2_HEAD_WIDTH", "V2_FACTORS", "V2_POS_OFFSET", "V2_HEAD_RENAMES", "v2_blocks"]

DEPTH_ANYTHING = Family("depth-anything", "Depth Anything V1/V2 (depth): DINOv2 encoder, DPT neck, depth head",
                        hf=HFReading(("backbone.",), dinov2_options, 1e-6, norm=IMAGENET, antialias=False,
                                     classes=(HFClass("DepthAnythingForDepthEstimation",
                                                      "predicted_depth (depth map)", "depth"),)))

# transformers' neck and head names → the reference's (models/dense_heads.py); the encoder's go through hf_compat
HEAD_RENAMES = rename_table(HF_NECK_RENAMES + [(r"head\.conv([123])\.", r"head.conv\1.")])


def backbone_config(config: dict[str, Any]) -> dict[str, Any]:
    """The DINOv2 backbone's config.json section; anything else is refused, naming what it is."""
    backbone = config.get("backbone_config")
    if config.get("use_timm_backbone") or (backbone is None and config.get("backbone")):
        raise UnsupportedModelError(f"Depth Anything with the named backbone '{config.get('backbone')}' is not "
                                    "supported; vit-edge reads a DINOv2 backbone_config (model_type 'dinov2')")
    if not isinstance(backbone, dict):
        raise bad_config("backbone_config is missing or not an object")
    kind = backbone.get("model_type")
    if kind != "dinov2":
        raise UnsupportedModelError(f"Depth Anything with a '{kind}' backbone is not supported; vit-edge reads "
                                    "DINOv2 backbones (backbone_config.model_type 'dinov2')")
    if backbone.get("apply_layernorm", True) is not True or backbone.get("reshape_hidden_states", False):
        raise UnsupportedModelError("a Depth Anything backbone without its final LayerNorm, or with reshaped hidden "
                                    "states, is not what the depth head was trained on; vit-edge reads "
                                    "apply_layernorm true, reshape_hidden_states false")
    return backbone


def read_blocks(backbone: dict[str, Any]) -> tuple[int, ...]:
    """The encoder blocks the neck reads: hidden state k of out_indices (or out_features 'stageK') is block k - 1;
    the stem (k = 0) is no block's output and is refused."""
    depth = read_int(backbone, "num_hidden_layers")
    indices = backbone.get("out_indices")
    if indices is None:
        stages = backbone.get("out_features") or []
        if not isinstance(stages, list) or not all(isinstance(s, str) and re.fullmatch(r"stage\d+", s)
                                                   for s in stages):
            raise bad_config(f"backbone out_features {stages!r} are not stage names")
        indices = [int(stage[len("stage"):]) for stage in stages]
    if not isinstance(indices, list) or not indices or not all(isinstance(i, int) for i in indices):
        raise bad_config(f"backbone out_indices {indices!r} is not a list of block indices")
    indices = [i % (depth + 1) for i in indices]  # transformers takes negative indices from the end
    if 0 in indices or indices != sorted(set(indices)):
        raise UnsupportedModelError(f"backbone out_indices {indices} must be increasing blocks 1 to {depth} (0, the "
                                    "patch embedding before any block, is not read by vit-edge)")
    return tuple(i - 1 for i in indices)


def read_head(config: dict[str, Any], embed_dim: int, patch: int) -> tuple[NeckConfig, DepthHeadConfig]:
    """The neck and head records from the top-level config, each field checked where it is read."""
    if read_size(config, "patch_size", patch) != (patch, patch):
        raise UnsupportedModelError(f"patch_size {config.get('patch_size')} differs from the backbone's {patch}: "
                                    "transformers' head would not fit its own grid")
    if read_int(config, "reassemble_hidden_size", embed_dim) != embed_dim:
        raise bad_config(f"reassemble_hidden_size {config['reassemble_hidden_size']} is not the backbone's "
                         f"hidden_size {embed_dim}")
    kind = config.get("depth_estimation_type", "relative")
    if kind not in ("relative", "metric"):
        raise bad_config(f"depth_estimation_type {kind!r} is neither 'relative' nor 'metric'")
    try:
        neck = NeckConfig(embed_dim, tuple(_ints(config, "neck_hidden_sizes", [48, 96, 192, 384])),
                          tuple(_numbers(config, "reassemble_factors", [4, 2, 1, 0.5])),
                          read_int(config, "fusion_hidden_size", 64))
    except ValueError as exc:
        raise bad_config(str(exc)) from exc
    head = DepthHeadConfig(hidden_dim=read_int(config, "head_hidden_size", 32),
                           in_index=read_int(config, "head_in_index", -1, minimum=-len(neck.channels)),
                           metric=kind == "metric", max_depth=positive_number(config, "max_depth", 1, 1e6))
    return neck, head


def _numbers(config: dict[str, Any], key: str, default: list[float]) -> list[float]:
    values = config.get(key, default)
    if not isinstance(values, list) or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                               for v in values):
        raise bad_config(f"{key} must be a list of numbers, got {values!r}")
    return [float(v) for v in values]


def _ints(config: dict[str, Any], key: str, default: list[int]) -> list[int]:
    return [read_int({key: value}, key) for value in _numbers(config, key, [float(v) for v in default])]


# --- the authors' own checkpoint layout (DepthAnything/Depth-Anything-V2: depth_anything_v2/dpt.py, dinov2.py) ---

@dataclass(frozen=True)
class V2Encoder:
    """One of the DINOv2 encoders their `DepthAnythingV2(encoder=...)` builds: its width, its blocks, and the blocks
    the head reads (`intermediate_layer_idx`); every one has heads of width 64."""

    name: str
    width: int
    depth: int
    blocks: tuple[int, ...]


V2_ENCODERS = (V2Encoder("vits", 384, 12, (2, 5, 8, 11)), V2Encoder("vitb", 768, 12, (2, 5, 8, 11)),
               V2Encoder("vitl", 1024, 24, (4, 11, 17, 23)), V2Encoder("vitg", 1536, 40, (9, 19, 29, 39)))
V2_HEAD_WIDTH = 64  # DINOv2's attention head width in all four sizes: the head count is width / 64
V2_FACTORS = (4.0, 2.0, 1.0, 0.5)  # their resize_layers: ConvTranspose ×4, ×2, identity, a stride-2 3×3 conv
V2_POS_OFFSET = 0.1  # their interpolate_pos_encoding's interpolate_offset


def v2_blocks(width: int, depth: int) -> tuple[str, tuple[int, ...]]:
    """(encoder name, blocks read) for an encoder of this width and depth: their table by depth (vits and vitb share
    12 blocks and the same indices); a depth none of their encoders has is refused, as is a width not split into
    heads of 64 (their code builds no other)."""
    by_depth = {encoder.depth: encoder.blocks for encoder in V2_ENCODERS}
    known = ", ".join(f"{e.name} ({e.width} wide, {e.depth} blocks)" for e in V2_ENCODERS)
    if depth not in by_depth or width % V2_HEAD_WIDTH:
        raise UnsupportedModelError(f"a Depth Anything V2 checkpoint with a {width}-wide encoder of {depth} blocks is "
                                    f"none of the encoders its code builds ({known}); vit-edge reads those")
    name = next((e.name for e in V2_ENCODERS if (e.width, e.depth) == (width, depth)), f"{width}-wide/{depth}")
    return name, by_depth[depth]


def _fusion(rest: str) -> Callable[[re.Match[str]], str]:
    """refinenetN (their N = 4 is the deepest, applied first) → the reference's fusion.(4 - N)."""
    return lambda match: f"neck.fusion.{4 - int(match[1])}.{rest.format(*match.groups()[1:])}"


# their DPTHead's names → the reference's (models/dense_heads.py); the encoder's are timm's after 'pretrained.'
Renamer = str | Callable[[re.Match[str]], str]  # re.sub's replacement: a template, or a function of the match
_V2_HEAD: list[tuple[str, Renamer]] = [
    (r"depth_head\.projects\.(\d+)\.", r"neck.reassemble.\1.project."),
    (r"depth_head\.resize_layers\.(\d+)\.", r"neck.reassemble.\1.resize."),
    (r"depth_head\.scratch\.layer([1-4])_rn\.", lambda m: f"neck.convs.{int(m[1]) - 1}."),
    (r"depth_head\.scratch\.refinenet([1-4])\.out_conv\.", _fusion("project.")),
    (r"depth_head\.scratch\.refinenet([1-4])\.resConfUnit([12])\.conv([12])\.", _fusion("unit{0}.conv{1}.")),
    (r"depth_head\.scratch\.output_conv1\.", "head.conv1."),
    (r"depth_head\.scratch\.output_conv2\.0\.", "head.conv2."),
    (r"depth_head\.scratch\.output_conv2\.2\.", "head.conv3."),
]
V2_HEAD_RENAMES: tuple[tuple[re.Pattern[str], Renamer], ...] = tuple(
    (re.compile(pattern), replacement) for pattern, replacement in _V2_HEAD)
