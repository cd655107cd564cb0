"""Hugging Face dense models (Depth Anything) → the reference ViT encoder plus vit-edge's neck and head
(models/dense_heads.py), from a `save_pretrained` directory or a module in memory; transformers is never imported.

The encoder is read as hf_compat reads a DINOv2 (same renames, same checks, the config from `backbone_config`), then
cut to the blocks the neck reads (`VisionTransformer.with_layers`: transformers computes the later blocks and
discards them); the neck and head tensors are renamed by the family's table (families/depth_anything.py), and a
tensor that has no place is refused, not dropped.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from vit_edge.core.errors import ModelLoadError, UnsupportedModelError
from vit_edge.core.identity import Provenance
from vit_edge.core.types import InputSpec
from vit_edge.models.dense_heads import DenseConfig, DenseModel
from vit_edge.models.vit import VisionTransformer
from vit_edge.reading.checkpoint import load_strict
from vit_edge.reading.dpt_hf import build_dpt
from vit_edge.reading.families.depth_anything import HEAD_RENAMES, backbone_config, read_blocks, read_head
from vit_edge.reading.families.dpt import DPT
from vit_edge.reading.hf_compat import (
    DENSE_HEADS,
    SUPPORTED_ARCHITECTURES,
    Architecture,
    architecture_name,
    convert_hf_state_dict,
    hf_config_to_vit,
    input_spec,
    read_hf_folder,
    read_hf_module,
)

__all__ = ["is_dense_architecture", "load_dense_hf_directory", "convert_dense_hf_module"]

Loaded = tuple[DenseModel, InputSpec, Provenance]


def is_dense_architecture(name: str) -> bool:
    """Whether a transformers class name is one of the dense models read here."""
    arch = SUPPORTED_ARCHITECTURES.get(name)
    return arch is not None and arch.head in DENSE_HEADS


def load_dense_hf_directory(path: Path) -> Loaded:
    """A `save_pretrained` directory of a dense model → (DenseModel, input spec, source facts for the manifest)."""
    folder = read_hf_folder(path)
    return _build(folder.config, folder.weights, folder.preprocessor, str(path), None)


def convert_dense_hf_module(module: nn.Module) -> Loaded:
    """A transformers dense model in memory → the same as `load_dense_hf_directory` (its class names the
    architecture; its config and state dict are read as they are)."""
    config, read_state, origin = read_hf_module(module)
    return _build(config, read_state, None, origin, type(module).__name__)


def _build(config: dict[str, Any], read_state: Callable[[], dict[str, torch.Tensor]],
           preprocessor: dict[str, Any] | None, origin: str, architecture: str | None) -> Loaded:
    """Config → encoder config, neck and head records (all checked), then the weights, then the model."""
    name = architecture_name(config, architecture)
    if not is_dense_architecture(name):
        raise UnsupportedModelError(f"Hugging Face architecture '{name}' is not a dense model vit-edge reads")
    arch = SUPPORTED_ARCHITECTURES[name]
    if arch.family is DPT:
        return build_dpt(config, read_state, preprocessor, origin, name)
    backbone = backbone_config(config)
    vit_cfg, _, spec = hf_config_to_vit(backbone, name)
    blocks = read_blocks(backbone)
    neck, head = read_head(config, vit_cfg.embed_dim, vit_cfg.patch_size)
    spec = input_spec(spec, preprocessor, vit_cfg.patch_size)
    encoder_state, head_state = _split_state(read_state(), arch)
    encoder = VisionTransformer(vit_cfg)
    load_strict(encoder, convert_hf_state_dict(encoder_state, name, vit_cfg), origin)
    encoder = encoder.reconfigured(output="features").with_layers(list(blocks))
    try:
        cfg = DenseConfig(encoder.cfg, neck, head)
    except ValueError as exc:
        raise ModelLoadError(f"Hugging Face config: {exc}") from exc
    model = DenseModel(cfg)
    load_strict(model, {**{f"encoder.{k}": v for k, v in encoder.state_dict().items()}, **head_state}, origin)
    source = Provenance("huggingface", origin, hf_architecture=name, family=arch.family.name, hf_output=arch.output)
    return model.eval(), spec, source  # at config.image_size; the loader brings it to the processor's size


def _split_state(state: dict[str, torch.Tensor], arch: Architecture
                 ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """The encoder's tensors (under the backbone prefix, as they are) and the neck's and head's (renamed to the
    reference's); a tensor that is neither is refused."""
    encoder, head, unknown = {}, {}, []
    for key, value in state.items():
        if key.startswith(arch.hf.prefixes):
            encoder[key] = value
            continue
        renamed = next((pattern.sub(new, key, count=1) for pattern, new in HEAD_RENAMES if pattern.match(key)), None)
        if renamed is None:
            unknown.append(key)
        else:
            head[renamed] = value
    if unknown:
        raise UnsupportedModelError(f"{len(unknown)} tensors have no place in vit-edge's Depth Anything "
                                    f"(e.g. {', '.join(unknown[:3])})")
    return encoder, head

