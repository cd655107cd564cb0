"""One entry point from whatever the user names to a reference ViT plus its input spec and provenance.

MODEL may be: a shipped model name ('fmnist-vit-tiny'), a reference variant ('vit_small_patch16'), 'timm:NAME',
a Hugging Face directory (config.json + weights), a vit-edge checkpoint file, or an nn.Module already in memory.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from vit_edge.errors import ConfigError, ModelLoadError, UnsupportedModelError, did_you_mean
from vit_edge.models.checkpoint import load_checkpoint, load_strict, read_state_dict
from vit_edge.models.hf_compat import is_hf_directory, load_hf_directory
from vit_edge.models.registry import (
    REFERENCE_NAMES,
    SHIPPED_MODELS,
    TIMM_NAMES,
    reference_config,
    timm_entry,
)
from vit_edge.models.vit import VisionTransformer
from vit_edge.types import InputSpec

__all__ = ["LoadedModel", "load_model", "state_dict_sha256"]


@dataclass
class LoadedModel:
    """A reference ViT in eval mode, what it expects as input, and where it came from (for the manifest)."""

    model: VisionTransformer
    spec: InputSpec
    source: dict[str, Any] = field(default_factory=dict)


def state_dict_sha256(model: nn.Module) -> str:
    """A hash of the weights that does not depend on how they were stored."""
    digest = hashlib.sha256()
    for key, tensor in sorted(model.state_dict().items()):
        digest.update(key.encode())
        digest.update(tensor.detach().cpu().contiguous().float().numpy().tobytes())
    return digest.hexdigest()


def _unwrap_state(state: dict[str, Any]) -> dict[str, torch.Tensor]:
    """Training checkpoints often nest the weights under 'model' or 'state_dict' (DeiT's releases do)."""
    for key in ("model", "state_dict", "model_ema"):
        if isinstance(state.get(key), dict):
            return state[key]
    return state


def _load_timm(name: str, weights: Path | None, random_init: bool) -> LoadedModel:
    entry = timm_entry(name)
    cfg = entry.config
    source: dict[str, Any] = {"kind": "timm", "id": name}
    if weights is None:
        model = VisionTransformer(cfg)
        source["random_init"] = True
        return LoadedModel(model.eval(), entry.spec, source)
    state = {k: v for k, v in _unwrap_state(read_state_dict(weights)).items() if isinstance(v, torch.Tensor)}
    head = state.get("head.weight")
    pos = state.get("pos_embed")
    if head is not None:
        cfg = cfg.with_(num_classes=int(head.shape[0]))
    if pos is not None:  # a checkpoint fine-tuned at another resolution: build at its size, resize later on request
        grid = int(round((pos.shape[1] - (0 if cfg.no_embed_class else cfg.num_prefix_tokens)) ** 0.5))
        cfg = cfg.with_(img_size=grid * cfg.patch_size)
    model = VisionTransformer(cfg)
    load_strict(model, state, str(weights))
    source.update(weights_file=str(weights))
    return LoadedModel(model.eval(), entry.spec.with_(img_size=cfg.img_size), source)


def _load_named(name: str, weights: Path | None, random_init: bool, num_classes: int | None,
                img_size: int | None) -> LoadedModel:
    if name in SHIPPED_MODELS:
        model, spec, extra = load_checkpoint(SHIPPED_MODELS[name])
        return LoadedModel(model, spec, {"kind": "shipped", "id": name, "train": extra.get("train", {})})
    if name.startswith("timm:"):
        return _load_timm(name[len("timm:"):], weights, random_init)
    if name in REFERENCE_NAMES:
        cfg = reference_config(name, img_size=img_size or 224, num_classes=num_classes or 1000)
        model = VisionTransformer(cfg)
        if weights is not None:
            load_strict(model, _unwrap_state(read_state_dict(weights)), str(weights))
        spec = InputSpec(img_size=cfg.img_size)
        source = {"kind": "reference", "id": name, "random_init": weights is None}
        if weights is not None:
            source["weights_file"] = str(weights)
        return LoadedModel(model.eval(), spec, source)
    known = [*SHIPPED_MODELS, *REFERENCE_NAMES, *(f"timm:{n}" for n in TIMM_NAMES)]
    raise UnsupportedModelError(
        f"'{name}' is not a file, a directory or a known model{did_you_mean(name, known)}; "
        f"use a path, a shipped model ({', '.join(SHIPPED_MODELS)}), a reference ViT (vit_tiny_patch16, ...) "
        "or timm:NAME"
    )


def _load_path(path: Path) -> LoadedModel:
    if is_hf_directory(path):
        model, spec, source = load_hf_directory(path)
        return LoadedModel(model, spec, source)
    if path.is_dir():
        raise ModelLoadError(f"{path} is a directory without config.json: not a Hugging Face model directory")
    model, spec, extra = load_checkpoint(path)
    return LoadedModel(model, spec, {"kind": "checkpoint", "id": str(path), "train": extra.get("train", {})})


def _looks_like_path(model: str) -> bool:
    return "/" in model or model.endswith((".pt", ".pth", ".safetensors", ".bin")) or Path(model).exists()


def load_model(
    model: str | Path | nn.Module,
    weights: str | Path | None = None,
    random_init: bool = False,
    num_classes: int | None = None,
    img_size: int | None = None,
) -> LoadedModel:
    """Resolve `model` to a reference ViT; `img_size` resizes the position embeddings (bicubic, prefix kept)."""
    weights = Path(weights) if weights is not None else None
    if isinstance(model, VisionTransformer):
        channels = model.cfg.in_chans
        spec = (InputSpec(img_size=model.cfg.img_size) if channels == 3 else
                InputSpec(img_size=model.cfg.img_size, channels=channels, mean=(0.5,) * channels,
                          std=(0.5,) * channels))
        loaded = LoadedModel(model.eval(), spec, {"kind": "module", "id": type(model).__name__})
    elif isinstance(model, nn.Module):
        raise UnsupportedModelError(
            f"{type(model).__name__} is not a vit-edge VisionTransformer; save it and pass timm:NAME --weights FILE, "
            "or a Hugging Face directory"
        )
    elif isinstance(model, Path) or _looks_like_path(str(model)):
        if weights is not None:
            raise ConfigError("--weights goes with timm:NAME or a reference ViT name, not with a model path")
        path = Path(model)
        if not path.exists():
            raise ModelLoadError(f"model path {path} does not exist")
        loaded = _load_path(path)
    else:
        needs_weights = str(model).startswith("timm:") or str(model) in REFERENCE_NAMES
        if needs_weights and weights is None and not random_init:
            raise ConfigError(f"{model} needs --weights FILE (or --random-init to export an untrained model)")
        if weights is not None and random_init:
            raise ConfigError("--weights and --random-init exclude each other")
        loaded = _load_named(str(model), weights, random_init, num_classes, img_size)
    return _finish(loaded, img_size)


def _finish(loaded: LoadedModel, img_size: int | None) -> LoadedModel:
    cfg = loaded.model.cfg
    if img_size is not None and img_size != cfg.img_size:
        if img_size <= 0 or img_size % cfg.patch_size:
            raise ConfigError(f"--img-size {img_size} must be a positive multiple of the patch size {cfg.patch_size}")
        loaded.source["pos_embed_resampled_from"] = cfg.img_size
        loaded.model = loaded.model.with_img_size(img_size)
        loaded.spec = loaded.spec.with_(img_size=img_size)
    loaded.spec = loaded.spec.with_(channels=loaded.model.cfg.in_chans)
    loaded.source["weights_sha256"] = state_dict_sha256(loaded.model)
    loaded.source["architecture"] = loaded.model.cfg.to_json()
    return loaded
