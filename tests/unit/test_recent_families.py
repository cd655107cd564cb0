"""The 2025 backbones besides the rotary Eva ones: AIMv2 (RMSNorm, timm and transformers), SigLIP 2 at a fixed
patch grid, MetaCLIP 2, and timm's RoPE-ViT and LingBot names; each against the real library's own model."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from tests.helpers import as_patches, moved_off_init, timm_dinov3
from vit_edge.core.errors import UnsupportedModelError
from vit_edge.reading.loaders import load_model
from vit_edge.reading.registry import TIMM_NAMES, timm_entry

transformers = pytest.importorskip("transformers")





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


def hf_aimv2(folder: Path, **changes: Any) -> torch.nn.Module:
    config = transformers.Aimv2VisionConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                                            intermediate_size=96, image_size=56, patch_size=14, **changes)
    model = moved_off_init(transformers.Aimv2VisionModel(config))
    model.save_pretrained(folder)
    return model


@pytest.mark.parametrize("changes", [{}, {"use_head": False}, {"qkv_bias": True, "mlp_bias": True}])
def test_hf_aimv2_folder_matches_transformers(tmp_path: Path, changes: dict[str, Any]) -> None:
    """pooler_output of AIMv2's head (its learned query unprojected, no MLP), or the token mean without one; the
    patch tokens after the final RMSNorm with --output tokens; the folder and the module in memory alike."""
    reference = hf_aimv2(tmp_path, **changes)
    loaded = load_model(tmp_path)
    assert loaded.source.family == "aimv2" and loaded.spec.mean[0] == pytest.approx(0.48145466)
    x = torch.randn(2, 3, 56, 56)
    with torch.no_grad():
        out = reference(pixel_values=x)
        expected = out.pooler_output if out.pooler_output is not None else out.last_hidden_state.mean(1)
        torch.testing.assert_close(loaded.model(x), expected, atol=1e-4, rtol=0)
        tokens = loaded.model.reconfigured(output="tokens")(x)
        torch.testing.assert_close(tokens, out.last_hidden_state, atol=1e-4, rtol=0)
        torch.testing.assert_close(load_model(reference).model(x), expected, atol=1e-4, rtol=0)


def test_native_resolution_aimv2_is_refused(tmp_path: Path) -> None:
    hf_aimv2(tmp_path, is_native=True)
    with pytest.raises(UnsupportedModelError, match="native-resolution AIMv2"):
        load_model(tmp_path)





@pytest.mark.parametrize("img_size", [None, (24, 48)])
def test_hf_siglip2_at_a_fixed_grid_matches_transformers(tmp_path: Path, img_size: tuple[int, int] | None) -> None:
    """SigLIP 2 (NaFlex) at its native square grid and at another one: the position table resampled bilinearly
    with antialiasing for that grid, as transformers does per image; the linear patch embedding as a convolution."""
    config = transformers.Siglip2VisionConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                                              intermediate_size=96, patch_size=8, num_patches=16)
    reference = moved_off_init(transformers.Siglip2VisionModel(config))
    reference.save_pretrained(tmp_path)
    loaded = load_model(tmp_path, img_size=img_size)
    height, width = img_size or (32, 32)
    assert loaded.source.family == "siglip2" and (loaded.spec.height, loaded.spec.width) == (height, width)
    x = torch.randn(2, 3, height, width)
    grid = (height // 8, width // 8)
    with torch.no_grad():
        out = reference(pixel_values=as_patches(x, 8), spatial_shapes=torch.tensor([grid, grid]),
                        pixel_attention_mask=torch.ones(2, grid[0] * grid[1], dtype=torch.long))
        torch.testing.assert_close(loaded.model(x), out.pooler_output, atol=1e-4, rtol=0)


@pytest.mark.parametrize("cls, output", [("MetaClip2VisionModel", "pooler_output"),
                                         ("MetaClip2VisionModelWithProjection", "image_embeds")])
def test_hf_metaclip2_matches_transformers(tmp_path: Path, cls: str, output: str) -> None:
    config = transformers.MetaClip2VisionConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                                                intermediate_size=96, patch_size=8, image_size=32, projection_dim=24)
    reference = moved_off_init(getattr(transformers, cls)(config))
    reference.save_pretrained(tmp_path)
    loaded = load_model(tmp_path)
    assert loaded.source.family == "metaclip2" and loaded.source.hf_output == output
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(x), getattr(reference(pixel_values=x), output), atol=1e-4, rtol=0)
