"""--profile: each runtime's own per-op timing; the INT8 matmuls of an INT8 artifact are named."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import assert_user_error, run_cli, small_vit
from vit_edge.api import QuantizeConfig, export, quantize
from vit_edge.data.synthetic import smooth_images

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("target", ["onnx", "openvino"])
def test_profile_names_the_int8_matmuls(target: str, tmp_path: Path) -> None:
    model = small_vit(img_size=64, embed_dim=96, mlp_hidden_dim=384)
    fp32 = export(model, target, tmp_path / "fp32", parity_samples=2).path
    int8 = quantize(model, target, tmp_path / "int8", QuantizeConfig(smooth_images(16, 64, 3, seed=1), calib_size=16),
                    parity_samples=2).path
    result = run_cli("bench", str(fp32), str(int8), "--profile", "--runs", "5", "--min-time", "0", "--warmup", "1",
                     "--out", str(tmp_path / "r"))
    assert result.returncode == 0, result.stdout + result.stderr
    records = {Path(r["artifact"]).name: r for r in
               (json.loads(line) for line in (tmp_path / "r" / "bench.jsonl").read_text().splitlines())}
    quantized, plain = records["int8"]["profile"], records["fp32"]["profile"]
    assert quantized["matmuls"]["int8"] >= 6 and quantized["int8_matmul_names"], quantized  # OV fuses some
    assert plain["matmuls"]["int8"] == 0 and plain["matmuls"]["float"] >= 6, plain["matmuls"]
    assert quantized["top_ops"][0]["ms"] > 0 and sum(op["share"] for op in quantized["top_ops"]) <= 1.0001
    assert "INT8 matmuls" in (tmp_path / "r" / "bench.md").read_text()


def test_profile_on_a_runtime_that_cannot_is_refused_before_measuring(tmp_path: Path) -> None:
    art = export(small_vit(), "tflite", tmp_path / "t", parity_samples=2).path
    result = run_cli("bench", str(art), "--profile", "--out", str(tmp_path / "r"))
    assert_user_error(result, "--profile", "no per-op profiler")
    assert "threads" not in result.stderr  # no configuration started
