"""Vela in the pipeline: `quantize --target tflite --npu CONFIG` compiles the INT8 file for an Arm Ethos-U with the
real ethos-u-vela, records where each operator runs and Vela's estimate in the manifest, and bench and info show
it as Vela's estimate, never as a measurement; bad requests stop in one line before anything is loaded."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import assert_user_error, run_cli, small_vit
from vit_edge import QuantizeConfig, quantize
from vit_edge.core.manifest import read_manifest
from vit_edge.data.synthetic import smooth_images

pytest.importorskip("ethosu.vela")


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    calib = (smooth_images(16, 32, 3, seed=1).transpose(0, 3, 1, 2) / 127.5 - 1).astype(np.float32)
    out = tmp_path_factory.mktemp("npu") / "vit-u85"
    quantize(small_vit(), "tflite", out, QuantizeConfig(calib), npu="ethos-u85-256", parity_samples=4)
    return out


def test_the_estimate_is_recorded_with_its_placement_and_command(compiled: Path) -> None:
    from ai_edge_litert.interpreter import Interpreter

    manifest = read_manifest(compiled)  # model_vela.tflite is listed and its sha256 checked like every file
    estimate = manifest.npu_estimate
    assert estimate is not None and "model_vela.tflite" in manifest.files and manifest.model_file == "model.tflite"
    assert estimate.accelerator == "ethos-u85-256" and estimate.tool.startswith("ethos-u-vela ")
    assert estimate.npu_ops > 0 and estimate.inference_ms > 0 and estimate.macs > 0
    assert sum(estimate.cpu_op_types.values()) == estimate.cpu_ops
    in_file = {op["op_name"].replace("_", "").lower()
               for op in Interpreter(str(compiled / "model.tflite"))._get_ops_details()}
    vela_names = {"concat": "concatenation"}  # Vela's short name for TFLite's CONCATENATION
    named = {vela_names.get(n, n) for n in (op.replace("_", "").lower() for op in estimate.cpu_op_types)}
    assert named <= in_file, f"Vela names CPU operators the file does not have: {named - in_file}"
    assert estimate.command.startswith("vela model.tflite --accelerator-config ethos-u85-256")
    # the NPU lowering keeps GELU and Softmax int8 (softmax on TFLite's 1/256 grid) instead of float islands
    assert manifest.quantization is not None and manifest.quantization.lowering.integer_softmax_gelu
    assert not {"Gelu", "Softmax"} & set(estimate.cpu_op_types), estimate.cpu_op_types
    # and every other op integer (LayerNorm, residual adds, tokens, head): Vela places at least 95 % on the NPU
    assert estimate.npu_share >= 0.95, estimate.cpu_op_types
    assert "int16" not in estimate.ops_by_activation and estimate.ops_by_activation["int8"]


def test_the_shipped_model_runs_on_the_npu_with_its_fp32_accuracy(tmp_path: Path) -> None:
    """The Done-when of issue #24 on real data: the full-integer file of fmnist-vit-tiny, ≥ 95 % of its
    operators on an Ethos-U85-256, top-1 on the Fashion-MNIST test set in LiteRT within 0.5 pt of FP32."""
    from vit_edge.data.datasets import load_fashion_mnist
    from vit_edge.data.preprocess import preprocess_uint8
    from vit_edge.reading.loaders import load_model
    from vit_edge.reading.torch_session import torch_runner
    from vit_edge.runtime.accuracy import run_batched
    from vit_edge.runtime.base import SessionOptions
    from vit_edge.runtime.litert import LiteRtSession

    artifact = quantize("fmnist-vit-tiny", "tflite", tmp_path / "u85", QuantizeConfig("fashion-mnist-train"),
                        npu="ethos-u85-256", parity_samples=4)
    manifest = read_manifest(artifact.path)
    assert manifest.npu_estimate is not None and manifest.npu_estimate.npu_share >= 0.95
    test = load_fashion_mnist("test")
    loaded = load_model("fmnist-vit-tiny")
    images = preprocess_uint8(test.images, loaded.spec)
    fp32 = 100 * float(np.mean(run_batched(torch_runner(loaded.model), images).argmax(1) == test.labels))
    session = LiteRtSession(artifact.path / manifest.model_file, SessionOptions(threads=1))
    as_filed = preprocess_uint8(test.images, manifest.input_spec)  # in the file's layout
    int8 = 100 * float(np.mean(session.run(as_filed).argmax(1) == test.labels))
    assert abs(fp32 - int8) <= 0.5, (fp32, int8)
    info = run_cli("info", str(artifact.path))
    assert info.returncode == 0 and "int16: none; float:" in info.stdout, info.stdout


def test_bench_and_info_label_it_as_vela_s_estimate(compiled: Path, tmp_path: Path) -> None:
    result = run_cli("bench", str(compiled), "--runs", "3", "--warmup", "0", "--min-time", "0",
                     "--out", str(tmp_path / "r"))
    assert result.returncode == 0, result.stderr
    report = (tmp_path / "r" / "bench.md").read_text()
    assert "NPU estimate" in report and "Vela's estimate (not a measurement) for ethos-u85-256" in report
    row = json.loads((tmp_path / "r" / "bench.jsonl").read_text().splitlines()[0])
    assert row["status"] == "ok" and row["npu_estimate"]["accelerator"] == "ethos-u85-256"  # LiteRT ran model.tflite
    info = run_cli("info", str(compiled))
    assert info.returncode == 0 and "falls back to the CPU:" in info.stdout


def test_bad_npu_requests_stop_in_one_line_before_loading(tmp_path: Path) -> None:
    out = tmp_path / "out"
    base = ("quantize", "fmnist-vit-tiny", "--calib", "fashion-mnist", "--out", str(out))
    assert_user_error(run_cli(*base, "--target", "tflite", "--npu", "ethos-u85-255"),
                      "unknown --npu configuration 'ethos-u85-255'", "ethos-u85-256")
    assert_user_error(run_cli(*base, "--target", "onnx", "--npu", "ethos-u85-256"),
                      "--npu applies to --target tflite only")
    # the sub-target declares INT8 only: export says where its file comes from
    assert_user_error(run_cli("export", "fmnist-vit-tiny", "--target", "tflite", "--npu", "ethos-u85-256", "--out",
                              str(out)), "--target tflite --npu ethos-u85-256 supports precision int8, not fp32",
                      "vit-edge quantize")
    hide = "import sys\nsys.modules['ethosu'] = None\nsys.modules['ethosu.vela'] = None"
    assert_user_error(run_cli(*base, "--target", "tflite", "--npu", "ethos-u55-128", prelude=hide),
                      "pip install 'vit-edge[vela]'")
    assert not out.exists()
