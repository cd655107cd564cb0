"""DPT (#37): transformers' DPTForDepthEstimation and DPTForSemanticSegmentation (plain ViT encoder) load into the
reference ViT plus DPT's readout, neck and heads, match transformers within 1e-4 of the output's scale at the config's
size and another one (an odd grid for segmentation: the fusion resizes its skip there), from a folder and from a
module; the segmentation map is its own output kind; the four targets hold parity; what DPT cannot be read as is
refused in one line."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.helpers import DPT_CONFIGS, assert_one_xnnpack_partition, assert_user_error, make_dpt, run_cli
from vit_edge.api import export
from vit_edge.core.errors import ConfigError, ModelLoadError, UnsupportedModelError
from vit_edge.core.identity import MaskReading
from vit_edge.core.output_kinds import Measure
from vit_edge.models.dpt import DPTModel
from vit_edge.reading.loaders import load_model

transformers = pytest.importorskip("transformers")
pytestmark = pytest.mark.slow

OTHER_SIZE = {"depth": 96, "depth-ignore": 96, "depth-projection": 96, "segmentation": 80, "segmentation-add": 64}


def relative_difference(got: np.ndarray | torch.Tensor, expected: torch.Tensor) -> float:
    """Max abs difference over the output's max abs value (the issue's 1e-4 yardstick)."""
    expected_np = expected.numpy()
    return float(np.abs(np.asarray(got) - expected_np).max() / np.abs(expected_np).max())


def _predicted(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        out = model(pixel_values=x)
    return out.logits if hasattr(out, "logits") and out.logits is not None else out.predicted_depth


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[torch.nn.Module, Path]]:
    """The depth and segmentation models, each with its save_pretrained folder."""
    found = {}
    for kind in ("depth", "segmentation"):
        model = make_dpt(kind)
        folder = tmp_path_factory.mktemp(kind)
        model.save_pretrained(folder)
        found[kind] = (model, folder)
    return found


@pytest.mark.parametrize("kind", list(DPT_CONFIGS))
def test_matches_transformers_from_a_folder_and_in_memory(kind: str, tmp_path: Path) -> None:
    hf = make_dpt(kind)
    hf.save_pretrained(tmp_path)
    side = hf.config.image_size
    for source in (tmp_path, hf):
        for size in (side, OTHER_SIZE[kind]):
            loaded = load_model(source, img_size=size)
            assert isinstance(loaded.model, DPTModel) and loaded.source.family == "dpt"
            x = torch.randn(2, 3, size, size)
            expected = _predicted(hf, x)
            assert float(expected.std()) > 0.02 * float(expected.abs().max())  # a map that varies
            with torch.no_grad():
                got = loaded.model(x)
            assert got.shape == expected.shape and relative_difference(got, expected) < 1e-4, (kind, source, size)
            assert loaded.source.output_shape == tuple(expected.shape[1:])
    assert loaded.model.cfg.encoder.depth == max(hf.config.backbone_out_indices) + 1  # later blocks are not kept


def test_segmentation_is_its_own_output_kind(saved: dict[str, tuple[torch.nn.Module, Path]], tmp_path: Path) -> None:
    hf, folder = saved["segmentation"]
    loaded = load_model(folder)
    output = loaded.model.cfg.model_output
    assert output.name == "segmentation" and loaded.model.cfg.num_classes == 6
    assert output.supports(Measure.MIOU) and output.supports(Measure.PIXEL_AGREEMENT)
    assert not output.supports(Measure.TOP1) and not output.supports(Measure.TOKEN_COSINE)
    assert loaded.source.mask_labels == MaskReading(reduce_labels=False, ignore_index=255)
    processor = transformers.DPTImageProcessor(do_reduce_labels=True, size={"height": 64, "width": 64})
    processor.save_pretrained(tmp_path)  # ADE20K's processor: 0 is "other", class k stored as k + 1
    for name in ("config.json", "model.safetensors"):
        (tmp_path / name).symlink_to(folder / name)
    assert load_model(tmp_path).source.mask_labels == MaskReading(reduce_labels=True, ignore_index=255)
    assert load_model(saved["depth"][1]).model.cfg.model_output.name == "depth"
    with pytest.raises(ConfigError, match="returns its depth map"):  # --output/--layers are an encoder's choice
        load_model(folder, output="tokens")


def _hostile(folder: Path, tmp_path: Path, name: str, **changes: object) -> Path:
    """A copy of a saved DPT folder with config.json changed (the weights linked, not copied)."""
    hostile = tmp_path / name
    hostile.mkdir()
    config = json.loads((folder / "config.json").read_text())
    config.update(changes)
    (hostile / "config.json").write_text(json.dumps(config))
    (hostile / "model.safetensors").symlink_to(folder / "model.safetensors")
    return hostile


def test_what_it_cannot_read_is_refused_in_one_line(saved: dict[str, tuple[torch.nn.Module, Path]],
                                                    tmp_path: Path) -> None:
    _, folder = saved["segmentation"]
    hybrid = _hostile(folder, tmp_path, "hybrid", is_hybrid=True)
    assert_user_error(run_cli("export", str(hybrid), "--target", "onnx", "--out", str(tmp_path / "a")),
                      "DPT-Hybrid", "is_hybrid false")
    beit = _hostile(folder, tmp_path, "beit", backbone_config={"model_type": "beit"})
    with pytest.raises(UnsupportedModelError, match="DPT on a 'beit' backbone"):
        load_model(beit)
    with pytest.raises(ModelLoadError, match="readout_type 'concat'"):
        load_model(_hostile(folder, tmp_path, "readout", readout_type="concat"))
    with pytest.raises(ModelLoadError, match="names 3 blocks for 4 neck_hidden_sizes"):
        load_model(_hostile(folder, tmp_path, "indices", backbone_out_indices=[0, 1, 2]))
    with pytest.raises(ModelLoadError, match="distinct blocks 0 to 3"):
        load_model(_hostile(folder, tmp_path, "range", backbone_out_indices=[0, 1, 2, 7]))
    with pytest.raises(UnsupportedModelError, match="square"):
        load_model(_hostile(folder, tmp_path, "wide", image_size=[64, 96]))


def test_an_extra_tensor_is_refused_not_dropped(saved: dict[str, tuple[torch.nn.Module, Path]]) -> None:
    hf, _ = saved["depth"]
    state = dict(hf.state_dict())

    class Stray(torch.nn.Module):  # a transformers-looking module whose state has one tensor DPT has no place for
        def __init__(self) -> None:
            super().__init__()
            self.config = hf.config

        def state_dict(self, *args: object, **kwargs: object) -> dict[str, torch.Tensor]:  # type: ignore[override]
            return {**state, "neck.extra_stage.weight": torch.zeros(1)}

    Stray.__module__, Stray.__name__ = "transformers.models.dpt", "DPTForDepthEstimation"
    with pytest.raises(UnsupportedModelError, match="1 tensors have no place in vit-edge's DPT .*neck.extra_stage"):
        load_model(Stray())


@pytest.mark.parametrize("target", ["onnx", "openvino", "tflite", "executorch"])
def test_segmentation_exports_with_parity(saved: dict[str, tuple[torch.nn.Module, Path]], target: str,
                                          tmp_path: Path) -> None:
    hf, _ = saved["segmentation"]
    artifact = export(hf, target, tmp_path / target, parity_samples=2)
    x = torch.randn(2, 3, 64, 64)
    got = np.asarray(artifact.run(x.numpy()))
    expected = _predicted(hf, x)
    assert got.shape == (2, 6, 64, 64) and relative_difference(got, expected) < 1e-4
    assert np.mean(got.argmax(1) == expected.numpy().argmax(1)) > 0.999
    parity = artifact.manifest.parity
    assert parity is not None and parity.segmentation is not None
    assert artifact.manifest.output_kind == "segmentation" and parity.passed and parity.top1_agreement is None
    assert parity.tokens_per_sample == 1 and parity.segmentation.pixel_agreement > 0.999
    assert (parity.segmentation.miou_vs_fp32 or 0.0) > 0.99
    runtime = parity.runtime
    delegated = runtime.delegation if runtime else None
    if target == "tflite":  # one XNNPACK partition: readout, reassemble, fusion, head and resizes included
        assert delegated is not None and delegated.fully_delegated
        assert_one_xnnpack_partition(tmp_path / target / artifact.manifest.model_file)
    if target == "executorch":  # one delegate; the class token's expand stays outside it, as for every ViT
        assert runtime is not None and delegated is not None
        assert runtime.delegates == 1 and set(delegated.undelegated_ops) <= {"expand_copy"}


@pytest.mark.parametrize("target", ["onnx", "tflite"])
def test_cli_exports_a_depth_folder(saved: dict[str, tuple[torch.nn.Module, Path]], target: str,
                                    tmp_path: Path) -> None:
    hf, folder = saved["depth"]
    out = tmp_path / target
    result = run_cli("export", str(folder), "--target", target, "--out", str(out), "--parity-samples", "2")
    assert result.returncode == 0, result.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["parity"]["passed"] and manifest["source"]["hf_architecture"] == "DPTForDepthEstimation"
    from vit_edge.runtime.artifact import Artifact

    x = torch.randn(2, 3, 64, 64)
    assert relative_difference(Artifact.open(out).run(x.numpy()), _predicted(hf, x)) < 1e-4
    info = run_cli("info", str(out))
    assert info.returncode == 0 and "dpt; output: depth map (batch, 64, 64)" in info.stdout, info.stdout


def test_cli_describes_a_segmentation_export(saved: dict[str, tuple[torch.nn.Module, Path]], tmp_path: Path) -> None:
    _, folder = saved["segmentation"]
    out = tmp_path / "onnx"
    result = run_cli("export", str(folder), "--target", "onnx", "--out", str(out), "--parity-samples", "2")
    assert result.returncode == 0, result.stderr
    assert "pixel agreement 100.0%" in result.stdout and "top-1" not in result.stdout, result.stdout
    info = run_cli("info", str(out))
    assert "output: segmentation logits (batch, 6, 64, 64): 6 classes per pixel" in info.stdout, info.stdout
    assert "classes" not in [line.split()[0] for line in info.stdout.splitlines() if line.strip()]
    from vit_edge.reading.catalog import model_rows

    rows = model_rows()
    assert any("DPTForSemanticSegmentation" in row for row in rows), rows


@pytest.mark.parametrize("target", ["onnx", "openvino"])
def test_an_any_size_file_matches_transformers_at_three_sizes(saved: dict[str, tuple[torch.nn.Module, Path]],
                                                              target: str, tmp_path: Path) -> None:
    """--dynamic-size: the position table resampled in the graph, the readout on the input's grid, the map's size
    from the fused levels (the depth head's comes from the same levels); the segmentation file matches transformers
    at its size and two others (an odd grid: the fusion resizes its skips there), and its parity ran at two
    non-square sizes too, against vit-edge's own model (transformers' DPT takes square grids only)."""
    from vit_edge.api import Artifact

    hf, folder = saved["segmentation"]
    result = run_cli("export", str(folder), "--target", target, "--dynamic-size", "--parity-samples", "2",
                     "--out", str(tmp_path / "any"))
    assert result.returncode == 0, result.stderr
    artifact = Artifact.open(tmp_path / "any")
    manifest = artifact.manifest
    assert manifest.model_ref.dynamic_size and manifest.input_spec.size_multiple == 16
    others = manifest.parity.other_sizes if manifest.parity else None
    assert others and all(entry.passed and entry.size[0] != entry.size[1] for entry in others), others
    for side in (64, 80, 112):
        x = torch.from_numpy(np.random.default_rng(side).standard_normal((2, 3, side, side), dtype=np.float32))
        expected = _predicted(hf, x)
        got = np.asarray(artifact.run(x.numpy()))
        assert got.shape == tuple(expected.shape) and relative_difference(got, expected) < 1e-4, side
