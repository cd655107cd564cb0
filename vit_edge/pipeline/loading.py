"""Loading: the model as the export options ask for it, and data prepared for that model."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from vit_edge.core.errors import ConfigError
from vit_edge.core.options import ExportOptions

if TYPE_CHECKING:
    from vit_edge.data.datasets import ImageData, LabelledImages
    from vit_edge.data.masks import MaskedImages
    from vit_edge.data.sources import DataOptions
    from vit_edge.reading.loaders import LoadedModel

__all__ = ["load", "with_class_names", "images_for", "masks_for", "check_merge_budget"]


def load(model: Any, weights: str | Path | None, random_init: bool, options: ExportOptions) -> LoadedModel:
    """`model` with the load choices in `options`: input size (or any size), TransReID selection, merge, output and
    layers."""
    from vit_edge.reading.loaders import ReIDSelection, load_model

    chosen = options.reid
    reid = ReIDSelection(camera=chosen.camera, view=chosen.view, neck_feat=chosen.neck_feat, stride=chosen.stride,
                         num_heads=chosen.num_heads, img_size=options.img_size)
    return load_model(model, weights=weights, random_init=random_init, img_size=options.img_size, reid=reid,
                      merge=options.merge, output=options.output, layers=options.layers,
                      dynamic_size=options.dynamic_size, max_depth=options.max_depth)


def with_class_names(loaded: LoadedModel, reading: DataOptions) -> LoadedModel:
    """The model with the names a --class-names file gives its classes, kept in the artifact's input spec (and
    whence in its source) so that bench and every later verb match folders without the flag again."""
    from vit_edge.core.output_kinds import Measure
    from vit_edge.data.labels import given_class_names

    if reading.class_names is None:
        return loaded
    output = loaded.model.cfg.model_output
    if not output.supports(Measure.TOP1):
        raise ConfigError(f"--class-names names class outputs, but this model returns {output.words}: leave "
                          "--class-names out")
    names = given_class_names(reading.class_names, loaded.spec.class_names, loaded.model.cfg.num_classes)
    if names == loaded.spec.class_names:
        return loaded
    return replace(loaded, spec=loaded.spec.with_(class_names=names),
                   source=replace(loaded.source, class_names_from=str(reading.class_names)))


def images_for(loaded: LoadedModel, data: ImageData | None, options: DataOptions, *, labelled: bool,
               limit: int | None = None, log: Callable[[str], None] = lambda _: None) -> LabelledImages | None:
    """`data` prepared for the loaded model: its eval transform, and labels matched to its classes by name."""
    from vit_edge.data.datasets import load_dataset

    if data is None:
        return None
    num_classes = loaded.model.cfg.num_classes if labelled else None
    found = load_dataset(data, loaded.spec, num_classes=num_classes, limit=limit, options=options, progress=log)
    log(f"data: {found.describe()}")
    return found


def masks_for(loaded: LoadedModel, data: ImageData | None, options: DataOptions, *, limit: int | None = None,
              log: Callable[[str], None] = lambda _: None) -> MaskedImages | None:
    """`data` as images with their ground-truth masks for a segmentation model (ADE20K's layout), every mask checked
    against the model's classes (data/masks.check_mask); DataError in one line for data without masks."""
    from vit_edge.core.errors import DataError
    from vit_edge.core.segmentation_metrics import MaskLabels
    from vit_edge.data.datasets import open_data
    from vit_edge.data.masks import MaskedFiles, load_masked

    if data is None:
        return None
    source = open_data(data, options, limit)
    if not isinstance(source, MaskedFiles):
        raise DataError(f"--eval of {loaded.model.cfg.model_output.words} needs ground-truth masks: "
                        f"DIR/images/NAME.jpg with DIR/annotations/NAME.png (ADE20K's layout); {source.origin} is "
                        f"{source.layout}")
    labels = MaskLabels.from_source(loaded.model.cfg.num_classes, loaded.source.mask_labels)
    found = load_masked(source, loaded.spec, labels, progress=log)
    log(f"data: {found.describe()}")
    return found


def check_merge_budget(loaded: LoadedModel, evaluation: LabelledImages | None, max_drop: float | None,
                       log: Callable[[str], None]) -> None:
    """What token merging costs: top-1 with and without it on labelled data, recorded in the model's source;
    ConfigError when over `max_drop`."""
    from vit_edge.core.identity import MergeCost
    from vit_edge.reading.torch_session import torch_runner
    from vit_edge.runtime.accuracy import predict_logits, top1_accuracy

    tokens = loaded.tokens_per_block
    cost = MergeCost(loaded.model.cfg.choices.merge, None if tokens is None else tuple(tokens))
    if evaluation is not None and loaded.unmerged is not None:
        unmerged, merged = (top1_accuracy(predict_logits(torch_runner(module), evaluation, loaded.spec),
                                          evaluation.labels) for module in (loaded.unmerged, loaded.model))
        cost = replace(cost, images=len(evaluation), top1_unmerged=unmerged, top1_merged=merged,
                       drop=unmerged - merged)
        log(f"token merging (r={cost.r}): top-1 {unmerged:.2f}% → {merged:.2f}% on {len(evaluation)} images")
        if max_drop is not None and unmerged - merged > max_drop:
            raise ConfigError(f"--merge {cost.r} alone costs {unmerged - merged:.2f} top-1 points on "
                              f"{evaluation.source}, over --max-drop {max_drop}; lower --merge")
    loaded.record_merge(cost)
