"""scoring(): the quantized models' numbers, the same values in fewer passes; exports still see the Q/DQ ops."""
from __future__ import annotations

import copy
from dataclasses import replace

import numpy as np
import pytest
import torch
from torch import fx

from tests.helpers import small_vit
from vit_edge.data.synthetic import smooth_images
from vit_edge.quantization.integer_graph import scoring_view
from vit_edge.quantization.lowering import quantize_outputs_for_npu
from vit_edge.quantization.ptq import apply_int16, quantize_model
from vit_edge.quantization.qmodules import ActQuant, QuantLinear, scoring
from vit_edge.quantization.recipe import Recipe

_QD = torch.ops.quantized_decomposed


def _calibration() -> np.ndarray:
    return (smooth_images(16, 32, 3, seed=3).transpose(0, 3, 1, 2) / 127.5 - 1).astype(np.float32)


@pytest.mark.parametrize("bits", [8, 16])
def test_an_activation_quantizer_gives_the_same_numbers_inside_scoring(bits: int) -> None:
    quantizer = ActQuant()
    quantizer.use_bits(bits)
    quantizer.set_range(-1.7, 2.3)
    scale = quantizer._scale
    ties = torch.tensor([k + 0.5 for k in range(-40, 40)]) * scale  # round half to even, both ways
    x = torch.cat([torch.randn(10_000) * 3, ties, torch.tensor([1e30, -1e30, 0.0, -0.0, 1e-30, scale / 2])])
    with torch.no_grad():
        plain = quantizer(x)
        with scoring():
            fast = quantizer(x)
    assert torch.equal(plain, fast) and not torch.equal(plain, x)
    with scoring():
        assert torch.isnan(quantizer(torch.tensor([float("nan")]))).all()  # NaN stays NaN (the pair casts it)


def test_a_lowered_integer_graph_scores_the_same_and_keeps_its_pairs() -> None:
    calib = _calibration()
    plain = quantize_model(small_vit(), Recipe(), calib)
    model = copy.deepcopy(plain.model)
    recipe = replace(plain.recipe, int16=tuple(list(plain.int8_matmuls)[1:4]))  # INT16 and INT8 requantizes too
    graph = quantize_outputs_for_npu(replace(plain, model=model, recipe=recipe,
                                             int16_ops=apply_int16(model, recipe)), calib).model
    assert isinstance(graph, fx.GraphModule)
    pairs = sum(node.target is _QD.quantize_per_tensor.default for node in graph.graph.nodes)
    view = scoring_view(graph)
    batch = torch.from_numpy(calib)
    with torch.no_grad():
        expected = graph(batch)
        with scoring():
            fast = view(batch)
            again = view(batch)  # the constants computed once are the same constants
    assert torch.equal(expected, fast) and torch.equal(expected, again)
    assert pairs > 0 and sum(node.target is _QD.quantize_per_tensor.default for node in graph.graph.nodes) == pairs
    assert not any(node.target is _QD.quantize_per_tensor.default for node in view.graph.nodes)
    shared = [name for name, module in graph.named_modules() if isinstance(module, ActQuant)]
    assert shared and all(dict(view.named_modules())[name] is dict(graph.named_modules())[name] for name in shared)


def test_a_weight_changed_inside_scoring_is_read_again() -> None:
    linear = QuantLinear(torch.nn.Linear(16, 8, bias=False))
    linear.input_quant.set_range(-3.0, 3.0)
    x = torch.randn(4, 16)
    with torch.no_grad(), scoring():
        before = linear(x)
        linear.weight_int8.mul_(-1)
        after = linear(x)
    assert torch.allclose(after, -before, atol=1e-5) and not torch.allclose(after, before)


def test_an_export_sees_the_quantize_ops() -> None:
    quantizer = ActQuant()
    quantizer.set_range(-1.0, 1.0)
    exported = torch.export.export(quantizer.eval(), (torch.randn(2, 3),))
    targets = {node.target for node in exported.graph.nodes}
    assert _QD.quantize_per_tensor.default in targets and _QD.dequantize_per_tensor.default in targets
