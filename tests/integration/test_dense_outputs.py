"""--output tokens | features: the normed patch tokens as timm's forward_features gives them (minus the prefix), on
every target, for DINOv2 and DINOv3; judged per token in parity and in bench; refused where it means nothing."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.helpers import assert_user_error, run_cli, timm_dinov3
from vit_edge.api import Artifact, export
from vit_edge.core.targets import TARGETS

pytestmark = pytest.mark.slow


def _timm_dinov2() -> torch.nn.Module:
    from tests.timm_import import import_timm

    timm = import_timm()
    torch.manual_seed(3)
    model = timm.create_model("vit_small_patch14_reg4_dinov2", img_size=42, depth=2).eval()
    with torch.no_grad():
        for param in model.parameters():
            param.add_(0.05 * torch.randn_like(param))
    return model


@pytest.fixture(scope="module")
def backbones() -> dict[str, tuple[torch.nn.Module, tuple[int, int]]]:
    return {"dinov2": (_timm_dinov2(), (42, 42)),
            "dinov3": (timm_dinov3("vit_small_patch16_dinov3", depth=2, img_size=(48, 64), num_classes=0), (48, 64))}


@pytest.mark.parametrize("family", ["dinov2", "dinov3"])
@pytest.mark.parametrize("target", list(TARGETS))
def test_patch_tokens_match_timm_forward_features(backbones: dict, family: str, target: str, tmp_path: Path) -> None:
    model, (height, width) = backbones[family]
    artifact = export(model, target, tmp_path / "a", output="tokens", parity_samples=2)
    x = torch.randn(2, 3, height, width)
    with torch.no_grad():
        expected = model.forward_features(x)[:, model.num_prefix_tokens :].numpy()
    got = artifact.run(x.numpy())
    assert got.shape == expected.shape and artifact.manifest.output_kind == "tokens"
    np.testing.assert_allclose(got, expected, atol=1e-4, rtol=0)
    assert artifact.manifest.parity is not None and artifact.manifest.parity.tokens_per_sample == expected.shape[1]


def test_feature_map_and_what_info_and_bench_say(backbones: dict, tmp_path: Path) -> None:
    model, (height, width) = backbones["dinov3"]
    out = tmp_path / "features"
    artifact = export(model, "onnx", out, output="features", parity_samples=2)
    x = torch.randn(1, 3, height, width)
    with torch.no_grad():
        tokens = model.forward_features(x)[:, model.num_prefix_tokens :]
    expected = tokens.transpose(1, 2).reshape(1, 384, height // 16, width // 16).numpy()
    np.testing.assert_allclose(artifact.run(x.numpy()), expected, atol=1e-4, rtol=0)
    info = run_cli("info", str(out))
    assert info.returncode == 0 and "feature map (batch, 384, 3, 4)" in info.stdout, info.stdout
    reference = export(model, "openvino", tmp_path / "reference", output="features", parity_samples=2).path
    bench = run_cli("bench", str(out), "--data", "fashion-mnist", "--eval-limit", "16", "--reference", str(reference),
                    "--runs", "3", "--warmup", "0", "--min-time", "0", "--out", str(tmp_path / "r"))
    assert bench.returncode == 0, bench.stderr
    record = json.loads((tmp_path / "r" / "bench.jsonl").read_text())
    assert record["status"] == "ok" and record["top1"] is None  # no top-1 of a feature map
    assert record["agreement_cosine"] > 0.99999  # per token


def test_dense_output_refusals(tmp_path: Path) -> None:
    from tests.unit.test_reading_transreid import transreid_state

    weights = tmp_path / "transreid.pth"
    torch.save(transreid_state(dim=128, depth=2, sie_rows=6, img=(256, 128), stride=12), weights)
    assert_user_error(run_cli("export", str(weights), "--target", "onnx", "--out", str(tmp_path / "a"),
                              "--output", "tokens"), "re-identification embedding")
    assert_user_error(run_cli("export", "fmnist-vit-tiny", "--target", "onnx", "--out", str(tmp_path / "b"),
                              "--output", "tokens", "--merge", "2"), "token merging changes the tokens")
    result = run_cli("export", "fmnist-vit-tiny", "--target", "onnx", "--out", str(tmp_path / "c"), "--output", "cls")
    assert result.returncode == 2 and "invalid choice: 'cls'" in result.stderr and not (tmp_path / "c").exists()


def test_hf_dinov3_folder_exports_its_tokens_from_the_cli(tmp_path: Path) -> None:
    from tests.unit.test_reading_hf_compat import hf_dinov3

    reference = hf_dinov3(tmp_path / "dinov3")
    out = tmp_path / "art"
    result = run_cli("export", str(tmp_path / "dinov3"), "--target", "tflite", "--output", "tokens", "--out", str(out),
                     "--parity-samples", "2")
    assert result.returncode == 0, result.stderr
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        expected = reference(pixel_values=x).last_hidden_state[:, 5:].numpy()
    np.testing.assert_allclose(Artifact.open(out).run(x.numpy()), expected, atol=1e-4, rtol=0)


@pytest.fixture(scope="module")
def dinov3_deep() -> torch.nn.Module:
    return timm_dinov3("vit_small_patch16_dinov3", depth=4, img_size=(48, 64), num_classes=0)


@pytest.mark.parametrize("target", list(TARGETS))
def test_intermediate_layers_match_timm_forward_intermediates(dinov3_deep: torch.nn.Module, target: str,
                                                              tmp_path: Path) -> None:
    """--layers 0,2 (of 4 blocks): timm's forward_intermediates(norm=True) for those blocks, stacked after the
    batch; the artifact holds no block after the last one read."""
    artifact = export(dinov3_deep, target, tmp_path / "a", output="tokens", layers=(0, 2), parity_samples=2)
    x = torch.randn(2, 3, 48, 64)
    with torch.no_grad():
        maps = dinov3_deep.forward_intermediates(x, indices=[0, 2], norm=True, intermediates_only=True)
    expected = torch.stack(maps, 1).flatten(3).transpose(2, 3).numpy()  # (B, L, N, D)
    got = artifact.run(x.numpy())
    assert got.shape == (2, 2, 12, 384) and (artifact.manifest.source.architecture or {})["depth"] == 3
    np.testing.assert_allclose(got, expected, atol=1e-4, rtol=0)
    assert artifact.manifest.parity is not None and artifact.manifest.parity.tokens_per_sample == 2 * 12


def test_int8_feature_maps_of_intermediate_layers(dinov3_deep: torch.nn.Module, tmp_path: Path) -> None:
    """`vit-edge quantize ... --output features --layers=-2,-1`: (B, 2, D, rows, cols), judged per token."""
    from vit_edge.api import QuantizeConfig, quantize
    from vit_edge.data.synthetic import smooth_images

    artifact = quantize(dinov3_deep, "tflite", tmp_path / "q", QuantizeConfig(smooth_images(32, (48, 64), 3, seed=1),
                                                                         calib_size=32),
                        output="features", layers=(-2, -1), parity_samples=4)
    parity = artifact.manifest.parity
    assert parity is not None and parity.passed and parity.tokens_per_sample == 2 * 12 and parity.min_cosine > 0.99
    x = torch.randn(1, 3, 48, 64)
    with torch.no_grad():
        maps = torch.stack(dinov3_deep.forward_intermediates(x, indices=[2, 3], norm=True,
                                                             intermediates_only=True), 1).numpy()
    got = artifact.run(x.numpy())
    assert got.shape == maps.shape == (1, 2, 384, 3, 4)
    cosines = (got * maps).sum(2) / np.linalg.norm(got, axis=2) / np.linalg.norm(maps, axis=2)
    assert cosines.min() > 0.99
    info = run_cli("info", str(tmp_path / "q"))
    assert "of blocks 2, 3 of 4" in info.stdout, info.stdout


def test_layer_refusals(tmp_path: Path) -> None:
    base = ["export", "fmnist-vit-tiny", "--target", "onnx"]
    assert_user_error(run_cli(*base, "--out", str(tmp_path / "a"), "--output", "tokens", "--layers", "1,7"),
                      "7 out of range: the model has 4 blocks")
    assert_user_error(run_cli(*base, "--out", str(tmp_path / "b"), "--layers", "1"),
                      "use it with --output tokens")
    result = run_cli(*base, "--out", str(tmp_path / "c"), "--output", "tokens", "--layers", "1,one")
    assert result.returncode == 2 and "not a comma-separated list" in result.stderr
    assert not any(tmp_path.iterdir())


def test_bench_against_pytorch_rebuilds_the_dense_output(tmp_path: Path) -> None:
    """`bench ART --reference pytorch` rebuilds the model the artifact came from, with its --output and --layers
    (it was rebuilt pooled, and its (B, D) embedding could not be compared with (B, L, N, D) tokens)."""
    from tests.unit.test_reading_hf_compat import hf_dinov3

    hf_dinov3(tmp_path / "dinov3")
    out = tmp_path / "art"
    result = run_cli("export", str(tmp_path / "dinov3"), "--target", "onnx", "--output", "tokens", "--layers", "0,1",
                     "--out", str(out), "--parity-samples", "2")
    assert result.returncode == 0, result.stderr
    bench = run_cli("bench", str(out), "--data", "fashion-mnist", "--eval-limit", "8", "--reference", "pytorch",
                    "--runs", "2", "--warmup", "0", "--min-time", "0", "--out", str(tmp_path / "r"))
    assert bench.returncode == 0, bench.stderr
    record = json.loads((tmp_path / "r" / "bench.jsonl").read_text())
    assert record["status"] == "ok" and record["agreement_cosine"] > 0.99999, record
