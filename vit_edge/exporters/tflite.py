"""TFLite/LiteRT through litert-torch (no TensorFlow, no onnx2tf); FP32 or FP16 weights; no Flex op allowed."""
from __future__ import annotations

import contextlib
import io
import logging
import os
import warnings
from pathlib import Path
from typing import Any

import torch

from vit_edge.core.errors import ExportError
from vit_edge.core.types import InputSpec, Precision
from vit_edge.exporters.base import Exporter, ExportOptions, conversion_error

__all__ = ["TfliteExporter", "assert_builtin_ops_only"]


def assert_builtin_ops_only(path: Path) -> list[str]:
    """Refuse a file with Flex (Select TF) or custom ops: they need TensorFlow on the device."""
    from vit_edge.runtime.litert import tflite_op_names

    ops = tflite_op_names(path)
    foreign = sorted({op for op in ops if op.startswith("Flex") or op == "CUSTOM"})
    if foreign:
        raise ExportError(f"{path.name} contains ops that need TensorFlow on the device: {', '.join(foreign)}")
    return sorted(set(ops))


class TfliteExporter(Exporter):

    def write(self, model: torch.nn.Module, spec: InputSpec, out_dir: Path, options: ExportOptions) -> str:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        logging.getLogger("torchao").setLevel(logging.ERROR)  # it warns about CUDA kernels a CPU build lacks
        path = out_dir / "model.tflite"
        try:
            with _quiet():
                import litert_torch

                edge_model = litert_torch.convert(model.eval(), (self.example_input(spec, 1),),
                                                  quant_config=_quant_config(options.precision))
                # bytes written by Python, not the converter's LLVM stream: on a full disk that one calls exit(1)
                content = edge_model.model_content()
        except Exception as exc:  # converter errors come from torch.export, MLIR and the flatbuffer writer
            raise conversion_error("TFLite conversion", exc) from exc
        path.write_bytes(content)
        if options.precision is Precision.INT8 and options.build.sub_target is None:  # an NPU runs them in int8
            from vit_edge.exporters.tflite_islands import make_float_islands

            make_float_islands(path)
        assert_builtin_ops_only(path)
        return path.name


def _quant_config(precision: Precision) -> Any:
    """FP16: litert-torch's weight recipe. INT8: the graph already holds our Q/DQ ops with their scales; a static
    PT2E config only switches the converter to lowering them to int8 kernels (it adds no quantizer of its own)."""
    if precision is Precision.FP16:
        from litert_torch.generative.quantize import quant_recipes

        return quant_recipes.full_fp16_recipe()
    if precision is Precision.INT8:
        from litert_torch.quantize import pt2e_quantizer, quant_config

        static = pt2e_quantizer.get_symmetric_quantization_config(is_per_channel=True, is_dynamic=False)
        return quant_config.QuantConfig(pt2e_quantizer=pt2e_quantizer.PT2EQuantizer().set_global(static))
    return None


@contextlib.contextmanager
def _quiet():
    """litert-torch prints progress and its C++ core logs to the process's stderr; keep the CLI's output ours.

    The C++ logs bypass sys.stderr, so file descriptor 2 itself is pointed at /dev/null for the conversion;
    converter failures still arrive as Python exceptions.
    """
    from vit_edge.runtime.base import native_stderr_silenced

    absl_level = logging.getLogger("absl").level
    logging.getLogger("absl").setLevel(logging.ERROR)
    try:
        with native_stderr_silenced(), warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), \
                contextlib.redirect_stderr(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        logging.getLogger("absl").setLevel(absl_level)
