"""Quantized stand-ins for Linear, Conv2d and MatMul that simulate INT8 exactly as the runtimes compute it.

They use PyTorch's `quantized_decomposed` quantize/dequantize ops, which torch.export keeps as they are, so the
ONNX exporter writes QuantizeLinear/DequantizeLinear pairs with these very scales (ONNX Runtime fuses them into
its INT8 kernels; OpenVINO reads them as FakeQuantize). An ActQuant observes its input until its range is set
(`enabled`).
"""
from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from typing import Callable, Iterator

import torch
import torch.ao.quantization.fx._decomposed  # noqa: F401  (registers torch.ops.quantized_decomposed)
import torch.nn.functional as F
from torch import nn

from vit_edge.models.layers import MatMul
from vit_edge.quantization.observers import HistogramObserver

__all__ = ["fake_quantize", "scoring", "in_scoring", "on_grid", "constant_while_scoring", "ActQuant", "QuantInput",
           "QuantLinear", "QuantConv2d", "QuantMatMul", "quantize_weight", "Grid", "INT8", "INT16", "grid_of_bits"]

_QD = torch.ops.quantized_decomposed
QMIN, QMAX = -128, 127


@dataclass(frozen=True)
class Grid:
    """An integer type an activation is stored in: its bits, range and torch dtype."""

    bits: int
    qmin: int
    qmax: int
    dtype: torch.dtype

    def scale_for(self, low: float, high: float, symmetric: bool) -> tuple[float, int]:
        """(scale, zero point) that put [low, high] on this grid; INT16 is always symmetric."""
        if symmetric or self.bits == 16:
            return max(max(-low, high) / self.qmax, 1e-8), 0
        scale = max((high - low) / (self.qmax - self.qmin), 1e-8)
        return scale, int(round(self.qmin - low / scale))

    def span(self, scale: float, zero_point: int) -> tuple[float, float]:
        """The values this grid holds with `scale` and `zero_point`."""
        return (self.qmin - zero_point) * scale, (self.qmax - zero_point) * scale


INT8 = Grid(8, QMIN, QMAX, torch.int8)
# 16-bit activations are symmetric (zero point 0): TFLite's 16x8 kernels and the NPUs that run them require it
INT16 = Grid(16, -32768, 32767, torch.int16)
_GRIDS = {8: INT8, 16: INT16}


def grid_of_bits(bits: int) -> Grid:
    return _GRIDS[bits]


def fake_quantize(x: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor, qmin: int, qmax: int,
                  grad_factor: float = 1.0, axis: int | None = None) -> torch.Tensor:
    """Quantize-dequantize that trains: straight-through gradient for `x` (zero where clipped) and, when `scale`
    requires grad, LSQ's gradient for it scaled by `grad_factor`. Per tensor, or per channel along `axis`.

    PyTorch's fused fake-quant kernels: one pass over the tensor instead of six elementwise ops.
    """
    if scale.requires_grad:
        zero = zero_point.float()
        if axis is None:
            return torch._fake_quantize_learnable_per_tensor_affine(x, scale, zero, qmin, qmax, grad_factor)
        return torch._fake_quantize_learnable_per_channel_affine(x, scale, zero, axis, qmin, qmax, grad_factor)
    if axis is None:
        return torch.fake_quantize_per_tensor_affine(x, scale, zero_point.int(), qmin, qmax)
    return torch.fake_quantize_per_channel_affine(x, scale, zero_point.int(), axis, qmin, qmax)


class _Scoring:
    """Whether scoring() is active, and the quantized constants computed once inside it: id(owner) → (owner, its
    inputs, their versions, the value). The entry holds the owner and inputs, so no id or address is reused."""

    depth = 0
    constants: dict[int, tuple[nn.Module, tuple[torch.Tensor, ...], tuple[int, ...], torch.Tensor]] = {}


@contextlib.contextmanager
def scoring() -> Iterator[None]:
    """Inside, for eager inference only (calibrating, scoring, the budget's ranking): quantize → dequantize runs as
    four in-place passes over one tensor, the same values on finite inputs (a NaN stays NaN; a zero may keep its
    sign), and a quantized weight is computed once instead of once per batch. Never around an export or a trace: the
    converters need the quantize and dequantize ops themselves."""
    _Scoring.depth += 1
    try:
        yield
    finally:
        _Scoring.depth -= 1
        if not _Scoring.depth:
            _Scoring.constants.clear()


def in_scoring() -> bool:
    """Whether scoring() is active (a module may skip what only a converter needs, if the numbers stay)."""
    return _Scoring.depth > 0


def on_grid(x: torch.Tensor, scale: float, zero_point: int, grid: Grid) -> torch.Tensor:
    """`x` quantized to `grid` and back: PyTorch's quantize_per_tensor → dequantize_per_tensor (what torch.export
    captures), or inside scoring() the same values in four in-place passes over one float tensor.

    Why they are the same: an integral float in the grid's range casts to the integer type and back unchanged, and
    clamp(r + zp, qmin, qmax) - zp equals clamp(r, qmin - zp, qmax - zp) for integral r (beyond 2^24, where r + zp
    would round, both clamp to the same end). A zero may come out as -0.0 where the pair gives 0.0: equal values.
    """
    if not _Scoring.depth or x.dtype != torch.float32:
        q = _QD.quantize_per_tensor(x, scale, zero_point, grid.qmin, grid.qmax, grid.dtype)
        return _QD.dequantize_per_tensor(q, scale, zero_point, grid.qmin, grid.qmax, grid.dtype)
    y = x * (1.0 / scale)  # quantize_per_tensor's inv_scale, then its round and its clamp, shifted by the zero point
    return y.round_().clamp_(grid.qmin - zero_point, grid.qmax - zero_point).mul_(scale)


def constant_while_scoring(owner: nn.Module, inputs: tuple[torch.Tensor, ...],
                           compute: Callable[[], torch.Tensor]) -> torch.Tensor:
    """`compute()`, a quantized constant of `owner` made from `inputs`; inside scoring() computed once while none of
    `inputs` changes (their versions are the key), else every call, as torch.export must see it."""
    if not _Scoring.depth:
        return compute()
    versions = tuple(t._version for t in inputs)
    cached = _Scoring.constants.get(id(owner))
    if (cached is None or cached[0] is not owner or len(cached[1]) != len(inputs)
            or any(a is not b for a, b in zip(cached[1], inputs)) or cached[2] != versions):
        cached = (owner, inputs, versions, compute())
        _Scoring.constants[id(owner)] = cached
    return cached[3]


class ActQuant(nn.Module):
    """Per-tensor fake quantization of an activation, INT8 or INT16 (`use_bits`); an observer until scales are set.

    Asymmetric INT8 by default; `symmetric` (zero point 0) where a kernel demands it: XNNPACK runs an int8
    BATCH_MATMUL of two runtime tensors only when the second one has zero point 0. INT16 is always symmetric. The
    calibrated range is kept, so the same range serves either width (one set of ranges, two grids).
    """

    scale: torch.Tensor  # buffers and QAT's parameter, declared for the type checker (nn.Module hides them)
    zero_point: torch.Tensor
    train_scale: nn.Parameter

    def __init__(self, symmetric: bool = False) -> None:
        super().__init__()
        self.symmetric = symmetric
        self.observer: HistogramObserver | None = HistogramObserver()
        self.register_buffer("scale", torch.tensor(1.0))
        self.register_buffer("zero_point", torch.tensor(0, dtype=torch.int64))
        self.enabled = False
        self.grid = INT8
        self.range: tuple[float, float] | None = None
        self._scale, self._zero_point = 1.0, 0  # Python numbers: torch.export must see constants, not tensors

    @property
    def bits(self) -> int:
        return self.grid.bits

    def set_range(self, low: float, high: float) -> None:
        self.range = (min(low, 0.0), max(high, 0.0))
        self._apply_grid(*self.range)

    def use_bits(self, bits: int) -> None:
        """Store this activation in `bits` (8 or 16) on the range it was calibrated to."""
        self.grid = grid_of_bits(bits)
        if self.range is not None:
            self._apply_grid(*self.range)

    def _apply_grid(self, low: float, high: float) -> None:
        scale, zero_point = self.grid.scale_for(low, high, self.symmetric)
        self.scale.fill_(scale)
        self.zero_point.fill_(zero_point)
        self._scale, self._zero_point = float(self.scale), zero_point
        self.enabled = True

    def start_training(self, learnable_scale: bool) -> None:
        """QAT from the calibrated range: fake quantization, the scale a parameter when `learnable_scale` (LSQ)."""
        self.train_scale = nn.Parameter(self.scale.detach().clone().reshape(1), requires_grad=learnable_scale)

    def finish_training(self) -> None:
        """Back to fixed scales (what the lowering reads), keeping the trained scale and the zero point."""
        scale = max(float(self.train_scale.detach().abs()), 1e-8)
        del self.train_scale
        self.scale.fill_(scale)
        self._scale = scale
        self.range = self.grid.span(scale, self._zero_point)  # the trained range, for a later change of width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if hasattr(self, "train_scale"):
            grid = self.grid
            factor = 1.0 / math.sqrt(x[0].numel() * grid.qmax)
            return fake_quantize(x, self.train_scale, self.zero_point.reshape(1), grid.qmin, grid.qmax, factor)
        if not self.enabled:
            if self.observer is not None:
                self.observer.observe(x)
            return x
        return on_grid(x, self._scale, self._zero_point, self.grid)


def quantize_weight(weight: torch.Tensor, per_channel: bool,
                    scale: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric INT8 (zero point 0, range ±127): per output channel, or one scale for the tensor.

    The scale is max-abs / 127 unless given (QAT's learned scales: one per channel, or one for all).
    """
    if scale is None:
        flat = weight.detach().reshape(weight.shape[0], -1).abs()
        amax = flat.amax(dim=1) if per_channel else flat.amax().expand(weight.shape[0])
        scale = torch.clamp(amax / 127.0, min=1e-12).float()
    else:
        scale = scale.detach().abs().clamp_min(1e-12).expand(weight.shape[0]).contiguous()
    shape = (-1,) + (1,) * (weight.dim() - 1)
    q = torch.clamp(torch.round(weight.detach() / scale.reshape(shape)), -127, 127).to(torch.int8)
    return q, scale


class _WeightQuantMixin(nn.Module):
    weight_int8: torch.Tensor  # buffers and QAT's parameters, declared for the type checker
    weight_scale: torch.Tensor
    weight_zero_point: torch.Tensor
    weight_on_grid: torch.Tensor | None
    bias: torch.Tensor | None
    train_weight: nn.Parameter
    train_weight_scale: nn.Parameter
    per_channel: bool
    input_quant: ActQuant

    def _init_weight(self, weight: torch.Tensor, bias: torch.Tensor | None, per_channel: bool) -> None:
        q, scale = quantize_weight(weight, per_channel)
        self.register_buffer("weight_int8", q)
        self.register_buffer("weight_scale", scale)
        self.register_buffer("weight_zero_point", torch.zeros_like(scale, dtype=torch.int64))
        self.register_buffer("bias", None if bias is None else bias.detach().clone())
        self.register_buffer("weight_on_grid", None)
        self.input_quant = ActQuant()
        self.output_quant: ActQuant | None = None  # only where a target's lowering needs DQ → op → Q (TFLite)

    def dequantized_weight(self) -> torch.Tensor:
        inputs = tuple(t for t in (self.weight_int8, self.weight_scale, self.weight_on_grid) if t is not None)
        return constant_while_scoring(self, inputs, self._dequantized_weight)

    def _dequantized_weight(self) -> torch.Tensor:
        if self.weight_on_grid is not None:
            q = _QD.quantize_per_channel(self.weight_on_grid, self.weight_scale, self.weight_zero_point, 0,
                                         QMIN, QMAX, torch.int8)
            return _QD.dequantize_per_channel(q, self.weight_scale, self.weight_zero_point, 0, QMIN, QMAX,
                                              torch.int8)
        return _QD.dequantize_per_channel(self.weight_int8, self.weight_scale, self.weight_zero_point, 0,
                                          QMIN, QMAX, torch.int8)

    def keep_weight_as_float_on_grid(self) -> None:
        """Hold the weight as float values that lie exactly on the INT8 grid, quantized in the graph.

        litert-torch folds quantize_per_channel(float constant) into an int8 tensor with these scales, but drops
        the scales of a bare int8 constant under dequantize_per_channel; the numbers are the same either way.
        """
        shape = (-1,) + (1,) * (self.weight_int8.dim() - 1)
        self.weight_on_grid = self.weight_int8.float() * self.weight_scale.reshape(shape)

    def start_training(self, float_weight: torch.Tensor, learnable_scale: bool, per_channel: bool) -> None:
        """QAT: a trainable float weight, fake-quantized on the fly with per-channel or one scale."""
        self.train_weight = nn.Parameter(float_weight.detach().clone())
        self.per_channel = per_channel
        scale = self.weight_scale.detach().clone() if per_channel else self.weight_scale.detach()[:1].clone()
        self.train_weight_scale = nn.Parameter(scale, requires_grad=learnable_scale)
        if self.bias is not None:  # trained too; a buffer again afterwards
            bias = self.bias.detach().clone()
            del self.bias
            self.bias = nn.Parameter(bias)
        self.input_quant.start_training(learnable_scale)

    def finish_training(self) -> None:
        """Requantize the trained weight to INT8 with the trained (or its own max-abs) scales."""
        learned = self.train_weight_scale if self.train_weight_scale.requires_grad else None
        q, scale = quantize_weight(self.train_weight, self.per_channel, learned)
        self.weight_int8.copy_(q)
        self.weight_scale.copy_(scale)
        del self.train_weight, self.train_weight_scale
        if isinstance(self.bias, nn.Parameter):
            bias = self.bias.detach().clone()
            del self.bias
            self.register_buffer("bias", bias)
        self.input_quant.finish_training()

    def _weight(self) -> torch.Tensor:
        if not hasattr(self, "train_weight"):
            return self.dequantized_weight()
        channels = self.train_weight.shape[0]
        if self.train_weight_scale.requires_grad:
            scale = self.train_weight_scale.expand(channels)  # one learned scale, or one per channel
            factor = 1.0 / math.sqrt(self.train_weight[0].numel() * 127)
        else:  # the max-abs scale follows the weight as it trains, as at PTQ time
            scale, factor = quantize_weight(self.train_weight, self.per_channel)[1], 1.0
        zero = torch.zeros(channels, dtype=torch.int32)
        return fake_quantize(self.train_weight, scale, zero, -127, 127, factor, axis=0)

    def _quantized_output(self, y: torch.Tensor) -> torch.Tensor:
        return self.output_quant(y) if self.output_quant is not None else y


class QuantLinear(_WeightQuantMixin):
    def __init__(self, linear: nn.Linear, per_channel: bool = True) -> None:
        super().__init__()
        self._init_weight(linear.weight, linear.bias, per_channel)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._quantized_output(F.linear(self.input_quant(x), self._weight(), self.bias))


class QuantConv2d(_WeightQuantMixin):
    """A convolution with INT8 weights (per output channel) and input: the patch embedding (a stride-P convolution)
    and a dense model's neck and head (3×3 with padding, 1×1, the strided 3×3 of DPT's reassemble)."""

    def __init__(self, conv: nn.Conv2d, per_channel: bool = True) -> None:
        super().__init__()
        if not isinstance(conv.padding, tuple) or conv.padding_mode != "zeros":
            raise ValueError(f"a convolution with padding {conv.padding!r} ({conv.padding_mode}) is not quantized")
        self._init_weight(conv.weight, conv.bias, per_channel)
        self.stride, self.padding, self.dilation, self.groups = conv.stride, conv.padding, conv.dilation, conv.groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.conv2d(self.input_quant(x), self._weight(), self.bias, stride=self.stride, padding=self.padding,
                     dilation=self.dilation, groups=self.groups)
        return self._quantized_output(y)


class QuantMatMul(MatMul):
    """Both operands INT8; the product only where a lowering asks.

    The second operand (K, V) always has zero point 0: XNNPACK needs it for an int8 BATCH_MATMUL of two runtime
    tensors. So does the first where it is signed (the scaled Q): OpenVINO's CPU plugin runs Q·Kᵀ in its INT8
    attention kernel only when neither operand has a zero point (else f32, measured on 10 of ViT-Ti's 12 blocks).
    Attention probabilities (attn·V's first operand) are never negative and keep their asymmetric range; the
    plugin still takes them in INT8 (a test checks the kernel's input types).
    """

    def __init__(self, symmetric_first: bool = True) -> None:
        super().__init__()
        self.a_quant, self.b_quant = ActQuant(symmetric=symmetric_first), ActQuant(symmetric=True)
        self.output_quant: ActQuant | None = None

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        out = self.product(self.a_quant(a), self.b_quant(b))
        return self.output_quant(out) if self.output_quant is not None else out


class QuantInput(nn.Module):
    """A float op (Softmax, GELU, LayerNorm) whose input is INT8: for hardware that has no float path."""

    def __init__(self, op: nn.Module) -> None:
        super().__init__()
        self.input_quant, self.op = ActQuant(), op

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(self.input_quant(x))
