"""Post-training quantization of a reference ViT's matmuls (`quantize_model(model, recipe, calib)`).

Steps: pick the matmuls (kinds minus skip patterns) → SmoothQuant where it lowers the error → swap in quantized
modules → one calibration pass → ranges by the recipe's method → per-matmul SQNR, measured in isolation.
"""
from __future__ import annotations

import copy
import fnmatch
import hashlib
import math
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from vit_edge.core.errors import ConfigError
from vit_edge.core.progress import steps
from vit_edge.core.summaries import Accuracy, CalibInfo, Lowering, QuantSummary
from vit_edge.models.vit import VisionTransformer, every_token
from vit_edge.quantization.observers import choose_range
from vit_edge.quantization.qmodules import (
    ActQuant,
    QuantConv2d,
    QuantInput,
    QuantLinear,
    QuantMatMul,
    quantize_weight,
    scoring,
)
from vit_edge.quantization.recipe import Recipe

__all__ = ["QuantizedViT", "quantize_model", "candidate_sites", "calibrate", "fingerprint", "apply_int16", "op_sqnr"]

_SITE_PATHS = {"qkv": "attn.qkv", "qk": "attn.qk", "av": "attn.av", "proj": "attn.proj", "fc1": "mlp.fc1",
               "fc2": "mlp.fc2"}

_POOL_SITES = {"q": "qkv", "kv": "qkv", "qk": "qk", "av": "av", "proj": "proj", "mlp.fc1": "fc1", "mlp.fc2": "fc2"}


@dataclass
class QuantizedViT:
    """The INT8-simulating model and what the manifest and report need to say about it."""

    model: nn.Module  # a VisionTransformer; for an NPU, its integer graph (integer_graph.py)
    recipe: Recipe
    int8_matmuls: list[str]
    kept_float: list[str]
    smoothquant: dict[str, float] = field(default_factory=dict)
    sqnr_db: dict[str, float] = field(default_factory=dict)
    scales_sha256: str = ""
    lowering: Lowering | None = None  # what a target's rewrite added (lowering.py)
    smoothed_float: nn.Module | None = field(default=None, repr=False)  # QAT starts from these float weights
    int16_ops: list[str] = field(default_factory=list)  # of int8_matmuls, those with INT16 activations (A16W8)

    def summary(self, calibration: CalibInfo, accuracy: Accuracy, method: str) -> QuantSummary:
        """What the manifest says of this model: which matmuls are INT8, the scales' fingerprint, the lowering,
        with the calibration and accuracy that the pipeline measured, and the method (ptq or qat)."""
        return QuantSummary(recipe=self.recipe.to_json(), int8_matmuls=tuple(self.int8_matmuls),
                            kept_float=tuple(self.kept_float), int16_activations=tuple(self.int16_ops),
                            smoothquant_alpha=dict(self.smoothquant), sqnr_db=dict(self.sqnr_db),
                            scales_sha256=self.scales_sha256, lowering=self.lowering, calibration=calibration,
                            accuracy=accuracy, method=method)


def candidate_sites(model: VisionTransformer) -> dict[str, str]:
    """Every quantizable matmul by module name → its kind."""
    sites = {"patch_embed.proj": "patch_embed"}
    sites.update({f"blocks.{i}.{path}": kind for i in range(len(model.blocks)) for kind, path in _SITE_PATHS.items()})
    if model.attn_pool is not None:  # SigLIP's MAP head: a block's matmuls, one query
        sites.update({f"attn_pool.{path}": kind for path, kind in _POOL_SITES.items()})
    if model.head is not None:
        sites["head"] = "head"
    if model.head_dist is not None:
        sites["head_dist"] = "head"
    return sites


def _select(model: VisionTransformer, recipe: Recipe) -> tuple[list[str], list[str]]:
    sites = candidate_sites(model)
    _check_patterns(recipe.skip, sites, "skip", "blocks.0.attn.qkv, blocks.0.attn.qk, blocks.3.mlp.fc2, head")
    _check_patterns(recipe.int16, sites, "--int16", "blocks.0.attn.qkv, blocks.3.mlp.fc2, head, or '*' for every one")
    wanted = [name for name, kind in sites.items() if kind in recipe.kinds]
    chosen = [n for n in wanted if not recipe.skips(n)]
    if not chosen:
        raise ConfigError("no quantizable matmul is left after the skip list: nothing would run in INT8")
    return chosen, [n for n in sites if n not in chosen]


def _check_patterns(patterns: tuple[str, ...], sites: dict[str, str], flag: str, examples: str) -> None:
    """Each of a flag's module-name patterns matches some quantizable matmul, or one line says which does not."""
    for pattern in patterns:
        if not any(fnmatch.fnmatchcase(name, pattern) for name in sites):
            raise ConfigError(f"{flag} pattern '{pattern}' matches no quantizable matmul; names look like {examples}")


def _batches(data: np.ndarray, batch_size: int = 32) -> list[torch.Tensor]:
    return [torch.from_numpy(data[i : i + batch_size]) for i in range(0, len(data), batch_size)]


def _capture_inputs(model: nn.Module, names: list[str], batch: torch.Tensor) -> dict[str, tuple[torch.Tensor, ...]]:
    captured: dict[str, tuple[torch.Tensor, ...]] = {}
    modules = dict(model.named_modules())
    hooks = [modules[n].register_forward_hook(lambda m, args, out, n=n: captured.__setitem__(n, args))
             for n in names]
    with torch.no_grad(), every_token(model):
        model(batch)
    for hook in hooks:
        hook.remove()
    return captured


def _linear_error(x: torch.Tensor, weight: torch.Tensor, per_channel: bool) -> float:
    """Relative output error of an INT8 linear on inputs `x` (minmax input range: a comparison, not the result)."""
    q, scale = quantize_weight(weight, per_channel)
    act = ActQuant()
    act.set_range(float(x.min()), float(x.max()))
    exact = x @ weight.T
    approx = act(x) @ (q.float() * scale[:, None]).T
    return float((exact - approx).pow(2).mean() / exact.pow(2).mean().clamp_min(1e-12))


def _smooth(model: VisionTransformer, recipe: Recipe, chosen: list[str], batch: torch.Tensor) -> dict[str, float]:
    """Move activation outliers from LayerNorm outputs into the next linear's weights (SmoothQuant, exact in float)."""
    if recipe.smoothquant == "off":
        return {}
    alphas = (0.5,) if recipe.smoothquant == "auto" else (float(recipe.smoothquant),)
    pairs = [(f"blocks.{i}.norm1", f"blocks.{i}.attn.qkv") for i in range(len(model.blocks))]
    pairs += [(f"blocks.{i}.norm2", f"blocks.{i}.mlp.fc1") for i in range(len(model.blocks))]
    pairs = [(norm, linear) for norm, linear in pairs if linear in chosen]
    inputs = _capture_inputs(model, [linear for _, linear in pairs], batch)
    modules, applied = dict(model.named_modules()), {}
    for norm_name, linear_name in pairs:
        norm, linear = modules[norm_name], modules[linear_name]
        x = inputs[linear_name][0].reshape(-1, linear.in_features)
        best_alpha, best_error = 0.0, _linear_error(x, linear.weight.detach(), not recipe.per_tensor_weights)
        for alpha in alphas:
            s = (x.abs().amax(0).clamp_min(1e-5) ** alpha) / (linear.weight.abs().amax(0).clamp_min(1e-5)
                                                             ** (1 - alpha))
            error = _linear_error(x / s, linear.weight.detach() * s, not recipe.per_tensor_weights)
            if error < best_error or recipe.smoothquant != "auto":
                best_alpha, best_error, best_s = alpha, error, s
        if best_alpha:
            with torch.no_grad():
                norm.weight.div_(best_s)
                if getattr(norm, "bias", None) is not None:  # RMSNorm has none
                    norm.bias.div_(best_s)
                linear.weight.mul_(best_s)
            applied[linear_name] = best_alpha
    return applied


def _swap(model: VisionTransformer, chosen: list[str], per_channel: bool) -> None:
    for name in chosen:
        parent_name, _, attr = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        module = getattr(parent, attr)
        if isinstance(module, nn.Linear):
            replacement: nn.Module = QuantLinear(module, per_channel)
        elif isinstance(module, nn.Conv2d):
            replacement = QuantConv2d(module, per_channel)
        else:
            # Q·Kᵀ's output stays float: requantizing it lets ONNX Runtime fuse DQ→Softmax→Q into QLinearSoftmax,
            # which lost up to 0.2 of logit cosine on ViT-Tiny (measured); without it Q·Kᵀ still runs as
            # MatMulIntegerToFloat and attn·V as QLinearMatMul.
            replacement = QuantMatMul(symmetric_first=name.endswith("qk"))
        setattr(parent, attr, replacement)


_NONLINEAR_PATHS = {"softmax": ("attn.softmax",), "gelu": ("mlp.act",), "layernorm": ("norm1", "norm2")}


def _wrap_nonlinear(model: VisionTransformer, recipe: Recipe) -> list[str]:
    """Quantize the inputs of the float ops the recipe names; returns their module names."""
    wrapped = []
    for kind in recipe.nonlinear_inputs:
        for index, block in enumerate(model.blocks):
            for path in _NONLINEAR_PATHS[kind]:
                parent_path, _, attr = path.rpartition(".")
                parent = block.get_submodule(parent_path) if parent_path else block
                setattr(parent, attr, QuantInput(getattr(parent, attr)))
                wrapped.append(f"blocks.{index}.{path}")
    return wrapped


# quantizers of attention logits and probabilities: by default calibrated to their full range
_ATTENTION_QUANTIZERS = ("av.a_quant", "softmax.input_quant", "qk.output_quant")


def calibrate(model: nn.Module, recipe: Recipe, calib: np.ndarray) -> None:
    """One pass over `calib` (a bar on a terminal: a large model takes a while), then a range for every quantizer
    that is still observing."""
    with torch.no_grad(), every_token(model), scoring():
        for batch in steps(_batches(calib), len, len(calib), "calibrating", least=1):
            model(batch)
    for name, module in model.named_modules():
        if isinstance(module, ActQuant) and module.observer is not None and module.observer.seen:
            # attention probabilities keep their extremes: clipping the largest one changes which token a head
            # attends to (KL clipping cost ~1 pt on the shipped model, measured)
            attention = recipe.keep_attention_range and name.endswith(_ATTENTION_QUANTIZERS)
            method = "minmax" if attention else recipe.calibration
            module.set_range(*choose_range(module.observer, method, recipe.percentile))
            module.observer = None


# the patch embedding's convolution stays INT8: its input is 8-bit pixels, and LiteRT's 16x8 CONV_2D saturated
_QUANTIZED_OPS = (QuantLinear, QuantMatMul, QuantInput)


def apply_int16(model: nn.Module, recipe: Recipe) -> list[str]:
    """Every quantizer of the ops `recipe.int16` names stored in INT16 on its calibrated range (A16W8: the weights
    stay INT8); the names of those ops. Changing the width needs no second calibration pass."""
    chosen = []
    for name, module in model.named_modules():
        if isinstance(module, _QUANTIZED_OPS) and recipe.int16_for(name):
            for quantizer in module.children():
                if isinstance(quantizer, ActQuant):
                    quantizer.use_bits(16)
            chosen.append(name)
    return chosen


def _sqnr(float_model: nn.Module, quant_model: nn.Module, chosen: list[str], batch: torch.Tensor) -> dict[str, float]:
    inputs = _capture_inputs(float_model, chosen, batch)
    float_modules, quant_modules = dict(float_model.named_modules()), dict(quant_model.named_modules())
    result = {}
    with torch.no_grad():
        for name in chosen:
            exact = float_modules[name](*inputs[name])
            noise = (exact - quant_modules[name](*inputs[name])).pow(2).sum()
            result[name] = round(10 * math.log10(float(exact.pow(2).sum()) / max(float(noise), 1e-30)), 2)
    return result


def op_sqnr(float_model: nn.Module, quant_model: nn.Module, names: list[str], batch: torch.Tensor) -> dict[str, float]:
    """Each named op's SQNR in dB, quantized against float on the float model's own inputs to it (in isolation)."""
    return _sqnr(float_model, quant_model, names, batch)


def fingerprint(model: nn.Module) -> str:
    digest = hashlib.sha256()
    for name, buffer in sorted(model.named_buffers()):
        if name.endswith(("scale", "zero_point", "weight_scale")):
            digest.update(name.encode())
            digest.update(buffer.detach().float().numpy().tobytes())
    return digest.hexdigest()


def quantize_model(model: VisionTransformer, recipe: Recipe, calib: np.ndarray) -> QuantizedViT:
    """An INT8-simulating copy of `model`; `calib` is a preprocessed float32 batch (N, C, H, W)."""
    chosen, kept = _select(model, recipe)
    quant = copy.deepcopy(model).eval()
    head = torch.from_numpy(calib[: min(len(calib), 64)])
    with torch.no_grad():
        smoothing = _smooth(quant, recipe, chosen, head)
    reference = copy.deepcopy(quant)  # smoothed but float: per-matmul SQNR compares like with like
    _swap(quant, chosen, per_channel=not recipe.per_tensor_weights)
    _wrap_nonlinear(quant, recipe)
    calibrate(quant, recipe, calib)
    int16_ops = apply_int16(quant, recipe)
    for parameter in quant.parameters():
        parameter.requires_grad_(False)
    sqnr = _sqnr(reference, quant, chosen, head)
    return QuantizedViT(quant, recipe, chosen, kept, smoothing, sqnr, fingerprint(quant), smoothed_float=reference,
                        int16_ops=[name for name in int16_ops if name in chosen])
