"""A16W8: 16-bit activations with 8-bit weights, per op or for the whole model (issue #34).

The ONNX file carries opset-21 Q/DQ pairs in int16 and runs in ONNX Runtime with the simulation's numbers; the
accuracy budget moves the ops whose INT16 activations gain most (measured) before keeping any float; a target
without 16-bit kernels says so in one line before anything is loaded.
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import run_cli
from tests.integration.test_cli_errors import assert_user_error
from vit_edge import quantize
from vit_edge.core.artifact import read_manifest
from vit_edge.quantization.recipe import Recipe

pytest.importorskip("onnxruntime")


def _onnx_quantizer_types(path: Path) -> Counter[tuple[str, int]]:
    """(op, zero point's ONNX element type) of every QuantizeLinear/DequantizeLinear in the file."""
    import onnx

    model = onnx.load(str(path))
    types = {init.name: init.data_type for init in model.graph.initializer}
    types.update({node.output[0]: node.attribute[0].t.data_type for node in model.graph.node
                  if node.op_type == "Constant" and node.attribute and node.attribute[0].t.dims == []})
    return Counter((node.op_type, types.get(node.input[2], -1)) for node in model.graph.node
                   if node.op_type in ("QuantizeLinear", "DequantizeLinear") and len(node.input) > 2)


def test_an_a16w8_onnx_file_of_the_shipped_model_keeps_fp32_accuracy_in_onnx_runtime(tmp_path: Path) -> None:
    import onnx

    artifact = quantize("fmnist-vit-tiny", "onnx", tmp_path / "a16w8", calib="fashion-mnist-train",
                        recipe=Recipe(int16=("*",)), eval_data="fashion-mnist", eval_limit=2000, parity_samples=8)
    manifest = read_manifest(artifact.path)
    q = manifest.quantization or {}
    assert len(q["int16_activations"]) == len(q["int8_matmuls"]) == 24, q["int16_activations"]
    model_file = artifact.path / manifest.model_file
    assert onnx.load(str(model_file)).opset_import[0].version == 21  # 16-bit Q/DQ need opset 21
    kinds = _onnx_quantizer_types(model_file)
    int16, int8 = onnx.TensorProto.INT16, onnx.TensorProto.INT8
    assert kinds[("QuantizeLinear", int16)] >= 24 and kinds[("QuantizeLinear", int8)] == 0, kinds
    assert kinds[("DequantizeLinear", int8)] >= 16, kinds  # the weights stay INT8
    assert manifest.parity["passed"] and manifest.parity["min_cosine"] > 0.9999, manifest.parity
    accuracy = q["accuracy"]
    assert accuracy["int8_top1_measured_in"] == "onnxruntime"
    assert round(abs(accuracy["fp32_top1"] - accuracy["int8_top1"]), 6) <= 0.1, accuracy
    info = run_cli("info", str(artifact.path))
    assert info.returncode == 0 and "24 of them A16W8: INT16 activations" in info.stdout, info.stdout


def test_the_budget_gives_the_costly_ops_int16_before_any_float(tmp_path: Path) -> None:
    """The shipped model with planted post-LayerNorm outliers (RepQ-ViT's shape) and SmoothQuant off loses about a
    point in INT8; under --max-drop 0.3 the budget measures each op's INT16 gain and moves ops until it fits."""
    from vit_edge.models.loaders import load_model
    from vit_edge.quantization.outliers import with_activation_outliers

    outliers = with_activation_outliers(load_model("fmnist-vit-tiny").model, channels=4, factor=40.0)
    recipe = Recipe(smoothquant="off", max_drop=0.3)
    artifact = quantize(outliers, "onnx", tmp_path / "budget", calib="fashion-mnist-train", recipe=recipe,
                        eval_data="fashion-mnist", eval_limit=2000, parity_samples=4)
    q = read_manifest(artifact.path).quantization or {}
    accuracy = q["accuracy"]
    moved = accuracy["int16_for_budget"]
    assert moved and accuracy["kept_float_for_budget"] == [], accuracy
    assert moved[0]["drop_before_pt"] > 0.3 and moved[0]["gain_alone_pt"] > 0, moved  # INT8 alone is over budget
    assert sorted(m["matmul"] for m in moved) == sorted(q["int16_activations"]) == sorted(q["recipe"]["int16"])
    assert accuracy["drop"] <= 0.3, accuracy


@pytest.mark.parametrize(("target", "words"), [("openvino", "OpenVINO has no 16-bit activation kernels"),
                                               ("executorch", "no 16-bit activation kernels"),
                                               ("tflite", "XNNPACK has no 16x8 kernels")])
def test_a_target_without_int16_kernels_says_so_before_loading(tmp_path: Path, target: str, words: str) -> None:
    out = tmp_path / "out"
    result = run_cli("quantize", "no-such-model", "--target", target, "--calib", "fashion-mnist-train",
                     "--int16", "blocks.0.*", "--out", str(out))
    assert_user_error(result, "--int16", words, "--target onnx")
    assert not out.exists()


def test_bad_int16_requests_stop_in_one_line(tmp_path: Path) -> None:
    out = tmp_path / "out"
    fused = run_cli("quantize", "no-such-model", "--target", "onnx", "--calib", "fashion-mnist-train", "--a16w8",
                    "--ort-fusions", "--out", str(out))
    assert_user_error(fused, "--ort-fusions fuses INT8 matmuls only")
    unmatched = run_cli("quantize", "fmnist-vit-tiny", "--target", "onnx", "--calib", "fashion-mnist-train",
                        "--calib-size", "8", "--int16", "blocks.9.*", "--out", str(out))
    assert_user_error(unmatched, "--int16 pattern 'blocks.9.*' matches no quantizable matmul")
    assert not out.exists()
    assert np.isfinite(Recipe(int16=("*",)).max_drop or 0.0)  # the recipe itself takes '*'
