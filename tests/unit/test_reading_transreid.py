"""TransReID checkpoints: a small one shaped as its training saves it, checked against a plain-torch recomputation.

The recomputation below follows TransReID's test-time forward (PatchEmbed_overlap → [cls, patches] + pos_embed +
sie_xishu·sie_embed[camera·view_num + view] → blocks → norm → token 0 → bottleneck if NECK_FEAT is 'after') with
functional ops over the saved tensors, so it does not share code with vit.py.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F

from tests.helpers import small_vit
from vit_edge.core.errors import ConfigError, ModelLoadError, UnsupportedModelError
from vit_edge.reading.transreid import (
    convert_transreid_state_dict,
    is_jpm_state_dict,
    is_transreid_state_dict,
    load_transreid,
    transreid_config,
)

DIM, DEPTH, HEADS, PATCH, STRIDE, IMG = 48, 2, 3, 16, 12, (64, 32)  # a 5×2 grid of overlapping patches
GEOMETRY: dict[str, Any] = {"img_size": IMG, "stride": STRIDE, "num_heads": HEADS}  # strides 10..12 all give 5×2


def _block(prefix: str, dim: int, mlp: int, gen: torch.Generator, qkv_bias: bool = True) -> dict[str, torch.Tensor]:
    def rnd(*shape: int, scale: float = 0.1) -> torch.Tensor:
        return torch.randn(*shape, generator=gen) * scale

    block = {f"{prefix}norm1.weight": 1 + rnd(dim), f"{prefix}norm1.bias": rnd(dim),
             f"{prefix}attn.qkv.weight": rnd(3 * dim, dim)}
    if qkv_bias:
        block[f"{prefix}attn.qkv.bias"] = rnd(3 * dim)
    block.update({f"{prefix}attn.proj.weight": rnd(dim, dim), f"{prefix}attn.proj.bias": rnd(dim),
                  f"{prefix}norm2.weight": 1 + rnd(dim), f"{prefix}norm2.bias": rnd(dim),
                  f"{prefix}mlp.fc1.weight": rnd(mlp, dim), f"{prefix}mlp.fc1.bias": rnd(mlp),
                  f"{prefix}mlp.fc2.weight": rnd(dim, mlp), f"{prefix}mlp.fc2.bias": rnd(dim)})
    return block


def _bn(prefix: str, dim: int, gen: torch.Generator) -> dict[str, torch.Tensor]:
    return {f"{prefix}.weight": 1 + 0.1 * torch.randn(dim, generator=gen), f"{prefix}.bias": torch.zeros(dim),
            f"{prefix}.running_mean": 0.1 * torch.randn(dim, generator=gen),
            f"{prefix}.running_var": 0.5 + torch.rand(dim, generator=gen), f"{prefix}.num_batches_tracked":
            torch.tensor(120, dtype=torch.long)}


def transreid_state(dim: int = DIM, depth: int = DEPTH, sie_rows: int = 3, jpm: bool = False, mlp: int | None = None,
                    qkv_bias: bool = True, img: tuple[int, int] = IMG, stride: int = STRIDE,
                    seed: int = 0) -> dict[str, torch.Tensor]:
    """Keys and order of build_transformer(_local).state_dict(): base (TransReID), [b1, b2], classifier(s), BNNecks."""
    gen = torch.Generator().manual_seed(seed)
    mlp = mlp or 4 * dim
    patches = ((img[0] - PATCH) // stride + 1) * ((img[1] - PATCH) // stride + 1)
    state = {"base.cls_token": 0.1 * torch.randn(1, 1, dim, generator=gen),
             "base.pos_embed": 0.1 * torch.randn(1, patches + 1, dim, generator=gen)}
    if sie_rows:
        state["base.sie_embed"] = 0.1 * torch.randn(sie_rows, 1, dim, generator=gen)
    state["base.patch_embed.proj.weight"] = 0.05 * torch.randn(dim, 3, PATCH, PATCH, generator=gen)
    state["base.patch_embed.proj.bias"] = 0.1 * torch.randn(dim, generator=gen)
    for index in range(depth):
        state.update(_block(f"base.blocks.{index}.", dim, mlp, gen, qkv_bias))
    state.update({"base.norm.weight": 1 + 0.1 * torch.randn(dim, generator=gen),
                  "base.norm.bias": 0.1 * torch.randn(dim, generator=gen),
                  "base.fc.weight": torch.randn(1000, dim, generator=gen), "base.fc.bias": torch.zeros(1000)})
    branches = ("b1", "b2") if jpm else ()
    for branch in branches:
        state.update(_block(f"{branch}.0.", dim, mlp, gen, qkv_bias))
        state.update({f"{branch}.1.weight": 1 + 0.1 * torch.randn(dim, generator=gen),
                      f"{branch}.1.bias": 0.1 * torch.randn(dim, generator=gen)})
    for suffix in ("", "_1", "_2", "_3", "_4") if jpm else ("",):
        state[f"classifier{suffix}.weight"] = torch.randn(7, dim, generator=gen)
    for suffix in ("", "_1", "_2", "_3", "_4") if jpm else ("",):
        state.update(_bn(f"bottleneck{suffix}", dim, gen))
    return state


def _layer_norm(x: torch.Tensor, state: dict[str, torch.Tensor], prefix: str) -> torch.Tensor:
    return F.layer_norm(x, x.shape[-1:], state[f"{prefix}weight"], state[f"{prefix}bias"], eps=1e-6)


def _reference_block(x: torch.Tensor, state: dict[str, torch.Tensor], prefix: str, heads: int,
                     qk_scale: float | None) -> torch.Tensor:
    batch, tokens, dim = x.shape
    head_dim = dim // heads
    h = _layer_norm(x, state, f"{prefix}norm1.")
    qkv = F.linear(h, state[f"{prefix}attn.qkv.weight"], state.get(f"{prefix}attn.qkv.bias"))
    q, k, v = qkv.reshape(batch, tokens, 3, heads, head_dim).permute(2, 0, 3, 1, 4)
    attn = ((q @ k.transpose(-2, -1)) * (qk_scale or head_dim**-0.5)).softmax(dim=-1)
    out = (attn @ v).transpose(1, 2).reshape(batch, tokens, dim)
    x = x + F.linear(out, state[f"{prefix}attn.proj.weight"], state[f"{prefix}attn.proj.bias"])
    h = _layer_norm(x, state, f"{prefix}norm2.")
    h = F.linear(F.gelu(F.linear(h, state[f"{prefix}mlp.fc1.weight"], state[f"{prefix}mlp.fc1.bias"])),
                 state[f"{prefix}mlp.fc2.weight"], state[f"{prefix}mlp.fc2.bias"])
    return x + h


def reference_feature(state: dict[str, torch.Tensor], images: torch.Tensor, sie_row: int | None, neck_feat: str,
                      heads: int = HEADS, stride: int = STRIDE, jpm: bool = False, sie_coe: float = 3.0,
                      qk_scale: float | None = None) -> torch.Tensor:
    """TransReID's eval-mode global feature, written out op by op."""
    x = F.conv2d(images, state["base.patch_embed.proj.weight"], state["base.patch_embed.proj.bias"], stride=stride)
    x = x.flatten(2).transpose(1, 2)
    x = torch.cat([state["base.cls_token"].expand(x.shape[0], -1, -1), x], dim=1) + state["base.pos_embed"]
    if sie_row is not None:
        x = x + sie_coe * state["base.sie_embed"][sie_row]
    depth = sum(1 for key in state if key.startswith("base.blocks.") and key.endswith(".attn.qkv.weight"))
    prefixes = [f"base.blocks.{i}." for i in range(depth)]
    if jpm:  # the base stops before its last block; b1 = copy of the last block + norm, trained on its own
        prefixes[-1] = "b1.0."
    for prefix in prefixes:
        x = _reference_block(x, state, prefix, heads, qk_scale)
    feat = _layer_norm(x, state, "b1.1." if jpm else "base.norm.")[:, 0]
    if neck_feat == "before":
        return feat
    return F.batch_norm(feat, state["bottleneck.running_mean"], state["bottleneck.running_var"],
                        state["bottleneck.weight"], state["bottleneck.bias"], training=False, eps=1e-5)


def _save(state: dict[str, torch.Tensor], path: Path) -> Path:
    torch.save(state, path)  # processor.do_train: torch.save(model.state_dict(), ...)
    return path


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return torch.randn(2, 3, *IMG, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("camera", [0, 2])
@pytest.mark.parametrize("neck_feat", ["after", "before"])
def test_loaded_model_computes_transreid_feature(tmp_path: Path, images: torch.Tensor, camera: int,
                                                 neck_feat: str) -> None:
    state = transreid_state()
    path = _save(state, tmp_path / "transformer_120.pth")
    model, spec, source = load_transreid(path, camera=camera, neck_feat=neck_feat, **GEOMETRY)
    with torch.no_grad():
        out = model(images)
    torch.testing.assert_close(out, reference_feature(state, images, camera, neck_feat), atol=1e-5, rtol=1e-5)
    assert out.shape == (2, DIM)
    cfg = model.cfg
    assert (cfg.patch_stride, cfg.choices.sie_index, cfg.bnneck) == (STRIDE, camera, neck_feat == "after")
    assert spec.img_size == IMG and spec.mean == (0.5, 0.5, 0.5) and spec.crop_pct == 1.0
    assert source.kind == source.family == "transreid"
    assert (source.reid.camera, source.reid.view, source.reid.neck_feat) == (camera, 0, neck_feat)


def test_camera_changes_the_feature(tmp_path: Path, images: torch.Tensor) -> None:
    path = _save(transreid_state(), tmp_path / "t.pth")
    outs = [load_transreid(path, camera=c, **GEOMETRY)[0](images) for c in (0, 2)]
    assert not torch.allclose(outs[0], outs[1])


def test_distributed_module_prefix_is_accepted(tmp_path: Path, images: torch.Tensor) -> None:
    state = transreid_state()
    path = _save({f"module.{k}": v for k, v in state.items()}, tmp_path / "ddp.pth")
    assert is_transreid_state_dict(torch.load(path, weights_only=True))
    model = load_transreid(path, camera=1, **GEOMETRY)[0]
    torch.testing.assert_close(model(images), reference_feature(state, images, 1, "after"), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("camera", [3, -1])
def test_bad_camera_is_one_config_error_line(camera: int) -> None:
    with pytest.raises(ConfigError, match=r"valid 0\.\.2") as info:
        transreid_config(transreid_state(), camera=camera, **GEOMETRY)
    assert "\n" not in str(info.value)


def test_camera_and_view_index_as_transreid_does() -> None:
    state = transreid_state(sie_rows=6)  # SIE_CAMERA and SIE_VIEW: camera_num × view_num rows
    cfg = transreid_config(state, camera=2, view=1, camera_num=3, view_num=2, **GEOMETRY)
    assert (cfg.sie_embeds, cfg.choices.sie_index) == (6, 2 * 2 + 1)
    assert transreid_config(state, camera=2, view=1, view_num=2, **GEOMETRY).choices.sie_index == 5
    with pytest.raises(ConfigError, match=r"view 2 is out of range"):
        transreid_config(state, camera=0, view=2, camera_num=3, view_num=2, **GEOMETRY)
    with pytest.raises(ConfigError, match=r"do not split"):
        transreid_config(state, camera_num=4, **GEOMETRY)


def test_without_sie_camera_does_not_apply(tmp_path: Path, images: torch.Tensor) -> None:
    state = transreid_state(sie_rows=0)
    model = load_transreid(_save(state, tmp_path / "t.pth"), **GEOMETRY)[0]
    torch.testing.assert_close(model(images), reference_feature(state, images, None, "after"), atol=1e-5, rtol=1e-5)
    with pytest.raises(ConfigError, match="no side-information"):
        transreid_config(state, camera=1, **GEOMETRY)


def test_other_state_dicts_are_not_claimed(tmp_path: Path) -> None:
    assert not is_transreid_state_dict(small_vit().state_dict())
    resnet = {"base.conv1.weight": torch.zeros(64, 3, 7, 7), "bottleneck.running_var": torch.ones(2048),
              "classifier.weight": torch.zeros(7, 2048)}  # TransReID's ResNet-50 baseline
    assert not is_transreid_state_dict(resnet)
    with pytest.raises(ModelLoadError, match="not a TransReID"):
        load_transreid(_save(resnet, tmp_path / "resnet.pth"))
    with pytest.raises(ConfigError, match="neck_feat"):
        transreid_config(transreid_state(), neck_feat="middle", **GEOMETRY)


def test_jpm_is_refused_unless_the_global_branch_is_asked_for(tmp_path: Path, images: torch.Tensor) -> None:
    state = transreid_state(jpm=True)
    assert is_transreid_state_dict(state) and is_jpm_state_dict(state)
    path = _save(state, tmp_path / "jpm.pth")
    with pytest.raises(UnsupportedModelError, match="JPM") as info:
        load_transreid(path, **GEOMETRY)
    assert "\n" not in str(info.value)
    for neck_feat in ("after", "before"):
        model, _, source = load_transreid(path, camera=2, neck_feat=neck_feat, **GEOMETRY,
                                          jpm_global_only=True)
        expected = reference_feature(state, images, 2, neck_feat, jpm=True)
        torch.testing.assert_close(model(images), expected, atol=1e-5, rtol=1e-5)
        assert source.reid.jpm == "global_only"


@pytest.mark.parametrize(("img", "stride"), [((256, 128), 12), ((256, 128), 16), ((384, 128), 12),
                                             ((256, 256), 12), ((256, 128), 11)])
def test_geometry_is_inferred_from_the_position_embedding(img: tuple[int, int], stride: int) -> None:
    state = transreid_state(depth=1, img=img, stride=stride)
    cfg = transreid_config(state, num_heads=HEADS)
    assert (cfg.image_hw, cfg.patch_stride, cfg.patch_size) == (img, stride, PATCH)
    assert cfg.num_patches + 1 == state["base.pos_embed"].shape[1]


def test_ambiguous_geometry_asks_for_the_stride() -> None:
    with pytest.raises(ConfigError, match="--img-size HxW --stride S; img_size and stride in the API"):
        transreid_config(transreid_state(), img_size=IMG, num_heads=HEADS)


def test_vit_small_qk_scale_is_folded_into_the_query(images: torch.Tensor) -> None:
    """vit_small_patch16_224_TransReID: 8 heads of 96, no qkv bias, MLP ratio 3 and qk_scale 768**-0.5."""
    state = transreid_state(dim=768, depth=1, mlp=2304, qkv_bias=False, img=(32, 16), stride=16, sie_rows=0)
    cfg = transreid_config(state, img_size=(32, 16), stride=16)
    assert (cfg.num_heads, cfg.qkv_bias) == (8, False)
    from vit_edge.models.vit import VisionTransformer

    model = VisionTransformer(cfg).eval()
    model.load_state_dict(convert_transreid_state_dict(state, cfg))
    small = images[:, :, :32, :16]
    expected = reference_feature(state, small, None, "after", heads=8, stride=16, qk_scale=768**-0.5)
    torch.testing.assert_close(model(small), expected, atol=1e-4, rtol=1e-4)
