"""Every tensor integer: the graph an Ethos-U runs end to end (`--npu`), from the TFLite-lowered QuantizedViT.

The module-level lowering quantizes what the matmuls read and write. An NPU also needs the ops between them in
integer form, or each one is a round trip to the CPU: LayerNorm (decomposed here into Mean, Sub, Mul, Rsqrt, Add,
each on its own INT8 grid), the residual adds, the class-token concat and position-embedding add, the head. The
model is captured once by torch.export (with a free batch axis, so evaluation runs batched); every float value a
compute op writes, reads from the input, or takes as a constant gets quantize → dequantize, which litert-torch
lowers to int8 kernels. The new activation quantizers are ActQuants calibrated like every other (the recipe's
method on the calibration images); constants get symmetric scales from their own extremes (weights per output
channel). Ops that only move data (reshape, transpose, slice) keep their input's grid.
"""
from __future__ import annotations

import operator
from typing import Any

import numpy as np
import torch
from torch import fx, nn

from vit_edge.core.errors import ExportError
from vit_edge.quantization.qmodules import QMAX, QMIN, ActQuant
from vit_edge.quantization.recipe import Recipe

__all__ = ["integer_graph", "integer_sites", "ConstQuant", "MOVES_DATA"]

_QD = torch.ops.quantized_decomposed
_ATEN = torch.ops.aten
_QUANTIZE = {_QD.quantize_per_tensor.default, _QD.quantize_per_channel.default}
_DEQUANTIZE = {_QD.dequantize_per_tensor.default, _QD.dequantize_per_channel.default}
# ops that move or select values without computing new ones: the output keeps the input's grid
MOVES_DATA = {
    _ATEN.view.default, _ATEN.reshape.default, _ATEN._unsafe_view.default, _ATEN.permute.default,
    _ATEN.transpose.int, _ATEN.t.default, _ATEN.expand.default, _ATEN.slice.Tensor, _ATEN.select.int,
    _ATEN.unsqueeze.default, _ATEN.squeeze.dim, _ATEN.squeeze.dims, _ATEN.squeeze.default,
    _ATEN.flatten.using_ints, _ATEN.unflatten.int, _ATEN.clone.default, _ATEN.contiguous.default,
    _ATEN.alias.default, _ATEN.split.Tensor, _ATEN.split_with_sizes.default, _ATEN.unbind.int,
    _ATEN.chunk.default, _ATEN.dropout.default, operator.getitem,
}
_LAYER_NORMS = {_ATEN.layer_norm.default}
_WEIGHTED = {_ATEN.linear.default: 1, _ATEN.conv2d.default: 1}  # op → position of its weight (per channel)
_BIASES = {_ATEN.linear.default: 2, _ATEN.conv2d.default: 2}  # left float: the converter writes int32 biases


class ConstQuant(nn.Module):
    """A constant on its own symmetric INT8 grid (per output channel for a weight), quantized in the graph so the
    converter stores it as int8 with these scales."""

    def __init__(self, value: torch.Tensor, per_channel: bool) -> None:
        super().__init__()
        value = value.detach().float()
        self.register_buffer("value", value.clone())
        self.per_channel = per_channel and value.dim() > 1
        if self.per_channel:
            amax = value.reshape(value.shape[0], -1).abs().amax(dim=1)
            scale = torch.where(amax > 0, amax / QMAX, torch.ones_like(amax))  # zeros sit on any grid
            self.register_buffer("scale", scale)
            self.register_buffer("zero_point", torch.zeros_like(scale, dtype=torch.int64))
        else:
            # an all-zero constant (a bias at init) on a unit grid: litert-torch cannot parse a scale printed
            # as 1e-12 (no decimal point), and zeros are exact on any grid
            self._scale = float(value.abs().max()) / QMAX or 1.0

    def forward(self) -> torch.Tensor:
        if self.per_channel:
            q = _QD.quantize_per_channel(self.value, self.scale, self.zero_point, 0, QMIN, QMAX, torch.int8)
            return _QD.dequantize_per_channel(q, self.scale, self.zero_point, 0, QMIN, QMAX, torch.int8)
        q = _QD.quantize_per_tensor(self.value, self._scale, 0, QMIN, QMAX, torch.int8)
        return _QD.dequantize_per_tensor(q, self._scale, 0, QMIN, QMAX, torch.int8)


_SCALAR_OPS = {  # an op with a Python number operand → its Tensor overload, the number a quantized constant
    _ATEN.add.Tensor: _ATEN.add.Tensor, _ATEN.sub.Tensor: _ATEN.sub.Tensor, _ATEN.mul.Tensor: _ATEN.mul.Tensor,
    _ATEN.div.Tensor: _ATEN.div.Tensor, _ATEN.add.Scalar: _ATEN.add.Tensor, _ATEN.sub.Scalar: _ATEN.sub.Tensor,
    _ATEN.mul.Scalar: _ATEN.mul.Tensor, _ATEN.div.Scalar: _ATEN.div.Tensor,
}


def integer_graph(model: nn.Module, recipe: Recipe, calibration: np.ndarray,
                  keep_float: tuple[str, ...] = ()) -> fx.GraphModule:
    """`model` captured as a graph in which every float tensor an op computes, reads or holds is INT8, the new
    quantizers calibrated on `calibration` (the quantizers `model` already has keep their scales).

    The modules in `keep_float` (the skip list's, the budget's) stay float: no quantizer on their weights or
    what they write, so they and the op that reads them fall back to the CPU, as the user asked.
    """
    from vit_edge.quantization.ptq import calibrate

    example = torch.from_numpy(np.ascontiguousarray(calibration[:2], dtype=np.float32))
    try:
        with torch.no_grad():
            exported = torch.export.export(model.eval(), (example,),
                                           dynamic_shapes=({0: torch.export.Dim.DYNAMIC},))
    except Exception as exc:  # torch.export's errors are many; the user gets one line naming the step
        first = next((line for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
        raise ExportError(f"capturing the integer graph for --npu failed: {first}") from exc
    graph_module = fx.GraphModule(exported.module(), exported.module().graph)  # one that eval() and deepcopy take
    counter = iter(range(1 << 30))
    _decompose_layer_norms(graph_module.graph)
    _quantize_numbers(graph_module, counter)
    _quantize_constants(graph_module, counter, keep_float)
    _quantize_values(graph_module, counter, keep_float)
    graph_module.graph.lint()
    graph_module.recompile()
    calibrate(graph_module, recipe, calibration)
    return graph_module


def _is_float(node: fx.Node) -> bool:
    value = node.meta.get("val")
    return isinstance(value, torch.Tensor) and value.is_floating_point()


def _decompose_layer_norms(graph: fx.Graph) -> None:
    """LayerNorm as the ops an integer kernel set has: mean, x - mean, its square's mean, + eps, rsqrt, ×, γ, β."""
    for node in [n for n in graph.nodes if n.op == "call_function" and n.target in _LAYER_NORMS]:
        x, shape, weight, bias, eps = (list(node.args) + [None, None, 1e-5])[:5]
        dims = [-(i + 1) for i in range(len(shape))]
        with graph.inserting_before(node):
            steps = [graph.call_function(_ATEN.mean.dim, (x, dims, True))]
            steps.append(graph.call_function(_ATEN.sub.Tensor, (x, steps[-1])))
            centered = steps[-1]
            steps.append(graph.call_function(_ATEN.mul.Tensor, (centered, centered)))
            steps.append(graph.call_function(_ATEN.mean.dim, (steps[-1], dims, True)))
            steps.append(graph.call_function(_ATEN.add.Tensor, (steps[-1], float(eps))))
            steps.append(graph.call_function(_ATEN.rsqrt.default, (steps[-1],)))
            steps.append(graph.call_function(_ATEN.mul.Tensor, (centered, steps[-1])))
            if weight is not None:
                steps.append(graph.call_function(_ATEN.mul.Tensor, (steps[-1], weight)))
            if bias is not None:
                steps.append(graph.call_function(_ATEN.add.Tensor, (steps[-1], bias)))
        for step in steps:
            step.meta["val"] = node.meta.get("val")  # the dtype is what the passes read
        node.replace_all_uses_with(steps[-1])
        graph.erase_node(node)


def _attribute(graph_module: fx.GraphModule, target: str) -> Any:
    value: Any = graph_module
    for part in target.split("."):
        value = getattr(value, part)
    return value


def _add_module(graph_module: fx.GraphModule, counter: Any, prefix: str, module: nn.Module) -> str:
    name = f"{prefix}_{next(counter)}"
    graph_module.add_submodule(name, module)
    return name


def _quantize_numbers(graph_module: fx.GraphModule, counter: Any) -> None:
    """A Python number in arithmetic (LayerNorm's eps, a scale) becomes a quantized constant operand."""
    graph = graph_module.graph
    for node in [n for n in graph.nodes if n.op == "call_function" and n.target in _SCALAR_OPS]:
        numbers = [i for i, arg in enumerate(node.args) if isinstance(arg, (int, float)) and not isinstance(arg, bool)]
        if not numbers or not _is_float(node):
            continue
        args = list(node.args)
        for index in numbers:
            name = _add_module(graph_module, counter, "integer_constant",
                               ConstQuant(torch.tensor(float(args[index])), per_channel=False))
            with graph.inserting_before(node):
                args[index] = graph.call_module(name)
        node.args, node.target = tuple(args), _SCALAR_OPS[node.target]


def _in_kept(node: fx.Node, keep_float: tuple[str, ...]) -> bool:
    """`node` computes inside one of the modules kept float (torch.export records the module path)."""
    stack = list(node.meta.get("nn_module_stack", {}).values())
    path = str(stack[-1][0]) if stack else ""
    return any(path == name or path.startswith(name + ".") for name in keep_float)


def _quantize_constants(graph_module: fx.GraphModule, counter: Any, keep_float: tuple[str, ...]) -> None:
    """Every float parameter or buffer an op reads directly (not through a quantize already, not a bias) is read
    through a ConstQuant: per output channel where it is a linear's or convolution's weight."""
    graph = graph_module.graph
    for node in [n for n in graph.nodes if n.op == "get_attr" and _is_float(n)]:
        uses = [user for user in node.users if user.target not in _QUANTIZE | _DEQUANTIZE
                and not _is_bias(user, node) and not _in_kept(user, keep_float)]
        if not uses:
            continue
        per_channel = any(_WEIGHTED.get(user.target) is not None and len(user.args) > _WEIGHTED[user.target]
                          and user.args[_WEIGHTED[user.target]] is node for user in uses)
        value = _attribute(graph_module, str(node.target))
        name = _add_module(graph_module, counter, "integer_constant", ConstQuant(value, per_channel))
        with graph.inserting_after(node):
            quantized = graph.call_module(name)
        for user in uses:
            user.replace_input_with(node, quantized)


def _is_bias(user: fx.Node, node: fx.Node) -> bool:
    position = _BIASES.get(user.target)  # type: ignore[call-overload]
    return position is not None and len(user.args) > position and user.args[position] is node


def _quantize_values(graph_module: fx.GraphModule, counter: Any, keep_float: tuple[str, ...]) -> None:
    """An ActQuant after every float value a compute op writes (and after the input) that is read unquantized."""
    graph = graph_module.graph
    for node in list(graph.nodes):
        computes = node.op == "call_function" and node.target not in _QUANTIZE | _DEQUANTIZE | MOVES_DATA
        if not (computes or node.op == "placeholder") or not _is_float(node) or _in_kept(node, keep_float):
            continue
        readers = [user for user in node.users if not _reads_quantized(user)]
        if not readers:
            continue
        name = _add_module(graph_module, counter, "integer_activation", ActQuant())
        with graph.inserting_after(node):
            quantized = graph.call_module(name, (node,))
        for user in readers:
            user.replace_input_with(node, quantized)


def _reads_quantized(user: fx.Node) -> bool:
    """`user` quantizes what it reads, or only moves it on to ops that do."""
    if user.target in _QUANTIZE:
        return True
    return user.target in MOVES_DATA and bool(user.users) and all(_reads_quantized(u) for u in user.users)


def integer_sites(graph_module: fx.GraphModule) -> dict[str, Any]:
    """What integer_graph added, for the manifest: quantizers per op type they follow, constants quantized."""
    counts: dict[str, int] = {}
    for node in graph_module.graph.nodes:
        if node.op == "call_module" and str(node.target).startswith("integer_activation"):
            source = node.args[0]
            kind = "input" if source.op == "placeholder" else str(getattr(source.target, "__name__", source.target))
            kind = kind.split(".")[0]  # the op, not its overload
            counts[kind] = counts.get(kind, 0) + 1
    constants = sum(1 for node in graph_module.graph.nodes
                    if node.op == "call_module" and str(node.target).startswith("integer_constant"))
    return {"activation_quantizers": dict(sorted(counts.items())), "quantized_constants": constants}
