"""OpenVINO IR (.xml + .bin) converted straight from PyTorch; FP16 compresses the weights, compute stays FP32."""
from __future__ import annotations

import contextlib
import io
import warnings
from pathlib import Path

import torch

from vit_edge.core.errors import ConfigError
from vit_edge.core.targets import ONNX
from vit_edge.core.types import InputSpec, Precision
from vit_edge.exporters.base import Exporter, ExportOptions, conversion_error, spatial_axes

__all__ = ["OpenVinoExporter"]


class OpenVinoExporter(Exporter):

    def write(self, model: torch.nn.Module, spec: InputSpec, out_dir: Path, options: ExportOptions) -> str:
        import openvino as ov

        if options.precision is Precision.INT8:
            return self._write_int8(model, spec, out_dir, options)
        shape = [-1, *spec.shape(1)[1:]]
        if spec.size_multiple:  # any height and width; the model's graph reads them from the input
            for axis in spatial_axes(spec):
                shape[axis] = -1
        dynamic_shape = ov.PartialShape(shape)
        path = out_dir / "model.xml"
        try:
            with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
                warnings.simplefilter("ignore")
                ov_model = ov.convert_model(model, example_input=self.example_input(spec, 2), input=[dynamic_shape])
            ov_model.inputs[0].get_tensor().set_names({"pixel_values"})
            ov_model.outputs[0].get_tensor().set_names({"logits"})
            ov.save_model(ov_model, str(path), compress_to_fp16=options.precision is Precision.FP16)
        except Exception as exc:  # OpenVINO's frontends raise RuntimeError/OpConversionFailure
            raise conversion_error("OpenVINO conversion", exc) from exc
        return path.name

    def _write_int8(self, model: torch.nn.Module, spec: InputSpec, out_dir: Path, options: ExportOptions) -> str:
        """INT8 IR through the QDQ ONNX graph: OpenVINO reads QuantizeLinear/DequantizeLinear as FakeQuantize and
        its CPU plugin runs the matmuls in INT8 with exactly the scales vit-edge chose."""
        import openvino as ov

        from vit_edge.exporters.registry import get_exporter

        _check_resize_through_onnx(model, spec)
        onnx = get_exporter(ONNX.name)
        onnx.check_available()
        from vit_edge.core.outputs import scratch_folder

        with scratch_folder(".vit-edge-ov-", near=out_dir.parent) as tmp:
            onnx_file = Path(tmp) / onnx.write(model, spec, Path(tmp), options)
            try:
                ov_model = ov.convert_model(str(onnx_file))
                ov_model.outputs[0].get_tensor().set_names({"logits"})
                ov.save_model(ov_model, str(out_dir / "model.xml"), compress_to_fp16=False)
            except Exception as exc:  # OpenVINO's ONNX frontend raises RuntimeError/OpConversionFailure
                raise conversion_error("OpenVINO INT8 conversion", exc) from exc
        return "model.xml"


def _check_resize_through_onnx(model: torch.nn.Module, spec: InputSpec) -> None:
    """An INT8 IR of any size whose position table is resampled with antialiasing (timm's models, DINOv2 with
    registers, SigLIP 2) is refused: it goes through ONNX, and OpenVINO's ONNX reader computes an antialiased Resize
    apart from PyTorch (a few % on a cubic upsampling; the float IR, converted from PyTorch, is right)."""
    from vit_edge.models.config import ViTConfig

    if not spec.size_multiple:
        return
    for module in model.modules():
        cfg = getattr(module, "cfg", None)
        if isinstance(cfg, ViTConfig) and cfg.choices.dynamic_size and cfg.pos_embed_antialias and cfg.abs_pos_embed:
            raise ConfigError("--dynamic-size: an INT8 OpenVINO file is converted through ONNX, and OpenVINO's ONNX "
                              "reader resizes this model's position table (antialiased, as timm does) unlike "
                              f"PyTorch; use --target {ONNX.name}, an fp32 or fp16 OpenVINO file, or one size "
                              "(--img-size)")
