"""A model with real activation outliers, made from a trained one without changing what it computes.

RepQ-ViT observed that post-LayerNorm activations of trained ViTs carry a few channels far larger than the rest,
which a per-tensor INT8 grid spends its range on. This plants them in a model that lacks them (the shipped one):
K channels of each block's LayerNorm γ and β are multiplied by F and the next linear's input columns divided by F,
so in float the output is the same, while the quantizer sees channels F times wider. SmoothQuant is its remedy
in part; INT16 activations are another.
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import torch
from torch import nn

__all__ = ["with_activation_outliers", "save_outlier_variant"]


def with_activation_outliers(model: nn.Module, channels: int = 4, factor: float = 40.0, seed: int = 0) -> nn.Module:
    """A copy of `model` (a vit_edge VisionTransformer) with `channels` outlier channels of width ×`factor` after
    every norm1 and norm2; the same function in float."""
    changed = copy.deepcopy(model).eval()
    generator = torch.Generator().manual_seed(seed)
    blocks: Any = changed.blocks
    with torch.no_grad():
        for block in blocks:
            for norm, linear in ((block.norm1, block.attn.qkv), (block.norm2, block.mlp.fc1)):
                picked = torch.randperm(linear.in_features, generator=generator)[:channels]
                norm.weight[picked] *= factor
                if getattr(norm, "bias", None) is not None:
                    norm.bias[picked] *= factor
                linear.weight[:, picked] /= factor
    return changed


def save_outlier_variant(source: str | Path, out: str | Path, channels: int = 4, factor: float = 40.0) -> Path:
    """`source` (a vit-edge checkpoint, e.g. the shipped model's) with planted outliers, saved as a checkpoint
    with the same input spec and class names: a model file the CLI reads as a user's own."""
    from vit_edge.reading.checkpoint import load_checkpoint, save_checkpoint

    model, spec, extra = load_checkpoint(source)
    changed: Any = with_activation_outliers(model, channels, factor)  # a VisionTransformer, as it came
    save_checkpoint(out, changed, spec, {**extra, "outliers": {"channels": channels, "factor": factor}})
    return Path(out)
