"""16-bit activations as a width of the same calibrated range: ActQuant.use_bits, the recipe's patterns, and the
NPU integer graph's Requantize wherever a value crosses between INT8 and INT16."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from tests.helpers import small_vit
from vit_edge.core.errors import ConfigError
from vit_edge.core.summaries import Accuracy, CalibInfo, QuantSummary
from vit_edge.data.synthetic import smooth_images
from vit_edge.quantization.integer_graph import Requantize
from vit_edge.quantization.lowering import quantize_outputs_for_npu
from vit_edge.quantization.ptq import quantize_model
from vit_edge.quantization.qmodules import ActQuant
from vit_edge.quantization.recipe import Recipe


def _calibration() -> np.ndarray:
    return (smooth_images(16, 32, 3, seed=1).transpose(0, 3, 1, 2) / 127.5 - 1).astype(np.float32)


def test_a_quantizer_changes_width_on_its_calibrated_range_and_back() -> None:
    quantizer = ActQuant()
    quantizer.set_range(-0.5, 2.0)
    int8 = (quantizer._scale, quantizer._zero_point)
    quantizer.use_bits(16)
    assert quantizer._zero_point == 0 and quantizer._scale == pytest.approx(2.0 / 32767)  # symmetric, zero point 0
    x = torch.linspace(-0.5, 2.0, 1001)
    assert float((quantizer(x) - x).abs().max()) <= quantizer._scale / 2 + 1e-9
    quantizer.use_bits(8)
    assert (quantizer._scale, quantizer._zero_point) == int8


def test_the_recipe_round_trips_its_int16_patterns_and_refuses_empty_ones() -> None:
    recipe = Recipe(int16=("blocks.0.*", "*.mlp.fc2"))
    assert Recipe.from_json(recipe.to_json()) == recipe
    assert recipe.int16_for("blocks.0.attn.qkv") and recipe.int16_for("blocks.3.mlp.fc2")
    assert not recipe.int16_for("blocks.1.attn.qkv")
    with pytest.raises(ConfigError, match="--int16"):
        Recipe(int16=("",))


def test_ptq_stores_only_the_named_ops_in_int16() -> None:
    quant = quantize_model(small_vit(), Recipe(int16=("blocks.0.mlp.*",)), _calibration())
    assert quant.int16_ops == ["blocks.0.mlp.fc1", "blocks.0.mlp.fc2"]
    widths = {name: module.bits for name, module in quant.model.named_modules() if isinstance(module, ActQuant)}
    assert widths["blocks.0.mlp.fc1.input_quant"] == 16 and widths["blocks.1.mlp.fc1.input_quant"] == 8
    summary = quant.summary(CalibInfo("array", 16, "x"), Accuracy(), "ptq")
    assert list(summary.int16_activations) == quant.int16_ops


def test_the_integer_graph_requantizes_where_widths_meet_and_computes_what_the_modules_compute() -> None:
    calibration = _calibration()
    plain = quantize_outputs_for_npu(quantize_model(small_vit(), Recipe(), calibration), calibration)
    mixed = quantize_outputs_for_npu(quantize_model(small_vit(), Recipe(int16=("blocks.0.mlp.*",)), calibration),
                                     calibration)
    requantizers = [m for m in mixed.model.modules() if isinstance(m, Requantize)]
    assert not any(isinstance(m, Requantize) for m in plain.model.modules())
    # fc1 writes INT16 into the INT8 GELU and reads INT8 from LayerNorm; fc2 reads INT8 GELU, writes INT16
    sites = mixed.lowering.integer_graph if mixed.lowering else None
    assert len(requantizers) >= 3 and sites is not None and sites.requantize == len(requantizers)
    assert {(r.source.grid.bits, r.target.grid.bits) for r in requantizers} == {(8, 16), (16, 8)}
    batch = torch.from_numpy(calibration[:8])
    with torch.no_grad():
        cosine = torch.nn.functional.cosine_similarity(plain.model(batch), mixed.model(batch), dim=1)
    assert float(cosine.min()) > 0.99, cosine


def test_a_budget_the_runtime_does_not_meet_is_said_in_the_quantize_line() -> None:
    """The budget is checked on PyTorch's simulation; when the file's runtime scores a larger drop, the line that
    reports the artifact says so instead of reading as met."""
    from pathlib import Path
    from types import SimpleNamespace

    from vit_edge.cli.printing import quantize_line

    accuracy = Accuracy(fp32_top1=89.6, int8_top1=89.2, drop=0.4, drop_simulated=0.3, agreement_top1=98.8,
                        int8_top1_measured_in="litert", budget_met_in_runtime=False)
    summary = QuantSummary(recipe=Recipe(max_drop=0.3).to_json(), int8_matmuls=("a",), kept_float=(),
                           int16_activations=(), smoothquant_alpha={}, sqnr_db={}, scales_sha256="", accuracy=accuracy)
    manifest = SimpleNamespace(target="tflite", quantization=summary)
    line = quantize_line(Path("out"), manifest)  # type: ignore[arg-type]
    assert "budget of 0.3 pt holds in PyTorch's simulation (drop 0.30 pt) but not as litert scores" in line, line
    manifest.quantization = replace(summary, accuracy=replace(accuracy, budget_met_in_runtime=True))
    assert "budget" not in quantize_line(Path("out"), manifest)  # type: ignore[arg-type]
