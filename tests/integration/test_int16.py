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

from tests.helpers import assert_user_error, run_cli
from vit_edge import QuantizeConfig, quantize
from vit_edge.core.manifest import read_manifest
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

    config = QuantizeConfig("fashion-mnist-train", Recipe(int16=("*",)), eval_data="fashion-mnist", eval_limit=2000)
    artifact = quantize("fmnist-vit-tiny", "onnx", tmp_path / "a16w8", config, parity_samples=8)
    manifest = read_manifest(artifact.path)
    q = manifest.quantization
    assert len(q.int16_activations) == len(q.int8_matmuls) == 24, q.int16_activations
    model_file = artifact.path / manifest.model_file
    assert onnx.load(str(model_file)).opset_import[0].version == 21  # 16-bit Q/DQ need opset 21
    kinds = _onnx_quantizer_types(model_file)
    int16, int8 = onnx.TensorProto.INT16, onnx.TensorProto.INT8
    assert kinds[("QuantizeLinear", int16)] >= 24 and kinds[("QuantizeLinear", int8)] == 0, kinds
    assert kinds[("DequantizeLinear", int8)] >= 16, kinds  # the weights stay INT8
    assert manifest.parity.passed and manifest.parity.min_cosine > 0.9999, manifest.parity
    accuracy = q.accuracy
    assert accuracy.int8_top1_measured_in == "onnxruntime"
    assert round(abs(accuracy.fp32_top1 - accuracy.int8_top1), 6) <= 0.1, accuracy
    info = run_cli("info", str(artifact.path))
    assert info.returncode == 0 and "24 of them A16W8: INT16 activations" in info.stdout, info.stdout


def test_the_budget_gives_the_costly_ops_int16_before_any_float(tmp_path: Path) -> None:
    """The shipped model with planted post-LayerNorm outliers (RepQ-ViT's shape) and SmoothQuant off loses about a
    point in INT8; under --max-drop 0.3 the budget measures what INT8 costs on each op and moves the costliest to
    INT16 until it fits."""
    from vit_edge.quantization.outliers import with_activation_outliers
    from vit_edge.reading.loaders import load_model

    outliers = with_activation_outliers(load_model("fmnist-vit-tiny").model, channels=4, factor=40.0)
    recipe = Recipe(smoothquant="off", max_drop=0.3)
    config = QuantizeConfig("fashion-mnist-train", recipe, calib_size=64, eval_data="fashion-mnist", eval_limit=1000)
    artifact = quantize(outliers, "onnx", tmp_path / "budget", config, parity_samples=4)
    q = read_manifest(artifact.path).quantization
    accuracy = q.accuracy
    moved = accuracy.int16_for_budget
    assert moved and accuracy.kept_float_for_budget == (), accuracy
    assert moved[0].drop_before_pt > 0.3, moved  # INT8 alone is over budget
    costs = [m.int8_cost_pt for m in moved]
    assert costs == sorted(costs, reverse=True), moved  # the costliest first
    assert sorted(m.matmul for m in moved) == sorted(q.int16_activations) == sorted(q.recipe["int16"])
    assert accuracy.drop <= 0.3, accuracy


def test_an_a16w8_npu_file_runs_in_litert_and_all_on_the_ethos_u85(tmp_path: Path) -> None:
    """--a16w8 with --npu: every matmul, LayerNorm piece, softmax and residual add in int16 with int8 weights; GELU,
    the token concat and the patch embedding int8; Vela places it all on the NPU; LiteRT keeps FP32's top-1."""
    pytest.importorskip("ethosu.vela")
    out = tmp_path / "u85-a16w8"
    result = run_cli("quantize", "fmnist-vit-tiny", "--target", "tflite", "--npu", "ethos-u85-256", "--a16w8",
                     "--calib", "fashion-mnist-train", "--eval", "fashion-mnist", "--eval-limit", "2000",
                     "--parity-samples", "4", "--out", str(out))
    assert result.returncode == 0, result.stderr
    manifest = read_manifest(out)
    estimate, q = manifest.npu_estimate, manifest.quantization
    assert estimate.npu_share >= 0.95 and len(q.int16_activations) == 24, estimate
    int16, int8 = estimate.ops_by_activation["int16"], estimate.ops_by_activation["int8"]
    assert {"FULLY_CONNECTED", "BATCH_MATMUL", "SOFTMAX", "MEAN", "RSQRT", "MUL", "SUB", "ADD"} <= set(int16), int16
    assert set(int8) <= {"GELU", "CONCATENATION", "CONV_2D", "DEPTHWISE_CONV_2D", "QUANTIZE", "MAXIMUM", "RESHAPE",
                         "TRANSPOSE"}, int8
    accuracy = q.accuracy
    assert accuracy.int8_top1_measured_in == "litert" and manifest.parity.passed, manifest.parity
    assert round(abs(accuracy.fp32_top1 - accuracy.int8_top1), 6) <= 0.3, accuracy
    assert "24 of them A16W8" in result.stdout and "int16: ADD" in run_cli("info", str(out)).stdout


# each of a block's six ops INT16 among INT8 neighbours once, two to a file: one in each block, so they do not meet
@pytest.mark.parametrize("ops", ["blocks.0.attn.qkv,blocks.1.attn.av", "blocks.0.attn.qk,blocks.1.mlp.fc2",
                                 "blocks.0.attn.proj,blocks.1.mlp.fc1"])
def test_any_mix_of_widths_converts_and_matches_its_simulation_in_litert(tmp_path: Path, ops: str) -> None:
    """Each place a width can change (an op's input, its output, attn·V into the projection, the LayerNorm that
    feeds an INT16 matmul) converts, and LiteRT computes what the simulation computes (the pipeline's parity)."""
    pytest.importorskip("ethosu.vela")
    from tests.helpers import small_vit
    from vit_edge.data.synthetic import smooth_images

    calib = (smooth_images(16, 32, 3, seed=1).transpose(0, 3, 1, 2) / 127.5 - 1).astype(np.float32)
    recipe = Recipe(int16=tuple(ops.split(",")))
    artifact = quantize(small_vit(), "tflite", tmp_path / "mixed", QuantizeConfig(calib, recipe), npu="ethos-u85-256",
                        parity_samples=8)
    manifest = read_manifest(artifact.path)
    assert manifest.parity.passed and manifest.parity.min_cosine > 0.97, manifest.parity
    assert manifest.npu_estimate.npu_share >= 0.95
    assert list(manifest.quantization.int16_activations) == ops.split(",")


def test_the_npu_budget_meets_the_limit_on_the_outlier_variant_with_int16_not_float(tmp_path: Path) -> None:
    """The outlier variant as a user's checkpoint, SmoothQuant off: the all-INT8 NPU file is over a 0.3 pt budget;
    the budget measures each op's INT8 cost on the integer graph and gives INT16 to the costliest, none float, and
    the file stays on the NPU."""
    pytest.importorskip("ethosu.vela")
    from vit_edge.quantization.outliers import save_outlier_variant
    from vit_edge.reading.registry import SHIPPED_MODELS

    model = save_outlier_variant(SHIPPED_MODELS["fmnist-vit-tiny"], tmp_path / "outliers.pt", 4, 40.0)
    out = tmp_path / "u85-budget"
    result = run_cli("quantize", str(model), "--target", "tflite", "--npu", "ethos-u85-256", "--smoothquant", "off",
                     "--calib", "fashion-mnist-train", "--calib-size", "64", "--eval", "fashion-mnist",
                     "--eval-limit", "1000", "--max-drop", "0.3", "--parity-samples", "4", "--out", str(out),
                     timeout=1500)  # 25 lowerings to the integer graph, each calibrated: 64 images, not 256, 25 s less
    assert result.returncode == 0, result.stderr
    assert "Warning" not in result.stderr, result.stderr  # copying graphs made torch's pytree warn, once a copy
    manifest = read_manifest(out)
    q, estimate = manifest.quantization, manifest.npu_estimate
    accuracy = q.accuracy
    moved = accuracy.int16_for_budget
    assert moved and moved[0].drop_before_pt > 0.3 and accuracy.kept_float_for_budget == (), accuracy
    assert 0 < len(q.int16_activations) < 24, q.int16_activations  # only what the budget needed
    assert accuracy.drop_simulated <= 0.3, accuracy  # the budget holds where it is measured
    # LiteRT then scores the file itself: its INT16 reference kernels and XNNPACK's INT8 ones round as the simulation
    # does within a few of the 1,000 images, by CPU (3 images apart on an Intel Xeon with 256 calibration images, where
    # an AMD EPYC met the budget in both), and the manifest and the summary line say whether the budget holds there
    assert abs(accuracy.drop - accuracy.drop_simulated) <= 0.5, accuracy
    assert accuracy.budget_met_in_runtime is (round(accuracy.drop, 6) <= 0.3), accuracy
    assert accuracy.budget_met_in_runtime or "holds in PyTorch's simulation" in result.stdout, result.stdout
    assert estimate.npu_share >= 0.95 and "FULLY_CONNECTED" in estimate.ops_by_activation["int16"], estimate


@pytest.mark.parametrize(("target", "words"), [
    ("openvino", ("OpenVINO has no 16-bit activation kernels", "--target onnx", "--npu CONFIG")),
    ("executorch", ("no 16-bit activation kernels", "--target onnx")),
    ("tflite", ("XNNPACK has no 16x8 kernels", "add --npu CONFIG"))])
def test_a_target_without_int16_kernels_says_so_before_loading(tmp_path: Path, target: str,
                                                               words: tuple[str, ...]) -> None:
    out = tmp_path / "out"
    result = run_cli("quantize", "no-such-model", "--target", target, "--calib", "fashion-mnist-train",
                     "--int16", "blocks.0.*", "--out", str(out))
    assert_user_error(result, "--int16", "leave --int16 out", *words)
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
