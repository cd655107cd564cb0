"""The NPU's integer graph: every float value an op computes, reads or holds passes through INT8, except what
the skip list keeps float, and the graph computes what the module-level INT8 model computes."""
from __future__ import annotations

import copy

import numpy as np
import torch
from torch import fx

from tests.helpers import small_vit
from vit_edge.data.synthetic import smooth_images
from vit_edge.quantization.integer_graph import MOVES_DATA, integer_graph
from vit_edge.quantization.lowering import quantize_outputs_for_npu, quantize_outputs_for_tflite
from vit_edge.quantization.ptq import quantize_model
from vit_edge.quantization.recipe import Recipe

_QD = torch.ops.quantized_decomposed
_Q_OR_DQ = {_QD.quantize_per_tensor.default, _QD.dequantize_per_tensor.default,
            _QD.quantize_per_channel.default, _QD.dequantize_per_channel.default}


def _calibration() -> np.ndarray:
    return (smooth_images(16, 32, 3, seed=1).transpose(0, 3, 1, 2) / 127.5 - 1).astype(np.float32)


def _float_computations(graph: fx.GraphModule) -> list[str]:
    """Compute nodes whose float output some reader takes without quantizing it first."""
    def reads_quantized(user: fx.Node) -> bool:
        if user.op == "call_module" or user.target in _Q_OR_DQ:  # an ActQuant, or a Q/DQ op
            return True
        return user.target in MOVES_DATA and all(reads_quantized(u) for u in user.users)

    loose = []
    for node in graph.graph.nodes:
        value = node.meta.get("val")
        if node.op != "call_function" or node.target in _Q_OR_DQ | MOVES_DATA:
            continue
        if isinstance(value, torch.Tensor) and value.is_floating_point():
            if not all(reads_quantized(user) for user in node.users):
                loose.append(node.name)
    return loose


def test_every_computed_value_is_quantized_and_the_numbers_stay() -> None:
    calibration = _calibration()
    quant = quantize_model(small_vit(), Recipe(), calibration)
    lowered = quantize_outputs_for_npu(quant, calibration)
    graph = lowered.model
    assert isinstance(graph, fx.GraphModule)
    assert _float_computations(graph) == []
    targets = {str(node.target) for node in graph.graph.nodes}
    assert "aten.layer_norm.default" not in targets and "aten.rsqrt.default" in targets  # decomposed
    sites = lowered.lowering.integer_graph if lowered.lowering else None
    assert sites is not None and sites.quantized_constants > 0
    assert {"add", "rsqrt", "cat"} <= set(sites.activation_quantizers), sites  # residuals, LayerNorm, tokens
    assert "head" in lowered.int8_matmuls and lowered.kept_float == []  # the head is integer too on an NPU
    batch = torch.from_numpy(calibration[:8])
    with torch.no_grad():  # a batch of 8 runs (the captured batch axis is free) and matches the module model
        module_logits = quantize_outputs_for_tflite(quant, calibration).model(batch)
        graph_logits = graph(batch)
    cosine = torch.nn.functional.cosine_similarity(module_logits, graph_logits, dim=1)
    assert graph_logits.shape == (8, 10) and float(cosine.min()) > 0.98, cosine


def test_what_the_skip_list_keeps_float_stays_float() -> None:
    calibration = _calibration()
    recipe = Recipe(skip=("blocks.0.mlp.fc1",))
    graph = integer_graph(quantize_model(small_vit(), recipe, calibration).model, recipe, calibration,
                          keep_float=("blocks.0.mlp.fc1",))
    assert len(_float_computations(graph)) == 1  # fc1 of block 0: its output is read in float (by GELU)
    linears = [node for node in graph.graph.nodes if node.target == torch.ops.aten.linear.default]
    kept = [node for node in linears
            if list(node.meta["nn_module_stack"].values())[-1][0] == "blocks.0.mlp.fc1"]
    assert len(kept) == 1 and kept[0].args[1].op == "get_attr"  # its weight read as it is: float


def test_a_reused_capture_computes_what_a_fresh_one_does() -> None:
    """The budget's ranking lowers one model once per op with one width changed; inside reusing_capture() the
    graph torch.export captured is copied and its quantize/dequantize nodes take the new widths and scales. Each
    variant's integer graph must give a fresh capture's numbers exactly, and the copies must have been used."""
    from dataclasses import replace

    from vit_edge.quantization import integer_graph as module
    from vit_edge.quantization.ptq import apply_int16

    calib = _calibration()
    plain = quantize_model(small_vit(), Recipe(), calib)
    names = list(plain.int8_matmuls)

    def lowered(wide: list[str]) -> torch.nn.Module:
        model = copy.deepcopy(plain.model)
        recipe = replace(plain.recipe, int16=tuple(wide))
        return quantize_outputs_for_npu(replace(plain, model=model, recipe=recipe,
                                                int16_ops=apply_int16(model, recipe)), calib).model

    variants = [names, names[1:], names[:-1], [names[0]], []]
    batch = torch.from_numpy(calib)
    with torch.no_grad():
        fresh = [lowered(wide)(batch) for wide in variants]
        exports = []
        original = module._export
        module._export = lambda *args: exports.append(1) or original(*args)  # type: ignore[assignment]
        try:
            with module.reusing_capture():
                reused = [lowered(wide)(batch) for wide in variants]
        finally:
            module._export = original  # type: ignore[assignment]
    assert all(torch.equal(a, b) for a, b in zip(fresh, reused))
    assert len(exports) < len(variants), "every variant was captured again: nothing reused"
