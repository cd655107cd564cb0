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
from typing import Callable

import numpy as np
from torch import nn

from vit_edge.core.summaries import Lowering
from vit_edge.quantization.integer_graph import integer_graph, integer_sites
from vit_edge.quantization.ptq import QuantizedViT, apply_int16, calibrate, fingerprint
from vit_edge.quantization.qmodules import ActQuant, QuantConv2d, QuantLinear, QuantMatMul, _WeightQuantMixin

__all__ = ["quantize_outputs_for_tflite", "quantize_outputs_for_npu", "quantize_outputs_for_xnnpack"]

# TFLite's SOFTMAX writes probabilities on a fixed grid: int8 scale 1/256, zero point -128 ([0, 255/256]);
# int16 scale 1/32768, zero point 0
SOFTMAX_OUTPUT_RANGE = {8: (0.0, 255 / 256), 16: (0.0, 32767 / 32768)}


def _needs_output_quant(name: str, module: nn.Module, modules: dict[str, nn.Module]) -> bool:
    """Every INT8 op's output, except attn·V's where the output projection's input quantizer already follows on
    the same width (a BATCH_MATMUL writes the width it reads)."""
    if isinstance(module, _WeightQuantMixin):
        return True
    if isinstance(module, QuantMatMul):
        proj = modules.get(name[: -len("av")] + "proj")
        return not (name.endswith(".av") and isinstance(proj, QuantLinear)
                    and proj.input_quant.bits == module.a_quant.bits)
    return False


def quantize_outputs_for_tflite(quant: QuantizedViT, calib: np.ndarray) -> QuantizedViT:
    """A copy of `quant` in which each INT8 op is DQ → op → Q, with linear weights quantized in the graph."""
    def weight_in_graph(module: nn.Module) -> None:
        if isinstance(module, _WeightQuantMixin):
            module.keep_weight_as_float_on_grid()

    model, sites = _with_output_quantizers(quant, calib, _needs_output_quant, prepare=weight_in_graph)
    return replace(quant, model=model, scales_sha256=fingerprint(model),
                   lowering=Lowering(tflite_output_quantized=tuple(sites)))


def quantize_outputs_for_npu(quant: QuantizedViT, calib: np.ndarray) -> QuantizedViT:
    """The TFLite lowering for an Ethos-U (`--npu`): as for LiteRT, the softmax probabilities (attn·V's first
    operand) on TFLite's int8 SOFTMAX grid, so GELU and Softmax stay int8 ops the NPU runs instead of the float
    islands XNNPACK needs, and then every other tensor integer too (integer_graph: LayerNorm, residual adds,
    embeddings, head), so that no operator is left to the CPU."""
    lowered = quantize_outputs_for_tflite(quant, calib)
    fixed = []
    for name, module in lowered.model.named_modules():
        if isinstance(module, QuantMatMul) and name.endswith(".av") and module.a_quant.enabled:
            module.a_quant.set_range(*SOFTMAX_OUTPUT_RANGE[module.a_quant.bits])
            fixed.append(name)
    skipped = tuple(name for name in quant.kept_float if quant.recipe.skips(name))
    graph = integer_graph(lowered.model, quant.recipe, calib, keep_float=skipped)
    lowering = replace(lowered.lowering or Lowering(), integer_softmax_gelu=True, softmax_output_grid=tuple(fixed),
                       integer_graph=integer_sites(graph))
    now_int8 = [name for name in quant.kept_float if name not in skipped]  # the patch embedding, the head
    return replace(lowered, model=graph, scales_sha256=fingerprint(graph), lowering=lowering,
                   int8_matmuls=quant.int8_matmuls + now_int8, kept_float=list(skipped))


def quantize_outputs_for_xnnpack(quant: QuantizedViT, calib: np.ndarray) -> QuantizedViT:
    """A copy of `quant` in which each quantized linear and convolution is DQ → op → Q with its int8 weight.

    XNNPACK (ExecuTorch 1.4) runs batch matmuls of two runtime tensors in float only, so Q·Kᵀ and attn·V keep
    their input quantizers (the INT8 rounding the simulation has) and compute in float: no output quantizer there.
    """
    model, sites = _with_output_quantizers(
        quant, calib, lambda _name, module, _modules: isinstance(module, _WeightQuantMixin))
    float_matmuls = sorted(name for name, m in model.named_modules() if isinstance(m, QuantMatMul))
    return replace(quant, model=model, scales_sha256=fingerprint(model),
                   lowering=Lowering(xnnpack_output_quantized=tuple(sites), float_batch_matmuls=tuple(float_matmuls)))


def _with_output_quantizers(quant: QuantizedViT, calib: np.ndarray,
                            is_site: Callable[[str, nn.Module, dict[str, nn.Module]], bool],
                            prepare: Callable[[nn.Module], None] = lambda _module: None,
                            ) -> tuple[nn.Module, list[str]]:
    """A copy of the model with an output quantizer on every site `is_site` picks (`prepare` applied to each),
    calibrated on `calib` with the recipe's method (only the new quantizers are still observing); the
    sites' names, sorted."""
    model = copy.deepcopy(quant.model)
    modules = dict(model.named_modules())
    sites = sorted(name for name, module in modules.items() if is_site(name, module, modules))
    for name in sites:
        prepare(modules[name])
        modules[name].output_quant = ActQuant()
    calibrate(model, quant.recipe, calib)
    apply_int16(model, quant.recipe)  # an A16W8 op writes INT16 too
    _share_grids_into_convolutions(model, calib[:1])
    return model, sites


def _share_grids_into_convolutions(model: nn.Module, sample: np.ndarray) -> None:
    """An output quantizer whose tensor goes straight into a quantized convolution takes that convolution's input
    grid: Q_in(DQ(Q_out(y))) is then Q_in(y), what the model computed before the lowering, and the converter sees
    one scale where it needs one (litert-torch's PAD, a padded convolution's first op, refuses a requantization to a
    scale 0.2 % away: a dense model's neck, whose ranges were calibrated before and after upstream quantization)."""
    import torch

    quantizers = {id(module): module for module in model.modules() if isinstance(module, ActQuant)}
    produced: dict[int, ActQuant] = {}  # id of a tensor an output quantizer returned → that quantizer
    pairs: list[tuple[ActQuant, ActQuant]] = []
    kept: list[torch.Tensor] = []  # alive for the pass, so no id is reused

    def after(module: nn.Module, _args: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        produced[id(out)] = module  # type: ignore[assignment]
        kept.append(out)

    def before(module: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
        source = produced.get(id(args[0]))
        if source is not None and source is not module:
            pairs.append((source, module))  # type: ignore[arg-type]

    hooks = []
    for module in model.modules():
        if isinstance(module, _WeightQuantMixin) and module.output_quant is not None:
            hooks.append(module.output_quant.register_forward_hook(after))
        if isinstance(module, QuantConv2d):
            hooks.append(module.input_quant.register_forward_pre_hook(before))
    try:
        with torch.no_grad():
            model(torch.from_numpy(sample))
    finally:
        for hook in hooks:
            hook.remove()
    for source, consumer in pairs:
        if id(source) in quantizers and consumer.range is not None and source.bits == consumer.bits:
            source.symmetric = consumer.symmetric
            source.set_range(*consumer.range)
