"""PTQ with an accuracy budget: quantize, measure, and keep the most sensitive matmuls in float until it fits."""
from __future__ import annotations

import copy
from dataclasses import replace
from typing import Callable

import numpy as np
import torch
from torch import fx

from vit_edge.core.depth_metrics import depth_scores
from vit_edge.core.errors import ConfigError
from vit_edge.core.output_kinds import OUTPUTS, Measure, ModelOutput
from vit_edge.core.parity import compare_logits
from vit_edge.core.sanity import most_frequent_share
from vit_edge.core.summaries import Accuracy, KeptFloat, WidenedOp
from vit_edge.core.types import InputSpec
from vit_edge.data.datasets import LabelledImages
from vit_edge.data.preprocess import preprocess_uint8
from vit_edge.models.vit import VisionTransformer
from vit_edge.quantization.integer_graph import reusing_capture, scoring_view
from vit_edge.quantization.ptq import QuantizedViT, apply_int16, quantize_model
from vit_edge.quantization.qmodules import scoring
from vit_edge.quantization.recipe import Recipe
from vit_edge.reading.torch_session import torch_runner
from vit_edge.runtime.accuracy import run_batched, top1_accuracy

__all__ = ["quantize_with_budget", "evaluate", "evaluate_on", "int8_costs"]


def _logits(model: torch.nn.Module, batch: np.ndarray, what: str = "scoring") -> np.ndarray:
    """`model`'s outputs, in scoring() mode: the numbers the quantize/dequantize ops give, in fewer passes."""
    runnable = scoring_view(model) if isinstance(model, fx.GraphModule) else model
    with scoring():
        return run_batched(torch_runner(runnable), batch, what=what)


def evaluate(float_model: torch.nn.Module, quant: QuantizedViT, data: np.ndarray,
             labels: np.ndarray | None, float_outputs: np.ndarray | None = None) -> Accuracy:
    """Top-1 before and after (when labelled) and agreement with the float model; `drop` is what the budget checks.
    An output without classes (tokens, feature maps, embeddings) gets its cosine with the float model only, and a
    depth map its kind's measures too (AbsRel, δ<1.25, SQNR against the float model: core/depth_metrics.py), a
    segmentation map its pixel agreement and mIoU against the float model's argmax (core/segmentation_metrics.py).
    `float_outputs`: the float model's outputs on `data` where the caller has them already."""
    reference = float_outputs if float_outputs is not None else _logits(float_model, data, "scoring the float model")
    quantized = _logits(quant.model, data, f"scoring INT8 ({len(quant.int8_matmuls)} matmuls)")
    output = _output_of(float_model)
    compared = compare_logits(reference, quantized, output)
    if not output.supports(Measure.AGREEMENT):
        depth = depth_scores(quantized, reference) if output.supports(Measure.ABS_REL) else None  # a depth map
        return Accuracy(images=int(len(data)), cosine=compared.mean_cosine, min_cosine=compared.min_cosine,
                        depth=depth, segmentation=compared.segmentation)  # segmentation: compare_logits measured it
    agreement = 100 * (compared.top1_agreement or 0.0)
    if labels is None:  # without labels, disagreement with the float model bounds the accuracy lost
        return Accuracy(images=int(len(data)), agreement_top1=agreement, logit_cosine=compared.mean_cosine,
                        drop=100.0 - agreement)
    fp32, int8 = top1_accuracy(reference, labels), top1_accuracy(quantized, labels)
    return Accuracy(images=int(len(data)), agreement_top1=agreement, logit_cosine=compared.mean_cosine,
                    labelled_classes=int(len(np.unique(labels))),  # for the sanity check: chance and one-class runs
                    fp32_top_class_share=most_frequent_share(reference.argmax(1), reference.shape[1]),
                    fp32_top1=fp32, int8_top1=int8, drop=fp32 - int8)


def _output_of(model: torch.nn.Module) -> ModelOutput:
    cfg = getattr(model, "cfg", None)
    return cfg.model_output if cfg is not None else OUTPUTS["logits"]


def evaluate_on(float_model: torch.nn.Module, quant: QuantizedViT, evaluation: LabelledImages | None,
                spec: InputSpec) -> Accuracy | None:
    """`evaluate` on labelled images, or None when there are none."""
    if evaluation is None:
        return None
    return evaluate(float_model, quant, preprocess_uint8(evaluation.images, spec), evaluation.labels)


def _merge_cost(model: torch.nn.Module, reference: torch.nn.Module | None, data: np.ndarray,
                labels: np.ndarray | None, unmerged_outputs: np.ndarray) -> float | None:
    """Top-1 points (or, unlabelled, disagreement) the float merged model loses to `reference` (whose outputs are
    `unmerged_outputs`); None unmerged."""
    if reference is None or reference is model or not _output_of(model).supports(Measure.AGREEMENT):
        return None
    merged, unmerged = _logits(model, data).argmax(1), unmerged_outputs.argmax(1)
    if labels is None:
        return float(100 * np.mean(merged != unmerged))
    return float(100 * (np.mean(unmerged == labels) - np.mean(merged == labels)))


def _metric_words(metrics: Accuracy) -> str:
    depth = metrics.depth
    if depth is not None and depth.abs_rel is not None and depth.delta1 is not None:
        return (f"against the float model AbsRel {100 * depth.abs_rel:.2f}%, δ<1.25 {100 * depth.delta1:.2f}%, "
                f"SQNR {depth.sqnr_db:.1f} dB")
    if metrics.drop is None:
        return f"mean cosine with the float model {metrics.cosine:.5f} (worst {metrics.min_cosine:.5f})"
    measured = "top-1 drop" if metrics.int8_top1 is not None else "disagreement with the float model"
    return f"{measured} {metrics.drop:.2f} pt, agreement {metrics.agreement_top1:.2f}%"


def quantize_with_budget(model: VisionTransformer, recipe: Recipe, calib: np.ndarray,
                         evaluation: LabelledImages | None, spec: InputSpec,
                         log: Callable[[str], None] = lambda _: None,
                         lower: Callable[[QuantizedViT, np.ndarray], QuantizedViT] = lambda quant, _: quant,
                         reference: torch.nn.Module | None = None,
                         int16_kernels: bool = False) -> tuple[QuantizedViT, Accuracy]:
    """Quantize; with `recipe.max_drop`, give INT16 activations to the ops whose INT8 costs most (where the target
    has `int16_kernels`), then keep the lowest-SQNR matmuls float, until the drop is within budget.

    `lower` is the target's rewrite (its declared int8_lowering): the budget is checked on the model that ships.
    `reference` is what the drop is measured from (default `model`; the unmerged model when `model` merges tokens).
    """
    data = preprocess_uint8(evaluation.images, spec) if evaluation is not None else calib
    labels = evaluation.labels if evaluation is not None else None
    float_outputs = _logits(reference or model, data, "scoring the float model")  # once: every round compares to it
    merge_cost = _merge_cost(model, reference, data, labels, float_outputs)  # over the budget alone: refused before
    budget = _Budget(recipe, data, labels, float_outputs)
    with reusing_capture():  # every round lowers the same model with other widths: torch.export once
        while True:
            plain = quantize_model(model, budget.recipe, calib)
            quant = lower(plain, calib)
            metrics = evaluate(reference or model, quant, data, labels, float_outputs)
            log(f"INT8 matmuls: {len(quant.int8_matmuls)} ({len(quant.int16_ops)} with INT16 activations); "
                + _metric_words(metrics))
            drop = metrics.drop or 0.0  # None: an output without classes, where no budget is taken
            if recipe.max_drop is None or drop <= recipe.max_drop:
                return quant, replace(metrics, merge_drop=merge_cost,  # of `drop`, what merging costs in float
                                      kept_float_for_budget=tuple(budget.kept_float),
                                      int16_for_budget=tuple(budget.moved_to_int16) or None)
            if int16_kernels and budget.widen_next(plain, drop, calib, lower, log):
                continue
            if len(quant.int8_matmuls) <= 1:
                merging = f", {merge_cost:.2f} of it from merging" if merge_cost is not None else ""
                raise ConfigError(f"the budget of {recipe.max_drop} pt cannot be met: with one matmul left in INT8 the "
                                  f"drop is still {drop:.2f} pt{merging}; raise --max-drop or use QAT")
            budget.keep_weakest_float(quant, drop, log)


class _Budget:
    """The budget's choices so far: which ops went to INT16 (by their measured cost in INT8) and which stayed
    float."""

    def __init__(self, recipe: Recipe, data: np.ndarray, labels: np.ndarray | None,
                 float_outputs: np.ndarray) -> None:
        self.recipe, self.data, self.labels, self.float_outputs = recipe, data, labels, float_outputs
        self.kept_float: list[KeptFloat] = []
        self.moved_to_int16: list[WidenedOp] = []
        self._ranking: list[tuple[str, float]] | None = None

    def widen_next(self, plain: QuantizedViT, drop: float, calib: np.ndarray,
                   lower: Callable[[QuantizedViT, np.ndarray], QuantizedViT], log: Callable[[str], None]) -> bool:
        """Give INT16 activations to the INT8 op that costs most (measured on the model that ships); False when
        none is left."""
        if self._ranking is None:
            log(f"over budget: measuring what INT8 activations cost on each of {len(plain.int8_matmuls)} ops, "
                "against INT16 …")
            target = self.labels if self.labels is not None else self.float_outputs.argmax(1)
            self._ranking = int8_costs(plain, calib, lower, self.data, target)
        left = [(name, cost) for name, cost in self._ranking
                if not self.recipe.int16_for(name) and not self.recipe.skips(name)]
        if not left or self.kept_float:  # once an op went float, every op that INT16 could help already had it
            return False
        name, cost = left[0]
        self.moved_to_int16.append(WidenedOp(name, round(cost, 3), round(drop, 3)))
        log(f"over budget: INT16 activations for {name} (in INT8 it costs {cost:.2f} pt, the most left)")
        self.recipe = replace(self.recipe, int16=self.recipe.int16 + (name,))
        return True

    def keep_weakest_float(self, quant: QuantizedViT, drop: float, log: Callable[[str], None]) -> None:
        weakest = min(quant.sqnr_db, key=lambda name: quant.sqnr_db[name])
        self.kept_float.append(KeptFloat(weakest, quant.sqnr_db[weakest], round(drop, 3)))
        log(f"over budget: keeping {weakest} (SQNR {quant.sqnr_db[weakest]:.1f} dB, the lowest) in float")
        self.recipe = replace(self.recipe, skip=self.recipe.skip + (weakest,),
                              int16=tuple(p for p in self.recipe.int16 if p != weakest))


def int8_costs(plain: QuantizedViT, calib: np.ndarray,
               lower: Callable[[QuantizedViT, np.ndarray], QuantizedViT], data: np.ndarray,
               target: np.ndarray) -> list[tuple[str, float]]:
    """For each op, the top-1 points lost on `data` (against `target`: the labels, or unlabelled the float model's
    classes) when it alone is INT8 and every other INT16, on the model the target's `lower` makes (an NPU's integer
    graph differs from the modules); costliest first, ties broken by the lower SQNR. The widths change on the
    calibrated ranges, so `plain` (calibrated, before lowering) is quantized once."""
    names = list(plain.int8_matmuls)

    def score(wide: list[str]) -> float:
        recipe = replace(plain.recipe, int16=tuple(wide))
        model = copy.deepcopy(plain.model)
        widened = replace(plain, model=model, recipe=recipe, int16_ops=apply_int16(model, recipe))
        return float(100 * np.mean(_logits(lower(widened, calib).model, data).argmax(1) == target))

    with reusing_capture():  # 1 + ops lowerings of one model: torch.export once
        base = score(names)
        costs = [(name, base - score([other for other in names if other != name])) for name in names]
    return sorted(costs, key=lambda item: (-item[1], plain.sqnr_db.get(item[0], 0.0)))
