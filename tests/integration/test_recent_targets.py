"""AIMv2 (RMSNorm) and SigLIP 2 on the targets: the runtimes compute what timm and transformers compute, INT8
agrees with FP32, TFLite stays one XNNPACK partition (RMSNorm is elementwise ops and a mean)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from tests.helpers import (
    as_patches,
    assert_one_xnnpack_partition,
    export_matching,
    int8_against_fp32,
    moved_off_init,
    run_cli,
    timm_dinov3,
)
from vit_edge.api import Artifact, export
from vit_edge.core.targets import TARGETS

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def aimv2() -> torch.nn.Module:
    """AIMv2-L's layout (RMSNorm everywhere, SwiGLU and attention without biases), 2 blocks of width 64."""
    return timm_dinov3("aimv2_large_patch14_224", depth=2, img_size=56, embed_dim=64, num_heads=4, num_classes=0)


@pytest.mark.parametrize("target", list(TARGETS))
def test_aimv2_fp32_matches_timm(aimv2: torch.nn.Module, target: str, tmp_path: Path) -> None:
    artifact = export_matching(aimv2, target, (56, 56), tmp_path / "a")
    assert artifact.manifest.source.family == "aimv2"


@pytest.mark.parametrize("target", ["tflite", "executorch"])
def test_aimv2_int8_agrees_with_fp32(aimv2: torch.nn.Module, target: str, tmp_path: Path) -> None:
    artifact, worst = int8_against_fp32(aimv2, target, (56, 56), tmp_path / "q")
    assert worst > 0.99
    if target == "tflite":
        assert_one_xnnpack_partition(artifact.path / "model.tflite")


def test_cli_exports_a_siglip2_folder_at_another_grid(tmp_path: Path) -> None:
    """`vit-edge export FOLDER --img-size 24x48 --target tflite` for a Siglip2VisionModel: transformers' output
    for that grid."""
    transformers = pytest.importorskip("transformers")
    config = transformers.Siglip2VisionConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                                              intermediate_size=96, patch_size=8, num_patches=16)
    reference = moved_off_init(transformers.Siglip2VisionModel(config))
    reference.save_pretrained(tmp_path / "siglip2")
    out = tmp_path / "art"
    result = run_cli("export", str(tmp_path / "siglip2"), "--img-size", "24x48", "--target", "tflite", "--out",
                     str(out), "--parity-samples", "2")
    assert result.returncode == 0, result.stderr
    x = torch.randn(2, 3, 24, 48)
    with torch.no_grad():
        expected = reference(pixel_values=as_patches(x, 8), spatial_shapes=torch.tensor([[3, 6], [3, 6]]),
                             pixel_attention_mask=torch.ones(2, 18, dtype=torch.long)).pooler_output.numpy()
    np.testing.assert_allclose(Artifact.open(out).run(x.numpy()), expected, atol=1e-4, rtol=0)


def test_siglip2_on_executorch_keeps_the_tanh_gelu(tmp_path: Path) -> None:
    """SigLIP's gelu_pytorch_tanh: ExecuTorch lowers aten.gelu to XNNPACK's exact GELU whatever `approximate`
    says (6e-4 off before the rewrite); written out, the artifact gives transformers' numbers, tanh delegated."""
    import json

    transformers = pytest.importorskip("transformers")
    config = transformers.Siglip2VisionConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                                              intermediate_size=96, patch_size=8, num_patches=16)
    reference = moved_off_init(transformers.Siglip2VisionModel(config))
    reference.save_pretrained(tmp_path / "siglip2")
    artifact = export(str(tmp_path / "siglip2"), "executorch", tmp_path / "art", parity_samples=2)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        expected = reference(pixel_values=as_patches(x, 8), spatial_shapes=torch.tensor([[4, 4], [4, 4]]),
                             pixel_attention_mask=torch.ones(2, 16, dtype=torch.long)).pooler_output.numpy()
    np.testing.assert_allclose(artifact.run(x.numpy()), expected, atol=1e-4, rtol=0)
    delegation = json.loads((artifact.path / "delegation.json").read_text())
    assert "tanh" not in " ".join(delegation["undelegated_ops"]), delegation


@pytest.mark.parametrize("kind, target", [("aimv2", "openvino"), ("metaclip2", "onnx")])
def test_hf_folders_export_with_transformers_numbers(kind: str, target: str, tmp_path: Path) -> None:
    """An Aimv2VisionModel and a MetaClip2VisionModelWithProjection folder, exported as a user would."""
    transformers = pytest.importorskip("transformers")
    if kind == "aimv2":
        model = transformers.Aimv2VisionModel(transformers.Aimv2VisionConfig(
            hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=96, image_size=56,
            patch_size=14))
    else:
        model = transformers.MetaClip2VisionModelWithProjection(transformers.MetaClip2VisionConfig(
            hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=96, patch_size=8,
            image_size=32, projection_dim=24))
    reference = moved_off_init(model)
    reference.save_pretrained(tmp_path / kind)
    artifact = export(str(tmp_path / kind), target, tmp_path / "art", parity_samples=2)
    side = 56 if kind == "aimv2" else 32
    x = torch.randn(2, 3, side, side)
    with torch.no_grad():
        out = reference(pixel_values=x)
    expected = (out.pooler_output if kind == "aimv2" else out.image_embeds).numpy()
    np.testing.assert_allclose(artifact.run(x.numpy()), expected, atol=1e-4, rtol=0)
    assert artifact.manifest.source.family == kind
