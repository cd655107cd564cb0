"""Hugging Face `transformers` ViT/DeiT classifiers → the reference ViT, from a local directory, without transformers.

Reads config.json and the weights (model.safetensors, sharded safetensors or pytorch_model.bin) and renames keys;
both transformers 4.x names (`encoder.layer.N.attention.attention.query`) and 5.x names (`layers.N.attention.q_proj`)
are understood.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import torch

from vit_edge.errors import ModelLoadError, UnsupportedModelError
from vit_edge.models.checkpoint import load_strict, read_state_dict
from vit_edge.models.vit import ViTConfig, VisionTransformer
from vit_edge.types import InputSpec

__all__ = ["is_hf_directory", "load_hf_directory", "hf_config_to_vit", "convert_hf_state_dict"]

SUPPORTED_ARCHITECTURES = {
    "ViTForImageClassification": ("vit", False, False),
    "DeiTForImageClassification": ("deit", True, False),
    "DeiTForImageClassificationWithTeacher": ("deit", True, True),
}
_PIL_RESAMPLE = {0: "nearest", 1: "lanczos", 2: "bilinear", 3: "bicubic"}
# (regex on the part after 'vit.'/'deit.', replacement); q/k/v are handled separately (they are concatenated).
_LAYER_RENAMES = [
    (r"(?:encoder\.layer|layers)\.(\d+)\.layernorm_before\.", r"blocks.\1.norm1."),
    (r"(?:encoder\.layer|layers)\.(\d+)\.layernorm_after\.", r"blocks.\1.norm2."),
    (r"(?:encoder\.layer|layers)\.(\d+)\.(?:attention\.output\.dense|attention\.o_proj)\.", r"blocks.\1.attn.proj."),
    (r"(?:encoder\.layer|layers)\.(\d+)\.(?:intermediate\.dense|mlp\.fc1)\.", r"blocks.\1.mlp.fc1."),
    (r"(?:encoder\.layer|layers)\.(\d+)\.(?:output\.dense|mlp\.fc2)\.", r"blocks.\1.mlp.fc2."),
    (r"embeddings\.patch_embeddings\.projection\.", "patch_embed.proj."),
    (r"embeddings\.cls_token$", "cls_token"),
    (r"embeddings\.distillation_token$", "dist_token"),
    (r"embeddings\.position_embeddings$", "pos_embed"),
    (r"layernorm\.", "norm."),
]
_QKV = re.compile(r"(?:encoder\.layer|layers)\.(\d+)\.attention\.(?:attention\.)?(query|key|value|q_proj|k_proj|v_proj)\.(\w+)$")


def is_hf_directory(path: Path) -> bool:
    return path.is_dir() and (path / "config.json").is_file()


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelLoadError(f"cannot read {path}: {exc}") from exc


def hf_config_to_vit(config: dict[str, Any]) -> tuple[ViTConfig, str, InputSpec]:
    """config.json → (ViTConfig, key prefix, default InputSpec); unsupported variants are refused by name."""
    arch = (config.get("architectures") or ["?"])[0]
    if arch not in SUPPORTED_ARCHITECTURES:
        raise UnsupportedModelError(
            f"Hugging Face architecture '{arch}' is not supported; vit-edge takes {', '.join(SUPPORTED_ARCHITECTURES)}"
        )
    prefix, distilled, dist_head = SUPPORTED_ARCHITECTURES[arch]
    if config.get("hidden_act", "gelu") != "gelu":
        raise UnsupportedModelError(f"hidden_act '{config['hidden_act']}' is not supported (only exact 'gelu')")
    labels = config.get("id2label") or {}
    try:
        vit = ViTConfig(
            img_size=int(config.get("image_size", 224)), patch_size=int(config.get("patch_size", 16)),
            in_chans=int(config.get("num_channels", 3)), num_classes=len(labels) or 1000,
            embed_dim=int(config["hidden_size"]), depth=int(config["num_hidden_layers"]),
            num_heads=int(config["num_attention_heads"]), mlp_hidden_dim=int(config["intermediate_size"]),
            qkv_bias=bool(config.get("qkv_bias", True)), ln_eps=float(config.get("layer_norm_eps", 1e-12)),
            distilled=distilled, dist_head=dist_head,
        )
    except KeyError as exc:
        raise ModelLoadError(f"config.json lacks {exc}") from exc
    names = tuple(str(labels[k]) for k in sorted(labels, key=lambda k: int(k))) if labels else ()
    spec = InputSpec(img_size=vit.img_size, channels=vit.in_chans, mean=(0.5,) * 3, std=(0.5,) * 3,
                     interpolation="bilinear", crop_pct=1.0, class_names=names)
    return vit, prefix, spec


def _spec_from_preprocessor(path: Path, spec: InputSpec) -> InputSpec:
    file = path / "preprocessor_config.json"
    if not file.is_file():
        return spec
    pre = _read_json(file)
    return spec.with_(
        mean=tuple(pre.get("image_mean", spec.mean)), std=tuple(pre.get("image_std", spec.std)),
        interpolation=_PIL_RESAMPLE.get(pre.get("resample", 2), "bilinear"),
    )


def _read_weights(path: Path) -> dict[str, torch.Tensor]:
    index = path / "model.safetensors.index.json"
    if index.is_file():
        shards = sorted(set(_read_json(index).get("weight_map", {}).values()))
        state: dict[str, torch.Tensor] = {}
        for shard in shards:
            state.update(read_state_dict(path / shard))
        return state
    for name in ("model.safetensors", "pytorch_model.bin"):
        if (path / name).is_file():
            return read_state_dict(path / name)
    raise ModelLoadError(f"{path} has config.json but no model.safetensors or pytorch_model.bin")


def convert_hf_state_dict(state: dict[str, torch.Tensor], prefix: str, cfg: ViTConfig) -> dict[str, torch.Tensor]:
    """Rename HF keys to the reference ViT's and join query/key/value into one qkv projection."""
    out: dict[str, torch.Tensor] = {}
    qkv: dict[tuple[str, str], dict[str, torch.Tensor]] = {}
    heads = {"classifier": "head", "cls_classifier": "head", "distillation_classifier": "head_dist"}
    for key, value in state.items():
        head = key.split(".")[0]
        if head in heads:
            out[f"{heads[head]}.{key.split('.', 1)[1]}"] = value
            continue
        if not key.startswith(prefix + "."):
            continue  # e.g. a pooler that the classifier never uses
        rest = key[len(prefix) + 1 :]
        match = _QKV.match(rest)
        if match:
            block, which, param = match.groups()
            qkv.setdefault((block, param), {})[which[0]] = value
            continue
        for pattern, replacement in _LAYER_RENAMES:
            if re.match(pattern, rest):
                out[re.sub(pattern, replacement, rest, count=1)] = value
                break
    for (block, param), parts in qkv.items():
        if set(parts) != {"q", "k", "v"}:
            raise ModelLoadError(f"block {block} lacks some of query/key/value {param}")
        out[f"blocks.{block}.attn.qkv.{param}"] = torch.cat([parts["q"], parts["k"], parts["v"]], dim=0)
    return out


def load_hf_directory(path: Path) -> tuple[VisionTransformer, InputSpec, dict[str, Any]]:
    """A `save_pretrained` directory → (reference ViT, input spec, source facts for the manifest)."""
    cfg, prefix, spec = hf_config_to_vit(_read_json(path / "config.json"))
    spec = _spec_from_preprocessor(path, spec)
    model = VisionTransformer(cfg)
    state = convert_hf_state_dict(_read_weights(path), prefix, cfg)
    load_strict(model, state, str(path))
    arch = _read_json(path / "config.json")["architectures"][0]
    return model.eval(), spec, {"kind": "huggingface", "id": str(path), "architecture": arch}
