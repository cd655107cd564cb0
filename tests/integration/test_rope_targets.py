"""DINOv3 on every target: the rotation is constant tables and elementwise multiply-adds, so each runtime computes
real timm's output (FP32 within 1e-4) and INT8 agrees with FP32; TFLite stays one XNNPACK partition."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from tests.helpers import assert_one_xnnpack_partition, export_matching, int8_against_fp32, timm_dinov3
from vit_edge.api import export
from vit_edge.core.targets import TARGETS

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def dinov3() -> torch.nn.Module:
    """DINOv3-S/16's layout (4 registers, rotary only, LayerScale), 2 blocks, on a non-square 48×64 input."""
    return timm_dinov3("vit_small_patch16_dinov3_qkvb", depth=2, img_size=(48, 64), num_classes=0,
                       global_pool="token")


@pytest.mark.parametrize("target", list(TARGETS))
def test_dinov3_fp32_matches_timm_in_each_runtime(dinov3: torch.nn.Module, target: str, tmp_path: Path) -> None:
    artifact = export(dinov3, target, tmp_path / "a", parity_samples=4)
    assert artifact.manifest.parity.passed and artifact.manifest.source.architecture["rope"] == "dinov3"
    x = torch.randn(3, 3, 48, 64)
    with torch.no_grad():
        expected = dinov3(x).numpy()
    np.testing.assert_allclose(artifact.run(x.numpy()), expected, atol=1e-4, rtol=0)








@pytest.mark.parametrize("target", list(TARGETS))
def test_dinov3_int8_agrees_with_fp32(dinov3: torch.nn.Module, target: str, tmp_path: Path) -> None:
    artifact, worst = int8_against_fp32(dinov3, target, (48, 64), tmp_path / "q")
    assert len(artifact.manifest.quantization.int8_matmuls) >= 6 * 2 and worst > 0.99
    if target == "tflite":
        assert_one_xnnpack_partition(artifact.path / "model.tflite")


def test_cli_exports_a_dinov3_name_with_its_weights(tmp_path: Path) -> None:
    """What a user types: `vit-edge export timm:vit_small_patch16_dinov3 --weights W` (full size, 256 px)."""
    from tests.helpers import run_cli
    from vit_edge.api import Artifact

    reference = timm_dinov3("vit_small_patch16_dinov3", num_classes=0)
    torch.save(reference.state_dict(), tmp_path / "w.pth")
    out = tmp_path / "art"
    result = run_cli("export", "timm:vit_small_patch16_dinov3", "--weights", str(tmp_path / "w.pth"), "--target",
                     "onnx", "--out", str(out), "--parity-samples", "2")
    assert result.returncode == 0, result.stderr
    x = torch.randn(1, 3, 256, 256)
    with torch.no_grad():
        expected = reference(x).numpy()
    np.testing.assert_allclose(Artifact.open(out).run(x.numpy()), expected, atol=1e-4, rtol=0)
    info = run_cli("info", str(out))
    assert info.returncode == 0 and "dinov3" in info.stdout, info.stdout


@pytest.fixture(scope="module")
def eva02() -> torch.nn.Module:
    """EVA-02-B's layout (absolute + interleaved rotary embeddings, unfused q/k/v, SwiGLU with its inner norm)."""
    return timm_dinov3("eva02_base_patch14_224", depth=2, img_size=42, ref_feat_shape=(16, 16), num_classes=6)


@pytest.mark.parametrize("target", list(TARGETS))
def test_eva02_fp32_matches_timm_and_int8_agrees(eva02: torch.nn.Module, target: str, tmp_path: Path) -> None:
    export_matching(eva02, target, (42, 42), tmp_path / "a")
    if target != "tflite":
        return
    quantized, worst = int8_against_fp32(eva02, target, (42, 42), tmp_path / "q")
    assert worst > 0.99
    assert_one_xnnpack_partition(quantized.path / "model.tflite")


@pytest.fixture(scope="module")
def perception_encoder() -> torch.nn.Module:
    """PE-core-T's layout: class token, offset-1 xy rotation rescaled to its 24×24 pretraining grid, an 8-head
    MAP head over every token and the image projection, at 64 px and 2 blocks."""
    return timm_dinov3("vit_pe_core_tiny_patch16_384", depth=2, img_size=64)


@pytest.mark.parametrize("target", list(TARGETS))
def test_perception_encoder_fp32_matches_timm(perception_encoder: torch.nn.Module, target: str,
                                              tmp_path: Path) -> None:
    artifact = export_matching(perception_encoder, target, (64, 64), tmp_path / "a")
    assert artifact.manifest.source.family == "pe"


@pytest.mark.parametrize("target", ["tflite", "openvino"])
def test_perception_encoder_int8_agrees_with_fp32(perception_encoder: torch.nn.Module, target: str,
                                                  tmp_path: Path) -> None:
    """The pool head's matmuls quantize like a block's; TFLite stays one XNNPACK partition."""
    artifact, worst = int8_against_fp32(perception_encoder, target, (64, 64), tmp_path / "q")
    assert worst > 0.99 and any(name.startswith("attn_pool.") for name in artifact.manifest.quantization.int8_matmuls)
    if target == "tflite":
        assert_one_xnnpack_partition(artifact.path / "model.tflite")
