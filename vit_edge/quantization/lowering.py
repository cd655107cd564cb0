"""Target-specific rewrites of a quantized model that keep its scales (what the converter needs to see).

ONNX Runtime and OpenVINO take the PTQ model as it is. litert-torch lowers an op to int8 only where it finds
dequantize → op → quantize, so for TFLite every quantized linear also gets its output quantized (calibrated on
the same data, with the recipe's method), and its weight is held as float values on the INT8 grid. ExecuTorch's
XNNPACK partitioner wants the same output quantizers on linears and convolutions but the weight as an int8
constant under dequantize_per_channel (a quantize of a float parameter is not a static weight to it, and such a
linear falls back to portable kernels). The result is still a QuantizedViT: the budget, the accuracy report and
the parity check all look at what ships.
"""
from __future__ import annotations

import copy
from dataclasses import replace

import numpy as np
from torch import nn

from vit_edge.quantization.ptq import QuantizedViT, calibrate, fingerprint
from vit_edge.quantization.qmodules import ActQuant, QuantLinear, QuantMatMul, _WeightQuantMixin

__all__ = ["quantize_outputs_for_tflite", "quantize_outputs_for_xnnpack"]


def _needs_output_quant(name: str, module: nn.Module, modules: dict[str, nn.Module]) -> bool:
    """Every INT8 op's output, except attn·V's where the output projection's input quantizer already follows."""
    if isinstance(module, _WeightQuantMixin):
        return True
    if isinstance(module, QuantMatMul):
        return not (name.endswith(".av") and isinstance(modules.get(name[: -len("av")] + "proj"), QuantLinear))
    return False


def quantize_outputs_for_tflite(quant: QuantizedViT, calibration: np.ndarray) -> QuantizedViT:
    """A copy of `quant` in which each INT8 op is DQ → op → Q, with linear weights quantized in the graph."""
    model = copy.deepcopy(quant.model)
    modules = dict(model.named_modules())
    sites = {name: m for name, m in modules.items() if _needs_output_quant(name, m, modules)}
    for module in sites.values():
        if isinstance(module, _WeightQuantMixin):
            module.keep_weight_as_float_on_grid()
        module.output_quant = ActQuant()
    calibrate(model, quant.recipe, calibration)  # only the new output quantizers are still observing
    lowering = {"tflite_output_quantized": sorted(sites)}
    return replace(quant, model=model, scales_sha256=fingerprint(model), lowering=lowering)


def quantize_outputs_for_xnnpack(quant: QuantizedViT, calibration: np.ndarray) -> QuantizedViT:
    """A copy of `quant` in which each quantized linear and convolution is DQ → op → Q with its int8 weight.

    XNNPACK (ExecuTorch 1.4) runs batch matmuls of two runtime tensors in float only, so Q·Kᵀ and attn·V keep
    their input quantizers (the INT8 rounding the simulation has) and compute in float: no output quantizer there.
    """
    model = copy.deepcopy(quant.model)
    sites = {name: m for name, m in model.named_modules() if isinstance(m, _WeightQuantMixin)}
    for module in sites.values():
        module.output_quant = ActQuant()
    calibrate(model, quant.recipe, calibration)  # only the new output quantizers are still observing
    lowering = {"xnnpack_output_quantized": sorted(sites), "float_batch_matmuls": sorted(
        name for name, m in model.named_modules() if isinstance(m, QuantMatMul))}
    return replace(quant, model=model, scales_sha256=fingerprint(model), lowering=lowering)
