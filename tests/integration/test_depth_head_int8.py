"""INT8 of a Depth Anything's neck and head convolutions under an AbsRel budget (#37): per output channel where the
budget against FP32 holds, float where not (the budget decides, as --max-drop does for matmuls), the manifest naming
which are which, and every target lowering the same scales.

On the tests' tiny random-init model (56 px, 8 synthetic calibration images) the all-INT8 model (encoder matmuls and
the 26 convolutions INT8 may take) is at AbsRel 4.7 % against FP32, so a budget of 100 % leaves them all INT8 and the
default 1 % sends the costliest back to float (the head's last convolutions first) until it holds.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tests.helpers import assert_user_error, make_depth_anything, run_cli
from vit_edge.api import quantize
from vit_edge.core.depth_metrics import depth_scores
from vit_edge.core.summaries import KeptFloatOp
from vit_edge.data.preprocess import preprocess_uint8
from vit_edge.data.synthetic import smooth_images
from vit_edge.models.dense_heads import DenseModel
from vit_edge.quantization.dense import head_convs, neck_and_head_ops, quantize_dense
from vit_edge.quantization.lowering import quantize_outputs_for_tflite, quantize_outputs_for_xnnpack
from vit_edge.quantization.qmodules import QuantConv2d
from vit_edge.quantization.recipe import Recipe
from vit_edge.reading.loaders import load_model

pytest.importorskip("transformers")
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def depth(tmp_path_factory: pytest.TempPathFactory) -> tuple[torch.nn.Module, DenseModel, Path, np.ndarray]:
    """(the transformers model, vit-edge's, a folder of it, its 8 calibration images preprocessed)."""
    hf = make_depth_anything("relative")
    root = tmp_path_factory.mktemp("depth_head_int8")
    hf.save_pretrained(root / "hf")
    (root / "calib").mkdir()
    images = smooth_images(8, 56, 3)
    for index, image in enumerate(images):
        Image.fromarray(image).save(root / "calib" / f"{index}.png")
    loaded = load_model(root / "hf")
    assert isinstance(loaded.model, DenseModel)
    return hf, loaded.model, root, preprocess_uint8(images, loaded.spec)


def test_the_budget_decides_which_convolutions_are_int8(depth: tuple[torch.nn.Module, DenseModel, Path,
                                                                     np.ndarray]) -> None:
    _, model, _, calib = depth
    eligible = head_convs(model)
    every = neck_and_head_ops(model)
    assert len(every) == 32 and len(eligible) == 26  # 34 convolutions, the deepest block's first unit never runs
    always_float = {f"neck.convs.{i}" for i in range(4)} | {"neck.reassemble.0.resize", "neck.reassemble.1.resize"}
    assert set(every) - set(eligible) == always_float
    _, loose, scope = quantize_dense(model, Recipe(max_abs_rel=100.0), calib)
    assert list(scope.int8_convs) == eligible and set(scope.float_ops) == always_float
    assert loose.depth is not None and loose.depth.abs_rel is not None
    assert loose.kept_float_for_budget == () and loose.depth.abs_rel > 0.01  # (a): all INT8, and over 1 %
    said: list[str] = []
    quant, tight, scope = quantize_dense(model, Recipe(max_abs_rel=1.0), calib, log=said.append)
    assert tight.depth is not None and tight.depth.abs_rel is not None
    assert tight.depth.abs_rel <= 0.01 and tight.max_abs_rel == 1.0  # (b): the budget holds ...
    kept = [entry for entry in tight.kept_float_for_budget or () if isinstance(entry, KeptFloatOp)]
    assert len(kept) == len(tight.kept_float_for_budget or ())
    assert 0 < len(scope.int8_convs) < len(eligible) and list(scope.int8_convs) == [  # ... with some float
        name for name in eligible if name not in {entry.op for entry in kept}]
    costs = [entry.abs_rel_alone for entry in kept]
    assert costs == sorted(costs, reverse=True) and costs[0] > 0.005  # costliest first
    # the fewest: all INT8 was over, and so was the model with the last of them still INT8; found by bisection
    assert kept[0].abs_rel_before == pytest.approx(loose.depth.abs_rel, abs=1e-6), kept
    assert (kept[-1].abs_rel_before or 0) > 0.01, kept
    ops = len(eligible) + len(model.encoder.blocks) * 6
    passes = [line for line in said if line.startswith("INT8:")]
    assert len(passes) <= 3 + math.ceil(math.log2(ops)), said
    assert set(scope.float_ops) == set(every) - set(scope.int8_convs)
    modules = dict(quant.model.named_modules())
    assert all(isinstance(modules[name], QuantConv2d) for name in scope.int8_convs)
    assert not any(isinstance(modules[name], QuantConv2d) for name in scope.float_ops)


def test_every_lowering_keeps_the_same_scales(depth: tuple[torch.nn.Module, DenseModel, Path, np.ndarray]) -> None:
    """ONNX and OpenVINO take the model as it is; TFLite and ExecuTorch add output quantizers: each convolution's
    weight scales and input grid are the same in all four."""
    _, model, _, calib = depth
    quant, _, scope = quantize_dense(model, Recipe(max_abs_rel=100.0), calib)
    lowered = [quant, quantize_outputs_for_tflite(quant, calib), quantize_outputs_for_xnnpack(quant, calib)]
    for name in scope.int8_convs:
        convs = [version.model.get_submodule(name) for version in lowered]
        for conv in convs[1:]:
            assert torch.equal(conv.weight_scale, convs[0].weight_scale), name
            assert (conv.input_quant._scale, conv.input_quant._zero_point) == (
                convs[0].input_quant._scale, convs[0].input_quant._zero_point), name
        assert convs[1].output_quant is not None and convs[2].output_quant is not None  # DQ → conv → Q


@pytest.mark.parametrize("target", ["onnx", "openvino", "tflite", "executorch"])
def test_all_convolutions_int8_on_every_target(depth: tuple[torch.nn.Module, DenseModel, Path, np.ndarray],
                                              target: str, tmp_path: Path) -> None:
    """A loose budget: every eligible convolution INT8 in the file, parity with the simulation in the runtime, and
    the file's AbsRel against transformers' FP32 what the manifest says."""
    hf, model, root, calib = depth
    artifact = quantize(root / "hf", target, tmp_path / target, calib=str(root / "calib"),
                        recipe=Recipe(max_abs_rel=100.0))
    quantization, parity = artifact.manifest.quantization, artifact.manifest.parity
    assert quantization is not None and parity is not None and quantization.accuracy.depth is not None
    assert list(quantization.int8_convs or ()) == head_convs(model) and parity.passed
    with torch.no_grad():
        reference = hf(pixel_values=torch.from_numpy(calib)).predicted_depth.numpy()
    measured = depth_scores(np.asarray(artifact.run(calib)), reference)
    expected = quantization.accuracy.depth.abs_rel
    assert measured.abs_rel is not None and expected is not None and abs(measured.abs_rel - expected) < 0.015
    if target == "tflite":  # the convolutions are int8 CONV_2D, in one XNNPACK partition
        from vit_edge.runtime.litert import ops_by_activation_type

        assert ops_by_activation_type(artifact.path / "model.tflite")["int8"]["CONV_2D"] == 26
        delegated = parity.runtime.delegation if parity.runtime else None
        assert delegated is not None and delegated.fully_delegated
    if target == "executorch":  # int8 convolutions inside the one delegate
        delegation = json.loads((artifact.path / "delegation.json").read_text())
        assert delegation["gemms_in_delegate"].get("int8 convolution") == 26, delegation
        assert delegation["delegates"] == 1 and set(delegation["undelegated_ops"]) <= {"expand_copy"}


def test_cli_budget_and_its_refusals(depth: tuple[torch.nn.Module, DenseModel, Path, np.ndarray],
                                     tmp_path: Path) -> None:
    _, _, root, _ = depth
    out = tmp_path / "tight"
    result = run_cli("quantize", str(root / "hf"), "--target", "onnx", "--calib", str(root / "calib"),
                     "--max-abs-rel", "0.5", "--out", str(out))
    assert result.returncode == 0, result.stderr
    quantization = json.loads((out / "manifest.json").read_text())["quantization"]
    assert quantization["accuracy"]["abs_rel"] <= 0.005 and quantization["recipe"]["max_abs_rel"] == 0.5
    line = next(line for line in result.stdout.splitlines() if "int8:" in line)
    assert (f"{len(quantization['int8_convs'])} neck/head convolutions INT8, {len(quantization['float_ops'])} float"
            in line), line
    assert "over budget: kept " in result.stderr + result.stdout
    assert_user_error(run_cli("quantize", "fmnist-vit-tiny", "--target", "onnx", "--calib", "fashion-mnist",
                              "--max-abs-rel", "1", "--out", str(tmp_path / "vit")), "--max-abs-rel", "class logits")
    assert_user_error(run_cli("quantize", str(root / "hf"), "--target", "onnx", "--calib", str(root / "calib"),
                              "--max-abs-rel", "-1", "--out", str(tmp_path / "neg")), "--max-abs-rel")
    assert not (tmp_path / "vit").exists() and not (tmp_path / "neg").exists()
