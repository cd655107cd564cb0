"""From a loaded model to a written artifact: the FP32 export and the INT8 build (calibrate, quantize or train,
lower for the target), both ending in `write_artifact`. `tune` calls these once per candidate on one loaded model."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from vit_edge.core.errors import ConfigError
from vit_edge.core.options import ExportOptions
from vit_edge.core.output_kinds import Measure, ModelOutput
from vit_edge.pipeline.checks import int8_lowering, int16_available
from vit_edge.pipeline.loading import check_merge_budget, images_for, with_class_names
from vit_edge.pipeline.writing import write_artifact
from vit_edge.runtime.artifact import Artifact

if TYPE_CHECKING:
    from vit_edge.data.datasets import ImageData, LabelledImages
    from vit_edge.data.depth_truth import DepthEval
    from vit_edge.data.sources import DataOptions
    from vit_edge.exporters.base import Exporter
    from vit_edge.quantization.qat import QatTraining
    from vit_edge.quantization.recipe import Recipe
    from vit_edge.reading.loaders import LoadedModel

__all__ = ["Destination", "Int8Request", "export_loaded", "quantize_loaded"]


@dataclass(frozen=True)
class Destination:
    """Where an artifact goes and how: the checked exporter, the folder, the options, how images are read."""

    exporter: Exporter
    out_dir: Path
    options: ExportOptions
    reading: DataOptions


@dataclass(frozen=True)
class Int8Request:
    """What an INT8 build needs beyond the export options: recipe, calibration, evaluation, and QAT if asked."""

    recipe: Recipe
    calib: ImageData
    calib_size: int = 256
    eval_data: ImageData | None = None
    eval_limit: int | None = None
    qat: QatTraining | None = None  # checked by check_qat_request; None: PTQ

    @property
    def method(self) -> str:
        return "ptq" if self.qat is None else "qat"


def export_loaded(loaded: LoadedModel, to: Destination, data: ImageData | None, max_drop: float | None,
                  log: Callable[[str], None]) -> Artifact:
    """FP32 (or FP16) export: parity on `data` when given; with token merging, its cost within `max_drop`."""
    loaded = with_class_names(loaded, to.reading)
    budget = bool(to.options.merge) and max_drop is not None
    if budget:
        loaded.model.cfg.model_output.require(Measure.TOP1, "--max-drop, a budget in top-1 points,",
                                              "leave --max-drop out")
    dataset = images_for(loaded, data, to.reading, labelled=budget,
                         limit=None if budget else to.options.parity_samples, log=log)
    if to.options.merge:
        check_merge_budget(loaded, dataset if budget else None, max_drop, log)
    return write_artifact(to.exporter, loaded.model, loaded.spec, loaded.source, to.options, to.out_dir, dataset, log)


def quantize_loaded(loaded: LoadedModel, to: Destination, request: Int8Request,
                    log: Callable[[str], None]) -> Artifact | None:
    """The INT8 artifact; None on torchrun ranks other than 0 (rank 0 writes)."""
    _check_measures(loaded.model.cfg.model_output, request)
    loaded = with_class_names(loaded, to.reading)
    truth = _depth_truth(loaded, request, to, log)
    evaluation = None if truth is not None else images_for(loaded, request.eval_data, to.reading, labelled=True,
                                                           limit=request.eval_limit, log=log)
    if to.options.merge:
        check_merge_budget(loaded, evaluation, request.recipe.max_drop, log)
    summary, quantized = _quantized(loaded, request, to, evaluation, log, truth)
    if quantized is None:
        return None
    return write_artifact(to.exporter, quantized, loaded.spec, loaded.source, to.options, to.out_dir, evaluation, log,
                          quantization={**summary, "method": request.method})


def _check_measures(output: ModelOutput, request: Int8Request) -> None:
    """What the request measures must apply to what the model returns: no top-1 of patch tokens or embeddings."""
    if request.qat is not None:
        output.require(Measure.TOP1, "QAT (--method qat), which trains on labels,", "use --method ptq")
    if request.recipe.max_drop is not None:
        output.require(Measure.TOP1, "--max-drop, a budget in top-1 points,", "leave --max-drop out")
    if request.recipe.max_abs_rel is not None and not output.supports(Measure.ABS_REL):
        raise ConfigError(f"--max-abs-rel is a budget in AbsRel against FP32, a depth map's measure; this model "
                          f"returns {output.words}: leave it out (--max-drop is a classifier's budget)")
    if request.eval_data is not None and not output.supports(Measure.DEPTH_TRUTH):  # a depth map: ground truth
        output.require(Measure.TOP1, "--eval", "leave --eval out")


def _depth_truth(loaded: LoadedModel, request: Int8Request, to: Destination,
                 log: Callable[[str], None]) -> DepthEval | None:
    """With --eval on a depth model: its images and ground-truth depth at the model's input (a folder of images/ and
    depth/, each map checked by data/depth_truth.check_depth); None otherwise."""
    from vit_edge.data.depth_truth import load_depth_eval

    if request.eval_data is None or not loaded.model.cfg.model_output.supports(Measure.DEPTH_TRUTH):
        return None
    if not isinstance(request.eval_data, (str, os.PathLike)):
        raise ConfigError("--eval on a depth model reads a folder of images/ and depth/ (ground truth); give its path")
    truth = load_depth_eval(request.eval_data, loaded.spec, to.reading, request.eval_limit, log)
    log(f"ground truth: {truth.describe()}")
    return truth


def _quantized(loaded: LoadedModel, request: Int8Request, to: Destination, evaluation: LabelledImages | None,
               log: Callable[[str], None], truth: DepthEval | None = None) -> tuple[dict[str, Any], Any]:
    """Calibrate, quantize (PTQ within the budget, or QAT), lower for the target: (the manifest's summary, the
    INT8 model to convert); the model is None on torchrun ranks other than 0."""
    from vit_edge.models.dense_heads import DenseModel
    from vit_edge.quantization.calibration import load_calibration
    from vit_edge.quantization.dense import quantize_dense, truth_metrics
    from vit_edge.quantization.pipeline import evaluate_on, quantize_with_budget
    from vit_edge.quantization.qat_run import run_qat

    recipe = request.recipe
    calibration = load_calibration(request.calib, loaded.spec, request.calib_size, to.reading)
    reference = loaded.unmerged or loaded.model  # accuracy is measured against the model as trained
    lower = int8_lowering(to.options)
    log(f"calibrating on {len(calibration.batch)} images from {calibration.source} ({recipe.calibration}) …")
    extra: dict[str, Any] = {}
    if isinstance(loaded.model, DenseModel):  # QAT, --max-drop and --eval were refused by the output kind
        if to.options.npu is not None:
            raise ConfigError("--npu is not built yet for a dense model (Depth Anything): its integer graph covers "
                              "ViT blocks only; quantize for --target tflite without --npu")
        quant, metrics, extra = quantize_dense(loaded.model, recipe, calibration.batch, log, lower)
        if truth is not None:
            metrics = {**metrics, "ground_truth": truth_metrics(loaded.model, quant, truth, loaded.spec, log)}
    elif request.qat is None:
        quant, metrics = quantize_with_budget(loaded.vit, recipe, calibration.batch, evaluation, loaded.spec, log,
                                              lower=lower, reference=reference,
                                              int16_kernels=int16_available(to.options))
    else:
        trained, extra = run_qat(loaded, recipe, calibration, evaluation, request.qat, to.out_dir, log)
        if trained is None:
            return {}, None
        quant = lower(trained, calibration.batch)
        metrics = evaluate_on(reference, quant, evaluation, loaded.spec)
    summary = {**quant.summary(), "calibration": calibration.info(),
               "accuracy": _named_as_measured(metrics, evaluation, calibration.source), **extra}
    return summary, quant.model


def _named_as_measured(metrics: dict[str, Any], evaluation: LabelledImages | None,
                       calibration_source: str) -> dict[str, Any]:
    """The manifest's accuracy section, each number named for what it measured: with --eval, top-1 on its images;
    without, the budget's 'drop' is disagreement with fp32 on the calibration images and is called so."""
    if evaluation is not None:
        return {**metrics, "eval_data": evaluation.describe()}
    if "abs_rel" in metrics:  # a depth map's measures, against FP32 on the calibration images
        truth = "ground_truth: against the --eval depth maps" if "ground_truth" in metrics else "no ground truth"
        return {**metrics, "measured_on": f"{metrics['images']} calibration images of {calibration_source} "
                                          f"(against the FP32 model; {truth})"}
    if "drop" not in metrics:  # a cosine (tokens, embeddings) names itself
        return metrics
    renamed = {{"drop": "disagreement", "merge_drop": "merge_disagreement"}.get(key, key): value
               for key, value in metrics.items()}
    return {**renamed, "measured_on": f"{metrics['images']} calibration images of {calibration_source} (unlabelled)"}
