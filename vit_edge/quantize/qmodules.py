"""Quantized stand-ins for Linear, Conv2d and MatMul that simulate INT8 exactly as the runtimes compute it.

They use PyTorch's `quantized_decomposed` quantize/dequantize ops, which torch.export keeps as they are, so the
ONNX exporter writes QuantizeLinear/DequantizeLinear pairs with these very scales (ONNX Runtime fuses them into
its INT8 kernels; OpenVINO reads them as FakeQuantize). Each module observes its inputs while `observing` is set.
"""
from __future__ import annotations

import torch
import torch.ao.quantization.fx._decomposed  # noqa: F401  (registers torch.ops.quantized_decomposed)
import torch.nn.functional as F
from torch import nn

from vit_edge.quantize.observers import HistogramObserver

__all__ = ["ActQuant", "QuantLinear", "QuantConv2d", "QuantMatMul", "quantize_weight"]

_QD = torch.ops.quantized_decomposed
QMIN, QMAX = -128, 127


class ActQuant(nn.Module):
    """Per-tensor INT8 fake quantization of an activation; an observer until scales are set.

    Asymmetric by default; `symmetric` (zero point 0) where a kernel demands it: XNNPACK runs an int8 BATCH_MATMUL
    of two runtime tensors only when the second one has zero point 0.
    """

    def __init__(self, symmetric: bool = False) -> None:
        super().__init__()
        self.symmetric = symmetric
        self.observer: HistogramObserver | None = HistogramObserver()
        self.register_buffer("scale", torch.tensor(1.0))
        self.register_buffer("zero_point", torch.tensor(0, dtype=torch.int64))
        self.enabled = False
        self._scale, self._zero_point = 1.0, 0  # Python numbers: torch.export must see constants, not tensors

    def set_range(self, low: float, high: float) -> None:
        low, high = min(low, 0.0), max(high, 0.0)
        if self.symmetric:
            scale, zero_point = max(max(-low, high) / QMAX, 1e-8), 0
        else:
            scale = max((high - low) / (QMAX - QMIN), 1e-8)
            zero_point = int(round(QMIN - low / scale))
        self.scale.fill_(scale)
        self.zero_point.fill_(zero_point)
        self._scale, self._zero_point = float(self.scale), zero_point
        self.enabled = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.enabled:
            if self.observer is not None:
                self.observer.observe(x)
            return x
        q = _QD.quantize_per_tensor(x, self._scale, self._zero_point, QMIN, QMAX, torch.int8)
        return _QD.dequantize_per_tensor(q, self._scale, self._zero_point, QMIN, QMAX, torch.int8)


def quantize_weight(weight: torch.Tensor, per_channel: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric INT8 (zero point 0, range ±127): per output channel, or one scale for the tensor."""
    flat = weight.detach().reshape(weight.shape[0], -1).abs()
    amax = flat.amax(dim=1) if per_channel else flat.amax().expand(weight.shape[0])
    scale = torch.clamp(amax / 127.0, min=1e-12).float()
    shape = (-1,) + (1,) * (weight.dim() - 1)
    q = torch.clamp(torch.round(weight.detach() / scale.reshape(shape)), -127, 127).to(torch.int8)
    return q, scale


class _WeightQuantMixin(nn.Module):
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

    def _quantized_output(self, y: torch.Tensor) -> torch.Tensor:
        return self.output_quant(y) if self.output_quant is not None else y


class QuantLinear(_WeightQuantMixin):
    def __init__(self, linear: nn.Linear, per_channel: bool = True) -> None:
        super().__init__()
        self._init_weight(linear.weight, linear.bias, per_channel)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._quantized_output(F.linear(self.input_quant(x), self.dequantized_weight(), self.bias))


class QuantConv2d(_WeightQuantMixin):
    """The patch embedding: a stride-P convolution with INT8 weights and input."""

    def __init__(self, conv: nn.Conv2d, per_channel: bool = True) -> None:
        super().__init__()
        self._init_weight(conv.weight, conv.bias, per_channel)
        self.stride = conv.stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.conv2d(self.input_quant(x), self.dequantized_weight(), self.bias, stride=self.stride)
        return self._quantized_output(y)


class QuantMatMul(nn.Module):
    """Both operands INT8 (the second with zero point 0: K and V); the product only where a lowering asks."""

    def __init__(self) -> None:
        super().__init__()
        self.a_quant, self.b_quant = ActQuant(), ActQuant(symmetric=True)
        self.output_quant: ActQuant | None = None

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        out = torch.matmul(self.a_quant(a), self.b_quant(b))
        return self.output_quant(out) if self.output_quant is not None else out
