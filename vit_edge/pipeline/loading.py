"""Loading: the model as the export options ask for it, and data prepared for that model."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from vit_edge.core.errors import ConfigError
from vit_edge.core.options import ExportOptions

if TYPE_CHECKING:
    from vit_edge.data.datasets import ImageData, LabelledImages
    from vit_edge.data.sources import DataOptions
    from vit_edge.reading.loaders import LoadedModel

__all__ = ["load", "with_class_names", "images_for", "check_merge_budget"]


def load(model: Any, weights: str | Path | None, random_init: bool, options: ExportOptions) -> LoadedModel:
    """`model` with the load choices in `options`: input size, TransReID selection, merge, output and layers."""
    from vit_edge.reading.loaders import ReIDSelection, load_model

    reid = ReIDSelection(camera=options.camera, view=options.view, neck_feat=options.neck_feat, stride=options.stride,
                         num_heads=options.num_heads, img_size=options.img_size)
    return load_model(model, weights=weights, random_init=random_init, img_size=options.img_size, reid=reid,
                      merge=options.merge, output=options.output, layers=options.layers, max_depth=options.max_depth)


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
                   source={**loaded.source, "class_names_from": str(reading.class_names)})


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


def check_merge_budget(loaded: LoadedModel, evaluation: LabelledImages | None, max_drop: float | None,
                       log: Callable[[str], None]) -> None:
    """What token merging costs: top-1 with and without it on labelled data, recorded in the model's source;
    ConfigError when over `max_drop`."""
    from vit_edge.reading.torch_session import torch_runner
    from vit_edge.runtime.accuracy import predict_logits, top1_accuracy

    record: dict[str, Any] = {"r": loaded.model.cfg.choices.merge, "tokens_per_block": loaded.tokens_per_block}
    if evaluation is not None and loaded.unmerged is not None:
        top1 = {name: top1_accuracy(predict_logits(torch_runner(module), evaluation, loaded.spec),
                                   evaluation.labels)
                for name, module in (("unmerged", loaded.unmerged), ("merged", loaded.model))}
        record.update(images=len(evaluation), top1_unmerged=top1["unmerged"], top1_merged=top1["merged"],
                      drop=top1["unmerged"] - top1["merged"])
        log(f"token merging (r={record['r']}): top-1 {top1['unmerged']:.2f}% → {top1['merged']:.2f}% "
            f"on {len(evaluation)} images")
        if max_drop is not None and record["drop"] > max_drop:
            raise ConfigError(f"--merge {record['r']} alone costs {record['drop']:.2f} top-1 points on "
                              f"{evaluation.source}, over --max-drop {max_drop}; lower --merge")
    loaded.record_merge(record)
