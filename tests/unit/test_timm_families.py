"""timm's ViT families load into the reference ViT and give timm's outputs (fixtures made by real timm 1.0.31).

One small model per family, built by timm's own VisionTransformer with that family's options; and models handed
over in memory (real timm, imported beside a torchvision stand-in).
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from tests.helpers import FIXTURES
from vit_edge.core.errors import ModelLoadError, UnsupportedModelError
from vit_edge.models.vit import VisionTransformer, ViTConfig
from vit_edge.reading.checkpoint import load_strict
from vit_edge.reading.loaders import load_model
from vit_edge.reading.registry import TIMM_FAMILIES, timm_entry

FAMILIES = json.loads((FIXTURES / "timm_families.json").read_text())


def family_model(family: str) -> tuple[VisionTransformer, dict[str, torch.Tensor]]:
    tensors = load_file(str(FIXTURES / "timm_families.safetensors"))
    prefix = f"{family}.state."
    state = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
    model = VisionTransformer(ViTConfig.from_json(FAMILIES[family])).eval()
    load_strict(model, state, family)
    return model, {"inputs": tensors[f"{family}.inputs"], "output": tensors[f"{family}.output"]}


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_family_reproduces_timm(family: str) -> None:
    model, io = family_model(family)
    with torch.no_grad():
        torch.testing.assert_close(model(io["inputs"]), io["output"], atol=2e-5, rtol=1e-5)


def test_families_cover_the_issue() -> None:
    assert {"deit3", "dinov2", "dinov2-reg", "clip", "siglip", "hybrid", "patch14", "deit", "vit"} <= set(
        TIMM_FAMILIES)
    for name in ("deit3_small_patch16_224", "vit_small_patch14_dinov2", "vit_small_patch14_reg4_dinov2",
                 "vit_base_patch16_clip_224", "vit_base_patch16_siglip_224", "vit_base_r50_s16_384",
                 "vit_large_patch14_clip_quickgelu_224", "vit_giant_patch14_dinov2"):
        timm_entry(name)


def test_weights_win_over_the_name(tmp_path: Path) -> None:
    """A DINOv2-S fine-tuned at 224 with a 7-class head loads as such, not as the name's 518 px encoder."""
    cfg = timm_entry("vit_small_patch14_dinov2").config.with_(img_size=224, num_classes=7, depth=2)
    torch.manual_seed(0)
    state = VisionTransformer(cfg).state_dict()
    full = timm_entry("vit_small_patch14_dinov2").config
    for index in range(2, full.depth):  # the name has 12 blocks: give the file all of them
        for key, value in VisionTransformer(cfg.with_(depth=1)).state_dict().items():
            if key.startswith("blocks.0."):
                state[key.replace("blocks.0.", f"blocks.{index}.")] = value
    save_file({k: v.contiguous() for k, v in state.items()}, str(tmp_path / "w.safetensors"))
    loaded = load_model("timm:vit_small_patch14_dinov2", weights=tmp_path / "w.safetensors")
    assert loaded.model.cfg.num_classes == 7 and loaded.model.cfg.img_size == 224
    assert loaded.spec.img_size == 224 and loaded.source["family"] == "dinov2"
    assert loaded.model(torch.randn(1, 3, 224, 224)).shape == (1, 7)


@pytest.mark.parametrize("name, feature", [
    ("eva02_enormous_patch14_clip_224", "EvaBlockPostNorm blocks"),
    ("vit_base_patch16_rpn_224", "ResPostBlock"),
    ("swin_tiny_patch4_window7_224", "shifted-window"),
    ("vitamin_small_224", "MbConvStages hybrid stem"),
])
def test_unsupported_feature_is_named(name: str, feature: str) -> None:
    with pytest.raises(UnsupportedModelError, match=feature) as info:
        load_model(f"timm:{name}", random_init=True)
    assert "nearest that loads" in str(info.value) and "\n" not in str(info.value)


def test_checkpoint_of_another_architecture_is_one_line(tmp_path: Path) -> None:
    save_file({"conv1.weight": torch.zeros(8, 3, 3, 3)}, str(tmp_path / "cnn.safetensors"))
    with pytest.raises(ModelLoadError, match="do not fit the architecture"):
        load_model("timm:deit3_small_patch16_224", weights=tmp_path / "cnn.safetensors")


def test_timm_module_in_memory() -> None:
    """A timm VisionTransformer object is read through its structure and state dict (real timm)."""
    from tests.timm_import import import_timm

    timm = import_timm()
    torch.manual_seed(0)
    for name, size in [("vit_small_patch14_reg4_dinov2", 56), ("vit_base_patch16_siglip_224", 32),
                       ("deit3_small_patch16_224", 32)]:
        module = timm.create_model(name, img_size=size, depth=2).eval()
        loaded = load_model(module)
        x = torch.randn(2, 3, size, size)
        with torch.no_grad():
            torch.testing.assert_close(loaded.model(x), module(x), atol=2e-5, rtol=1e-5)
        assert loaded.source["family"] == timm_entry(name).family


@pytest.mark.parametrize("name", ["vit_small_patch14_dinov2", "vit_small_patch14_reg4_dinov2"])
def test_timm_models_resample_as_timm_does(name: str) -> None:
    """Another input size resamples the position table as timm's resample_abs_pos_embed does (bicubic, antialiased):
    once at load (--img-size), or in the graph at each call (--dynamic-size), as timm's dynamic_img_size does."""
    from tests.timm_import import import_timm

    timm = import_timm()
    torch.manual_seed(0)
    module = timm.create_model(name, img_size=56, depth=2, dynamic_img_size=True).eval()
    with torch.no_grad():
        for param in module.parameters():
            param.add_(0.05 * torch.randn_like(param))
    dynamic = load_model(module, dynamic_size=True).model
    assert dynamic.cfg.pos_embed_antialias and dynamic.cfg.choices.dynamic_size
    for size in [(70, 98), (28, 42)]:  # up and down from 56
        x = torch.randn(2, 3, *size)
        with torch.no_grad():
            expected = module(x)
            torch.testing.assert_close(load_model(module, img_size=size).model(x), expected, atol=2e-5, rtol=1e-5)
            torch.testing.assert_close(dynamic(x), expected, atol=2e-5, rtol=1e-5)


def test_other_modules_are_refused() -> None:
    with pytest.raises(UnsupportedModelError, match="not a ViT vit-edge can read"):
        load_model(torch.nn.Conv2d(3, 8, 3))


def test_weights_of_an_inexpressible_model_name_the_feature(tmp_path: Path) -> None:
    """A BEiT-style state dict given as a ViT's weights: the one line says what the reference lacks."""
    state = VisionTransformer(timm_entry("vit_small_patch16_224").config.with_(depth=1)).state_dict()
    state["blocks.0.attn.relative_position_bias_table"] = torch.zeros(732, 6)
    save_file({k: v.contiguous() for k, v in state.items()}, str(tmp_path / "beit.safetensors"))
    with pytest.raises(ModelLoadError, match="relative position bias") as info:
        load_model("timm:vit_small_patch16_224", weights=tmp_path / "beit.safetensors")
    assert "\n" not in str(info.value)
