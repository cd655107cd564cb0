"""INT8 of a dense model (Depth Anything, #37 step 2): the encoder's matmuls exactly as any ViT's (the same recipe,
`quantize_model` on the encoder, one calibration pass on the same images), the neck and head left float.

Why the head stays float in this step: its convolutions and bilinear resizes are a small share of the work at edge
sizes, and per-channel INT8 there needs a depth budget to decide where it holds (a later step of #37). The result is a
`QuantizedViT` whose model is the whole dense model, so the target's lowering, the parity check against the INT8
simulation and the manifest treat it as they treat a ViT; its op names carry the `encoder.` prefix, and the summary
says which ops are INT8 and which are float (`int8_scope`, `float_ops`).
"""
from __future__ import annotations

import copy
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Callable, cast

import numpy as np
from torch import nn

from vit_edge.core.errors import ConfigError
from vit_edge.models.dense_heads import DenseModel
from vit_edge.models.vit import VisionTransformer
from vit_edge.quantization.pipeline import evaluate
from vit_edge.quantization.ptq import QuantizedViT, fingerprint, quantize_model
from vit_edge.quantization.recipe import Recipe

if TYPE_CHECKING:
    from vit_edge.core.types import InputSpec
    from vit_edge.data.depth_truth import DepthEval

__all__ = ["INT8_SCOPE", "quantize_dense", "float_ops", "scope_summary", "truth_metrics"]

INT8_SCOPE = "the encoder's matmuls (as for any ViT); the neck's and head's convolutions and resizes run in float"


def float_ops(model: DenseModel) -> list[str]:
    """The neck's and head's convolutions (what a later step may take to INT8), by module name."""
    return [f"{part}.{name}" for part, module in (("neck", model.neck), ("head", model.head))
            for name, sub in module.named_modules() if isinstance(sub, (nn.Conv2d, nn.ConvTranspose2d))]


def scope_summary(model: DenseModel) -> dict[str, Any]:
    """What the manifest says of a dense model's INT8: which ops are INT8, which float."""
    return {"int8_scope": INT8_SCOPE, "float_ops": float_ops(model)}


def quantize_dense(model: DenseModel, recipe: Recipe, calib: np.ndarray,
                   log: Callable[[str], None] = lambda _: None,
                   lower: Callable[[QuantizedViT, np.ndarray], QuantizedViT] = lambda quant, _: quant,
                   ) -> tuple[QuantizedViT, dict[str, Any]]:
    """The INT8 dense model the target ships (its `lower` applied) and its measures against `model` on `calib`
    (AbsRel, δ<1.25, SQNR and cosine: the depth kind's measures, no top-1)."""
    if recipe.int16:
        raise ConfigError("--int16/--a16w8 are not built yet for a dense model (Depth Anything); leave them out")
    encoder = quantize_model(model.encoder, recipe, calib)
    whole = copy.deepcopy(model).eval()
    whole.encoder = cast(VisionTransformer, encoder.model)  # its matmuls swapped for quantized modules
    prefixed = replace(encoder, model=whole, scales_sha256=fingerprint(whole),
                       int8_matmuls=[f"encoder.{name}" for name in encoder.int8_matmuls],
                       kept_float=[f"encoder.{name}" for name in encoder.kept_float],
                       smoothquant={f"encoder.{k}": v for k, v in encoder.smoothquant.items()},
                       sqnr_db={f"encoder.{k}": v for k, v in encoder.sqnr_db.items()}, smoothed_float=None)
    quant = lower(prefixed, calib)
    metrics: dict[str, Any] = evaluate(model, quant, calib, None)
    log(f"INT8 matmuls: {len(quant.int8_matmuls)} in the encoder, neck and head float; against the float model "
        f"AbsRel {_percent(metrics.get('abs_rel'))}, δ<1.25 {_percent(metrics.get('delta1'))}, "
        f"SQNR {metrics['sqnr_db']:.1f} dB")
    return quant, metrics


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.2f}%"


def truth_metrics(model: DenseModel, quant: QuantizedViT, truth: DepthEval, spec: InputSpec,
                  log: Callable[[str], None] = lambda _: None) -> dict[str, Any]:
    """AbsRel and δ<1.25 of the float and the INT8 model against ground-truth depth (core/depth_metrics.truth_scores:
    a relative model's disparity aligned per image by least-squares scale and shift, a metric model's metres as
    they are)."""
    from vit_edge.core.depth_metrics import truth_scores
    from vit_edge.data.preprocess import preprocess_uint8
    from vit_edge.reading.torch_session import torch_runner
    from vit_edge.runtime.accuracy import run_batched

    batch = preprocess_uint8(truth.images, spec)
    relative = not model.cfg.head.metric
    scores = {name: truth_scores(run_batched(torch_runner(module), batch, what=f"scoring {name}"), truth.depth,
                                 relative)
              for name, module in (("fp32", model), ("int8", quant.model))}
    log(f"against ground truth on {truth.describe()}: AbsRel {_percent(scores['fp32'].abs_rel)} (fp32) → "
        f"{_percent(scores['int8'].abs_rel)} (int8), δ<1.25 {_percent(scores['fp32'].delta1)} → "
        f"{_percent(scores['int8'].delta1)}")
    return {"eval_data": truth.describe(), "alignment": scores["fp32"].alignment,
            **{f"{name}_{key}": getattr(score, key) for name, score in scores.items() for key in ("abs_rel", "delta1")}}
