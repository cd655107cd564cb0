"""ONNX Runtime's own graph of an ONNX file (`--ort-fusions`): what its CPU kernels run fastest, saved once.

ONNX Runtime rewrites a QDQ graph at every load (QuantizeLinear → MatMul with DequantizeLinear weights becomes
MatMulIntegerToFloat or QLinearMatMul; Add + Gelu becomes BiasGelu). Three steps it leaves undone on vit-edge's INT8
graph cost about a tenth of DeiT-S's time on a CPU (per-op profiles, benchmarks/latency_vs_peers.py):
- each linear's bias is a separate Add after its MatMulIntegerToFloat, which takes a bias input of its own;
- fc1's bias goes into BiasGelu, whose kernel is slower than Gelu alone once the bias is in the matmul;
- the attention scale is a Mul just before the query's QuantizeLinear, whose scale can absorb it (same integers).
The file is then ONNX Runtime's extended-level graph (com.microsoft operators, the INT8 placement unchanged): it
runs in ONNX Runtime only, which is why it is an option and the plain QDQ file the default.
"""
from __future__ import annotations

import math
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

__all__ = ["fuse_for_onnxruntime"]

MS_DOMAIN = "com.microsoft"


def fuse_for_onnxruntime(path: Path) -> None:
    """Replace the ONNX file at `path` by ONNX Runtime's graph with the three folds (a single-file model)."""
    import onnx

    optimized = _ort_extended_graph(path)
    _fold_biases(optimized.graph)
    _fold_scales(optimized.graph)
    _drop_unused_initializers(optimized.graph)
    onnx.save(optimized, str(path))


def _ort_extended_graph(path: Path) -> Any:
    """The graph ONNX Runtime runs, at the extended level: its fusions, none of the layout changes that tie a file
    to one CPU (those come at the 'all' level, which it still applies when it loads this file)."""
    import onnx
    import onnxruntime as ort

    settings = ort.SessionOptions()
    settings.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    settings.log_severity_level = 3
    with tempfile.TemporaryDirectory(dir=path.parent) as folder:
        settings.optimized_model_filepath = str(Path(folder) / "ort.onnx")
        ort.InferenceSession(str(path), settings, providers=["CPUExecutionProvider"])
        return onnx.load(settings.optimized_model_filepath)


def _consumers(graph: Any) -> dict[str, list[int]]:
    users: dict[str, list[int]] = defaultdict(list)
    for index, node in enumerate(graph.node):
        for name in node.input:
            users[name].append(index)
    return users


def _fold_biases(graph: Any) -> None:
    """MatMulIntegerToFloat → Add(bias) becomes one MatMulIntegerToFloat with its bias input; → BiasGelu(bias)
    becomes MatMulIntegerToFloat(bias) → Gelu. The bias must be a constant of the weight's output width."""
    from onnx import helper

    nodes, users, outputs = list(graph.node), _consumers(graph), {o.name for o in graph.output}
    constants = {t.name: t for t in graph.initializer}
    replaced: dict[int, Any] = {}
    for node in nodes:
        if node.op_type != "MatMulIntegerToFloat" or len(node.input) >= 7 or node.output[0] in outputs:
            continue
        readers = users[node.output[0]]
        if len(readers) != 1 or nodes[readers[0]].op_type not in ("Add", "BiasGelu"):
            continue
        follower = nodes[readers[0]]
        bias = _constant_bias(follower, node, constants)
        if bias is None:
            continue
        node.input.extend([""] * (6 - len(node.input)) + [bias])
        if follower.op_type == "Add":
            node.output[0] = follower.output[0]
            replaced[readers[0]] = None
        else:
            replaced[readers[0]] = helper.make_node("Gelu", [node.output[0]], list(follower.output), domain=MS_DOMAIN,
                                                    name=f"{follower.name}/gelu")
    _replace_nodes(graph, nodes, replaced)


def _constant_bias(follower: Any, matmul: Any, constants: dict[str, Any]) -> str | None:
    """The name of the follower's other input when it is a 1-D constant as wide as the matmul's weight output."""
    others = [name for name in follower.input if name != matmul.output[0]]
    weight = constants.get(matmul.input[1])
    if len(others) != 1 or others[0] not in constants or weight is None:
        return None
    dims = list(constants[others[0]].dims)
    return others[0] if len(dims) == 1 and dims[0] == list(weight.dims)[-1] else None


def _fold_scales(graph: Any) -> None:
    """Mul(x, c) → QuantizeLinear(scale s) becomes QuantizeLinear(x, s / c), for a positive scalar constant c:
    round(x·c / s) and round(x / (s / c)) are the same integers, and the DequantizeLinear side keeps s."""
    from onnx import numpy_helper

    nodes, users, outputs = list(graph.node), _consumers(graph), {o.name for o in graph.output}
    constants = {t.name: t for t in graph.initializer}
    replaced: dict[int, Any] = {}
    for index, node in enumerate(nodes):
        readers = users[node.output[0]] if node.op_type == "Mul" else []
        if len(readers) != 1 or nodes[readers[0]].op_type != "QuantizeLinear" or node.output[0] in outputs:
            continue
        quantizer = nodes[readers[0]]
        factors = [(name, value) for name in node.input if (value := _positive_scalar(constants.get(name)))]
        scale = _positive_scalar(constants.get(quantizer.input[1]))
        if len(factors) != 1 or scale is None or quantizer.input[0] != node.output[0]:
            continue
        factor_name, factor = factors[0]
        folded = numpy_helper.from_array(_scalar_like(constants[quantizer.input[1]], scale / factor),
                                         f"{node.output[0]}/folded_scale")
        graph.initializer.append(folded)
        quantizer.input[0] = next(name for name in node.input if name != factor_name)
        quantizer.input[1] = folded.name
        replaced[index] = None
    _replace_nodes(graph, nodes, replaced)


def _positive_scalar(tensor: Any) -> float | None:
    """A one-element float constant's value when it is finite and positive."""
    if tensor is None:
        return None
    from onnx import numpy_helper

    value = numpy_helper.to_array(tensor)
    if value.size != 1 or value.dtype.kind != "f":
        return None
    number = float(value.reshape(()))
    return number if math.isfinite(number) and number > 0 else None


def _scalar_like(tensor: Any, value: float) -> Any:
    """`value` with the shape and dtype of the constant it replaces (a scalar or a one-element vector)."""
    import numpy as np
    from onnx import numpy_helper

    original = numpy_helper.to_array(tensor)
    return np.full(original.shape, value, dtype=original.dtype)


def _replace_nodes(graph: Any, nodes: list[Any], replaced: dict[int, Any]) -> None:
    """The node list with each index in `replaced` swapped for its node (None: removed), order kept."""
    kept = [replaced.get(index, node) for index, node in enumerate(nodes)]
    del graph.node[:]
    graph.node.extend(node for node in kept if node is not None)


def _drop_unused_initializers(graph: Any) -> None:
    used = {name for node in graph.node for name in node.input} | {o.name for o in graph.output}
    kept = [tensor for tensor in graph.initializer if tensor.name in used]
    del graph.initializer[:]
    graph.initializer.extend(kept)
