"""Depth Anything V2 checkpoints in its authors' own layout (`depth_anything_v2_vits.pth` and the metric ones from
DepthAnything/Depth-Anything-V2) → the reference encoder plus vit-edge's neck and head, read as their model reads it.

What their code does, and where it is here (depth_anything_v2/dpt.py, dinov2.py, util/blocks.py):
- `pretrained.*` is their DINOv2 copy, in timm's names (patch_embed, cls_token, pos_embed, blocks.N with ls1/ls2
  gammas, norm) plus a `mask_token` used in training only (dropped); vitg's SwiGLU (`mlp.w12`, `mlp.w3`) is the
  reference's packed GLU (silu of the first half times the second). Its width and depth name the encoder
  (families/depth_anything.V2_ENCODERS): the head count (width / 64) and the blocks the head reads
  (`intermediate_layer_idx`) follow; each block's tokens go through the final norm and lose the class token
  (`use_clstoken=False`: a checkpoint with a readout is refused, as are batch norms, `use_bn=True`).
- `depth_head.*` is their DPTHead: projects and resize_layers (reassemble), scratch.layerN_rn, refinenetN fusion
  blocks (N = 4, the deepest, first), output_conv1, a bilinear resize with aligned corners to patches × 14,
  output_conv2 (3×3, ReLU, 1×1, ReLU), then forward's ReLU; the metric models end in a sigmoid times `max_depth`
  instead, which the weights do not show: `--max-depth` says it (a file named '*metric*' without it is refused).
- The position embedding is trained at 518 px (37 × 37 patches); at any other size their forward resamples it at every
  call, bicubic without antialiasing, by a scale factor of (patches + 0.1) / 37 per side. That is done here once,
  at load, by the same call, so the file computes what their forward computes at the exported size.
- Their `infer_image` resizes a photo to 518 on its shorter side (a multiple of 14, aspect kept) and the depth back
  to the photo's size; an artifact has one input size, so the photo is resized to it whole (`crop_mode` squash).
"""
from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from vit_edge.core.errors import ConfigError, ModelLoadError, UnsupportedModelError
from vit_edge.core.identity import Provenance, V2Checkpoint
from vit_edge.core.types import InputSpec
from vit_edge.models.config import Size, to_hw
from vit_edge.models.dense_heads import DenseConfig, DenseModel, DepthHeadConfig, NeckConfig
from vit_edge.models.vit import VisionTransformer, ViTConfig
from vit_edge.reading.checkpoint import load_strict
from vit_edge.reading.families.base import IMAGENET
from vit_edge.reading.families.depth_anything import (
    DEPTH_ANYTHING,
    V2_FACTORS,
    V2_HEAD_RENAMES,
    V2_HEAD_WIDTH,
    V2_POS_OFFSET,
    v2_blocks,
)

__all__ = ["KIND", "is_depth_anything_v2_state", "load_depth_anything_v2"]

KIND = "depth-anything-v2"  # the manifest's source kind: the checkpoint file is the model path
_ENCODER = "pretrained."
_HEAD = "depth_head."
_PATCH = 14  # every encoder their code builds


def _plain(state: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The tensors, without the `module.` DistributedDataParallel puts in front of every name when training."""
    tensors = {k: v for k, v in state.items() if isinstance(v, torch.Tensor)}
    if tensors and all(k.startswith("module.") for k in tensors):
        return {k[len("module."):]: v for k, v in tensors.items()}
    return tensors


def is_depth_anything_v2_state(state: dict[str, Any]) -> bool:
    """Their layout: the encoder under `pretrained.` (a patch embedding) and a DPT head under `depth_head.`."""
    keys = _plain(state)
    return f"{_ENCODER}patch_embed.proj.weight" in keys and any(k.startswith(_HEAD) for k in keys)


def load_depth_anything_v2(path: Path, state: dict[str, Any], img_size: int | Size | None,
                           max_depth: float | None) -> tuple[DenseModel, InputSpec, Provenance]:
    """Their checkpoint → (DenseModel at `img_size`, default 518, its input spec, source facts for the manifest)."""
    tensors = _plain(state)
    _check_variant(path, tensors, max_depth)
    encoder_state = _encoder_state(tensors, path)
    width = int(encoder_state["cls_token"].shape[-1])
    depth = 1 + max((int(k.split(".")[1]) for k in encoder_state if k.startswith("blocks.")), default=-1)
    name, blocks = v2_blocks(width, depth)
    native = _native_grid(encoder_state["pos_embed"], width)
    size = to_hw(img_size) if img_size is not None else (native * _PATCH, native * _PATCH)
    if min(size) < _PATCH or size[0] % _PATCH or size[1] % _PATCH:
        raise ConfigError(f"--img-size {size[0]}x{size[1]} must be a positive multiple of the patch size {_PATCH}")
    grid = (size[0] // _PATCH, size[1] // _PATCH)
    encoder_state["pos_embed"] = _resampled(encoder_state["pos_embed"], native, grid)
    fc1 = encoder_state["blocks.0.mlp.fc1.weight"]
    glu = "blocks.0.mlp.w12.weight" in _strip(tensors)
    cfg = ViTConfig(img_size=size if size[0] != size[1] else size[0], patch_size=_PATCH, num_classes=0,
                    embed_dim=width, depth=depth, num_heads=width // V2_HEAD_WIDTH, mlp_hidden_dim=int(fc1.shape[0]),
                    init_values=1.0, ln_eps=1e-6, mlp="glu" if glu else "mlp", act="silu" if glu else "gelu")
    encoder = VisionTransformer(cfg)
    load_strict(encoder, encoder_state, str(path))
    encoder = encoder.reconfigured(output="features").with_layers(list(blocks))
    head_state = _head_state(tensors, path)
    model = DenseModel(_dense_config(encoder.cfg, head_state, max_depth, path))
    load_strict(model, {**{f"encoder.{k}": v for k, v in encoder.state_dict().items()}, **head_state}, str(path))
    checkpoint = V2Checkpoint(encoder=name, blocks_read=tuple(blocks), max_depth=max_depth,
                              depth_kind="relative" if max_depth is None else "metric")
    source = Provenance(KIND, str(path), family=DEPTH_ANYTHING.name, v2_checkpoint=checkpoint,
                        pos_embed_resampled_from=None if grid == (native, native) else native * _PATCH)
    spec = InputSpec(img_size=cfg.img_size, mean=IMAGENET[0], std=IMAGENET[1], interpolation="bicubic",
                     crop_mode="squash")
    return model.eval(), spec, source


def _check_variant(path: Path, tensors: dict[str, torch.Tensor], max_depth: float | None) -> None:
    """What the reference does not build (a class-token readout, batch norms, registers) and what the weights do not
    say (a metric head) are refused in one line each."""
    if any(".readout_projects." in k for k in tensors):
        raise UnsupportedModelError(f"{path} has a class-token readout (use_clstoken=True); vit-edge reads Depth "
                                    "Anything V2 as released, without it")
    if any(".bn1." in k or ".bn2." in k for k in tensors):
        raise UnsupportedModelError(f"{path} has batch norms in its fusion blocks (use_bn=True); vit-edge reads "
                                    "Depth Anything V2 as released, without them")
    if f"{_ENCODER}register_tokens" in tensors:
        raise UnsupportedModelError(f"{path} has register tokens, which Depth Anything V2's encoders do not have")
    if re.fullmatch(r"depth_anything_vit[a-z]14\.pth", path.name.lower()):
        raise UnsupportedModelError(f"{path.name} looks like a Depth Anything V1 checkpoint: its authors' layout has "
                                    "V2's names but reads the last four blocks; load V1 from its transformers folder "
                                    "(LiheYoung/depth-anything-small-hf and the like)")
    if max_depth is None and "metric" in path.name.lower():
        raise ConfigError(f"{path.name} looks like a metric Depth Anything V2 checkpoint, whose head ends in "
                          "sigmoid × max_depth, which the weights do not hold: give --max-depth (20 for the Hypersim "
                          "(indoor) models, 80 for the Virtual KITTI (outdoor) ones)")


def _strip(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k[len(_ENCODER):]: v for k, v in tensors.items() if k.startswith(_ENCODER)}


def _encoder_state(tensors: dict[str, torch.Tensor], path: Path) -> dict[str, torch.Tensor]:
    """`pretrained.*` in the reference's (timm's) names: the mask token dropped, SwiGLU's w12/w3 as fc1/fc2."""
    state = {}
    for key, value in _strip(tensors).items():
        if key == "mask_token":
            continue
        state[key.replace(".mlp.w12.", ".mlp.fc1.").replace(".mlp.w3.", ".mlp.fc2.")] = value
    for key, rank in (("cls_token", 3), ("pos_embed", 3), ("blocks.0.mlp.fc1.weight", 2)):
        if not isinstance(state.get(key), torch.Tensor) or state[key].ndim != rank:
            raise ModelLoadError(f"{path} has no {rank}-d {_ENCODER}{key}: not a Depth Anything V2 checkpoint")
    return state


def _native_grid(pos_embed: torch.Tensor, width: int) -> int:
    """The side of the square patch grid the position embedding was trained on (37 for 518 px)."""
    patches = pos_embed.shape[1] - 1
    side = math.isqrt(patches)
    if side * side != patches or pos_embed.shape[-1] != width:
        raise ModelLoadError(f"pretrained.pos_embed {tuple(pos_embed.shape)} is not a class position plus a square "
                             "grid: not a Depth Anything V2 checkpoint")
    return side


def _resampled(pos_embed: torch.Tensor, native: int, grid: Size) -> torch.Tensor:
    """Their interpolate_pos_encoding at `grid`, once: unchanged on the trained square grid, else bicubic by the
    scale factor (patches + 0.1) / native per side, without antialiasing (not the target size itself: the offset
    moves every sample a little, and matching their numbers needs the same call)."""
    if grid == (native, native):
        return pos_embed
    dim = pos_embed.shape[-1]
    table = pos_embed[:, 1:].float().reshape(1, native, native, dim).permute(0, 3, 1, 2)
    scale = ((grid[0] + V2_POS_OFFSET) / native, (grid[1] + V2_POS_OFFSET) / native)
    table = F.interpolate(table, scale_factor=scale, mode="bicubic", antialias=False)
    if tuple(table.shape[2:]) != grid:  # their code asserts the same
        raise ModelLoadError(f"the position embedding resampled to {tuple(table.shape[2:])}, not {grid}")
    table = table.permute(0, 2, 3, 1).reshape(1, grid[0] * grid[1], dim).to(pos_embed.dtype)
    return torch.cat([pos_embed[:, :1], table], dim=1)


def _head_state(tensors: dict[str, torch.Tensor], path: Path) -> dict[str, torch.Tensor]:
    """`depth_head.*` in the reference's names; a tensor with no place is refused, not dropped."""
    head, unknown = {}, []
    for key, value in tensors.items():
        if key.startswith(_ENCODER):
            continue
        match = next(((pattern, new) for pattern, new in V2_HEAD_RENAMES if pattern.match(key)), None)
        if match is None:
            unknown.append(key)
        else:
            head[match[0].sub(match[1], key, count=1)] = value
    if unknown:
        raise UnsupportedModelError(f"{len(unknown)} tensors in {path} have no place in Depth Anything V2's model as "
                                    f"vit-edge reads it (e.g. {', '.join(unknown[:3])})")
    return head


def _dense_config(encoder: ViTConfig, head: dict[str, torch.Tensor], max_depth: float | None,
                  path: Path) -> DenseConfig:
    """The neck and head sizes from the weights: projects.N's channels (out_channels), layer1_rn's (features), and
    output_conv2.0's (32 in every release)."""
    try:
        channels = tuple(int(head[f"neck.reassemble.{i}.project.weight"].shape[0]) for i in range(len(V2_FACTORS)))
        features = int(head["neck.convs.0.weight"].shape[0])
        hidden = int(head["head.conv2.weight"].shape[0])
        neck = NeckConfig(encoder.embed_dim, channels, V2_FACTORS, features)
        return DenseConfig(encoder, neck, DepthHeadConfig(hidden_dim=hidden, in_index=-1, metric=max_depth is not None,
                                                          max_depth=1.0 if max_depth is None else float(max_depth)))
    except KeyError as exc:
        raise ModelLoadError(f"{path} lacks depth_head tensors ({exc.args[0]} in vit-edge's names): not a whole "
                             "Depth Anything V2 checkpoint") from exc
    except ValueError as exc:
        raise ModelLoadError(f"{path}: {exc}") from exc
