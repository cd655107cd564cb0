"""timm's models load into the reference ViT and give timm's outputs.

The VisionTransformer families: one small model per family, built by timm's own VisionTransformer with that
family's options (fixtures made by real timm 1.0.31); and models handed over in memory (real timm, imported beside
a torchvision stand-in). Then the Eva-class families (DINOv3, EVA-02, Perception Encoder: rotary embeddings) with
their authors' own checkpoint layouts, and AIMv2, RoPE-ViT and LingBot, each against real timm's own model.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file, save_file

from tests.helpers import FIXTURES, timm_dinov3
from vit_edge.core.errors import ConfigError, ModelLoadError, UnsupportedModelError
from vit_edge.models.rope import dinov3_tables
from vit_edge.models.vit import VisionTransformer, ViTConfig
from vit_edge.reading.checkpoint import load_strict
from vit_edge.reading.loaders import load_model
from vit_edge.reading.registry import TIMM_FAMILIES, TIMM_NAMES, timm_entry

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
    assert loaded.spec.img_size == 224 and loaded.source.family == "dinov2"
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
        assert loaded.source.family == timm_entry(name).family


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


# --- timm's Eva class (was test_rope_families.py): DINOv3 (rotary position embeddings, registers, no absolute
# position embedding, Eva's q/v biases, SwiGLU on the larger sizes), EVA-02 and PE give real timm's outputs ---

# name, timm kwargs (small enough to build in a second), input (height, width)
DINOV3_CASES: list[tuple[str, dict[str, Any], tuple[int, int]]] = [
    ("vit_small_patch16_dinov3", dict(depth=2, img_size=64, num_classes=5), (64, 64)),
    ("vit_small_patch16_dinov3_qkvb", dict(depth=2, img_size=(48, 80), num_classes=0), (48, 80)),
    ("vit_small_patch16_dinov3", dict(depth=2, img_size=64, num_classes=0, global_pool="token"), (64, 64)),
    ("vit_small_plus_patch16_dinov3", dict(depth=2, img_size=32, num_classes=3), (32, 32)),
]


@pytest.mark.parametrize("name, kwargs, size", DINOV3_CASES)
def test_dinov3_module_matches_timm(name: str, kwargs: dict[str, Any], size: tuple[int, int]) -> None:
    reference = timm_dinov3(name, **kwargs)
    loaded = load_model(reference)
    assert loaded.model.cfg.rope == "dinov3" and loaded.model.pos_embed is None
    x = torch.randn(2, 3, *size)
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(x), reference(x), atol=1e-4, rtol=0)
        torch.testing.assert_close(loaded.model.forward_features(x), reference.forward_features(x), atol=1e-4, rtol=0)


def test_rotation_tables_match_timm() -> None:
    from tests.timm_import import import_timm

    import_timm()
    from timm.layers.pos_embed_sincos import RotaryEmbeddingDinoV3

    for grid, rotate_half in [((4, 4), True), ((3, 5), True), ((2, 6), False)]:
        rope = RotaryEmbeddingDinoV3(dim=32, temperature=100.0, rotate_half=rotate_half)
        sin, cos = rope.get_embed(shape=list(grid)).chunk(2, dim=-1)
        ours = dinov3_tables(grid, 32, 100.0, rotate_half)
        torch.testing.assert_close(ours[0], sin, atol=1e-6, rtol=0)
        torch.testing.assert_close(ours[1], cos, atol=1e-6, rtol=0)


def test_timm_state_dict_of_a_dinov3_name(tmp_path: Path) -> None:
    """timm:NAME --weights: Eva's names (gamma_1, q_bias/v_bias, fc1_g/fc1_x) are read; a fine-tuned head too."""
    reference = timm_dinov3("vit_small_plus_patch16_dinov3", num_classes=7)
    weights = tmp_path / "dinov3.pth"
    torch.save(reference.state_dict(), weights)
    loaded = load_model("timm:vit_small_plus_patch16_dinov3", weights=weights)
    assert loaded.model.cfg.num_classes == 7 and loaded.source.family == "dinov3"
    x = torch.randn(1, 3, loaded.spec.height, loaded.spec.width)
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(x), reference(x), atol=1e-4, rtol=0)


def test_another_size_rebuilds_the_rotation_for_its_grid() -> None:
    """--img-size: nothing to resample (no absolute embedding); timm computes the tables for the new grid too."""
    reference = timm_dinov3("vit_small_patch16_dinov3", depth=2, img_size=64, num_classes=0, dynamic_img_size=True)
    loaded = load_model(reference, img_size=(48, 96))
    x = torch.randn(2, 3, 48, 96)
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(x), reference(x), atol=1e-4, rtol=0)


def test_dinov3_names_are_listed_and_other_eva_variants_named() -> None:
    dinov3 = [name for name in TIMM_NAMES if timm_entry(name).family == "dinov3"]
    assert "vit_small_patch16_dinov3" in dinov3 and "vit_huge_plus_patch16_dinov3_qkvb" in dinov3
    eva02 = [name for name in TIMM_NAMES if timm_entry(name).family == "eva02"]
    assert "eva02_small_patch14_224" in eva02 and "eva02_large_patch14_448" in eva02
    pe = [name for name in TIMM_NAMES if timm_entry(name).family == "pe"]
    assert len(pe) == 12 and "vit_pe_core_small_patch16_384" in pe and "vit_pe_spatial_tiny_patch16_512" in pe
    for name, feature in [("eva02_enormous_patch14_clip_224", "EvaBlockPostNorm blocks"),
                          ("vit_base_patch16_xp_224", "ParallelScalingBlock blocks")]:
        with pytest.raises(UnsupportedModelError, match=feature):
            timm_entry(name)


def test_rope_refusals_are_one_line(tmp_path: Path) -> None:
    reference = timm_dinov3("vit_small_patch16_dinov3", num_classes=0)
    with pytest.raises(ConfigError, match="no token merging"):
        load_model(reference, merge=4)
    with pytest.raises(ConfigError, match="multiple of the patch size"):
        load_model(reference, img_size=100)
    state = reference.state_dict()
    state["blocks.0.mlp.fc1.weight"] = state["blocks.0.mlp.fc1.weight"][:, :10]
    torch.save(state, tmp_path / "other.pth")
    with pytest.raises(ModelLoadError, match="do not fit the architecture"):
        load_model("timm:vit_small_patch16_dinov3", weights=tmp_path / "other.pth")


def _as_original_dinov3(timm_state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The layout facebookresearch/dinov3 saves (storage_tokens, ls1.gamma, one qkv.bias with its bias_mask,
    periods, mask_token): the inverse of timm's checkpoint_filter_fn, which the test then uses as the oracle."""
    out: dict[str, torch.Tensor] = {"mask_token": torch.zeros(1, timm_state["cls_token"].shape[-1]),
                                    "rope_embed.periods": torch.ones(8)}
    for key, value in timm_state.items():
        if key.endswith("attn.q_bias"):
            v_bias = timm_state[key.replace("q_bias", "v_bias")]
            out[key.replace("q_bias", "qkv.bias")] = torch.cat([value, 7 * torch.ones_like(value), v_bias])
            out[key.replace("q_bias", "qkv.bias_mask")] = torch.cat([torch.ones_like(value), torch.zeros_like(value),
                                                                     torch.ones_like(value)])
        elif not key.endswith("attn.v_bias"):
            out[key.replace("gamma_1", "ls1.gamma").replace("gamma_2", "ls2.gamma").replace("reg_token",
                                                                                            "storage_tokens")] = value
    return out


def test_a_checkpoint_in_the_original_dinov3_layout(tmp_path: Path) -> None:
    """As Meta releases the weights; timm's own checkpoint_filter_fn reads the same file into timm's model, and the
    k bias (7 here, masked to 0 by the original) must not leak in."""
    reference = timm_dinov3("vit_small_patch16_dinov3_qkvb", num_classes=0)  # imports timm beside the stand-in
    from timm.models.eva import checkpoint_filter_fn

    original = _as_original_dinov3(reference.state_dict())
    reference.load_state_dict(checkpoint_filter_fn(dict(original), reference))  # the oracle: timm reads it so
    torch.save(original, tmp_path / "dinov3_vits16.pth")
    loaded = load_model("timm:vit_small_patch16_dinov3_qkvb", weights=tmp_path / "dinov3_vits16.pth")
    x = torch.randn(1, 3, loaded.spec.height, loaded.spec.width)
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(x), reference(x), atol=1e-4, rtol=0)

EVA02_CASES: list[tuple[str, dict[str, Any], int]] = [
    ("eva02_tiny_patch14_224", dict(depth=2, img_size=56, ref_feat_shape=(4, 4), num_classes=5), 56),
    ("eva02_small_patch14_224", dict(depth=2, img_size=56, ref_feat_shape=(16, 16), num_classes=0), 56),
    # unfused q/k/v with q and v biases, SwiGLU with the norm inside (scale_mlp)
    ("eva02_base_patch14_224", dict(depth=2, img_size=42, ref_feat_shape=(16, 16), num_classes=3), 42),
    # the CLIP tower: a norm on the attention output before proj (scale_attn_inner), the image projection as head
    ("eva02_base_patch16_clip_224", dict(depth=2, img_size=64), 64),
]


@pytest.mark.parametrize("name, kwargs, size", EVA02_CASES)
def test_eva02_module_matches_timm(name: str, kwargs: dict[str, Any], size: int) -> None:
    """EVA-02: absolute and rotary position embeddings together, interleaved rotation on patch indices rescaled to
    the pretraining grid (ref_feat_shape)."""
    reference = timm_dinov3(name, **kwargs)
    loaded = load_model(reference)
    assert loaded.model.cfg.rope == "eva" and loaded.model.pos_embed is not None
    assert loaded.model.cfg.attn_out_norm == ("clip" in name)
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(x), reference(x), atol=1e-4, rtol=0)


def test_eva02_state_dict_of_a_name(tmp_path: Path) -> None:
    reference = timm_dinov3("eva02_base_patch14_224", num_classes=4)
    torch.save(reference.state_dict(), tmp_path / "eva02.pth")
    loaded = load_model("timm:eva02_base_patch14_224", weights=tmp_path / "eva02.pth")
    x = torch.randn(1, 3, loaded.spec.height, loaded.spec.width)
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(x), reference(x), atol=1e-4, rtol=0)


def test_eva01_without_rotary_embeddings() -> None:
    """EVA-01 (eva_giant_*): an Eva with absolute position embeddings only; its q/v biases as for EVA-02."""
    reference = timm_dinov3("eva_giant_patch14_224", depth=2, img_size=56, embed_dim=64, num_heads=4, num_classes=3)
    loaded = load_model(reference)
    assert loaded.model.cfg.rope == "none"
    x = torch.randn(2, 3, 56, 56)
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(x), reference(x), atol=1e-4, rtol=0)

PE_CASES: list[tuple[str, dict[str, Any], int]] = [
    # core: MAP head over every token, class token included, 8 heads of its own; rotation offset 1, xy order
    ("vit_pe_core_tiny_patch16_384", dict(depth=2, img_size=64), 64),
    # spatial: average pooling, no final norm (its patch tokens are the product)
    ("vit_pe_spatial_tiny_patch16_512", dict(depth=2, img_size=96), 96),
    # lang: LayerScale
    ("vit_pe_lang_large_patch14_448", dict(depth=2, img_size=56, embed_dim=64, num_heads=4), 56),
    # G: no class token, a pool MLP narrower than the blocks'
    ("vit_pe_core_gigantic_patch14_448", dict(depth=2, img_size=56, embed_dim=64, num_heads=4), 56),
]


@pytest.mark.parametrize("name, kwargs, size", PE_CASES)
def test_perception_encoder_matches_timm(name: str, kwargs: dict[str, Any], size: int) -> None:
    """Meta's Perception Encoder (timm's Eva with AttentionRope): output and patch tokens as timm gives them."""
    reference = timm_dinov3(name, **kwargs)
    loaded = load_model(reference)
    assert loaded.model.cfg.rope_xy and loaded.source.family == "pe"
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(x), reference(x), atol=1e-4, rtol=0)
        tokens = loaded.model.reconfigured(output="tokens")(x)
        expected = reference.forward_features(x)[:, reference.num_prefix_tokens :]
        torch.testing.assert_close(tokens, expected, atol=1e-4, rtol=0)


def test_perception_encoder_state_dict_of_a_name(tmp_path: Path) -> None:
    """timm:NAME --weights for PE-core-S: its qkv bias whole (k's part too), its projection as the head."""
    reference = timm_dinov3("vit_pe_core_small_patch16_384", depth=2)
    torch.save(reference.state_dict(), tmp_path / "pe.pth")
    with pytest.raises(ModelLoadError, match="do not fit"):  # the name has 12 blocks, the file 2
        load_model("timm:vit_pe_core_small_patch16_384", weights=tmp_path / "pe.pth")
    full = timm_dinov3("vit_pe_core_small_patch16_384")
    torch.save(full.state_dict(), tmp_path / "pe.pth")
    loaded = load_model("timm:vit_pe_core_small_patch16_384", weights=tmp_path / "pe.pth")
    x = torch.randn(1, 3, 384, 384)
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(x), full(x), atol=1e-4, rtol=0)


def _as_original_pe(timm_state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The layout facebookresearch/perception_models saves (a `visual.` tower in OpenCLIP names, the projection as
    `proj` (D, out), the pool's packed in-projection) plus a text-tower tensor that must be left alone: the inverse
    of timm's _convert_pe, which the test then uses as the oracle."""
    swaps = [("patch_embed.proj", "conv1"), ("pos_embed", "positional_embedding"),
             ("blocks.", "transformer.resblocks."), ("norm_pre", "ln_pre"), ("norm1", "ln_1"), ("norm2", "ln_2"),
             ("attn.qkv.", "attn.in_proj_"),
             ("attn.proj", "attn.out_proj"), ("mlp.fc1", "mlp.c_fc"), ("mlp.fc2", "mlp.c_proj"),
             ("attn_pool.norm", "attn_pool.layernorm"), ("attn_pool.latent", "attn_pool.probe"),
             ("attn_pool.proj", "attn_pool.attn.out_proj")]
    out = {"text.token_embedding.weight": torch.zeros(8, 4)}
    for key, value in timm_state.items():
        if key in ("head.weight", "head.bias", "attn_pool.kv.weight", "attn_pool.kv.bias"):
            continue
        if key.startswith("attn_pool.q."):
            param = key.rsplit(".", 1)[1]
            out[f"visual.attn_pool.attn.in_proj_{param}"] = torch.cat([value, timm_state[f"attn_pool.kv.{param}"]])
            continue
        name = key
        for new, old in [("norm.", "ln_post.")] if key.startswith("norm.") else swaps:
            name = name.replace(new, old)
        out["visual." + {"cls_token": "class_embedding"}.get(name, name)] = (
            value.reshape(-1) if key == "cls_token" else value[0] if key == "pos_embed" else value)
    out["visual.proj"] = timm_state["head.weight"].t().contiguous()
    return out


def test_a_checkpoint_in_the_original_perception_encoder_layout(tmp_path: Path) -> None:
    """As Meta releases PE (the CLIP checkpoint: vision and text towers); timm's own filter reads the same file into
    timm's model (its projection has no bias: zero), and the text tower is not the image model's concern."""
    reference = timm_dinov3("vit_pe_core_small_patch16_384")
    from timm.models.eva import checkpoint_filter_fn

    with torch.no_grad():
        reference.head.bias.zero_()
    original = _as_original_pe(reference.state_dict())
    reference.load_state_dict(checkpoint_filter_fn(dict(original), reference))  # the oracle: timm reads it so
    torch.save(original, tmp_path / "PE-Core-S16-384.pt")
    loaded = load_model("timm:vit_pe_core_small_patch16_384", weights=tmp_path / "PE-Core-S16-384.pt")
    x = torch.randn(1, 3, 384, 384)
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(x), reference(x), atol=1e-4, rtol=0)


def test_an_interleaved_reference_vit_in_memory_becomes_rotate_half() -> None:
    """vit-edge's own VisionTransformer built with EVA-02's interleaved layout: the same numbers in rotate-half (the
    benchmark built it so, and TFLite left 48 strided slices outside XNNPACK)."""
    cfg = timm_entry("eva02_tiny_patch14_224").config.with_(depth=2, img_size=56)
    assert not cfg.rope_rotate_half
    from vit_edge.models.vit import VisionTransformer

    torch.manual_seed(0)
    model = VisionTransformer(cfg).eval()
    loaded = load_model(model).model
    x = torch.randn(2, 3, 56, 56)
    assert loaded.cfg.rope_rotate_half
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x), atol=1e-5, rtol=0)


# --- AIMv2, RoPE-ViT and LingBot (was test_recent_families.py), each against real timm's own model ---

@pytest.mark.parametrize("name, kwargs, size", [
    # AIMv2: RMSNorm (patch embedding, blocks, final), SwiGLU and attention without biases, average pooling
    ("aimv2_large_patch14_224", dict(depth=2, img_size=56, embed_dim=64, num_heads=4, num_classes=0), 56),
    ("aimv2_large_patch14_224", dict(depth=2, img_size=56, embed_dim=64, num_heads=4, num_classes=5), 56),
    # RoPE-ViT (Heo et al.): axial rotary embeddings on a plain ViT, with and without absolute positions
    ("vit_small_patch16_rope_224", dict(depth=2, img_size=64), 64),
    ("vit_small_patch16_rope_ape_224", dict(depth=2, img_size=64), 64),
    ("vit_medium_patch16_rope_reg1_gap_256", dict(depth=2, img_size=64), 64),
    ("vit_small_patch16_lingbot", dict(depth=2, img_size=64), 64),
])
def test_timm_module_matches(name: str, kwargs: dict[str, Any], size: int) -> None:
    reference = timm_dinov3(name, **kwargs)
    loaded = load_model(reference)
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(x), reference(x), atol=1e-4, rtol=0)
    if name.startswith("aimv2"):
        assert loaded.model.cfg.norm == "rms" and loaded.model.cfg.patch_norm and not loaded.model.cfg.mlp_bias

def test_new_timm_families_are_listed() -> None:
    families = {name: timm_entry(name).family for name in TIMM_NAMES}
    assert sum(family == "aimv2" for family in families.values()) == 12
    assert families["vit_base_patch16_rope_224"] == "rope-vit" and families["vit_large_patch16_lingbot"] == "lingbot"
    with pytest.raises(UnsupportedModelError, match="mixed \\(learned\\) rotary frequencies"):
        timm_entry("vit_base_patch16_rope_mixed_224")
