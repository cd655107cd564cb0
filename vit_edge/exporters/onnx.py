"""ONNX through torch.onnx's dynamo exporter: opset ≥ 17, dynamic batch axis (and height and width with
--dynamic-size), constant-folded graph."""
from __future__ import annotations

import contextlib
import io
import logging
import warnings
from pathlib import Path
from typing import Any

import torch

from vit_edge.core.errors import ConfigError, ExportError
from vit_edge.core.types import InputSpec
from vit_edge.exporters.base import Exporter, ExportOptions, conversion_error, spatial_axes
from vit_edge.models.config import MAX_IMAGE_SIDE

__all__ = ["OnnxExporter"]

# Protobuf files cannot exceed 2 GiB; above this many parameter bytes the weights go to an external data file.
EXTERNAL_DATA_BYTES = 1_800_000_000


class OnnxExporter(Exporter):

    def check_options(self, options: ExportOptions) -> None:
        super().check_options(options)
        if options.opset < 17:
            raise ConfigError(f"opset {options.opset} is too old: LayerNormalization needs opset 17 or newer")
        newest = _newest_opset()
        if newest is not None and options.opset > newest:
            raise ConfigError(f"opset {options.opset} is newer than the installed onnx knows ({newest}); use 17 to "
                              f"{newest}")

    def write(self, model: torch.nn.Module, spec: InputSpec, out_dir: Path, options: ExportOptions) -> str:
        # A batch of 2 as example: with batch 1 the exporter specialises the batch axis to a constant.
        example = self.example_input(spec, batch=2)
        param_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
        if options.ort_fusions and param_bytes > EXTERNAL_DATA_BYTES:  # before the slow part
            raise ExportError(f"--ort-fusions writes one protobuf file, and this model's {param_bytes / 2**30:.1f} GiB "
                              "of weights exceed its 2 GiB limit: export the plain ONNX (without --ort-fusions)")
        path = out_dir / "model.onnx"
        onnx_logger = logging.getLogger("torch.onnx")
        level = onnx_logger.level
        onnx_logger.setLevel(logging.ERROR)  # "torchvision is not installed. Skipping torchvision::nms" and kin
        try:
            with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
                warnings.simplefilter("ignore")
                program = torch.onnx.export(
                    model, (example,), dynamo=True, dynamic_shapes=(input_dims(spec),), opset_version=options.opset,
                    optimize=True, input_names=["pixel_values"], output_names=["logits"],
                )
                if program is None:  # only the legacy TorchScript exporter returns nothing
                    raise ExportError("torch.onnx.export returned no program")
                program.save(str(path), external_data=param_bytes > EXTERNAL_DATA_BYTES)
            _drop_initializer_value_info(path)
            if options.ort_fusions:
                from vit_edge.exporters.ort_fusions import fuse_for_onnxruntime

                fuse_for_onnxruntime(path)
        except Exception as exc:  # the exporter raises many internal error types
            raise conversion_error("ONNX export", exc) from exc
        finally:
            onnx_logger.setLevel(level)
        return path.name


def input_dims(spec: InputSpec) -> dict[int, Any]:
    """The input's open axes for torch.export: the batch, and for a model of any size (spec.size_multiple) the height
    and width as multiples of the patch, two at least (torch.export specialises a size of 1, and OpenVINO's cubic
    resize of a one-row grid is another than PyTorch's)."""
    dims: dict[int, Any] = {0: torch.export.Dim("batch", min=1, max=4096)}
    step = spec.size_multiple
    if step:
        for axis, name in zip(spatial_axes(spec), ("rows", "cols")):
            dims[axis] = step * torch.export.Dim(name, min=2, max=MAX_IMAGE_SIDE // step)
    return dims


def _drop_initializer_value_info(path: Path) -> None:
    """Remove the exporter's value_info entries for initializers: some disagree with the constant-folded tensors
    (e.g. a transposed head weight), and onnx's shape inference, which onnxruntime.quantization runs first, then
    fails with a ShapeInferenceError. The tensors themselves say their shapes; external data is left in place."""
    import onnx

    proto = onnx.load(str(path), load_external_data=False)
    initializers = {tensor.name for tensor in proto.graph.initializer}
    kept = [info for info in proto.graph.value_info if info.name not in initializers]
    if len(kept) == len(proto.graph.value_info):
        return
    del proto.graph.value_info[:]
    proto.graph.value_info.extend(kept)
    onnx.save(proto, str(path))


def _newest_opset() -> int | None:
    """The newest opset the installed onnx package defines (None when onnx is missing: check_available says so)."""
    try:
        import onnx
    except ImportError:
        return None
    return int(onnx.defs.onnx_opset_version())
