"""Every tensor integer: the graph an Ethos-U runs end to end (`--npu`), from the TFLite-lowered QuantizedViT.

The module-level lowering quantizes what the matmuls read and write. An NPU also needs the ops between them in
integer form, or each one is a round trip to the CPU: LayerNorm (decomposed here into Mean, Sub, Mul, Rsqrt, Add,
each on its own INT8 grid), the residual adds, the class-token concat and position-embedding add, the head. The
model is captured once by torch.export (with a free batch axis, so evaluation runs batched); every float value a
compute op writes, reads from the input, or takes as a constant gets quantize → dequantize, which litert-torch
lowers to int8 kernels. The new activation quantizers are ActQuants calibrated like every other (the recipe's
method on the calibration images); constants get symmetric scales from their own extremes (weights per output
channel). Ops that only move data (reshape, transpose, slice) keep their input's grid.

With `recipe.int16`, the ops it names (by module path) compute on INT16 activations, weights still INT8 (16x8
kernels); GELU stays INT8 (TFLite has no int16 GELU the converter emits, and Vela keeps one on the CPU). Where a
value crosses from one width to the other a Requantize goes in between: litert-torch folds two adjacent
quantizers of different widths into one (the first grid wins), and emits a QUANTIZE only where an op sits
between them, so the Requantize passes the value through a MAXIMUM with the lowest number on each grid.
"""
from __future__ import annotations

import contextlib
import copy
import hashlib
import operator
import warnings
from dataclasses import dataclass
from typing import Any, Iterator, TypeVar

import numpy as np
import torch
from torch import fx, nn

from vit_edge.core.errors import ExportError, first_line
from vit_edge.core.summaries import IntegerSites
from vit_edge.quantization.qmodules import (
    INT8,
    INT16,
    QMAX,
    ActQuant,
    Grid,
    constant_while_scoring,
    grid_of_bits,
    in_scoring,
    on_grid,
)
from vit_edge.quantization.recipe import Recipe

__all__ = ["integer_graph", "integer_sites", "reusing_capture", "scoring_view", "ConstQuant", "Requantize",
           "MOVES_DATA"]

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

    value: torch.Tensor  # buffers, declared for the type checker
    scale: torch.Tensor

    def __init__(self, value: torch.Tensor, per_channel: bool, bits: int = 8, floor_scale: float = 0.0) -> None:
        super().__init__()
        value = value.detach().float()
        self.grid = grid_of_bits(8 if per_channel else bits)  # a weight is INT8 whatever its activations
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
            self._scale = max(float(value.abs().max()) / self.grid.qmax, floor_scale) or 1.0

    def forward(self) -> torch.Tensor:
        inputs = (self.value, self.scale) if self.per_channel else (self.value,)
        return constant_while_scoring(self, inputs, self._quantized)

    def _quantized(self) -> torch.Tensor:
        grid = self.grid
        if self.per_channel:
            q = _QD.quantize_per_channel(self.value, self.scale, self.zero_point, 0, grid.qmin, grid.qmax, grid.dtype)
            return _QD.dequantize_per_channel(q, self.scale, self.zero_point, 0, grid.qmin, grid.qmax, grid.dtype)
        return on_grid(self.value, self._scale, 0, grid)


@dataclass(frozen=True)
class GridParams:
    """Where a value lies: its grid and that grid's scale and zero point."""

    grid: Grid
    scale: float
    zero_point: int

    def span(self) -> tuple[float, float]:
        return self.grid.span(self.scale, self.zero_point)

    def widened_to(self, bits: int) -> "GridParams":
        """The same range on the grid of `bits` (INT16 symmetric, INT8 asymmetric)."""
        grid = grid_of_bits(bits)
        return GridParams(grid, *grid.scale_for(*self.span(), symmetric=False))


class Requantize(nn.Module):
    """A value moved from one grid to another (INT8 ↔ INT16), as one QUANTIZE in the converted file."""

    def __init__(self, source: GridParams, target: GridParams) -> None:
        super().__init__()
        self.source, self.target = source, target

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for where in (self.source, self.target):  # MAXIMUM with the grid's lowest value: the identity
            if not in_scoring():  # for the converter only: below -3e38 the grid's lowest value comes out either way
                x = torch.maximum(x, torch.tensor(-3.0e38))
            x = on_grid(x, where.scale, where.zero_point, where.grid)
        return x


_SCALAR_OPS = {  # an op with a Python number operand → its Tensor overload, the number a quantized constant
    _ATEN.add.Tensor: _ATEN.add.Tensor, _ATEN.sub.Tensor: _ATEN.sub.Tensor, _ATEN.mul.Tensor: _ATEN.mul.Tensor,
    _ATEN.div.Tensor: _ATEN.div.Tensor, _ATEN.add.Scalar: _ATEN.add.Tensor, _ATEN.sub.Scalar: _ATEN.sub.Tensor,
    _ATEN.mul.Scalar: _ATEN.mul.Tensor, _ATEN.div.Scalar: _ATEN.div.Tensor,
}


def integer_graph(model: nn.Module, recipe: Recipe, calib: np.ndarray,
                  keep_float: tuple[str, ...] = ()) -> fx.GraphModule:
    """`model` captured as a graph in which every float tensor an op computes, reads or holds is INT8, the new
    quantizers calibrated on `calib` (the quantizers `model` already has keep their scales).

    The modules in `keep_float` (the skip list's, the budget's) stay float: no quantizer on their weights or
    what they write, so they and the op that reads them fall back to the CPU, as the user asked.
    """
    from vit_edge.quantization.ptq import calibrate

    example = torch.from_numpy(np.ascontiguousarray(calib[:2], dtype=np.float32))
    graph_module = _captured(model, example)
    counter = iter(range(1 << 30))
    _decompose_layer_norms(graph_module.graph)
    _quantize_numbers(graph_module, counter, recipe)
    _quantize_constants(graph_module, counter, keep_float, recipe)
    _quantize_values(graph_module, counter, keep_float, recipe)
    graph_module.graph.lint()
    graph_module.recompile()
    calibrate(scoring_view(graph_module), recipe, calib)  # its quantizers are graph_module's
    if recipe.int16:
        _requantize_between_widths(graph_module, counter)
        _int16_constant_operands(graph_module, counter)
        graph_module.graph.eliminate_dead_code()
        graph_module.graph.lint()
        graph_module.recompile()
    return graph_module


_CAPTURES: list[dict[str, fx.GraphModule]] = []  # while reusing_capture() is active: structure key → graph


@contextlib.contextmanager
def reusing_capture() -> Iterator[None]:
    """Inside: a model captured before with the same modules, weights and enabled quantizers is not captured again
    (torch.export: most of a lowering's time); the copy's quantizers take the new model's scales and widths. For
    the budget, which lowers the same model once per op (its ranking) and once per round, with widths changed."""
    _CAPTURES.append(_CAPTURES[-1] if _CAPTURES else {})  # nested: the outer captures serve too
    try:
        yield
    finally:
        _CAPTURES.pop()


def _structure_key(model: nn.Module, example: torch.Tensor) -> str:
    """What a capture depends on besides the quantizers' numbers: the modules, which quantizers run, the weights."""
    digest = hashlib.sha256(repr(tuple(example.shape[1:])).encode())
    quantizers = {name for name, module in model.named_modules() if isinstance(module, ActQuant)}
    for name, module in model.named_modules():
        digest.update(f"{name}:{type(module).__name__}:{getattr(module, 'enabled', '')};".encode())
    for name, tensor in model.state_dict().items():
        if name.rpartition(".")[0] not in quantizers:  # a quantizer's own scale changes with its width
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def _export(model: nn.Module, example: torch.Tensor) -> fx.GraphModule:
    try:
        with torch.no_grad():
            exported = torch.export.export(model.eval(), (example,),
                                           dynamic_shapes=({0: torch.export.Dim.DYNAMIC},))
    except Exception as exc:  # torch.export's errors are many; the user gets one line naming the step
        raise ExportError(f"capturing the integer graph for --npu failed: {first_line(exc)}") from exc
    unlifted = exported.module()  # each call unlifts the program anew
    return fx.GraphModule(unlifted, unlifted.graph)  # one that eval() and deepcopy take


def _captured(model: nn.Module, example: torch.Tensor) -> fx.GraphModule:
    """`model` as a graph: exported, or inside reusing_capture() a copy of an earlier capture of the same
    structure whose quantize/dequantize nodes take `model`'s quantizers' numbers (export again where one cannot)."""
    if not _CAPTURES:
        return _export(model, example)
    key = _structure_key(model, example)
    cached = _CAPTURES[-1].get(key)
    if cached is not None:
        graph_module = _copied(cached)
        if _retarget(graph_module, dict(model.named_modules())):
            return graph_module
    graph_module = _export(model, example)
    _CAPTURES[-1][key] = _copied(graph_module)
    return graph_module


def scoring_view(graph_module: fx.GraphModule) -> fx.GraphModule:
    """`graph_module` for scoring() (its modules and constants shared, so calibrating it calibrates them): each
    quantize_per_tensor → dequantize_per_tensor pair torch.export recorded is one `on_grid`, which scoring() runs
    in place. For running only: a converter needs the pairs."""
    graph = _copied(graph_module.graph)
    for node in list(graph.nodes):
        quantize = node.args[0] if node.target is _QD.dequantize_per_tensor.default and node.args else None
        if (not isinstance(quantize, fx.Node) or quantize.target is not _QD.quantize_per_tensor.default
                or len(quantize.users) != 1 or tuple(quantize.args[1:]) != tuple(node.args[1:])
                or node.kwargs.get("out_dtype") not in (None, torch.float32)):
            continue
        with graph.inserting_before(node):
            paired = graph.call_function(_quantized_pair, tuple(quantize.args))
        node.replace_all_uses_with(paired)
        graph.erase_node(node)
        graph.erase_node(quantize)
    return fx.GraphModule(graph_module, graph)


def _quantized_pair(x: torch.Tensor, scale: float, zero_point: int, qmin: int, qmax: int,
                    dtype: torch.dtype) -> torch.Tensor:
    grid = next((g for g in (INT8, INT16) if (g.qmin, g.qmax, g.dtype) == (qmin, qmax, dtype)), None)
    if grid is None:  # a grid of its own (a narrowed range): the pair as recorded
        q = _QD.quantize_per_tensor(x, scale, zero_point, qmin, qmax, dtype)
        return _QD.dequantize_per_tensor(q, scale, zero_point, qmin, qmax, dtype)
    return on_grid(x, scale, zero_point, grid)


_Copyable = TypeVar("_Copyable", fx.GraphModule, fx.Graph)


def _copied(graph: _Copyable) -> _Copyable:
    with warnings.catch_warnings():  # torch's pytree warns about its own LeafSpec when a graph is copied
        warnings.simplefilter("ignore", FutureWarning)
        return copy.deepcopy(graph)


_TENSOR_QD = {_QD.quantize_per_tensor.default, _QD.dequantize_per_tensor.default}


def _retarget(graph_module: fx.GraphModule, modules: dict[str, nn.Module]) -> bool:
    """Each per-tensor quantize/dequantize takes the scale, zero point and grid of the ActQuant that wrote it
    (torch.export records the module path); False where one has no ActQuant to read."""
    for node in graph_module.graph.nodes:
        if node.target not in _TENSOR_QD:
            continue
        quantizer = modules.get(_module_path(node))
        if not isinstance(quantizer, ActQuant) or not quantizer.enabled:
            return False
        grid = quantizer.grid
        node.args = (node.args[0], quantizer._scale, quantizer._zero_point, grid.qmin, grid.qmax, grid.dtype)
    graph_module.recompile()
    return True


# INT8 whatever the recipe says: GELU and the concat have no int16 form the converter emits (and Vela would keep
# an int16 GELU on the CPU); LiteRT's 16x8 CONV_2D saturated on the patch embedding (measured), and the input
# pixels are 8-bit data anyway
_INT8_ONLY = {_ATEN.gelu.default, _ATEN.cat.default, _ATEN.conv2d.default}


def _module_path(node: fx.Node) -> str:
    stack = list(node.meta.get("nn_module_stack", {}).values())
    return str(stack[-1][0]) if stack else ""


# a block's LayerNorm computes its matmul's input: an A16W8 matmul gets it in INT16 too
_NORM_FEEDS = {"norm1": "attn.qkv", "norm2": "mlp.fc1"}


def _bits_at(node: fx.Node, recipe: Recipe) -> int:
    """The activation width of what `node` computes: INT16 where the recipe names its module, or the matmul that
    its LayerNorm feeds."""
    if node.op == "placeholder" or node.target in _INT8_ONLY:
        return 8
    path = _module_path(node)
    parent, _, leaf = path.rpartition(".")
    fed = f"{parent}.{_NORM_FEEDS[leaf]}" if leaf in _NORM_FEEDS and parent else None
    return 16 if recipe.int16_for(path) or (fed is not None and recipe.int16_for(fed)) else 8


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
            step.meta["nn_module_stack"] = node.meta.get("nn_module_stack", {})  # where it computes
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


def _quantize_numbers(graph_module: fx.GraphModule, counter: Any, recipe: Recipe) -> None:
    """A Python number in arithmetic (LayerNorm's eps, a scale) becomes a quantized constant operand."""
    graph = graph_module.graph
    for node in [n for n in graph.nodes if n.op == "call_function" and n.target in _SCALAR_OPS]:
        numbers = [i for i, arg in enumerate(node.args) if isinstance(arg, (int, float)) and not isinstance(arg, bool)]
        if not numbers or not _is_float(node):
            continue
        args = list(node.args)
        for index in numbers:
            name = _add_module(graph_module, counter, "integer_constant",
                               ConstQuant(torch.tensor(float(args[index])), False, _bits_at(node, recipe)))
            with graph.inserting_before(node):
                args[index] = graph.call_module(name)
        node.args, node.target = tuple(args), _SCALAR_OPS[node.target]


def _in_kept(node: fx.Node, keep_float: tuple[str, ...]) -> bool:
    """`node` computes inside one of the modules kept float (torch.export records the module path)."""
    path = _module_path(node)
    return any(path == name or path.startswith(name + ".") for name in keep_float)


def _quantize_constants(graph_module: fx.GraphModule, counter: Any, keep_float: tuple[str, ...],
                        recipe: Recipe) -> None:
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
        constant = ConstQuant(value, per_channel, _bits_at(uses[0], recipe))
        name = _add_module(graph_module, counter, "integer_constant", constant)
        with graph.inserting_after(node):
            quantized = graph.call_module(name)
        for user in uses:
            user.replace_input_with(node, quantized)


def _is_bias(user: fx.Node, node: fx.Node) -> bool:
    position = _BIASES.get(user.target)  # type: ignore[call-overload]
    return position is not None and len(user.args) > position and user.args[position] is node


def _quantize_values(graph_module: fx.GraphModule, counter: Any, keep_float: tuple[str, ...],
                     recipe: Recipe) -> None:
    """An ActQuant after every float value a compute op writes (and after the input) that is read unquantized."""
    graph = graph_module.graph
    for node in list(graph.nodes):
        computes = node.op == "call_function" and node.target not in _QUANTIZE | _DEQUANTIZE | MOVES_DATA
        if not (computes or node.op == "placeholder") or not _is_float(node) or _in_kept(node, keep_float):
            continue
        readers = [user for user in node.users if not _reads_quantized(user)]
        if not readers:
            continue
        quantizer = ActQuant()
        quantizer.use_bits(_bits_at(node, recipe))
        name = _add_module(graph_module, counter, "integer_activation", quantizer)
        with graph.inserting_after(node):
            quantized = graph.call_module(name, (node,))
        for user in readers:
            user.replace_input_with(node, quantized)


def _reads_quantized(user: fx.Node) -> bool:
    """`user` quantizes what it reads, or only moves it on to ops that do."""
    if user.target in _QUANTIZE:
        return True
    return user.target in MOVES_DATA and bool(user.users) and all(_reads_quantized(u) for u in user.users)


def _grid_of(node: Any, modules: dict[str, nn.Module]) -> GridParams | None:
    """The grid the value `node` lies on (through ops that only move data); None for float or a weight."""
    while isinstance(node, fx.Node) and node.op == "call_function" and node.target in MOVES_DATA:
        node = node.args[0]
    if not isinstance(node, fx.Node):
        return None
    if node.op == "call_module":
        module = modules[str(node.target)]
        if isinstance(module, ActQuant) and module.enabled:
            return GridParams(module.grid, module._scale, module._zero_point)
        if isinstance(module, ConstQuant) and not module.per_channel:
            return GridParams(module.grid, module._scale, 0)
        return module.target if isinstance(module, Requantize) else None
    if node.target in (_QD.dequantize_per_tensor.default, _QD.quantize_per_tensor.default):
        _input, scale, zero_point, _qmin, _qmax, dtype = node.args[:6]
        return GridParams(_GRID_BY_DTYPE[dtype], float(scale), int(zero_point))  # type: ignore[index,arg-type]
    return None


_GRID_BY_DTYPE = {INT8.dtype: INT8, INT16.dtype: INT16}


def _width_of_reader(node: fx.Node, modules: dict[str, nn.Module]) -> GridParams | int | None:
    """What `node` needs its inputs on: a quantizer's exact grid, or a compute op's output width in bits."""
    if node.op == "call_function" and node.target is _QD.quantize_per_tensor.default:
        return _grid_of(node, modules)
    if node.op != "call_function" or node.target in _QUANTIZE | _DEQUANTIZE | MOVES_DATA:
        return None
    if node.target in _INT8_ONLY:
        return 8
    for user in node.users:
        written = _grid_of(user, modules) if user.op == "call_module" or user.target in _QUANTIZE else None
        if written is not None:
            return written.grid.bits
    return None


def _pin_int8_only_outputs(graph_module: fx.GraphModule, counter: Any) -> None:
    """An INT8-only op (GELU) whose output an INT16 quantizer reads gets an INT8 output of its own, on that
    quantizer's calibrated range, so the requantize step below can move it up."""
    graph = graph_module.graph
    modules = dict(graph_module.named_modules())
    for node in [n for n in graph.nodes if n.op == "call_function" and n.target in _INT8_ONLY]:
        wide = [user for user in node.users if user.target in _QUANTIZE and (grid := _grid_of(user, modules))
                and grid.grid.bits == 16]
        if not wide:
            continue
        quantizer = ActQuant()
        quantizer.set_range(*_grid_of(wide[0], modules).span())  # type: ignore[union-attr]
        name = _add_module(graph_module, counter, "integer_activation", quantizer)
        with graph.inserting_after(node):
            pinned = graph.call_module(name, (node,))
        for user in wide:
            user.replace_input_with(node, pinned)


def _requantize_between_widths(graph_module: fx.GraphModule, counter: Any) -> None:
    """A Requantize wherever an op (or a quantizer) reads a value stored in the other width."""
    _pin_int8_only_outputs(graph_module, counter)
    graph = graph_module.graph
    modules = dict(graph_module.named_modules())
    for node in list(graph.nodes):
        wanted = _width_of_reader(node, modules)
        if wanted is None:
            continue
        bits = wanted.grid.bits if isinstance(wanted, GridParams) else wanted
        for source in node.all_input_nodes:
            where = _grid_of(source, modules)
            if where is None or where.grid.bits == bits:
                continue
            target = wanted if isinstance(wanted, GridParams) else where.widened_to(bits)
            requantize = Requantize(where, target)
            name = _add_module(graph_module, counter, "integer_requantize", requantize)
            modules[name] = requantize
            with graph.inserting_before(node):
                moved = graph.call_module(name, (source,))
            node.replace_input_with(source, moved)


def _constant_behind(node: fx.Node, modules: dict[str, nn.Module]) -> ConstQuant | None:
    """The per-tensor constant `node` reads (directly, or through a Requantize), if it is one."""
    if node.op == "call_module" and isinstance(modules[str(node.target)], Requantize):
        node = node.args[0]  # type: ignore[assignment]
    module = modules.get(str(node.target)) if node.op == "call_module" else None
    return module if isinstance(module, ConstQuant) and not module.per_channel else None


def _int16_constant_operands(graph_module: fx.GraphModule, counter: Any) -> None:
    """Each constant an INT16 add or subtract reads becomes an INT16 constant on a grid no finer than the other
    operand's: TFLite's int16 ADD/SUB rescale both inputs to the output, and a constant on its own tiny grid (eps,
    an all-zero β on a unit grid) overflows that rescale (measured: garbage out of LiteRT). An add of a broadcast
    constant (β, eps) becomes a subtraction of its negation: int16 ADD takes operands of one shape only, SUB
    broadcasts (both measured). Exact on the symmetric grid."""
    graph = graph_module.graph
    modules = dict(graph_module.named_modules())
    for node in [n for n in graph.nodes if n.op == "call_function" and n.target in _ADD_SUB]:
        if _width_of_reader(node, modules) != 16 or len(node.args) != 2:
            continue
        for index, operand in enumerate(node.args):
            constant = _constant_behind(operand, modules) if isinstance(operand, fx.Node) else None
            other = _grid_of(node.args[1 - index], modules)
            if constant is None or other is None:
                continue
            shape = tuple(node.meta["val"].shape) if isinstance(node.meta.get("val"), torch.Tensor) else None
            value = constant.value
            negate = node.target is _ATEN.add.Tensor and tuple(value.shape) != shape
            replacement = ConstQuant(-value if negate else value, False, 16, floor_scale=other.scale)
            name = _add_module(graph_module, counter, "integer_constant", replacement)
            with graph.inserting_before(node):
                operand_node = graph.call_module(name)
            args = list(node.args)
            args[index] = operand_node
            if negate:  # a + c = a - (-c), the constant second
                args, node.target = [args[1 - index], operand_node], _ATEN.sub.Tensor
            node.args = tuple(args)
            break


_ADD_SUB = {_ATEN.add.Tensor, _ATEN.sub.Tensor}


def integer_sites(graph_module: fx.GraphModule) -> IntegerSites:
    """What integer_graph added, for the manifest: quantizers per op type they follow, constants quantized."""
    counts: dict[str, int] = {}
    for node in graph_module.graph.nodes:
        if node.op == "call_module" and str(node.target).startswith("integer_activation"):
            source = node.args[0]
            kind = "input" if source.op == "placeholder" else str(getattr(source.target, "__name__", source.target))
            kind = kind.split(".")[0]  # the op, not its overload
            counts[kind] = counts.get(kind, 0) + 1
    def count(prefix: str) -> int:
        return sum(1 for node in graph_module.graph.nodes
                   if node.op == "call_module" and str(node.target).startswith(prefix))

    return IntegerSites(dict(sorted(counts.items())), count("integer_constant"),
                        count("integer_requantize") or None)
