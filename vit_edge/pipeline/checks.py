"""The checks a verb runs before it loads anything: bad input costs a second, not a conversion."""
from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np

from vit_edge.core.errors import ConfigError
from vit_edge.core.options import ExportOptions, ReIDOptions, check_instance
from vit_edge.core.outputs import check_writable
from vit_edge.core.targets import TARGETS, resolve
from vit_edge.core.types import Layout

if TYPE_CHECKING:
    from vit_edge.data.sources import DataOptions
    from vit_edge.exporters.base import Exporter
    from vit_edge.quantization.ptq import QuantizedViT
    from vit_edge.quantization.recipe import Recipe

__all__ = ["ModelSource", "resolve_options", "default_output_dir", "checked_exporter", "check_images",
           "checked_data_options", "checked_int16_request", "int16_available", "int8_lowering"]

# What names a model: a name (shipped, reference, timm:NAME), a path (HF folder, checkpoint) or a module in memory
ModelSource = Any


def resolve_options(target: str, options: ExportOptions | None, fields: dict[str, Any]) -> ExportOptions:
    """One ExportOptions from an options object and/or its fields as keywords (the keywords win); a ReIDOptions
    field (camera=1) is a keyword too."""
    if not isinstance(target, str) or not target:
        raise ConfigError(f"target must be a target name ({', '.join(TARGETS)}), got {target!r}")
    if options is not None and not isinstance(options, ExportOptions):
        raise ConfigError(f"options must be a vit_edge.ExportOptions, not a {type(options).__name__}")
    reid = {name: fields.pop(name) for name in list(fields) if name in ReIDOptions.__dataclass_fields__}
    unknown = set(fields) - set(ExportOptions.__dataclass_fields__)
    if unknown:
        raise ConfigError(f"unknown export option(s): {', '.join(sorted(unknown))}")
    base = options or ExportOptions(target=target)
    if reid:
        fields["reid"] = replace(fields.get("reid", base.reid), **reid)
    return replace(base, target=target if options is None else base.target, **fields)


def default_output_dir(model: ModelSource, options: ExportOptions) -> Path:
    """artifacts/<model>-<target>-<precision>[-<size>][-dynamic][-nhwc][-merge<r>][-<output>[-l<blocks>]][-cam<c>v<v>]:
    predictable, never a user's existing file, and another name for each choice that makes another artifact (the
    docs' plain and merged exports of one model no longer collide)."""
    stem = Path(str(model)).stem if isinstance(model, (str, Path)) else type(model).__name__
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", stem.replace("timm:", "timm-")).strip("_") or "model"
    parts = [stem, options.target, options.precision.value]
    if options.img_size:
        size = options.img_size
        parts.append(str(size) if isinstance(size, int) else f"{size[0]}x{size[1]}")
    if options.dynamic_size:
        parts.append("dynamic")
    if options.layout is Layout.NHWC:
        parts.append("nhwc")
    if options.merge:
        parts.append(f"merge{options.merge}")
    if options.output != "pooled":
        parts.append(options.output + (f"-l{'.'.join(map(str, options.layers))}" if options.layers else ""))
    if options.ort_fusions:
        parts.append("ort")
    if options.reid.camera or options.reid.view:
        parts.append(f"cam{options.reid.camera}v{options.reid.view}")
    return Path("artifacts") / "-".join(parts)


def checked_exporter(model: ModelSource, options: ExportOptions, out: str | Path | None,
                     data: Sequence[Any] = ()) -> tuple[Exporter, Path]:
    """The target's exporter after every check that needs no model: fail before the slow part. `--out` must be
    new, or with --force a vit-edge artifact that is not the model, the data, or the current folder."""
    from vit_edge.core.outputs import OutputKind, check_output
    from vit_edge.exporters.registry import get_exporter

    exporter = get_exporter(options.target)
    exporter.check_options(options)
    exporter.check_available(options.build)
    out_dir = Path(out) if out is not None else default_output_dir(model, options)
    reads = [("the model", model), *(("the data", source) for source in data)]
    check_output(out_dir, OutputKind.ARTIFACT, options.force, reads)
    check_writable(out_dir.parent)
    return exporter, out_dir


def check_images(name: str, value: Any, optional: bool = True) -> None:
    """An image source as the readers take it: a path or dataset name, an array, a source object, or an iterable
    of batches (a list's items checked here, so `[1]` stops before the model has loaded)."""
    import os

    from vit_edge.data.datasets import LabelledImages
    from vit_edge.data.iterables import is_batch_iterable, list_problem
    from vit_edge.data.sources import ImageSource

    if is_batch_iterable(value):
        problem = list_problem(value)
        if problem is not None:
            raise ConfigError(f"{name}: {problem}")
        return
    kinds = (str, os.PathLike, np.ndarray, ImageSource, LabelledImages)
    check_instance(name, value, kinds, "a folder, a list or array file, a dataset name, an array or an iterable "
                   "of batches (a generator, a DataLoader, vit_edge.data.Dataset)", optional)


def checked_data_options(options: Any) -> DataOptions:
    """How to read image folders: the caller's DataOptions, or the defaults."""
    from vit_edge.data.sources import DataOptions

    if options is None:
        return DataOptions()
    if not isinstance(options, DataOptions):
        raise ConfigError(f"data_options must be a vit_edge.data.DataOptions, not a {type(options).__name__}")
    return options


INT16_ONNX_OPSET = 21  # ONNX's QuantizeLinear/DequantizeLinear take 16-bit types from opset 21


def checked_int16_request(recipe: Recipe, options: ExportOptions) -> ExportOptions:
    """--int16 (Recipe.int16) only where the target has 16-bit activation kernels, before anything is loaded; an
    ONNX export that may hold 16-bit activations (asked for, or a budget that may choose them) at opset 21 at least.
    The options to export with."""
    if not recipe.int16:
        may_widen = recipe.max_drop is not None and int16_available(options)
        return _int16_opset(options) if may_widen else options
    if options.ort_fusions:
        raise ConfigError("--ort-fusions fuses INT8 matmuls only, and --int16 (Recipe.int16) keeps some in 16 bits: "
                          "use one or the other")
    if not int16_available(options):
        raise ConfigError(f"--int16 (Recipe.int16) asks for 16-bit activations, but {options.build.no_int16}; or "
                          "leave --int16 out (every op INT8)")
    return _int16_opset(options)


def _int16_opset(options: ExportOptions) -> ExportOptions:
    """The options with an opset that takes 16-bit Q/DQ, where the target has an opset (ONNX)."""
    if "opset" not in options.build.target.accepts:
        return options
    return replace(options, opset=max(options.opset, INT16_ONNX_OPSET))


def int16_available(options: ExportOptions) -> bool:
    """Whether the file these options make can hold 16-bit activations (the target's or sub-target's declaration
    says; ONNX Runtime's fused graph fuses INT8 matmuls only)."""
    return not options.ort_fusions and not options.build.no_int16


def int8_lowering(options: ExportOptions) -> Callable[[QuantizedViT, np.ndarray], QuantizedViT]:
    """The declared rewrite of a QuantizedViT before conversion (same scales), the target's or its sub-target's
    (an Ethos-U's: every tensor integer); most targets need none."""
    reference = options.build.int8_lowering
    if reference is None:
        return lambda quant, _calibration: quant
    lowering: Callable[[QuantizedViT, np.ndarray], QuantizedViT] = resolve(reference)
    return lowering
