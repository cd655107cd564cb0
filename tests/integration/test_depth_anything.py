"""Depth Anything (#37, step 1): transformers' DepthAnythingForDepthEstimation loads into vit-edge's DINOv2
encoder, DPT neck and depth head, gives transformers' predicted_depth within 1e-4 of the output's scale (at the
config's size and another multiple of the patch), and exports with parity, from a module and from a folder; what it
cannot read is refused in one line."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.helpers import DEPTH_ANYTHING_CONFIGS as CONFIGS
from tests.helpers import assert_user_error, make_depth_anything, run_cli
from vit_edge.api import export
from vit_edge.core.errors import ConfigError, UnsupportedModelError
from vit_edge.models.dense_heads import DenseModel
from vit_edge.reading.loaders import load_model

transformers = pytest.importorskip("transformers")
pytestmark = pytest.mark.slow


def relative_difference(got: np.ndarray | torch.Tensor, expected: torch.Tensor) -> float:
    """Max abs difference over the output's max abs value (the issue's 1e-4 yardstick)."""
    expected_np = expected.numpy()
    return float(np.abs(np.asarray(got) - expected_np).max() / np.abs(expected_np).max())


@pytest.fixture(scope="module")
def relative(tmp_path_factory: pytest.TempPathFactory) -> tuple[torch.nn.Module, Path]:
    model = make_depth_anything("relative")
    folder = tmp_path_factory.mktemp("depth_anything")
    model.save_pretrained(folder)
    return model, folder


def _predicted(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(pixel_values=x).predicted_depth


@pytest.mark.parametrize("kind", list(CONFIGS))
def test_matches_transformers_from_a_folder_and_in_memory(kind: str, tmp_path: Path) -> None:
    hf = make_depth_anything(kind)
    hf.save_pretrained(tmp_path)
    side = hf.config.backbone_config.image_size
    for source in (tmp_path, hf):
        for size in (side, (side, side + 42)):  # the config's size, and another multiple of the patch (wider)
            loaded = load_model(source, img_size=size)
            assert isinstance(loaded.model, DenseModel) and loaded.source.family == "depth-anything"
            height, width = (size, size) if isinstance(size, int) else size
            x = torch.randn(2, 3, height, width)
            expected = _predicted(hf, x)
            assert expected.shape == (2, height, width) and float(expected.std()) > 0.01 * float(expected.abs().max())
            with torch.no_grad():
                assert relative_difference(loaded.model(x), expected) < 1e-4, (kind, source, size)
    assert loaded.source.output_shape == (side, side + 42)
    assert loaded.model.cfg.model_output.name == "depth" and loaded.model.cfg.encoder.depth == len(
        hf.config.backbone_config.out_indices)  # blocks after the last one read are not in the model


def test_onnx_export_from_a_module_matches_transformers(relative: tuple[torch.nn.Module, Path],
                                                        tmp_path: Path) -> None:
    hf, _ = relative
    artifact = export(hf, "onnx", tmp_path / "onnx", parity_samples=2)
    x = torch.randn(3, 3, 56, 56)
    assert relative_difference(artifact.run(x.numpy()), _predicted(hf, x)) < 1e-4
    parity = artifact.manifest.parity
    assert parity is not None and artifact.manifest.output_kind == "depth" and parity.passed
    assert parity.top1_agreement is None
    assert parity.tokens_per_sample == 1  # a depth map is compared per image, as one vector


@pytest.mark.parametrize("target", ["openvino", "tflite", "executorch"])
def test_other_targets_hold_parity(relative: tuple[torch.nn.Module, Path], target: str, tmp_path: Path) -> None:
    hf, _ = relative
    artifact = export(hf, target, tmp_path / target, parity_samples=1)
    x = torch.randn(2, 3, 56, 56)
    assert relative_difference(artifact.run(x.numpy()), _predicted(hf, x)) < 1e-4
    parity = artifact.manifest.parity
    runtime = parity.runtime if parity else None
    delegated = runtime.delegation if runtime else None
    if target == "tflite":  # one XNNPACK partition: the head's convolutions and resizes included
        assert delegated is not None and delegated.fully_delegated
    if target == "executorch":  # one delegate; the class token's expand stays outside it, as for every ViT
        assert runtime is not None and delegated is not None
        assert runtime.delegates == 1 and set(delegated.undelegated_ops) <= {"expand_copy"}


def test_cli_exports_a_saved_folder(relative: tuple[torch.nn.Module, Path], tmp_path: Path) -> None:
    hf, folder = relative
    out = tmp_path / "cli"
    result = run_cli("export", str(folder), "--target", "onnx", "--out", str(out), "--parity-samples", "2")
    assert result.returncode == 0, result.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["parity"]["passed"] and manifest["source"]["hf_architecture"] == "DepthAnythingForDepthEstimation"
    from vit_edge.runtime.artifact import Artifact

    x = torch.randn(2, 3, 56, 56)
    assert relative_difference(Artifact.open(out).run(x.numpy()), _predicted(hf, x)) < 1e-4
    info = run_cli("info", str(out))
    assert info.returncode == 0 and "depth-anything; output: depth map (batch, 56, 56)" in info.stdout, info.stdout


def test_what_it_cannot_read_is_refused_in_one_line(relative: tuple[torch.nn.Module, Path], tmp_path: Path) -> None:
    _, folder = relative
    hostile = tmp_path / "vit_backbone"
    hostile.mkdir()
    config = json.loads((folder / "config.json").read_text())
    config["backbone_config"]["model_type"] = "vit"
    (hostile / "config.json").write_text(json.dumps(config))
    (hostile / "model.safetensors").symlink_to(folder / "model.safetensors")
    assert_user_error(run_cli("export", str(hostile), "--target", "onnx", "--out", str(tmp_path / "a")),
                      "'vit' backbone is not supported", "DINOv2")
    with pytest.raises(ConfigError, match="returns its depth map"):
        load_model(folder, output="tokens")
    with pytest.raises(ConfigError, match="--merge 2"):
        load_model(folder, merge=2)
    with pytest.raises(UnsupportedModelError, match="not built yet for a dense model"):
        _ = load_model(folder).vit  # INT8, QAT and tune: the next steps of #37
    from vit_edge.reading.catalog import model_rows

    assert any("DepthAnythingForDepthEstimation" in row and "depth" in row for row in model_rows())
