"""INT8 PTQ: real calibration, real lowering to ONNX QDQ, OpenVINO IR and TFLite, INT8 kernels checked in the
runtimes."""
from __future__ import annotations

import collections
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.helpers import run_cli, small_vit
from vit_edge.api import QuantizeConfig, quantize
from vit_edge.core.errors import ConfigError
from vit_edge.core.targets import TARGETS as TARGET_DECLARATIONS
from vit_edge.core.types import Precision
from vit_edge.data.datasets import load_fashion_mnist
from vit_edge.data.preprocess import preprocess_uint8
from vit_edge.quantization.ptq import quantize_model
from vit_edge.quantization.qmodules import QuantLinear, QuantMatMul
from vit_edge.quantization.recipe import CALIBRATION_METHODS, Recipe
from vit_edge.reading.loaders import load_model
from vit_edge.runtime import open_session


@pytest.fixture(scope="module")
def shipped():
    return load_model("fmnist-vit-tiny")


@pytest.fixture(scope="module")
def calib(shipped) -> np.ndarray:
    return preprocess_uint8(load_fashion_mnist("test").images[-256:], shipped.spec)


@pytest.fixture(scope="module")
def heldout():
    return load_fashion_mnist("test").take(1000)


def test_last_block_saving_keeps_the_plain_graphs_int8_scales_and_logits(shipped, calib) -> None:
    """Calibration sees every token of the last block, so the scales equal the plain graph's, and the INT8 model,
    which computes the class token alone there, gives the plain INT8 model's logits (held-out accuracy unchanged)."""
    from vit_edge.models.vit import every_token

    saving = quantize_model(shipped.model, Recipe(), calib[:64])
    plain = quantize_model(shipped.model.reconfigured(head_tokens_only=False), Recipe(), calib[:64])
    assert saving.model.output_tokens() == 1 and plain.model.output_tokens() is None
    assert saving.scales_sha256 == plain.scales_sha256
    x = torch.from_numpy(calib[64:96])
    with torch.no_grad():
        expected = plain.model(x)
        torch.testing.assert_close(saving.model(x), expected, atol=1e-5, rtol=1e-5)
        with every_token(saving.model):
            torch.testing.assert_close(saving.model(x), expected, atol=1e-5, rtol=1e-5)
    assert saving.model.output_tokens() == 1, "every_token restores the saving"


def test_every_listed_matmul_becomes_int8_and_the_skip_list_holds(shipped, calib) -> None:
    quant = quantize_model(shipped.model, Recipe(skip=("blocks.0.*",)), calib[:64])
    modules = dict(quant.model.named_modules())
    assert isinstance(modules["blocks.1.attn.qk"], QuantMatMul) and isinstance(modules["blocks.3.mlp.fc2"], QuantLinear)
    assert not isinstance(modules["blocks.0.attn.qkv"], QuantLinear)
    assert len(quant.int8_matmuls) == 18 and "blocks.0.attn.av" in quant.kept_float
    assert all(value > 15 for value in quant.sqnr_db.values()), quant.sqnr_db


@pytest.mark.parametrize("method", CALIBRATION_METHODS)
def test_each_calibration_method_keeps_accuracy(method: str, shipped, calib, heldout) -> None:
    quant = quantize_model(shipped.model, Recipe(calibration=method), calib)
    data = torch.from_numpy(preprocess_uint8(heldout.images, shipped.spec))
    with torch.no_grad():
        fp32 = float((shipped.model(data).argmax(1).numpy() == heldout.labels).mean() * 100)
        int8 = float((quant.model(data).argmax(1).numpy() == heldout.labels).mean() * 100)
    assert fp32 - int8 <= 0.5, (method, fp32, int8)


def test_smoothquant_changes_nothing_in_float(shipped, calib) -> None:
    """Scale migration is exact in float: with every quantizer off the model computes what it did."""
    quant = quantize_model(shipped.model, Recipe(smoothquant="0.5", kinds=("qkv", "fc1")), calib[:32])
    assert quant.smoothquant, "alpha given: migration must be applied"
    from vit_edge.quantization.qmodules import ActQuant

    for module in quant.model.modules():
        if isinstance(module, ActQuant):
            module.enabled = False
    x = torch.from_numpy(calib[:8])
    with torch.no_grad():  # only the INT8 rounding of the (rescaled) weights remains
        np.testing.assert_allclose(quant.model(x).numpy(), shipped.model(x).numpy(), atol=0.05)


TARGETS = tuple(t.name for t in TARGET_DECLARATIONS.values() if Precision.INT8 in t.precisions)


@pytest.fixture(scope="module")
def shipped_int8(tmp_path_factory) -> dict:
    """The shipped model quantized once per target, with the same recipe and calibration images."""
    out = tmp_path_factory.mktemp("int8")
    config = QuantizeConfig("fashion-mnist-train", calib_size=256, eval_data="fashion-mnist", eval_limit=1000)
    return {target: quantize("fmnist-vit-tiny", target, out / target, config) for target in TARGETS}


@pytest.mark.slow
@pytest.mark.parametrize("target", TARGETS)
def test_shipped_model_int8_artifact(target: str, shipped_int8, heldout) -> None:
    artifact = shipped_int8[target]
    q = artifact.manifest.quantization
    assert artifact.manifest.precision.value == "int8" and len(q.int8_matmuls) == 24
    assert q.accuracy.drop <= 0.5 and len(q.scales_sha256) == 64 and q.calibration.images == 256
    # 0.99896 for ONNX Runtime on a 2-core AMD EPYC (VNNI, no AMX); the broken fusion gave far lower numbers
    assert artifact.manifest.parity.passed and artifact.manifest.parity.min_cosine >= 0.998
    shown = run_cli("info", str(artifact.path))
    # 24 block matmuls INT8; patch_embed and head float
    assert shown.returncode == 0 and "ptq: 24 INT8 matmuls, 2 float; percentile calibration on 256" in shown.stdout
    spec = artifact.manifest.input_spec
    logits = artifact.run(preprocess_uint8(heldout.images, spec))
    top1 = 100 * np.mean(logits.argmax(1) == heldout.labels)
    assert abs(top1 - q.accuracy.int8_top1) <= 0.3  # same 1,000 images: runtime INT8 ≈ PyTorch's simulation
    assert (artifact._session.info().precision or "").startswith("int8")


def test_every_target_agrees_on_accuracy(shipped_int8, heldout) -> None:
    correct = {}
    for target, artifact in shipped_int8.items():
        logits = artifact.run(preprocess_uint8(heldout.images, artifact.manifest.input_spec))
        correct[target] = int(np.sum(logits.argmax(1) == heldout.labels))
    assert max(correct.values()) - min(correct.values()) <= 3, correct  # of 1,000 images (0.3 pt), counted exactly


def test_onnx_runtime_runs_int8_kernels(shipped_int8, tmp_path: Path) -> None:
    import onnx
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    ort.InferenceSession(str(shipped_int8["onnx"].path / "model.onnx"), options, providers=["CPUExecutionProvider"])
    ops = collections.Counter(n.op_type for n in onnx.load(str(tmp_path / "optimized.onnx")).graph.node)
    # what ORT really runs: 16 projections + 4 Q·Kᵀ as MatMulIntegerToFloat, 4 attn·V as QLinearMatMul
    assert ops["MatMulIntegerToFloat"] == 20 and ops["QLinearMatMul"] == 4 and ops["MatMul"] == 0, ops
    assert ops["QLinearSoftmax"] == 0, ops


def test_ort_graph_folds_biases_and_scales_and_gives_the_plain_files_logits(shipped_int8, heldout,
                                                                               tmp_path: Path) -> None:
    """--ort-fusions: every bias inside its INT8 matmul, fc1's GELU unfused from it, the attention scale inside the
    query's quantizer, qkv as three matmuls with no float Split, every quantizer ahead of the layout ops; the same
    scales (one calibration), so the plain QDQ file's logits, at any batch size."""
    import onnx

    plain = shipped_int8["onnx"]
    fused = quantize("fmnist-vit-tiny", "onnx", tmp_path / "ort", QuantizeConfig("fashion-mnist-train", calib_size=256),
                     ort_fusions=True)
    assert fused.manifest.parity.passed and "runs in ONNX Runtime only" in fused.manifest.export_options[
        "ort_fusions"]
    assert fused.manifest.quantization.scales_sha256 == plain.manifest.quantization.scales_sha256
    graph = onnx.load(str(fused.path / "model.onnx")).graph
    ops = collections.Counter(n.op_type for n in graph.node)
    # 24 projections (each qkv now q, k and v) and 4 Q·Kᵀ; no projection's output goes to a bias Add or BiasGelu any
    # more: its bias is inside it (23 here) or in the SkipLayerNormalization ONNX Runtime fused itself (1)
    matmuls = {n.output[0]: n for n in graph.node if n.op_type == "MatMulIntegerToFloat"}
    with_bias = [n for n in matmuls.values() if len(n.input) == 7]
    constants = {t.name for t in graph.initializer}
    left = [n.name for n in graph.node if n.op_type in ("Add", "BiasGelu") and set(n.input) & set(matmuls)
            and set(n.input) & constants]
    assert len(matmuls) == 28 and len(with_bias) + ops["SkipLayerNormalization"] == 24 and not left, (ops, left)
    assert ops["BiasGelu"] == 0 and ops["Gelu"] == 4 and ops["Mul"] == 0, ops  # the 4 attention scales folded
    producer = {o: n.op_type for n in graph.node for o in n.output}
    late = [n.name for n in graph.node if n.op_type == "QuantizeLinear"
            and producer.get(n.input[0]) in ("Transpose", "Squeeze", "Reshape")]
    assert ops["Split"] == 0 and not late, (ops, late)  # no float copy of qkv; the query moves as integers
    images = preprocess_uint8(heldout.images[:96], plain.manifest.input_spec)
    for batch in (1, 7, 96):
        np.testing.assert_allclose(fused.run(images[:batch]), plain.run(images[:batch]), atol=1e-4, rtol=1e-4)


def test_ort_fusions_is_an_onnx_option(tmp_path: Path) -> None:
    result = run_cli("quantize", "fmnist-vit-tiny", "--target", "openvino", "--calib", "fashion-mnist",
                     "--calib-size", "8", "--ort-fusions", "--out", str(tmp_path / "out"))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "--ort-fusions applies to --target onnx only" in result.stderr.splitlines()[-1]
    assert not (tmp_path / "out").exists()


def test_openvino_runs_int8_kernels(shipped_int8) -> None:
    import openvino as ov

    compiled = ov.Core().compile_model(str(shipped_int8["openvino"].path / "model.xml"), "CPU")
    precisions = collections.Counter(
        op.get_rt_info()["runtimePrecision"].astype(str) for op in compiled.get_runtime_model().get_ops()
        if op.get_rt_info()["layerType"].astype(str) == "FullyConnected")
    assert precisions["u8"] + precisions["i8"] == 16, precisions  # qkv, proj, fc1, fc2 in INT8
    flags = next((line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags")), "")
    if not {"avx512_vnni", "amx_int8"} & set(flags.split()):
        # the CPU plugin fuses INT8 attention into one Subgraph kernel only with AVX-512 VNNI or AMX; on an
        # AVX2-only CPU (an AMD EPYC here) Q·Kᵀ and attn·V run as separate MatMuls, so there is nothing to check
        return
    attention = [op for op in compiled.get_runtime_model().get_ops()
                 if op.get_rt_info()["layerType"].astype(str) == "Subgraph"]
    inputs = {str(op.input(i).get_element_type()) for op in attention for i in range(op.get_input_size())}
    # the fused attention kernel (Q·Kᵀ, softmax, attn·V) of each block takes Q, K and V in INT8: with a zero
    # point on Q it fell back to f32 inputs
    assert len(attention) == 4 and inputs <= {"<Type: 'int8_t'>", "<Type: 'uint8_t'>"}, inputs


def test_tflite_matmuls_are_int8_and_xnnpack_takes_the_whole_graph(shipped_int8) -> None:
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    from vit_edge.runtime.litert import undelegated_ops

    path = str(shipped_int8["tflite"].path / "model.tflite")
    bare = Interpreter(model_path=path, experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    bare.allocate_tensors()
    dtypes = {t["index"]: t["dtype"] for t in bare.get_tensor_details()}
    ops = bare._get_ops_details()
    int8_inputs = collections.Counter(op["op_name"] for op in ops if dtypes[op["inputs"][0]] == np.int8)
    assert int8_inputs["FULLY_CONNECTED"] == 16 and int8_inputs["BATCH_MATMUL"] == 8, int8_inputs  # + float head
    assert int8_inputs["GELU"] == 0 and int8_inputs["SOFTMAX"] == 0, int8_inputs  # float islands: XNNPACK has no int8
    delegated = Interpreter(model_path=path, num_threads=1)
    delegated.allocate_tensors()
    assert undelegated_ops(delegated._get_ops_details()) == []


def test_executorch_runs_the_projections_int8_and_names_what_xnnpack_left(shipped_int8) -> None:
    """qkv, proj, fc1 and fc2 of each block as XNNPACK int8 kernels; Q·Kᵀ and attn·V in float (XNNPACK 1.4 has
    no int8 matmul of two runtime tensors); what stays outside the delegate (the class token's expand, the
    pooling's select) is named, op by op."""
    artifact = shipped_int8["executorch"]
    delegation = json.loads((artifact.path / "delegation.json").read_text())
    assert delegation["gemms_in_delegate"]["int8 linear"] == 16, delegation
    assert delegation["gemms_in_delegate"]["float bmm"] == 8 and delegation["precision"] == "int8"
    assert set(delegation["undelegated_ops"]) <= {"expand_copy", "select_copy"}  # named, not hidden
    lowering = artifact.manifest.quantization.lowering
    assert len(lowering.xnnpack_output_quantized) == 16 and len(lowering.float_batch_matmuls) == 8
    delegated = open_session(artifact.path).info().delegation
    assert delegated is not None and list(delegated.undelegated_ops) == sorted(delegation["undelegated_ops"])


@pytest.mark.parametrize("target", TARGETS)
def test_random_init_vit_int8_runs_as_simulated(target: str, tmp_path: Path) -> None:
    """Untrained attention (near-uniform softmax) once broke ORT's fused QLinearSoftmax: the runtime must compute
    what PyTorch's INT8 simulation computes, whatever the weights."""
    from vit_edge.data.synthetic import smooth_images

    model = small_vit(img_size=64, embed_dim=96, mlp_hidden_dim=384)
    artifact = quantize(model, target, tmp_path / "q", QuantizeConfig(smooth_images(32, 64, 3, seed=1), calib_size=32))
    # 0.99896 for ONNX Runtime on a 2-core AMD EPYC (VNNI, no AMX); the broken fusion gave far lower numbers
    assert artifact.manifest.parity.passed and artifact.manifest.parity.min_cosine >= 0.998


def test_budget_keeps_sensitive_matmuls_float(tmp_path: Path) -> None:
    recipe = Recipe(per_tensor_weights=True, smoothquant="off", calibration="minmax", max_drop=0.0)
    config = QuantizeConfig("fashion-mnist", recipe, calib_size=64, eval_data="fashion-mnist", eval_limit=300)
    artifact = quantize("fmnist-vit-tiny", "onnx", tmp_path / "b", config, parity_samples=4)
    accuracy = artifact.manifest.quantization.accuracy
    assert accuracy.drop <= 0.0
    for kept in accuracy.kept_float_for_budget:
        assert kept.matmul in artifact.manifest.quantization.kept_float


def test_bad_quantization_inputs(tmp_path: Path) -> None:
    empty = tmp_path / "empty.npy"
    np.save(empty, np.zeros((0, 28, 28), dtype=np.uint8))
    wrong = tmp_path / "wrong.npy"
    np.save(wrong, np.zeros((4, 3, 32, 32), dtype=np.float32))
    cases = [
        (["--calib", str(empty)], "holds no images"),
        (["--calib", str(wrong)], "of shape (4, 3, 32, 32)"),
        (["--calib", "fashion-mnist", "--skip", "blocks.9.*"], "matches no quantizable matmul"),
        (["--calib", "fashion-mnist", "--skip", "*"], "nothing would run in INT8"),
        (["--calib", "fashion-mnist", "--max-drop", "-1"], "--max-drop: expected a number ≥ 0"),
        (["--calib", "fashion-mnist", "--calib-method", "kl"], "unknown calibration 'kl'"),
    ]
    for args, message in cases:
        out = tmp_path / "out"
        result = run_cli("quantize", "fmnist-vit-tiny", "--target", "onnx", "--out", str(out), "--calib-size", "8",
                         *args)
        assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
        assert message in result.stderr.strip().splitlines()[-1], (message, result.stderr)
        assert not out.exists()


def test_impossible_budget_is_refused(shipped) -> None:
    """Labels = the float model's own predictions on a random, near-tied model: FP32 scores 100 % and INT8 noise
    in the only quantized matmul flips some of them, so a zero budget cannot be met."""
    from vit_edge.data.datasets import LabelledImages
    from vit_edge.quantization.budget import quantize_with_budget

    model = small_vit(in_chans=1, img_size=28, patch_size=4, depth=1)
    data = load_fashion_mnist("test").take(200)
    with torch.no_grad():
        own = model(torch.from_numpy(preprocess_uint8(data.images, shipped.spec))).argmax(1).numpy()
    labelled = LabelledImages(data.images, own, data.class_names, "own predictions")
    recipe = Recipe(max_drop=0.0, kinds=("fc2",), per_tensor_weights=True, calibration="minmax", smoothquant="off")
    with pytest.raises(ConfigError, match="cannot be met"):
        quantize_with_budget(model, recipe, preprocess_uint8(data.images[:32], shipped.spec), labelled, shipped.spec)
