"""Hugging Face `transformers` ViT-family models → the reference ViT, from a local directory or a module in memory.

Reads config.json, preprocessor_config.json and the weights (model.safetensors, sharded safetensors or
pytorch_model.bin) and renames keys; transformers 4.x names (`encoder.layer.N.attention.attention.query`, as
save_pretrained still writes them) and 5.x in-memory names (`layers.N.attention.q_proj`) are both understood.
transformers itself is never imported. This module is the generic machinery only: which classes load, what each
returns and how its family's config and keys read are the families' declarations (`HFReading` and its `HFClass`
rows in reading/families/), gathered into SUPPORTED_ARCHITECTURES.

A model whose preprocessor crops smaller than config.image_size (DINOv2: 224 of 518, where transformers resamples
the position embeddings at every call): the input spec says the crop size and the loader builds the model once at it
(`VisionTransformer.with_img_size`, or in the graph at every call with --dynamic-size), resampled as transformers
does: `pos_embed_antialias` from the family's reading (bicubic without antialiasing for ViT, DeiT, DINOv2, CLIP,
SigLIP; with it for DINOv2 with registers and SigLIP 2's bilinear).
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from vit_edge.core.errors import ConfigError, ModelLoadError, UnsupportedModelError
from vit_edge.core.identity import Provenance
from vit_edge.core.jsonfile import read_json_object
from vit_edge.core.types import InputSpec
from vit_edge.models.vit import MAX_IMAGE_SIDE, VisionTransformer, ViTConfig
from vit_edge.reading.checkpoint import load_strict, read_state_dict
from vit_edge.reading.families import FAMILIES, Family, HFClass, HFReading
from vit_edge.reading.families.base import DENSE_HEADS
from vit_edge.reading.families.hf_config import Size, bad_config, collapse, common_options, read_int, read_size

__all__ = ["Architecture", "SUPPORTED_ARCHITECTURES", "DENSE_HEADS", "HFFolder", "is_hf_directory", "read_hf_folder",
           "architecture_name", "load_hf_directory", "convert_hf_module", "hf_config_to_vit", "convert_hf_state_dict",
           "input_spec", "read_hf_module"]

Options = dict[str, Any]
_PIL_RESAMPLE = {0: "nearest", 1: "lanczos", 2: "bilinear", 3: "bicubic"}


@dataclass(frozen=True, kw_only=True)
class Architecture(HFClass):
    """One transformers class as its family declares it (an `HFClass` row), with the family that declares it."""

    family: Family

    @property
    def hf(self) -> HFReading:
        """How transformers stores the family (every family that declares a class declares it)."""
        if self.family.hf is None:
            raise TypeError(f"family {self.family.name} declares no transformers reading")
        return self.family.hf


def _architectures() -> dict[str, Architecture]:
    """Every transformers class the families declare, by family name (as `vit-edge models` lists them)."""
    rows = [(entry, row) for entry in sorted(FAMILIES, key=lambda entry: entry.name) if entry.hf is not None
            for row in entry.hf.classes]
    return {row.name: Architecture(**{f.name: getattr(row, f.name) for f in fields(HFClass)}, family=entry)
            for entry, row in rows}


SUPPORTED_ARCHITECTURES: dict[str, Architecture] = _architectures()

_LAYER = r"(?:encoder\.layers?|layers?|model\.layer)\.(\d+)\."
# Shared renames (regex on a key without its family prefix, replacement), for 4.x and 5.x names of every family.
_RENAMES = [(re.compile(pattern), replacement) for pattern, replacement in [
    (_LAYER + r"(?:layernorm_before|norm1|layer_norm1|rms_norm1)\.", r"blocks.\1.norm1."),
    (_LAYER + r"(?:layernorm_after|norm2|layer_norm2|rms_norm2)\.", r"blocks.\1.norm2."),
    (_LAYER + r"(?:attention\.output\.dense|attention\.o_proj|attention\.out_proj|self_attn\.out_proj)\.",
     r"blocks.\1.attn.proj."),
    (_LAYER + r"(?:intermediate\.dense|mlp\.fc1|mlp\.weights_in)\.", r"blocks.\1.mlp.fc1."),
    (_LAYER + r"(?:output\.dense|mlp\.fc2|mlp\.weights_out|(?:mlp|ffn)\.down_proj)\.", r"blocks.\1.mlp.fc2."),
    (_LAYER + r"layer_scale([12])\.lambda1$", r"blocks.\1.ls\2.gamma"),
    (r"embeddings\.(?:patch_embeddings\.projection|patch_embedding|patch_embeddings(?=\.(?:weight|bias)$))\.",
     "patch_embed.proj."),
    (r"embeddings\.(?:cls_token|class_embedding)$", "cls_token"),
    (r"embeddings\.distillation_token$", "dist_token"),
    (r"embeddings\.register_tokens$", "reg_token"),
    (r"embeddings\.(?:position_embeddings|position_embedding\.weight)$", "pos_embed"),
    (r"pre_layrnorm\.", "norm_pre."),
    (r"layernorm\.", "norm."),
    (r"norm\.", "norm."),  # DINOv3's final norm has the reference's own name
]]
# Separate projections joined into one (regex, target, order of the parts by their first letter).
_JOINS = [
    (re.compile(_LAYER + r"(?:attention\.(?:attention\.)?|self_attn\.)(query|key|value|q_proj|k_proj|v_proj)\.(\w+)$"),
     "blocks.{}.attn.qkv.{}", "qkv"),
    (re.compile(_LAYER + r"(?:mlp|ffn)\.(gate_proj|up_proj)\.(\w+)$"), "blocks.{}.mlp.fc1.{}", "gu"),  # SwiGLU
    (re.compile(r"()head\.(k_proj|v_proj)\.(\w+)$"), "attn_pool.kv{}.{}", "kv"),  # AIMv2's pooling head
]
_IGNORED = re.compile(r"(?:.*\.)?(?:mask_token|position_ids)$|pooler\.")  # unused by the outputs above


def is_hf_directory(path: Path) -> bool:
    return path.is_dir() and (path / "config.json").is_file()


@dataclass(frozen=True)
class HFFolder:
    """A `save_pretrained` directory as read so far: its config, its preprocessor config when it has one; the weights
    are read last (`weights()`), so a config that cannot load is refused before a large read."""

    path: Path
    config: dict[str, Any]
    preprocessor: dict[str, Any] | None

    def weights(self) -> dict[str, torch.Tensor]:
        return _read_weights(self.path)


def read_hf_folder(path: Path) -> HFFolder:
    """config.json and preprocessor_config.json of a Hugging Face directory (weights not read yet)."""
    pre_file = path / "preprocessor_config.json"
    return HFFolder(path, read_json_object(path / "config.json", ModelLoadError),
                    read_json_object(pre_file, ModelLoadError) if pre_file.is_file() else None)


def architecture_name(config: dict[str, Any], architecture: str | None = None) -> str:
    """The transformers class a config names (its first `architectures` entry), or `architecture` when given."""
    listed = config.get("architectures")
    if isinstance(listed, str):
        listed = [listed]
    return architecture or (str(listed[0]) if isinstance(listed, list) and listed else "?")


def _architecture(name: str) -> Architecture:
    if name not in SUPPORTED_ARCHITECTURES:
        raise UnsupportedModelError(f"Hugging Face architecture '{name}' is not supported; vit-edge takes "
                                    f"{', '.join(SUPPORTED_ARCHITECTURES)}")
    return SUPPORTED_ARCHITECTURES[name]


def _labels(config: dict[str, Any]) -> tuple[str, ...]:
    labels = config.get("id2label") or {}
    if not isinstance(labels, dict):
        raise bad_config(f"id2label must be a mapping, got {type(labels).__name__}")
    try:
        return tuple(str(labels[k]) for k in sorted(labels, key=lambda k: int(k)))
    except (TypeError, ValueError) as exc:
        raise bad_config(f"id2label keys must be integers ({exc})") from exc


def _num_classes(config: dict[str, Any], arch: Architecture) -> int:
    if arch.head == "labels":
        return len(_labels(config)) if "id2label" in config else read_int(config, "num_labels", 1000, minimum=0)
    if arch.head == "projection":
        return read_int(config, "projection_dim")
    return 0


def hf_config_to_vit(config: dict[str, Any], architecture: str | None = None) -> tuple[ViTConfig, str, InputSpec]:
    """config.json → (ViTConfig, architecture name, default InputSpec); what the reference cannot run is refused."""
    name = architecture_name(config, architecture)
    arch = _architecture(name)
    family = arch.hf
    options = {**common_options(config, family.ln_eps), **family.options(config), **arch.options,
               "num_classes": _num_classes(config, arch), "pos_embed_antialias": family.antialias}
    try:
        vit = ViTConfig(**options)
    except ValueError as exc:
        raise bad_config(str(exc)) from exc
    mean, std = family.norm
    spec = InputSpec(img_size=vit.img_size, channels=vit.in_chans, mean=mean, std=std,
                     interpolation=family.interpolation, crop_pct=1.0,
                     class_names=_labels(config) if arch.head == "labels" else ())
    if len(mean) != vit.in_chans:
        spec = spec.with_(mean=(0.5,) * vit.in_chans, std=(0.5,) * vit.in_chans)
    return vit, name, spec


def _preprocessor_size(value: Any, key: str) -> Size | None:
    """A processor `size`/`crop_size` (int, {height, width} or {shortest_edge}) as (height, width); None if absent."""
    name = f"preprocessor {key}"
    size: Size | None
    if isinstance(value, dict):
        if "height" in value or "width" in value:
            height, width = value.get("height", value.get("width")), value.get("width", value.get("height"))
            size = (read_int({name: height}, name), read_int({name: width}, name))
        else:
            shortest = value.get("shortest_edge")
            size = None if shortest is None else read_size({name: shortest}, name)
    else:
        size = None if value is None else read_size({name: value}, name)
    if size is not None and max(size) > MAX_IMAGE_SIDE:
        raise bad_config(f"{name} {max(size)} is over {MAX_IMAGE_SIDE} px per side, beyond any ViT")
    return size


def _norm_values(pre: dict[str, Any], key: str, default: tuple[float, ...], channels: int,
                 nonzero: bool = False) -> tuple[float, ...]:
    value = pre.get(key)
    if value is None:
        return default
    try:
        values = tuple(float(v) for v in value) if isinstance(value, (list, tuple)) else (float(value),) * channels
    except (TypeError, ValueError) as exc:
        raise bad_config(f"preprocessor image_mean/std {value!r} are not numbers") from exc
    if len(values) != channels:
        raise bad_config(f"preprocessor image_mean/std has {len(values)} values for {channels} channels")
    if not all(math.isfinite(v) for v in values):
        raise bad_config(f"preprocessor {key} {list(values)} is not finite; fix it in preprocessor_config.json")
    if nonzero and 0.0 in values:
        raise bad_config(f"preprocessor {key} {list(values)} has a zero, and every image is divided by it; fix it "
                          "in preprocessor_config.json")
    return values


def _spec_from_preprocessor(pre: dict[str, Any], spec: InputSpec) -> InputSpec:
    """preprocessor_config.json → mean/std, resampling, input side (the crop when there is one) and crop fraction."""
    channels = spec.channels
    if pre.get("do_normalize", True):
        mean = _norm_values(pre, "image_mean", spec.mean, channels)
        std = _norm_values(pre, "image_std", spec.std, channels, nonzero=True)
    else:
        mean, std = (0.0,) * channels, (1.0,) * channels
    resample = pre.get("resample", 2)
    interpolation = _PIL_RESAMPLE.get(resample) if isinstance(resample, int) else str(resample).lower()
    if interpolation not in _PIL_RESAMPLE.values():
        interpolation = spec.interpolation
    resize = _preprocessor_size(pre.get("size"), "size")
    crop = _preprocessor_size(pre.get("crop_size"), "crop_size") if pre.get("do_center_crop", True) else None
    size = crop or resize
    crop_pct = min(max(crop) / max(resize), 1.0) if crop and resize else 1.0  # the short side: crop / resize
    # {height, width} resizes exactly (squash); {shortest_edge} keeps the aspect; transformers floors the margin
    size_value = pre.get("size")
    shortest = isinstance(size_value, dict) and "shortest_edge" in size_value or isinstance(size_value, int)
    return spec.with_(mean=mean, std=std, interpolation=interpolation, crop_pct=crop_pct,
                      img_size=collapse(size) if size else spec.img_size,
                      crop_mode="center" if shortest else "squash", crop_offset="floor", **_keep_aspect(pre))


def _keep_aspect(pre: dict[str, Any]) -> dict[str, Any]:
    """DPT's processor (Depth Anything's): keep_aspect_ratio and ensure_multiple_of, where it resizes at all."""
    if not pre.get("keep_aspect_ratio") or pre.get("do_resize", True) is False:
        return {}
    return {"keep_aspect_ratio": True, "ensure_multiple_of": read_int(pre, "ensure_multiple_of", 1)}


def _read_weights(path: Path) -> dict[str, torch.Tensor]:
    index = path / "model.safetensors.index.json"
    if index.is_file():
        shards = sorted(set(read_json_object(index, ModelLoadError).get("weight_map", {}).values()))
        state: dict[str, torch.Tensor] = {}
        for shard in shards:
            state.update(read_state_dict(path / shard))
        return state
    for name in ("model.safetensors", "pytorch_model.bin"):
        if (path / name).is_file():
            return read_state_dict(path / name)
    raise ModelLoadError(f"{path} has config.json but no model.safetensors or pytorch_model.bin")


def _strip(key: str, arch: Architecture) -> str:
    """A key without its family prefix ('vit.', 'vision_model.'), which task models have and bare encoders may lack."""
    return next((key[len(p):] for p in arch.hf.prefixes if key.startswith(p)), key)


def _rename(key: str, arch: Architecture) -> str | None:
    """A stripped key's reference name: architecture/family renames first, then the shared ones; None if none fits."""
    for old, new in arch.renames + arch.hf.renames:
        if key.startswith(old):
            return new + key[len(old):]
    for pattern, replacement in _RENAMES:
        if pattern.match(key):
            return pattern.sub(replacement, key, count=1)
    return None


def _join(parts: dict[tuple[str, str], dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Concatenate collected parts (q, k, v or gate, up) in their order; a missing part is a broken checkpoint."""
    out = {}
    for (target, order), found in parts.items():
        if order == "gu" and set(found) == {"u"}:  # DINOv3's plain MLP: up_proj alone is fc1
            found = {"g": found["u"][:0], "u": found["u"]}
        if target.endswith(".bias") and found and set(found) < set(order):  # DINOv3: k (or v) without a bias
            found = {p: found.get(p, torch.zeros_like(next(iter(found.values())))) for p in order}
        if set(found) != set(order):
            raise ModelLoadError(f"{target} needs parts {'/'.join(order)} and found only {'/'.join(sorted(found))}")
        out[target] = torch.cat([found[p] for p in order], dim=0)
    return out


def _split_in_proj(out: dict[str, torch.Tensor], dim: int) -> None:
    """nn.MultiheadAttention's packed in_proj ([q; k; v]) → the attention pool's q and kv projections."""
    for param in ("weight", "bias"):
        packed = out.pop(f"attn_pool.in_proj_{param}", None)
        if packed is not None:
            out[f"attn_pool.q.{param}"], out[f"attn_pool.kv.{param}"] = packed[:dim], packed[dim:]


def _fold_class_position(out: dict[str, torch.Tensor], cfg: ViTConfig) -> None:
    """DINOv2-reg: the class token's position embedding is a constant added to it, so add it once here."""
    pos, cls = out.get("pos_embed"), out.get("cls_token")
    if cfg.no_embed_class and pos is not None and cls is not None and pos.shape[1] == cfg.num_patches + 1:
        out["cls_token"], out["pos_embed"] = cls + pos[:, :1], pos[:, 1:]


def _fix_shapes(out: dict[str, torch.Tensor], cfg: ViTConfig) -> dict[str, torch.Tensor]:
    """CLIP/SigLIP store the class token as (D,) and positions as an embedding table; a bias-free head gets zeros."""
    if "cls_token" in out and out["cls_token"].ndim == 1:
        out["cls_token"] = out["cls_token"].reshape(1, 1, -1)
    if "pos_embed" in out and out["pos_embed"].ndim == 2:
        out["pos_embed"] = out["pos_embed"].unsqueeze(0)
    proj = out.get("patch_embed.proj.weight")
    if proj is not None and proj.ndim == 2:  # SigLIP 2: a linear over patches flattened (row, column, channel)
        patch = cfg.patch_size
        out["patch_embed.proj.weight"] = proj.reshape(proj.shape[0], patch, patch, -1).permute(0, 3, 1, 2)
    if "head.weight" in out and "head.bias" not in out:  # CLIP's visual_projection has no bias
        out["head.bias"] = torch.zeros(out["head.weight"].shape[0], dtype=out["head.weight"].dtype)
    _split_in_proj(out, cfg.embed_dim)
    _fold_class_position(out, cfg)
    _identity_query(out, cfg)
    return out


def _identity_query(out: dict[str, torch.Tensor], cfg: ViTConfig) -> None:
    """AIMv2's head asks with its learned query as it is: the pool's q projection is the identity (exact in INT8
    too: per-channel scales of an identity matrix)."""
    latent = out.get("attn_pool.latent")
    if latent is None or "attn_pool.q.weight" in out:
        return
    out["attn_pool.q.weight"] = torch.eye(cfg.embed_dim, dtype=latent.dtype)
    if cfg.qkv_bias:
        out["attn_pool.q.bias"] = torch.zeros(cfg.embed_dim, dtype=latent.dtype)


def convert_hf_state_dict(state: dict[str, torch.Tensor], architecture: str, cfg: ViTConfig
                          ) -> dict[str, torch.Tensor]:
    """Rename a transformers state dict to the reference ViT's; tensors it cannot place are refused, not dropped."""
    arch = _architecture(architecture)
    out: dict[str, torch.Tensor] = {}
    parts: dict[tuple[str, str], dict[str, torch.Tensor]] = {}
    unknown = []
    for key, value in state.items():
        bare = _strip(key, arch)
        joined = next(((match, target, order) for pattern, target, order in _JOINS
                       if (match := pattern.match(bare))), None)
        if joined is not None:
            match, target, order = joined
            block, which, param = match.groups()
            parts.setdefault((target.format(block, param), order), {})[which[0]] = value
        elif (renamed := _rename(bare, arch)) is not None:
            out[renamed] = value
        elif not _IGNORED.match(bare):
            unknown.append(key)
    if unknown:
        raise UnsupportedModelError(f"{len(unknown)} tensors have no place in the reference ViT for {architecture} "
                                    f"(e.g. {', '.join(unknown[:3])})")
    out.update(_join(parts))
    return _fix_shapes(out, cfg)


def _build(config: dict[str, Any], read_state: Callable[[], dict[str, torch.Tensor]], architecture: str | None,
           preprocessor: dict[str, Any] | None, origin: str) -> tuple[VisionTransformer, InputSpec, Provenance]:
    """The one path from a config, weights and a preprocessor config to a loaded reference ViT.

    The weights are read last (`read_state`), so a config the reference cannot run is refused before a large read.
    """
    name = architecture_name(config, architecture)
    if _architecture(name).head in DENSE_HEADS:
        raise UnsupportedModelError(f"{name} is a dense model (encoder, neck, head): load it with "
                                    "vit_edge.reading.loaders.load_model, which builds it whole")
    cfg, name, spec = hf_config_to_vit(config, architecture)
    spec = input_spec(spec, preprocessor, cfg.patch_size)
    arch = SUPPORTED_ARCHITECTURES[name]
    weights = convert_hf_state_dict(read_state(), name, cfg)
    cfg = cfg.with_(pre_logits="pre_logits.fc.weight" in weights)
    pooled = cfg.pre_logits or cfg.global_pool == "map" or not arch.output_without_pooler
    model = VisionTransformer(cfg)
    load_strict(model, weights, origin)
    source = Provenance("huggingface", origin, hf_architecture=name, family=arch.family.name,
                        hf_output=arch.output if pooled else arch.output_without_pooler)
    return model.eval(), spec, source  # at config.image_size; the loader brings it to the spec's (DINOv2: 518, 224)


def input_spec(spec: InputSpec, preprocessor: dict[str, Any] | None, patch: int) -> InputSpec:
    """The config's input spec as the preprocessor (when there is one) sets it; a size off the patch grid refused."""
    if preprocessor is not None:
        spec = _spec_from_preprocessor(preprocessor, spec)
    if spec.height % patch or spec.width % patch:
        raise ConfigError(f"the preprocessor's input size {spec.img_size} is not a multiple of the patch size {patch}")
    return spec


def load_hf_directory(path: Path) -> tuple[VisionTransformer, InputSpec, Provenance]:
    """A `save_pretrained` directory → (reference ViT, input spec, source facts for the manifest)."""
    folder = read_hf_folder(path)
    return _build(folder.config, folder.weights, None, folder.preprocessor, str(path))


def convert_hf_module(module: nn.Module) -> tuple[VisionTransformer, InputSpec, Provenance]:
    """A transformers model already in memory → the same as `load_hf_directory`; transformers is not imported.

    Its config and state dict are read as they are (5.x names in memory); its class name picks the architecture.
    """
    name = type(module).__name__
    _architecture(name)
    config, read_state, origin = read_hf_module(module)
    return _build(config, read_state, name, None, origin)


def read_hf_module(module: nn.Module) -> tuple[dict[str, Any], Callable[[], dict[str, torch.Tensor]], str]:
    """A transformers module's config (as a dict), a reader of its state dict (on the CPU) and its origin name."""
    name = type(module).__name__
    to_dict = getattr(getattr(module, "config", None), "to_dict", None)
    if not callable(to_dict):
        raise UnsupportedModelError(f"{name} has no transformers config (module.config.to_dict())")
    config = to_dict()
    return (config, lambda: {k: v.detach().cpu() for k, v in module.state_dict().items()},
            str(config.get("_name_or_path") or name))
