"""TransReID (He et al., ICCV 2021) re-identification checkpoints → the reference ViT.

Why a converter and not TransReID's own classes: its training script saves `model.state_dict()` of a wrapper
(`base.` = the ViT, `bottleneck` = the BNNeck, `classifier` = the ID head, plus `b1`/`b2`/`bottleneck_1..4`
with JPM, and `module.` in front of everything after DistributedDataParallel). Renamed, the global branch is
exactly the reference ViT with `sie_embed` and `bnneck`, so the exporters and quantizers need nothing new.

What cannot be read from the tensors: the camera/view the artifact is specialised for (SIE is added inside the
network, so one artifact serves one camera), SIE_COE (3.0 in every released config), the head count (12 for
ViT-B, dim/64 otherwise) and the pixel statistics (0.5 in the released configs).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from vit_edge.core.errors import ConfigError, ModelLoadError, UnsupportedModelError
from vit_edge.core.identity import Provenance, ReidSource
from vit_edge.core.types import InputSpec
from vit_edge.models.config import ExportChoices
from vit_edge.models.vit import VisionTransformer, ViTConfig, to_hw
from vit_edge.reading.checkpoint import load_strict, read_state_dict

__all__ = [
    "NECK_FEATS",
    "TRANSREID_SIZES",
    "is_transreid_state_dict",
    "is_jpm_state_dict",
    "transreid_config",
    "convert_transreid_state_dict",
    "load_transreid",
]

Size = tuple[int, int]
NECK_FEATS = ("after", "before")  # TEST.NECK_FEAT: the BNNeck output, or the class token before it
TRANSREID_SIZES: tuple[Size, ...] = ((256, 128), (384, 128), (256, 256))  # INPUT.SIZE_TEST of its configs
_REQUIRED = ("base.cls_token", "base.pos_embed", "base.patch_embed.proj.weight", "bottleneck.running_var")
_JPM_ONLY = ("b2.", "bottleneck_1.", "bottleneck_2.", "bottleneck_3.", "bottleneck_4.")
_VIT_SMALL_QK_SCALE = 768**-0.5  # vit_small_patch16_224_TransReID's qk_scale; every other variant: head_dim**-0.5


def _plain(state: dict[str, Any]) -> dict[str, torch.Tensor]:
    """Tensors only, with DistributedDataParallel's `module.` removed (its load_param does the same)."""
    prefix = "module."
    return {(k[len(prefix):] if k.startswith(prefix) else k): v for k, v in state.items()
            if isinstance(v, torch.Tensor)}


def is_transreid_state_dict(state: dict[str, torch.Tensor]) -> bool:
    """True for what TransReID's training saves for its ViT models (plain or JPM, with or without `module.`)."""
    keys = set(_plain(state))
    return all(key in keys for key in _REQUIRED) and "base.blocks.0.attn.qkv.weight" in keys


def is_jpm_state_dict(state: dict[str, torch.Tensor]) -> bool:
    """A `build_transformer_local` checkpoint: the last block and norm live in `b1`, local branches in `b2`."""
    return "b1.0.attn.qkv.weight" in _plain(state)


def _depth(state: dict[str, torch.Tensor]) -> int:
    depth = 0
    while f"base.blocks.{depth}.attn.qkv.weight" in state:
        depth += 1
    return depth


def _is_vit_small(state: dict[str, torch.Tensor]) -> bool:
    """vit_small_patch16_224_TransReID: dim 768, MLP ratio 3, no qkv bias, 8 heads and qk_scale 768**-0.5."""
    dim = state["base.cls_token"].shape[-1]
    fc1 = state["base.blocks.0.mlp.fc1.weight"]
    return dim == 768 and fc1.shape[0] == 3 * dim and "base.blocks.0.attn.qkv.bias" not in state


def _num_heads(state: dict[str, torch.Tensor], num_heads: int | None) -> int:
    dim = int(state["base.cls_token"].shape[-1])
    heads = num_heads or (8 if _is_vit_small(state) else 12 if dim == 768 else dim // 64)
    if heads <= 0 or dim % heads:
        raise ConfigError(f"cannot split embedding dim {dim} into {heads} heads; pass the model's head count "
                          "(--num-heads N; num_heads in the API)")
    return heads


def _grid(img: Size, patch: int, stride: int) -> Size:
    return ((img[0] - patch) // stride + 1, (img[1] - patch) // stride + 1)


def _geometry(num_patches: int, patch: int, img_size: Size | None, stride: int | None) -> tuple[Size, int]:
    """(image size, stride) whose overlapping-patch grid has `num_patches` cells, as PatchEmbed_overlap counts.

    At TransReID's sizes every stride from patch/2 to patch gives a different count; small images need `stride`.
    """
    sizes = (img_size,) if img_size is not None else TRANSREID_SIZES
    strides = (stride,) if stride else tuple(range(patch, (patch + 1) // 2 - 1, -1))
    found = [(size, s) for size in sizes for s in strides
             if min(size) >= patch and _grid(size, patch, s)[0] * _grid(size, patch, s)[1] == num_patches]
    if len(found) == 1:
        return found[0]
    tried = ", ".join(f"{h}x{w}" for h, w in sizes)
    if not found:
        raise ConfigError(f"pos_embed has {num_patches} patches, which no stride of patch {patch} gives at {tried}; "
                          "pass the INPUT.SIZE_TEST and MODEL.STRIDE_SIZE it was trained with (--img-size HxW "
                          "--stride S; img_size and stride in the API)")
    options = ", ".join(f"{h}x{w} stride {s}" for (h, w), s in found)
    raise ConfigError(f"pos_embed's {num_patches} patches fit several geometries ({options}); pass TransReID's "
                      "INPUT.SIZE_TEST and MODEL.STRIDE_SIZE (--img-size HxW --stride S; img_size and stride in the "
                      "API)")


def _counts(rows: int, camera_num: int | None, view_num: int | None) -> tuple[int, int]:
    """(cameras, views) of `rows` SIE entries; an unused side counts 1, as TransReID builds camera × view rows."""
    cameras, views = (camera_num or 0), (view_num or 0)
    if not cameras and not views:
        return rows, 1  # SIE_CAMERA alone: the person re-ID configs
    if not views:
        views = rows // cameras if rows % cameras == 0 else 0
    elif not cameras:
        cameras = rows // views if rows % views == 0 else 0
    if cameras * views != rows:
        raise ConfigError(f"sie_embed has {rows} rows, which do not split into camera_num={camera_num} × "
                          f"view_num={view_num}")
    return cameras, views


def _sie_index(rows: int, camera: int, view: int, camera_num: int | None, view_num: int | None) -> int:
    """The row TransReID adds for (camera, view): camera·view_num + view, or camera / view when one side is off."""
    if rows == 0:
        if camera or view:
            raise ConfigError("this TransReID checkpoint has no side-information embedding (trained without "
                              "SIE_CAMERA/SIE_VIEW): camera and view do not apply, leave them at 0")
        return 0
    cameras, views = _counts(rows, camera_num, view_num)
    if not 0 <= camera < cameras:
        raise ConfigError(f"camera {camera} is out of range: this checkpoint has {cameras} camera embeddings "
                          f"(valid 0..{cameras - 1}, TransReID's 0-based camid)")
    if not 0 <= view < views:
        hint = "; pass view_num if it was trained with SIE_VIEW" if views == 1 else ""
        raise ConfigError(f"view {view} is out of range: this checkpoint has {views} view embeddings "
                          f"(valid 0..{views - 1}){hint}")
    return camera * views + view


def transreid_config(
    state: dict[str, torch.Tensor], camera: int = 0, view: int = 0, camera_num: int | None = None,
    view_num: int | None = None, neck_feat: str = "after", img_size: Size | None = None, *,
    stride: int | None = None, num_heads: int | None = None, sie_coe: float = 3.0, jpm_global_only: bool = False,
) -> ViTConfig:
    """The reference-ViT config that computes TransReID's test-time global feature for one camera/view."""
    state = _plain(state)
    if not is_transreid_state_dict(state):
        raise UnsupportedModelError("not a TransReID ViT checkpoint (no base.cls_token/base.pos_embed/bottleneck)")
    if neck_feat not in NECK_FEATS:
        raise ConfigError(f"neck_feat '{neck_feat}' is not one of {', '.join(NECK_FEATS)}")
    conv = state["base.patch_embed.proj.weight"]
    dim, in_chans, patch, patch_w = (int(n) for n in conv.shape)
    if is_jpm_state_dict(state) and not jpm_global_only:
        raise UnsupportedModelError(
            "this is a TransReID JPM checkpoint: its test feature concatenates 4 local features from shuffled patch "
            "groups (b2), which vit-edge cannot export; pass jpm_global_only=True to export the global branch alone "
            f"(the first {dim} of its features, not comparable with the 5×{dim} ones from TransReID's test.py)")
    if patch != patch_w:
        raise UnsupportedModelError(f"non-square patches {patch}x{patch_w} are not supported")
    num_patches = int(state["base.pos_embed"].shape[1]) - 1
    size, step = _geometry(num_patches, patch, to_hw(img_size) if img_size is not None else None, stride)
    rows = int(state["base.sie_embed"].shape[0]) if "base.sie_embed" in state else 0
    return ViTConfig(
        img_size=size, patch_size=patch, patch_stride=step, in_chans=in_chans, num_classes=0, embed_dim=dim,
        depth=_depth(state), num_heads=_num_heads(state, num_heads),
        mlp_hidden_dim=int(state["base.blocks.0.mlp.fc1.weight"].shape[0]),
        qkv_bias="base.blocks.0.attn.qkv.bias" in state, ln_eps=1e-6,
        patch_bias="base.patch_embed.proj.bias" in state, sie_embeds=rows, sie_scale=float(sie_coe),
        bnneck=neck_feat == "after",
        choices=ExportChoices(sie_index=_sie_index(rows, camera, view, camera_num, view_num)),
    )


def _rename(key: str, last: int, jpm: bool, bnneck: bool) -> str | None:
    """The reference ViT's name for a TransReID key; None for what the test-time global feature never uses."""
    if key.startswith("base."):
        name = key[len("base."):]
        unused_by_jpm = name.startswith((f"blocks.{last}.", "norm."))  # JPM runs b1 instead of them
        return None if name.startswith("fc.") or (jpm and unused_by_jpm) else name  # fc: the unused ImageNet head
    if jpm and key.startswith("b1.0."):
        return f"blocks.{last}." + key[len("b1.0."):]
    if jpm and key.startswith("b1.1."):
        return "norm." + key[len("b1.1."):]
    if key.startswith("classifier") or (jpm and key.startswith(_JPM_ONLY)):
        return None
    if key.startswith("bottleneck."):
        return key if bnneck else None
    return key  # unknown: load_strict will name it


def convert_transreid_state_dict(state: dict[str, torch.Tensor], cfg: ViTConfig) -> dict[str, torch.Tensor]:
    """TransReID's keys → vit.py's; a JPM checkpoint gives its global branch (b1 as the last block and norm)."""
    state = _plain(state)
    jpm = is_jpm_state_dict(state)
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        name = _rename(key, cfg.depth - 1, jpm, cfg.bnneck)
        if name is not None:
            out[name] = value
    if _is_vit_small(state):
        _fold_qk_scale(out, cfg, _VIT_SMALL_QK_SCALE)
    return out


def _fold_qk_scale(state: dict[str, torch.Tensor], cfg: ViTConfig, qk_scale: float) -> None:
    """vit.py scales Q by head_dim**-0.5; another qk_scale is folded into Q's rows of qkv (exact: no qkv bias)."""
    factor = qk_scale * (cfg.embed_dim // cfg.num_heads) ** 0.5
    for index in range(cfg.depth):
        key = f"blocks.{index}.attn.qkv.weight"
        weight = state[key].clone()
        weight[: cfg.embed_dim] *= factor
        state[key] = weight


def load_transreid(
    path: Path, camera: int = 0, view: int = 0, neck_feat: str = "after", *, camera_num: int | None = None,
    view_num: int | None = None, img_size: Size | None = None, stride: int | None = None,
    num_heads: int | None = None, sie_coe: float = 3.0, jpm_global_only: bool = False,
    mean: tuple[float, ...] = (0.5, 0.5, 0.5), std: tuple[float, ...] = (0.5, 0.5, 0.5),  # the released configs'
    state: dict[str, Any] | None = None,  # the file's content, when the caller has read it already
) -> tuple[VisionTransformer, InputSpec, Provenance]:
    """A TransReID .pth → (reference ViT in eval mode for one camera/view, its test transform, provenance)."""
    path = Path(path)
    state = _plain(read_state_dict(path) if state is None else state)
    if not is_transreid_state_dict(state):
        raise ModelLoadError(f"{path} is not a TransReID ViT checkpoint (no base.cls_token/base.pos_embed/bottleneck)")
    try:
        cfg = transreid_config(state, camera, view, camera_num, view_num, neck_feat, img_size, stride=stride,
                               num_heads=num_heads, sie_coe=sie_coe, jpm_global_only=jpm_global_only)
    except ValueError as exc:  # sizes no ViT has (the architecture's bounds), read from the weights
        raise ModelLoadError(f"{path} describes an impossible TransReID ViT: {exc}") from exc
    model = VisionTransformer(cfg)
    load_strict(model, convert_transreid_state_dict(state, cfg), str(path))
    # TransReID's val_transforms: T.Resize(SIZE_TEST) (torchvision's default, bilinear) to exactly H×W, no crop.
    spec = InputSpec(img_size=cfg.img_size, mean=tuple(mean), std=tuple(std),
                     interpolation="bilinear", crop_pct=1.0, crop_mode="squash")
    reid = ReidSource(camera, view, neck_feat, cfg.choices.sie_index, cfg.sie_embeds, cfg.sie_scale,
                      "global_only" if is_jpm_state_dict(state) else None)
    return model.eval(), spec, Provenance("transreid", str(path), family="transreid", weights_file=str(path), reid=reid)
