"""The checks a verb runs before it loads anything: bad input costs a second, not a conversion."""
from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np

from vit_edge.core.errors import ConfigError
from vit_edge.core.options import ExportOptions
from vit_edge.core.outputs import check_writable
from vit_edge.core.targets import resolve
from vit_edge.core.targets import target as target_declaration
from vit_edge.core.types import Layout, Precision

if TYPE_CHECKING:
    from vit_edge.data.sources import DataOptions
    from vit_edge.exporters.base import Exporter
    from vit_edge.quantization.ptq import QuantizedViT
    from vit_edge.quantization.recipe import Recipe

__all__ = ["ModelSource", "resolve_options", "default_output_dir", "checked_exporter", "checked_data_options",
           "checked_recipe", "checked_int16_request", "int16_available", "int8_lowering"]

# What names a model: a name (shipped, reference, timm:NAME), a path (HF folder, checkpoint) or a module in memory
ModelSource = Any


def resolve_options(target: str, options: ExportOptions | None, fields: dict[str, Any]) -> ExportOptions:
    """One ExportOptions from an options object and/or its fields as keywords (the keywords win)."""
    if not isinstance(target, str) or not target:
        raise ConfigError(f"target must be a target name such as 'onnx', 'openvino' or 'tflite', got {target!r}")
    if options is not None and not isinstance(options, ExportOptions):
        raise ConfigError(f"options must be a vit_edge.ExportOptions, not a {type(options).__name__}")
    unknown = set(fields) - set(ExportOptions.__dataclass_fields__)
    if unknown:
        raise ConfigError(f"unknown export option(s): {', '.join(sorted(unknown))}")
    base = options or ExportOptions(target=target)
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
    if options.camera or options.view:
        parts.append(f"cam{options.camera}v{options.view}")
    return Path("artifacts") / "-".join(parts)


def checked_exporter(model: ModelSource, options: ExportOptions, out: str | Path | None,
                     data: Sequence[Any] = ()) -> tuple[Exporter, Path]:
    """The target's exporter after every check that needs no model: fail before the slow part. `--out` must be
    new, or with --force a vit-edge artifact that is not the model, the data, or the current folder."""
    from vit_edge.core.outputs import OutputKind, check_output
    from vit_edge.exporters.registry import get_exporter

    exporter = get_exporter(options.target)
    exporter.check_options(options)
    exporter.check_available()
    _check_npu_request(options)
    out_dir = Path(out) if out is not None else default_output_dir(model, options)
    reads = [("the model", model), *(("the data", source) for source in data)]
    check_output(out_dir, OutputKind.ARTIFACT, options.force, reads)
    check_writable(out_dir.parent)
    return exporter, out_dir


def _check_npu_request(options: ExportOptions) -> None:
    """--npu: an INT8 file (Vela compiles integer TFLite only) and Vela installed, before anything is loaded."""
    if options.npu is None:
        return
    if options.precision is not Precision.INT8:
        raise ConfigError(f"--npu compiles an INT8 TFLite for the Ethos-U, not {options.precision.value}: use  "
                          f"vit-edge quantize MODEL --target tflite --npu {options.npu}")
    from vit_edge.exporters.vela import check_vela

    check_vela()


def checked_data_options(options: Any) -> DataOptions:
    """How to read image folders: the caller's DataOptions, or the defaults."""
    from vit_edge.data.sources import DataOptions

    if options is None:
        return DataOptions()
    if not isinstance(options, DataOptions):
        raise ConfigError(f"data_options must be a vit_edge.data.DataOptions, not a {type(options).__name__}")
    return options


def checked_recipe(recipe: Any, calib_size: Any, eval_limit: Any) -> Recipe:
    """quantize's own arguments, type-checked as the CLI's are: a Recipe, counts that are integers ≥ 1."""
    from vit_edge.quantization.recipe import Recipe

    if recipe is not None and not isinstance(recipe, Recipe):
        raise ConfigError(f"recipe must be a vit_edge.quantize Recipe, not a {type(recipe).__name__}")
    for name, value in (("calib_size", calib_size), ("eval_limit", eval_limit)):
        if value is None and name == "eval_limit":
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{name} must be an integer ≥ 1, not {value!r}")
    return recipe or Recipe()


INT16_ONNX_OPSET = 21  # ONNX's QuantizeLinear/DequantizeLinear take 16-bit types from opset 21


def checked_int16_request(recipe: Recipe, options: ExportOptions) -> ExportOptions:
    """--int16 (Recipe.int16) only where the target has 16-bit activation kernels, before anything is loaded; an
    ONNX export that may hold 16-bit activations (asked for, or a budget that may choose them) at opset 21 at least.
    The options to export with."""
    if not recipe.int16:
        may_widen = recipe.max_drop is not None and int16_available(options)
        return replace(options, opset=max(options.opset, INT16_ONNX_OPSET)) if may_widen else options
    if options.ort_fusions:
        raise ConfigError("--ort-fusions fuses INT8 matmuls only, and --int16 (Recipe.int16) keeps some in 16 bits: "
                          "use one or the other")
    if not int16_available(options):
        reason = target_declaration(options.target).no_int16
        raise ConfigError(f"--int16 (Recipe.int16) asks for 16-bit activations, but {reason}; or leave --int16 out "
                          "(every op INT8)")
    return replace(options, opset=max(options.opset, INT16_ONNX_OPSET))


def int16_available(options: ExportOptions) -> bool:
    """Whether the file these options make can hold 16-bit activations (the target's declaration says)."""
    declared = target_declaration(options.target)
    return not options.ort_fusions and (not declared.no_int16 or (declared.int16_with_npu and options.npu is not None))


NPU_LOWERING = "vit_edge.quantization.lowering:quantize_outputs_for_npu"  # TFLite for an Ethos-U (--npu)


def int8_lowering(options: ExportOptions) -> Callable[[QuantizedViT, np.ndarray], QuantizedViT]:
    """The target's declared rewrite of a QuantizedViT before conversion (same scales); most targets need none.
    With --npu, the integer lowering an Ethos-U runs (see lowering.quantize_outputs_for_npu)."""
    reference = NPU_LOWERING if options.npu else target_declaration(options.target).int8_lowering
    if reference is None:
        return lambda quant, _calibration: quant
    lowering: Callable[[QuantizedViT, np.ndarray], QuantizedViT] = resolve(reference)
    return lowering
