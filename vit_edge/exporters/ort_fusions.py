"""ONNX Runtime's own graph of an ONNX file (`--ort-fusions`): what its CPU kernels run fastest, saved once.

ONNX Runtime rewrites a QDQ graph at every load (QuantizeLinear → MatMul with DequantizeLinear weights becomes
MatMulIntegerToFloat or QLinearMatMul; Add + Gelu becomes BiasGelu). Steps it leaves undone on vit-edge's INT8
graph cost over a tenth of DeiT-S's time on a CPU (per-op profiles, benchmarks/latency_vs_peers.py):
- each linear's bias is a separate Add after its MatMulIntegerToFloat, which takes a bias input of its own;
- fc1's bias goes into BiasGelu, whose kernel is slower than Gelu alone once the bias is in the matmul;
- the attention scale is a Mul just before the query's QuantizeLinear, whose scale can absorb it (same integers);
- qkv's float output is copied by a Split into q, k and v: three matmuls on the weight's column blocks need none;
- the query is transposed in float before its QuantizeLinear: quantized first, it moves a quarter of the bytes.
Every step keeps each output element's integers and scales, so the logits are the plain file's.
The file is then ONNX Runtime's extended-level graph (com.microsoft operators, the INT8 placement unchanged): it
runs in ONNX Runtime only, which is why it is an option and the plain QDQ file the default.
"""
from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path
from typing import Any

from vit_edge.core.outputs import scratch_folder

__all__ = ["fuse_for_onnxruntime"]

MS_DOMAIN = "com.microsoft"


def fuse_for_onnxruntime(path: Path) -> None:
    """Replace the ONNX file at `path` by ONNX Runtime's graph with the steps above (a single-file model)."""
    import onnx

    optimized = _ort_extended_graph(path)
    _fold_biases(optimized.graph)
    _fold_scales(optimized.graph)
    _split_fused_projections(optimized.graph)
    _quantize_before_layout(optimized.graph)
    del optimized.graph.value_info[:]  # types and shapes of renamed tensors went stale; ONNX Runtime infers them
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
    with scratch_folder(".vit-edge-ort-", near=path.parent) as folder:
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
        reader = _single_reader(node, "MatMulIntegerToFloat", ("Add", "BiasGelu"), nodes, users, outputs)
        if reader is None or len(node.input) >= 7:
            continue
        follower = nodes[reader]
        bias = _constant_bias(follower, node, constants)
        if bias is None:
            continue
        node.input.extend([""] * (6 - len(node.input)) + [bias])
        if follower.op_type == "Add":
            node.output[0] = follower.output[0]
            replaced[reader] = None
        else:
            replaced[reader] = helper.make_node("Gelu", [node.output[0]], list(follower.output), domain=MS_DOMAIN,
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
        reader = _single_reader(node, "Mul", ("QuantizeLinear",), nodes, users, outputs)
        if reader is None:
            continue
        quantizer = nodes[reader]
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


def _split_fused_projections(graph: Any) -> None:
    """MatMulIntegerToFloat(qkv) → Reshape(…, k, heads, dim) → Split into k becomes k MatMulIntegerToFloat on the
    weight's column blocks, each → Reshape(…, 1, heads, dim): the same integers per output column, without the
    float Split that copies the whole projection."""
    nodes, users, outputs = list(graph.node), _consumers(graph), {o.name for o in graph.output}
    constants = {t.name: t for t in graph.initializer}
    replaced: dict[int, Any] = {}
    for index, node in enumerate(nodes):
        reshape_at = _single_reader(node, "MatMulIntegerToFloat", ("Reshape",), nodes, users, outputs)
        if reshape_at is None:
            continue
        split_at = _single_reader(nodes[reshape_at], "Reshape", ("Split",), nodes, users, outputs)
        if split_at is None:
            continue
        parts = _split_parts(nodes[reshape_at], nodes[split_at], node, constants)
        if parts is None:
            continue
        replaced[index] = replaced[reshape_at] = None
        replaced[split_at] = _column_blocks(graph, node, nodes[reshape_at], nodes[split_at], parts, constants)
    _replace_nodes(graph, nodes, replaced)


def _single_reader(node: Any, op: str, reader_ops: tuple[str, ...], nodes: list[Any], users: dict[str, list[int]],
                   outputs: set[str]) -> int | None:
    """The index of the one node that reads `node`'s output (not a graph output), when `node` is an `op` and that
    reader one of `reader_ops`: the shape every rewrite here starts from."""
    if node.op_type != op or node.output[0] in outputs or len(users[node.output[0]]) != 1:
        return None
    reader = users[node.output[0]][0]
    return reader if nodes[reader].op_type in reader_ops else None


def _split_parts(reshape: Any, split: Any, matmul: Any, constants: dict[str, Any]) -> tuple[list[int], int] | None:
    """(the reshape's shape, the split axis) when the split cuts the weight's output columns into equal blocks of
    whole heads: the reshaped trailing dims cover exactly the weight's output width and each split part is one."""
    import numpy as np
    from onnx import numpy_helper

    sizes_name = split.input[1] if len(split.input) > 1 else ""
    if any(name not in constants for name in (reshape.input[1], matmul.input[1], sizes_name) if name):
        return None
    shape = [int(d) for d in numpy_helper.to_array(constants[reshape.input[1]]).ravel()]
    axis = next((a.i for a in split.attribute if a.name == "axis"), 0)
    axis = axis + len(shape) if axis < 0 else axis
    sizes = numpy_helper.to_array(constants[sizes_name]).ravel().tolist() if sizes_name else [1] * len(split.output)
    width = list(constants[matmul.input[1]].dims)[-1]
    trailing = shape[axis:]
    if not trailing or min(trailing) <= 0 or sizes != [1] * len(split.output) or trailing[0] != len(sizes):
        return None
    return (shape, axis) if int(np.prod(trailing)) == width else None


def _column_blocks(graph: Any, matmul: Any, reshape: Any, split: Any, parts: tuple[list[int], int],
                   constants: dict[str, Any]) -> list[Any]:
    """One MatMulIntegerToFloat + Reshape per split output, on that output's block of weight columns."""
    import numpy as np
    from onnx import helper, numpy_helper

    shape, axis = parts
    count = len(split.output)
    block_shape = numpy_helper.from_array(np.array(shape[:axis] + [1] + shape[axis + 1:], dtype=np.int64),
                                          f"{reshape.output[0]}/block_shape")
    graph.initializer.append(block_shape)
    made: list[Any] = []
    for part, output in enumerate(split.output):
        inputs = list(matmul.input)
        for slot in (1, 3, 5, 6):  # weight, weight scale, weight zero point, bias: per column when not scalar
            if slot < len(inputs) and inputs[slot] and _columns(constants[inputs[slot]]) > 1:
                block = _column_block(constants[inputs[slot]], part, count)
                inputs[slot] = f"{inputs[slot]}/block{part}"
                graph.initializer.append(numpy_helper.from_array(block, inputs[slot]))
        product = f"{matmul.output[0]}/block{part}"
        made.append(helper.make_node("MatMulIntegerToFloat", inputs, [product], domain=MS_DOMAIN,
                                     name=f"{matmul.name}/block{part}"))
        made.append(helper.make_node("Reshape", [product, block_shape.name], [output],
                                     name=f"{reshape.name}/block{part}"))
    return made


def _columns(tensor: Any) -> int:
    dims = list(tensor.dims)
    return dims[-1] if dims else 1


def _column_block(tensor: Any, part: int, count: int) -> Any:
    from onnx import numpy_helper

    values = numpy_helper.to_array(tensor)
    width = values.shape[-1] // count
    return values[..., part * width : (part + 1) * width].copy()


def _quantize_before_layout(graph: Any) -> None:
    """Transpose/Squeeze/Reshape chains → per-tensor QuantizeLinear become QuantizeLinear → the chain: the same
    integers moved in a quarter of the bytes (the query's layout change ran in float)."""
    nodes, users, outputs = list(graph.node), _consumers(graph), {o.name for o in graph.output}
    constants = {t.name: t for t in graph.initializer}
    producer = {name: index for index, node in enumerate(nodes) for name in node.output}
    moved: dict[int, Any] = {}
    for index, node in enumerate(nodes):
        if node.op_type != "QuantizeLinear" or not all(name in constants and _columns(constants[name]) == 1
                                                       for name in node.input[1:3]):
            continue
        chain = _layout_chain(node.input[0], nodes, producer, users, outputs)
        if not chain or chain[0] in moved:
            continue
        first, last = nodes[chain[0]], nodes[chain[-1]]
        early = f"{node.output[0]}/before_layout"
        node.input[0], last.output[0], node.output[0], first.input[0] = first.input[0], node.output[0], early, early
        moved[chain[0]] = [node, first]
        moved[index] = None
    _replace_nodes(graph, nodes, moved)


def _layout_chain(name: str, nodes: list[Any], producer: dict[str, int], users: dict[str, list[int]],
                  outputs: set[str]) -> list[int]:
    """The indices of the data-moving nodes (first to last) that lead to `name`, each read by its successor only."""
    chain: list[int] = []
    while name in producer and nodes[producer[name]].op_type in ("Transpose", "Squeeze", "Reshape", "Unsqueeze"):
        if len(users[name]) != 1 or name in outputs:
            break
        chain.insert(0, producer[name])
        name = nodes[producer[name]].input[0]
    return chain


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
    """The node list with each index in `replaced` swapped for its node or nodes (None: removed), order kept."""
    kept: list[Any] = []
    for index, node in enumerate(nodes):
        swap = replaced.get(index, node)
        kept.extend(swap if isinstance(swap, list) else [] if swap is None else [swap])
    del graph.node[:]
    graph.node.extend(kept)


def _drop_unused_initializers(graph: Any) -> None:
    used = {name for node in graph.node for name in node.input} | {o.name for o in graph.output}
    kept = [tensor for tensor in graph.initializer if tensor.name in used]
    del graph.initializer[:]
    graph.initializer.extend(kept)
