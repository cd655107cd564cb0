"""Convert, verify, write: an artifact folder appears complete, with its manifest and parity, or not at all."""
from __future__ import annotations

import importlib.metadata
import platform
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from vit_edge.core.errors import ConfigError, ParityError, VitEdgeError, first_line
from vit_edge.core.identity import Provenance
from vit_edge.core.manifest import NUMERICS_CHECK, Manifest
from vit_edge.core.options import ExportOptions
from vit_edge.core.outputs import OutputKind, staged_folder
from vit_edge.core.parity import ParityCheck, SizeParity
from vit_edge.core.summaries import QuantSummary
from vit_edge.core.targets import resolve, tool_packages
from vit_edge.core.types import InputSpec
from vit_edge.runtime.artifact import Artifact

if TYPE_CHECKING:
    import torch

    from vit_edge.core.output_kinds import ModelOutput
    from vit_edge.data.datasets import LabelledImages
    from vit_edge.exporters.base import Exporter
    from vit_edge.runtime.base import Session

__all__ = ["NUMERICS_CHECK_SAMPLES", "PARITY_SAMPLES_PER_SIZE", "write_artifact", "parity_inputs", "parity_sizes",
           "tool_versions"]

NUMERICS_CHECK_SAMPLES = 4  # inputs every device re-runs before its numbers are reported (bench's numerics gate)


def tool_versions() -> dict[str, str]:
    """Python's and every declared package's version, as recorded in a manifest (what is not installed is left out)."""
    versions = {"python": platform.python_version()}
    for name in tool_packages():
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def parity_inputs(spec: InputSpec, count: int, data: LabelledImages | None = None) -> np.ndarray:
    """Preprocessed inputs for parity: real images when a dataset is given, smooth synthetic images otherwise."""
    from vit_edge.data.preprocess import preprocess_uint8
    from vit_edge.data.synthetic import smooth_images

    if count < 1:
        raise ConfigError("parity needs at least one sample")
    images = data.images[:count] if data is not None else smooth_images(count, spec.img_size, spec.channels)
    return preprocess_uint8(images, spec)


def write_artifact(exporter: Exporter, module: torch.nn.Module, spec: InputSpec, source: Provenance,
                   options: ExportOptions, out_dir: Path, dataset: LabelledImages | None, log: Callable[[str], None],
                   quantization: QuantSummary | None = None) -> Artifact:
    """Convert, write the manifest, check parity against `module`, and rename into place (or leave nothing)."""
    from vit_edge.models.layout import module_to_convert

    with staged_folder(out_dir, OutputKind.ARTIFACT, options.force) as staging:
        log(f"exporting to {options.target} ({options.precision.value}) …")
        torch_model, spec = module_to_convert(module, options.layout), spec.with_(layout=options.layout)
        model_file = exporter.write(torch_model, spec, staging, options)
        manifest = Manifest(
            target=options.target, precision=options.precision, model_file=model_file, input_spec=spec,
            source=source, export_options=_options_json(options), quantization=quantization,
            tool_versions=tool_versions(),
        )
        if options.verify:
            log(f"checking parity on {options.parity_samples} inputs in {options.target}'s runtime …")
            manifest.parity = _verify(torch_model, spec, staging, manifest, options, dataset)
        if quantization is not None and quantization.accuracy.int8_top1 is not None and dataset is not None:
            log(f"scoring the artifact in {options.target}'s runtime on {len(dataset)} images …")
            manifest.quantization = _scored_in_runtime(staging, manifest, quantization, dataset)
        build = options.build
        if build.sub_target is not None:  # compiled for its configuration (Vela for an Ethos-U): its estimate
            compile_for = resolve(build.sub_target.compiler)
            manifest.npu_estimate = compile_for(staging / model_file, staging, build.configuration, log)
        manifest.record_files(staging)
        manifest.write(staging)
    return Artifact(out_dir, manifest)


def _scored_in_runtime(staging: Path, manifest: Manifest, summary: QuantSummary,
                       dataset: LabelledImages) -> QuantSummary:
    """The manifest's INT8 top-1 is what the target's runtime scores on the artifact; PyTorch's simulation of it
    stays beside it, named as such (the two differ by a few images: the runtimes round differently)."""
    from vit_edge.quantization.recipe import Recipe
    from vit_edge.runtime import SessionOptions, open_session
    from vit_edge.runtime.accuracy import predict_logits, top1_accuracy

    session = open_session(staging, options=SessionOptions(precision_hint="f32"), manifest=manifest)
    top1 = top1_accuracy(predict_logits(session.run, dataset, manifest.input_spec), dataset.labels)
    accuracy, fp32 = summary.accuracy, summary.accuracy.fp32_top1 or 0.0
    simulated = accuracy.int8_top1 or 0.0
    budget = Recipe.from_json(summary.recipe).max_drop  # met on the simulation; say whether the file meets it too
    accuracy = replace(accuracy, int8_top1_simulated=simulated, int8_top1=top1, drop=fp32 - top1,
                       int8_top1_measured_in=session.name, drop_simulated=fp32 - simulated,
                       budget_met_in_runtime=None if budget is None else round(fp32 - top1, 6) <= budget)
    return replace(summary, accuracy=accuracy)


PARITY_SAMPLES_PER_SIZE = 2  # inputs compared at each size besides the default, for an artifact of any size


def parity_sizes(spec: InputSpec) -> list[tuple[int, int]]:
    """Two sizes besides the default at which an artifact of any size is checked: taller and narrower, then shorter
    and wider (in patches: +2 rows and -1 column, -1 row and +3 columns, two at least), so neither side's resampling
    of the position table nor the head's resize goes unchecked."""
    step = spec.size_multiple
    rows, cols = spec.height // step, spec.width // step
    return [((rows + 2) * step, max(2, cols - 1) * step), (max(2, rows - 1) * step, (cols + 3) * step)]


def _run_written(session: Session, inputs: np.ndarray, target: str, size: tuple[int, int] | None) -> np.ndarray:
    """The written file's outputs in its runtime; a runtime that fails on it is a ParityError in one line (the
    file is not written), not the runtime's traceback."""
    try:
        return session.run(inputs)
    except VitEdgeError:
        raise
    except Exception as exc:  # each runtime raises its own types (ONNX Runtime's Fail, OpenVINO's RuntimeError, ...)
        at = f" at {size[0]}x{size[1]}" if size is not None else ""
        raise ParityError(f"the {target} artifact fails in its runtime{at} ({first_line(exc)[:300]}); nothing was "
                          "written: export it at one size (--img-size) or report the model") from exc


def _parity_at_other_sizes(torch_model: torch.nn.Module, spec: InputSpec, session: Session,
                           options: ExportOptions, output: ModelOutput) -> tuple[SizeParity, ...]:
    """Parity at `parity_sizes` on synthetic smooth images (a data set holds its images at the default size);
    ParityError where the artifact and PyTorch part at any of them."""
    from vit_edge.core.parity import check_parity
    from vit_edge.data.preprocess import preprocess_uint8
    from vit_edge.data.synthetic import smooth_images
    from vit_edge.reading.torch_session import torch_runner

    results = []
    count = min(options.parity_samples, PARITY_SAMPLES_PER_SIZE)
    for height, width in parity_sizes(spec):
        exact = spec.with_(img_size=(height, width), keep_aspect_ratio=False)  # the images as they are
        inputs = preprocess_uint8(smooth_images(count, (height, width), spec.channels, seed=height * width), exact)
        result = check_parity(torch_runner(torch_model)(inputs),
                              _run_written(session, inputs, options.target, (height, width)), options.precision,
                              f"the {options.target} artifact at {height}x{width}", output)
        results.append(SizeParity(size=(height, width), samples=count, passed=result.passed,
                                  min_cosine=result.min_cosine, max_abs_diff=result.max_abs_diff))
    return tuple(results)


def _options_json(options: ExportOptions) -> dict[str, Any]:
    size = options.img_size if options.img_size is None or isinstance(options.img_size, int) else list(options.img_size)
    return {"precision": options.precision.value, "img_size": size, "layout": options.layout.value,
            "verify": options.verify, "parity_samples": options.parity_samples, "opset": options.opset,
            "merge": options.merge, "output": options.output, "layers": list(options.layers),
            **({"dynamic_size": "any height and width that are multiples of the patch (input_spec.size_multiple); "
                                "img_size is the default"} if options.dynamic_size else {}),
            **({"ort_fusions": "ONNX Runtime's extended-level graph (com.microsoft operators): runs in ONNX Runtime "
                               "only"} if options.ort_fusions else {})}


def _verify(torch_model: torch.nn.Module, spec: InputSpec, staging: Path, manifest: Manifest, options: ExportOptions,
            dataset: LabelledImages | None) -> ParityCheck:
    """Parity of the written file in its runtime against `torch_model`; keeps a few inputs for bench's gate."""
    from vit_edge.core.parity import check_parity
    from vit_edge.reading.torch_session import torch_runner
    from vit_edge.runtime import SessionOptions, open_session

    inputs = parity_inputs(spec, options.parity_samples, dataset)
    reference = torch_runner(torch_model)(inputs)
    session = open_session(staging, options=SessionOptions(precision_hint="f32"), manifest=manifest)
    verdict = check_parity(reference, _run_written(session, inputs, options.target, None), options.precision,
                           f"the {options.target} artifact", manifest.output)
    other_sizes = (_parity_at_other_sizes(torch_model, spec, session, options, manifest.output)
                   if spec.size_multiple else None)
    np.savez(staging / NUMERICS_CHECK, inputs=inputs[:NUMERICS_CHECK_SAMPLES],
             outputs=reference[:NUMERICS_CHECK_SAMPLES].astype(np.float32))
    return ParityCheck(**vars(verdict), inputs=dataset.source if dataset is not None else "synthetic smooth images",
                       runtime=session.info(), other_sizes=other_sizes, numerics_check=NUMERICS_CHECK)
