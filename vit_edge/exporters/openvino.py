"""OpenVINO IR (.xml + .bin) converted straight from PyTorch; FP16 compresses the weights, compute stays FP32."""
from __future__ import annotations

import contextlib
import io
import warnings
from pathlib import Path

import torch

from vit_edge.core.types import InputSpec, Precision
from vit_edge.exporters.base import Exporter, ExportOptions, conversion_error

__all__ = ["OpenVinoExporter"]


class OpenVinoExporter(Exporter):

    def write(self, model: torch.nn.Module, spec: InputSpec, out_dir: Path, options: ExportOptions) -> str:
        import openvino as ov

        if options.precision is Precision.INT8:
            return self._write_int8(model, spec, out_dir, options)
        dynamic_shape = ov.PartialShape([-1, *spec.shape(1)[1:]])
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

        from vit_edge.core.targets import ONNX
        from vit_edge.exporters.registry import get_exporter

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
