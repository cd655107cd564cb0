"""From a loaded model to a written artifact: the FP32 export and the INT8 build (calibrate, quantize or train,
lower for the target), both ending in `write_artifact`. `tune` calls these once per candidate on one loaded model."""
from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from vit_edge.core.errors import ConfigError
from vit_edge.core.options import ExportOptions, check_count, check_flag, check_instance, check_path
from vit_edge.core.output_kinds import Measure, ModelOutput
from vit_edge.core.summaries import Accuracy, QatSummary, QuantSummary
from vit_edge.pipeline.checks import check_images, checked_data_options, int8_lowering, int16_available
from vit_edge.pipeline.loading import check_merge_budget, images_for, masks_for, with_class_names
from vit_edge.pipeline.writing import write_artifact
from vit_edge.runtime.artifact import Artifact

if TYPE_CHECKING:
    from vit_edge.data.datasets import ImageData, LabelledImages
    from vit_edge.data.depth_truth import DepthEval
    from vit_edge.data.masks import MaskedImages
    from vit_edge.data.sources import DataOptions
    from vit_edge.exporters.base import Exporter
    from vit_edge.quantization.dense import DenseScope
    from vit_edge.quantization.qat import QatTraining
    from vit_edge.quantization.recipe import Recipe
    from vit_edge.reading.loaders import LoadedModel

__all__ = ["Destination", "QuantizeConfig", "export_loaded", "quantize_loaded"]


def _default_recipe() -> Recipe:
    from vit_edge.quantization.recipe import Recipe

    return Recipe()


@dataclass(frozen=True)
class Destination:
    """Where an artifact goes and how: the checked exporter, the folder, the options, how images are read."""

    exporter: Exporter
    out_dir: Path
    options: ExportOptions
    reading: DataOptions


@dataclass(frozen=True)
class QuantizeConfig:
    """What quantize is asked for besides the model, the target and the export options, as one config (torchao's
    and NNCF's style): the calibration images, the recipe (its budget included), the labelled evaluation images,
    QAT, and how the model and the images are read. Each field is checked by type here, when the config is built:
    `calib_size="8"` stops before anything is loaded."""

    calib: ImageData | None = None  # any image source or an iterable of batches; quantize refuses None
    recipe: Recipe = field(default_factory=_default_recipe)
    calib_size: int = 256  # the first calib_size images calibrate
    # labelled: top-1 before/after and the --max-drop budget; masks (segmentation); depth maps (a depth model)
    eval_data: ImageData | None = None
    eval_limit: int | None = None  # only the first eval_limit evaluation images
    qat: QatTraining | None = None  # fine-tune with INT8 simulated after PTQ (None: PTQ only)
    data_options: DataOptions | None = None  # how image folders are read and labelled (None: the defaults)
    weights: str | Path | None = None  # a weights file for timm:NAME or a reference ViT
    random_init: bool = False  # an untrained model (recorded in the manifest)

    def __post_init__(self) -> None:
        from vit_edge.quantization.recipe import Recipe

        check_images("calib", self.calib)
        check_images("eval_data", self.eval_data)
        check_instance("recipe", self.recipe, Recipe, "a vit_edge.quantization.Recipe", optional=False)
        check_count("calib_size", self.calib_size)
        check_count("eval_limit", self.eval_limit, optional=True)
        if self.qat is not None:  # whoever built a QatTraining has imported its (torch) module
            from vit_edge.quantization.qat import QatTraining

            check_instance("qat", self.qat, QatTraining, "a vit_edge.quantization.QatTraining")
        checked_data_options(self.data_options)
        check_path("weights", self.weights, optional=True)
        check_flag("random_init", self.random_init)

    @property
    def method(self) -> str:
        return "ptq" if self.qat is None else "qat"

    def calibration_data(self) -> ImageData:
        """`calib`, which quantize cannot do without (refused before the model is loaded)."""
        if self.calib is None:
            raise ConfigError("quantize calibrates on images: pass --calib (a folder, a list or array file, a dataset "
                              "name, or from Python an iterable of batches)")
        return self.calib


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


def quantize_loaded(loaded: LoadedModel, to: Destination, request: QuantizeConfig,
                    log: Callable[[str], None]) -> Artifact | None:
    """The INT8 artifact; None on torchrun ranks other than 0 (rank 0 writes)."""
    output = loaded.model.cfg.model_output
    _check_measures(output, request)
    loaded = with_class_names(loaded, to.reading)
    masks, truth = None, None
    if output.eval_measure is Measure.MIOU:  # segmentation: --eval is images with their masks
        masks = masks_for(loaded, request.eval_data, to.reading, limit=request.eval_limit, log=log)
        evaluation = None if masks is None else masks.as_images()
    elif output.eval_measure is Measure.DEPTH_TRUTH:  # a depth map: --eval is images with their depth maps
        truth = _depth_truth(loaded, request, to, log)
        evaluation = None
    else:
        evaluation = images_for(loaded, request.eval_data, to.reading, labelled=True, limit=request.eval_limit,
                                log=log)
    if to.options.merge:
        check_merge_budget(loaded, evaluation, request.recipe.max_drop, log)
    built = _quantized(loaded, request, to, evaluation, log, masks, truth)
    if built is None:
        return None
    summary, quantized = built
    return write_artifact(to.exporter, quantized, loaded.spec, loaded.source, to.options, to.out_dir, evaluation, log,
                          quantization=summary)


def _check_measures(output: ModelOutput, request: QuantizeConfig) -> None:
    """What the request measures must apply to what the model returns: no top-1 of patch tokens or embeddings."""
    if request.qat is not None:
        output.require(Measure.TOP1, "QAT (--method qat), which trains on labels,", "use --method ptq")
    if request.recipe.max_drop is not None:
        output.require(Measure.TOP1, "--max-drop, a budget in top-1 points,", "leave --max-drop out")
    if request.recipe.max_abs_rel is not None and not output.supports(Measure.ABS_REL):
        raise ConfigError(f"--max-abs-rel is a budget in AbsRel against FP32, a depth map's measure; this model "
                          f"returns {output.words}: leave it out (--max-drop is a classifier's budget)")
    if request.eval_data is not None:  # labels for logits, masks for segmentation, depth maps for depth
        output.require(output.eval_measure or Measure.TOP1, "--eval", "leave --eval out")


def _depth_truth(loaded: LoadedModel, request: QuantizeConfig, to: Destination,
                 log: Callable[[str], None]) -> DepthEval | None:
    """With --eval on a depth model: its images and ground-truth depth at the model's input (a folder of images/ and
    depth/, each map checked by data/depth_truth.check_depth); None without --eval."""
    from vit_edge.data.depth_truth import load_depth_eval

    if request.eval_data is None:
        return None
    if not isinstance(request.eval_data, (str, os.PathLike)):
        raise ConfigError("--eval on a depth model reads a folder of images/ and depth/ (ground truth); give its path")
    truth = load_depth_eval(request.eval_data, loaded.spec, to.reading, request.eval_limit, log)
    log(f"ground truth: {truth.describe()}")
    return truth


def _quantized(loaded: LoadedModel, request: QuantizeConfig, to: Destination, evaluation: LabelledImages | None,
               log: Callable[[str], None], masks: MaskedImages | None = None,
               truth: DepthEval | None = None) -> tuple[QuantSummary, Any] | None:
    """Calibrate, quantize (PTQ within the budget, or QAT), lower for the target: (the manifest's summary, the
    INT8 model to convert); None on torchrun ranks other than 0."""
    from vit_edge.models.dense_heads import DenseModel
    from vit_edge.quantization.budget import evaluate_on, quantize_with_budget
    from vit_edge.quantization.calibration import load_calibration
    from vit_edge.quantization.dense import quantize_dense, truth_metrics
    from vit_edge.quantization.qat_run import run_qat

    recipe = request.recipe
    calibration = load_calibration(request.calibration_data(), loaded.spec.fixed(), request.calib_size, to.reading)
    reference = loaded.unmerged or loaded.model  # accuracy is measured against the model as trained
    lower = int8_lowering(to.options)
    log(f"calibrating on {len(calibration.batch)} images from {calibration.source} ({recipe.calibration}) …")
    qat: QatSummary | None = None
    scope: DenseScope | None = None
    if isinstance(loaded.model, DenseModel):  # QAT, --max-drop and --eval were refused by the output kind
        if to.options.build.no_dense:
            raise ConfigError(f"{to.options.build.words} is not built yet for a dense model: "
                              f"{to.options.build.no_dense}")
        scored = None if masks is None else (masks, loaded.spec)  # preprocessed a batch at a time
        quant, metrics, scope = quantize_dense(loaded.model, recipe, calibration.batch, log, lower, scored)
        if truth is not None:
            metrics = replace(metrics, ground_truth=truth_metrics(loaded.model, quant, truth, loaded.spec, log))
    elif request.qat is None:
        quant, metrics = quantize_with_budget(loaded.vit, recipe, calibration.batch, evaluation, loaded.spec, log,
                                              lower=lower, reference=reference,
                                              int16_kernels=int16_available(to.options))
    else:
        trained, qat = run_qat(loaded, recipe, calibration, evaluation, request.qat, to.out_dir, log)
        if trained is None:
            return None
        quant = lower(trained, calibration.batch)
        metrics = evaluate_on(reference, quant, evaluation, loaded.spec) or Accuracy()
    summary = quant.summary(calibration.info(), _named_as_measured(metrics, evaluation, calibration.source),
                            request.method)
    if scope is not None:  # what the manifest says of a dense model's INT8: its scope
        summary = replace(summary, int8_scope=scope.int8_scope, int8_convs=scope.int8_convs,
                          float_ops=scope.float_ops)
    return replace(summary, qat=qat), quant.model


def _named_as_measured(metrics: Accuracy, evaluation: LabelledImages | None, calibration_source: str) -> Accuracy:
    """The manifest's accuracy section, each number named for what it measured: with --eval, top-1 on its images;
    without, the budget's 'drop' is disagreement with fp32 on the calibration images and is called so."""
    if metrics.eval_data is not None:  # --eval masks describe themselves
        return metrics
    if evaluation is not None:
        return replace(metrics, eval_data=evaluation.describe())
    if metrics.depth is not None or metrics.segmentation is not None:  # against FP32 on the calibration images
        truth = "ground_truth: against the --eval depth maps" if metrics.ground_truth else "no ground truth"
        return replace(metrics, measured_on=f"{metrics.images} calibration images of {calibration_source} "
                                            f"(against the FP32 model; {truth})")
    if metrics.drop is None:  # a cosine (tokens, embeddings) names itself
        return metrics
    return replace(metrics, drop=None, disagreement=metrics.drop, merge_drop=None,
                   merge_disagreement=metrics.merge_drop,
                   measured_on=f"{metrics.images} calibration images of {calibration_source} (unlabelled)")
