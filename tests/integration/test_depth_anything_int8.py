"""INT8 of Depth Anything (#37): the encoder's matmuls INT8 by the ViT recipe and the neck's and head's convolutions
INT8 where the default AbsRel budget (1 %) holds; the manifest, the CLI line and bench --reference pytorch carry the
depth measures against FP32 (AbsRel, δ<1.25, SQNR), never a top-1; the file holds parity with the INT8 simulation in
each target's runtime; --max-drop and QAT are refused in one line, and --eval on a folder without depth maps
(test_depth_truth.py has the ground-truth scoring, test_depth_head_int8.py the budget's choices).

The bound: the issue asks AbsRel within 2 % of FP32; the default budget holds the simulation to 1 %. On this tiny
random-init model (4 blocks of width 32, 56 px, 8 smooth synthetic calibration images) the encoder alone INT8 measured
AbsRel 0.26–0.33 %; with the convolutions the budget keeps 18–20 of 26 INT8 and the simulation measures 0.77–0.99 %,
the files 0.99–1.05 % (ONNX, OpenVINO, TFLite). The tests assert the budget, δ ≥ 98 % and SQNR ≥ 30 dB, and that the
file run in its runtime scores within 0.5 pt AbsRel of what the manifest says. A trained model's outlier activations
are harder than these random weights; these numbers say nothing about it.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tests.helpers import assert_user_error, make_depth_anything, run_cli
from vit_edge.api import QuantizeConfig, bench, quantize
from vit_edge.core.depth_metrics import DepthScores, depth_scores
from vit_edge.core.errors import ConfigError
from vit_edge.data.preprocess import preprocess_uint8
from vit_edge.data.synthetic import smooth_images
from vit_edge.quantization.qat import QatTraining
from vit_edge.quantization.recipe import Recipe
from vit_edge.runtime.artifact import Artifact

pytest.importorskip("transformers")
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def depth(tmp_path_factory: pytest.TempPathFactory) -> tuple[torch.nn.Module, Path, Path]:
    """(the transformers model, its saved folder, a folder of 8 PNG calibration images at its 56 px)."""
    model = make_depth_anything("relative")
    root = tmp_path_factory.mktemp("depth_int8")
    model.save_pretrained(root / "hf")
    (root / "calib").mkdir()
    for index, image in enumerate(smooth_images(8, 56, 3)):
        Image.fromarray(image).save(root / "calib" / f"{index}.png")
    return model, root / "hf", root / "calib"


def _depth_checks(artifact: Artifact, hf: torch.nn.Module, calib: Path) -> DepthScores:
    """The manifest's depth measures within the bounds, and the file itself, run in its runtime on the calibration
    images, scoring against transformers' FP32 what the manifest says (the numbers are measured, not copied)."""
    quantization, parity = artifact.manifest.quantization, artifact.manifest.parity
    assert quantization is not None and parity is not None
    accuracy = quantization.accuracy.depth
    assert quantization.accuracy.int8_top1 is None and quantization.accuracy.agreement_top1 is None  # no top-1
    assert accuracy is not None and accuracy.abs_rel is not None and accuracy.delta1 is not None
    assert 0 < accuracy.abs_rel <= 0.01 and accuracy.delta1 >= 0.98 and accuracy.sqnr_db >= 30  # 1 %: the budget
    assert quantization.accuracy.max_abs_rel == 1.0  # the default budget the head's convolutions are held to
    assert parity.passed and parity.output == "depth"
    assert quantization.int8_matmuls and all(n.startswith("encoder.blocks.") for n in quantization.int8_matmuls)
    assert quantization.int8_convs and "neck.convs.0" in (quantization.float_ops or ())  # head_int8 tests say more
    assert "float" in (quantization.int8_scope or "")
    images = np.stack([np.asarray(Image.open(calib / f"{index}.png")) for index in range(8)])
    x = preprocess_uint8(images, artifact.manifest.input_spec)
    with torch.no_grad():
        reference = hf(pixel_values=torch.from_numpy(x)).predicted_depth.numpy()
    measured = depth_scores(np.asarray(artifact.run(x)), reference)
    assert measured.abs_rel is not None and abs(measured.abs_rel - accuracy.abs_rel) < 0.005, measured
    return accuracy


def test_cli_quantizes_to_onnx_with_depth_measures(depth: tuple[torch.nn.Module, Path, Path], tmp_path: Path) -> None:
    hf, folder, calib = depth
    out = tmp_path / "onnx"
    result = run_cli("quantize", str(folder), "--target", "onnx", "--calib", str(calib), "--out", str(out))
    assert result.returncode == 0, result.stderr
    accuracy = _depth_checks(Artifact.open(out), hf, calib)
    line = next(line for line in result.stdout.splitlines() if "int8:" in line)
    assert accuracy.abs_rel is not None
    assert f"AbsRel {100 * accuracy.abs_rel:.2f}%" in line and "SQNR" in line and "top-1" not in line, line
    assert "neck/head convolutions INT8" in line, line
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["quantization"]["accuracy"]["measured_on"].startswith("8 calibration images")
    record, = bench([out], data=str(calib), reference="pytorch", runs=2, warmup=0, min_seconds=0.0)
    assert record.status == "ok" and record.agreement_top1 is None, record  # against PyTorch FP32, no top-1
    assert abs(record.extra["depth_abs_rel"] - accuracy.abs_rel) < 0.005 and record.extra["depth_sqnr_db"] > 30


# ExecuTorch's XNNPACK lowering of a dense model: test_dpt_int8.py (this recipe, DPT's DenseModel) and
# test_depth_head_int8.py (this model, its convolutions INT8 too)
@pytest.mark.parametrize("target", ["openvino", "tflite"])
def test_other_targets_quantize_with_parity(depth: tuple[torch.nn.Module, Path, Path], target: str,
                                            tmp_path: Path) -> None:
    hf, folder, calib = depth
    _depth_checks(quantize(folder, target, tmp_path / target, QuantizeConfig(str(calib))), hf, calib)


def test_top1_measures_and_qat_are_refused(depth: tuple[torch.nn.Module, Path, Path], tmp_path: Path) -> None:
    _, folder, calib = depth
    assert_user_error(run_cli("quantize", str(folder), "--target", "onnx", "--calib", str(calib), "--eval",
                              str(calib), "--out", str(tmp_path / "a")), "has no ground-truth depth", "depth/")
    with pytest.raises(ConfigError, match="max_drop, a budget in top-1 points, needs top-1"):
        quantize(folder, "onnx", tmp_path / "b", QuantizeConfig(str(calib), Recipe(max_drop=1.0), eval_data=str(calib)))
    with pytest.raises(ConfigError, match="QAT .* needs top-1 against labels, which only class logits have"):
        quantize(folder, "onnx", tmp_path / "c", QuantizeConfig(str(calib), qat=QatTraining(str(calib)),
                                                                eval_data=str(calib)))
    with pytest.raises(ConfigError, match="not built yet for a dense model"):  # A16W8: a later step
        quantize(folder, "onnx", tmp_path / "d", QuantizeConfig(str(calib), Recipe(int16=("*",))))
