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
from typing import Callable, cast

import numpy as np
from torch import nn

from vit_edge.core.errors import ConfigError
from vit_edge.core.parity import compare_logits
from vit_edge.core.segmentation_metrics import mask_scores, segmentation_against_fp32
from vit_edge.core.summaries import Accuracy
from vit_edge.data.masks import MaskedImages
from vit_edge.models.dense_heads import DenseModel
from vit_edge.models.vit import VisionTransformer
from vit_edge.quantization.budget import evaluate
from vit_edge.quantization.ptq import QuantizedViT, fingerprint, quantize_model
from vit_edge.quantization.recipe import Recipe
from vit_edge.reading.torch_session import torch_runner
from vit_edge.runtime.accuracy import run_batched

__all__ = ["INT8_SCOPE", "quantize_dense", "float_ops"]

INT8_SCOPE = ("the encoder's matmuls (as for any ViT); the neck's and head's convolutions and resizes (and DPT's "
              "readout projections) run in float")


def float_ops(model: DenseModel) -> list[str]:
    """The neck's and head's convolutions, and DPT's readout projections (what a later step may take to INT8), by
    module name."""
    parts = [(name, getattr(model, name)) for name in ("readout", "neck", "head") if hasattr(model, name)]
    return [f"{part}.{name}" for part, module in parts for name, sub in module.named_modules()
            if isinstance(sub, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear))]


def quantize_dense(model: DenseModel, recipe: Recipe, calib: np.ndarray,
                   log: Callable[[str], None] = lambda _: None,
                   lower: Callable[[QuantizedViT, np.ndarray], QuantizedViT] = lambda quant, _: quant,
                   masks: tuple[np.ndarray, MaskedImages] | None = None) -> tuple[QuantizedViT, Accuracy]:
    """The INT8 dense model the target ships (its `lower` applied) and its measures against `model` on `calib`
    (the output kind's: AbsRel, δ<1.25, SQNR for depth; pixel agreement and mIoU with its argmax for segmentation;
    cosine; no top-1)."""
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
    metrics = evaluate(model, quant, calib, None) if masks is None else _on_masks(model, quant, *masks)
    log(f"INT8 matmuls: {len(quant.int8_matmuls)} in the encoder, neck and head float; against the float model "
        + _measures_words(metrics))
    return quant, metrics


def _on_masks(model: DenseModel, quant: QuantizedViT, batch: np.ndarray, masks: MaskedImages) -> Accuracy:
    """--eval of a segmentation model: on the eval images, the measures against the float model (as `evaluate`
    takes them) and each model's mIoU and pixel accuracy against the ground-truth masks."""
    reference = run_batched(torch_runner(model), batch, what="scoring the float model on the masks' images")
    quantized = run_batched(torch_runner(quant.model), batch, what="scoring INT8 on the masks' images")
    compared = compare_logits(reference, quantized, model.cfg.model_output)
    fp32, int8 = mask_scores(reference, masks.masks), mask_scores(quantized, masks.masks)
    return Accuracy(images=int(len(batch)), cosine=compared.mean_cosine, min_cosine=compared.min_cosine,
                    segmentation=segmentation_against_fp32(quantized, reference),
                    fp32_miou=fp32.miou, fp32_pixel_accuracy=fp32.pixel_accuracy,
                    fp32_classes_present=fp32.classes_present, fp32_pixels=fp32.pixels,
                    int8_miou=int8.miou, int8_pixel_accuracy=int8.pixel_accuracy,
                    int8_classes_present=int8.classes_present, int8_pixels=int8.pixels, eval_data=masks.describe())


def _measures_words(metrics: Accuracy) -> str:
    """The output kind's measures against the float model, in words (depth or segmentation)."""
    seg, depth = metrics.segmentation, metrics.depth
    if seg is not None:
        masks = (f"; mIoU on the masks {_percent(metrics.fp32_miou)} → {_percent(metrics.int8_miou)}"
                 if metrics.int8_miou is not None else "")
        return (f"pixel agreement {_percent(seg.pixel_agreement)}, mIoU with its argmax "
                f"{_percent(seg.miou_vs_fp32)}{masks}")
    if depth is None:
        return f"mean cosine {metrics.cosine}"
    return f"AbsRel {_percent(depth.abs_rel)}, δ<1.25 {_percent(depth.delta1)}, SQNR {depth.sqnr_db:.1f} dB"


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.2f}%"
