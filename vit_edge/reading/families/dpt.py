"""DPT (transformers' `DPTForDepthEstimation`, `DPTForSemanticSegmentation`) with its plain ViT encoder: DPT's own
embeddings (class token, position embeddings resampled bilinearly for another grid), the blocks `backbone_out_indices`
read before the final LayerNorm, the readout, DPT's neck and its depth or segmentation head (models/dpt.py).

What is refused in one line: DPT-Hybrid (`is_hybrid`, a BiT ResNet stem) and DPT on another backbone
(`backbone_config`: BEiT, Swin V2, DINOv2), whose tokens the plain reading would get wrong.
"""
from __future__ import annotations

import re
from typing import Any

from vit_edge.core.errors import UnsupportedModelError
from vit_edge.models.dense_heads import DepthHeadConfig, NeckConfig
from vit_edge.models.dpt import READOUTS, DPTConfig, SegmentationHeadConfig
from vit_edge.models.vit import ViTConfig
from vit_edge.reading.families.base import HALF, Family, HFClass, HFReading, Options
from vit_edge.reading.families.hf_config import activation, bad_config, read_int, read_size

__all__ = ["DPT", "DPT_DEPTH_RENAMES", "DPT_SEGMENTATION_RENAMES", "DPT_IGNORED", "HF_NECK_RENAMES", "rename_table",
           "dpt_options", "check_plain_vit", "read_dpt_blocks", "read_dpt_head", "ignore_index"]


def dpt_options(config: dict[str, Any]) -> Options:
    """DPT's ViT: plain blocks, the class token, no final norm before the neck (the norm only makes
    last_hidden_state), position embeddings resampled bilinearly (without antialiasing) for another grid."""
    check_plain_vit(config)
    return dict(mlp_hidden_dim=read_int(config, "intermediate_size"), qkv_bias=bool(config.get("qkv_bias", True)),
                act=activation(config, "gelu"), final_norm=False, pos_embed_resize="bilinear")


DPT = Family("dpt", "DPT (depth, semantic segmentation): ViT encoder with class-token readout, DPT neck and head",
             fields=("final_norm", "pos_embed_resize"),
             hf=HFReading(("dpt.",), dpt_options, 1e-12, norm=HALF, antialias=False,
                          classes=(HFClass("DPTForDepthEstimation", "predicted_depth (depth map)", "depth"),
                                   HFClass("DPTForSemanticSegmentation", "logits (segmentation map)",
                                           "segmentation"))))

# transformers' neck and head names → the reference's (models/dpt.py); the encoder's go through hf_compat. The
# readout's joint linear and the BatchNorms (`bn`) are split and folded by reading/dpt_hf.py.
def rename_table(pairs: list[tuple[str, str]]) -> tuple[tuple[re.Pattern[str], str], ...]:
    return tuple((re.compile(pattern), replacement) for pattern, replacement in pairs)


# transformers' DPT neck → the reference's (models/dense_heads.py); Depth Anything's neck has the same names
HF_NECK_RENAMES = [
    (r"neck\.reassemble_stage\.layers\.(\d+)\.projection\.", r"neck.reassemble.\1.project."),
    (r"neck\.reassemble_stage\.layers\.(\d+)\.resize\.", r"neck.reassemble.\1.resize."),
    (r"neck\.convs\.(\d+)\.", r"neck.convs.\1."),
    (r"neck\.fusion_stage\.layers\.(\d+)\.projection\.", r"neck.fusion.\1.project."),
    (r"neck\.fusion_stage\.layers\.(\d+)\.residual_layer([12])\.convolution([12])\.", r"neck.fusion.\1.unit\2.conv\3."),
]
_NECK = HF_NECK_RENAMES + [  # DPT's own: the readout projections and the residual units' BatchNorms
    (r"neck\.reassemble_stage\.readout_projects\.(\d+)\.0\.", r"readout.\1.joint."),
    (r"neck\.fusion_stage\.layers\.(\d+)\.residual_layer([12])\.batch_norm([12])\.", r"neck.fusion.\1.unit\2.bn\3."),
]
# DPTDepthEstimationHead: Sequential(conv, upsample, conv, ReLU, conv, ReLU), an optional projection before it
DPT_DEPTH_RENAMES = rename_table(_NECK + [
    (r"head\.projection\.", "head.projection."),
    (r"head\.head\.0\.", "head.depth.conv1."),
    (r"head\.head\.2\.", "head.depth.conv2."),
    (r"head\.head\.4\.", "head.depth.conv3."),
])
# DPTSemanticSegmentationHead: Sequential(conv without bias, BatchNorm, ReLU, Dropout, conv, upsample)
DPT_SEGMENTATION_RENAMES = rename_table(_NECK + [
    (r"head\.head\.0\.", "head.conv1."),
    (r"head\.head\.1\.", "head.bn1."),
    (r"head\.head\.4\.", "head.conv2."),
])
# read by transformers but not by the outputs: the final LayerNorm (last_hidden_state only), the training-time
# auxiliary head, the pooler
DPT_IGNORED = re.compile(r"(?:dpt\.)?layernorm\.|auxiliary_head\.|(?:dpt\.)?pooler\.")


def check_plain_vit(config: dict[str, Any]) -> None:
    """DPT on its own ViT (is_hybrid false, no backbone_config), square, or one line saying what it is."""
    if config.get("is_hybrid"):
        raise UnsupportedModelError("DPT-Hybrid (is_hybrid: a BiT ResNet stem before the ViT) is not supported; "
                                    "vit-edge reads DPT with its plain ViT encoder (is_hybrid false)")
    backbone = config.get("backbone_config")
    if backbone is not None or config.get("backbone") or config.get("use_timm_backbone"):
        kind = backbone.get("model_type") if isinstance(backbone, dict) else config.get("backbone")
        raise UnsupportedModelError(f"DPT on a '{kind}' backbone (BEiT, Swin V2, DINOv2 ...) is not supported; "
                                    "vit-edge reads DPT with its plain ViT encoder (no backbone_config)")
    height, width = read_size(config, "image_size", 384)
    if height != width:
        raise UnsupportedModelError(f"DPT with image_size {[height, width]}: transformers' DPT lays its position "
                                    "embeddings out on a square grid; vit-edge reads square DPT configs")


def read_dpt_blocks(config: dict[str, Any], depth: int, levels: int) -> tuple[int, ...]:
    """backbone_out_indices: the blocks (0-based) the neck reads, in block order as transformers takes them."""
    indices = config.get("backbone_out_indices", [2, 5, 8, 11])
    if not isinstance(indices, (list, tuple)) or not all(isinstance(i, int) and not isinstance(i, bool)
                                                         for i in indices):
        raise bad_config(f"backbone_out_indices {indices!r} is not a list of block indices")
    chosen = sorted(set(indices))
    if len(chosen) != len(indices) or not chosen or chosen[0] < 0 or chosen[-1] >= depth:
        raise bad_config(f"backbone_out_indices {list(indices)} must name distinct blocks 0 to {depth - 1}")
    if len(chosen) != levels:
        raise bad_config(f"backbone_out_indices names {len(chosen)} blocks for {levels} neck_hidden_sizes")
    return tuple(chosen)


def read_dpt_head(config: dict[str, Any], vit: ViTConfig, segmentation: bool) -> DPTConfig:
    """The whole DPT record from the top-level config (`vit`: the whole encoder's), each field checked where it is
    read; the encoder in it returns the blocks the neck reads and holds no block after the last of them."""
    readout = config.get("readout_type", "project")
    if readout not in READOUTS:
        raise bad_config(f"readout_type {readout!r} is not one of {', '.join(READOUTS)}")
    channels = _ints(config, "neck_hidden_sizes", [96, 192, 384, 768])
    try:
        neck = NeckConfig(vit.embed_dim, tuple(channels), tuple(_numbers(config, "reassemble_factors", [4, 2, 1, 0.5])),
                          read_int(config, "fusion_hidden_size", 256))
    except ValueError as exc:
        raise bad_config(str(exc)) from exc
    if config.get("add_projection") and neck.fusion_dim != 256:
        raise bad_config(f"add_projection with fusion_hidden_size {neck.fusion_dim}: transformers' projection is "
                         "256 wide")
    head = DepthHeadConfig(hidden_dim=32, in_index=_head_index(config, len(channels)))
    labels = _num_labels(config) if segmentation else 0
    blocks = read_dpt_blocks(config, vit.depth, len(channels))
    try:
        encoder = vit.with_(output="features", layers=blocks, depth=blocks[-1] + 1)
        return DPTConfig(encoder, neck, head, readout=readout, add_projection=bool(config.get("add_projection")),
                         segmentation=SegmentationHeadConfig(labels) if segmentation else None)
    except ValueError as exc:
        raise bad_config(str(exc)) from exc


def ignore_index(config: dict[str, Any]) -> int:
    """The mask value segmentation scores leave out (semantic_loss_ignore_index; 255 in ADE20K's reduced labels)."""
    return read_int(config, "semantic_loss_ignore_index", 255, minimum=0)


def _head_index(config: dict[str, Any], levels: int) -> int:
    value = config.get("head_in_index", -1)
    if isinstance(value, bool) or not isinstance(value, int) or not -levels <= value < levels:
        raise bad_config(f"head_in_index {value!r} is not one of the {levels} fused levels")
    return value


def _num_labels(config: dict[str, Any]) -> int:
    labels = config.get("id2label")
    if isinstance(labels, dict) and labels:
        return len(labels)
    return read_int(config, "num_labels", 150)


def _numbers(config: dict[str, Any], key: str, default: list[float]) -> list[float]:
    values = config.get(key, default)
    if not isinstance(values, (list, tuple)) or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                                        for v in values):
        raise bad_config(f"{key} must be a list of numbers, got {values!r}")
    return [float(v) for v in values]


def _ints(config: dict[str, Any], key: str, default: list[int]) -> list[int]:
    return [read_int({key: value}, key) for value in _numbers(config, key, [float(v) for v in default])]
