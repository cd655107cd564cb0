"""Hybrid ViTs (timm's ResNetV2 stem): timm's state-dict layout and logits, its patch grids, and torch.export.

The fixtures come from real timm 1.0.31 (tests/fixtures/make_timm_hybrid_golden.py); timm is never imported here.
"""
from __future__ import annotations

import gzip
import json
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from tests.helpers import FIXTURES
from vit_edge.models.hybrid import ResNetV2Stem, StdConv2dSame, fold_weight_standardization, same_padding
from vit_edge.models.vit import VisionTransformer, ViTConfig
from vit_edge.reading.checkpoint import load_strict

GOLDEN: dict[str, Any] = json.loads(gzip.decompress((FIXTURES / "timm_hybrid_names.json.gz").read_bytes()))


def _name_config(name: str) -> ViTConfig:
    config = dict(GOLDEN["names"][name]["config"])
    return ViTConfig(**{**config, "img_size": tuple(config["img_size"]), "hybrid": tuple(config["hybrid"])})


def small_hybrid_model() -> VisionTransformer:
    """Our ViT built from a ViTConfig like the fixture's (a narrow stem; released models all use width 64)."""
    small = GOLDEN["small"]
    cfg = ViTConfig(img_size=small["img_size"], patch_size=small["patch_size"], embed_dim=small["embed_dim"],
                    depth=small["depth"], num_heads=small["num_heads"], mlp_hidden_dim=small["mlp_hidden_dim"],
                    num_classes=small["num_classes"], hybrid=tuple(small["layers"]), hybrid_width=small["width"])
    model = VisionTransformer(cfg).eval()
    load_strict(model, {k: v.float() for k, v in load_file(str(FIXTURES / "timm_hybrid.safetensors")).items()},
                "timm_hybrid")
    return model


@pytest.fixture
def small_hybrid() -> VisionTransformer:
    return small_hybrid_model()


def test_small_hybrid_gives_timm_logits(small_hybrid: VisionTransformer) -> None:
    io = load_file(str(FIXTURES / "timm_hybrid_io.safetensors"))
    with torch.no_grad():
        logits = small_hybrid(io["inputs"].float())
    torch.testing.assert_close(logits, io["logits"], atol=2e-5, rtol=1e-5)


@pytest.mark.parametrize("name", sorted(GOLDEN["names"]))
def test_released_hybrid_has_timm_shapes_and_grid(name: str) -> None:
    record = GOLDEN["names"][name]
    with torch.device("meta"):
        model = VisionTransformer(_name_config(name))
    assert {k: list(v.shape) for k, v in model.state_dict().items()} == record["state_dict"]
    assert list(model.cfg.grid) == record["grid"]
    backbone = model.patch_embed.backbone
    ratio_h, ratio_w = record["feature_ratio"]
    assert backbone.reduction == model.cfg.feature_reduction == ratio_h == ratio_w
    for side, size in record["odd_feature_sizes"].items():  # 'SAME' padding rounds up, as in timm
        assert list(backbone(torch.zeros(1, 3, int(side), int(side), device="meta")).shape[-2:]) == size


def test_folded_weight_standardization_keeps_the_outputs(small_hybrid: VisionTransformer) -> None:
    io = load_file(str(FIXTURES / "timm_hybrid_io.safetensors"))
    assert fold_weight_standardization(small_hybrid) == 9  # stem + 4 convs in each of the two blocks
    with torch.no_grad():
        torch.testing.assert_close(small_hybrid(io["inputs"].float()), io["logits"], atol=2e-5, rtol=1e-5)


def test_weight_standardization_is_timms_batch_norm_form() -> None:
    conv = StdConv2dSame(8, 16, 3)
    timm_form = F.batch_norm(conv.weight.reshape(1, 16, -1), None, None, training=True, momentum=0.0,
                             eps=conv.eps).reshape_as(conv.weight)
    torch.testing.assert_close(conv.standardized_weight(), timm_form, atol=1e-6, rtol=1e-5)


def test_same_padding_puts_the_odd_pixel_after() -> None:
    assert same_padding(64, 7, 2) == (2, 3)
    assert same_padding(32, 3, 2) == (0, 1)
    assert same_padding(16, 1, 2) == (0, 0)


@pytest.mark.parametrize("layers, width", [((1, 1, 1, 1, 1), 64), ((2, 0), 64), ((1,), 48)])
def test_stem_refuses_what_timm_cannot_build(layers: tuple[int, ...], width: int) -> None:
    with pytest.raises(ValueError, match="hybrid"):
        ResNetV2Stem(3, layers, width=width)


def test_small_hybrid_exports_with_dynamic_batch(small_hybrid: VisionTransformer) -> None:
    example = torch.randn(2, 3, 64, 64)
    batch = torch.export.Dim("batch", min=1, max=64)
    program = torch.export.export(small_hybrid, (example,), dynamic_shapes=({0: batch},), strict=False)
    other = torch.randn(3, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(program.module()(other), small_hybrid(other), atol=1e-5, rtol=1e-5)
