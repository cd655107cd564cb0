"""DINOv3 (timm's `Eva` class: rotary position embeddings, registers, no absolute position embedding, Eva's q/v
biases, SwiGLU on the larger sizes) loads into the reference ViT and gives real timm's outputs."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from tests.helpers import timm_dinov3
from vit_edge.core.errors import ConfigError, ModelLoadError, UnsupportedModelError
from vit_edge.models.rope import dinov3_tables
from vit_edge.reading.loaders import load_model
from vit_edge.reading.registry import TIMM_NAMES, timm_entry

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


def hf_dinov3(folder: Path, gated: bool = False, image_size: int = 32, **changes: Any) -> torch.nn.Module:
    """A transformers DINOv3ViTModel (5.x), saved with save_pretrained; weights moved off the init."""
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    config = transformers.DINOv3ViTConfig(hidden_size=48, num_hidden_layers=2, num_attention_heads=3,
                                          intermediate_size=96, image_size=image_size, patch_size=8,
                                          num_register_tokens=4, use_gated_mlp=gated, **changes)
    model = transformers.DINOv3ViTModel(config).eval()
    with torch.no_grad():
        for param in model.parameters():
            param.add_(0.05 * torch.randn_like(param))
    model.save_pretrained(folder)
    return model


@pytest.mark.parametrize("gated, image_size, changes", [
    (False, 32, {}),
    (True, 32, {"hidden_act": "silu"}),  # the gated MLP of DINOv3-S+/H+: silu(gate) · up
    (False, 48, {"query_bias": False, "value_bias": True}),  # any bias left out is zero in the joined qkv
])
def test_hf_dinov3_folder_matches_transformers(tmp_path: Path, gated: bool, image_size: int,
                                               changes: dict[str, Any]) -> None:
    reference = hf_dinov3(tmp_path, gated, image_size, **changes)
    loaded = load_model(tmp_path)
    assert loaded.source.family == "dinov3" and loaded.spec.mean == (0.485, 0.456, 0.406)
    x = torch.randn(2, 3, image_size, image_size)
    with torch.no_grad():
        out = reference(pixel_values=x)
        torch.testing.assert_close(loaded.model(x), out.pooler_output, atol=1e-4, rtol=0)
        tokens = loaded.model.reconfigured(output="tokens")(x)
        torch.testing.assert_close(tokens, out.last_hidden_state[:, 5:], atol=1e-4, rtol=0)
    in_memory = load_model(reference)
    with torch.no_grad():
        torch.testing.assert_close(in_memory.model(x), out.pooler_output, atol=1e-4, rtol=0)


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
