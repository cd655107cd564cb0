"""TFLite/LiteRT through litert-torch (no TensorFlow, no onnx2tf); FP32 or FP16 weights; no Flex op allowed."""
from __future__ import annotations

import contextlib
import io
import logging
import os
import warnings
from pathlib import Path

import torch

from vit_edge.errors import ExportError
from vit_edge.export.base import Exporter, ExportOptions
from vit_edge.types import InputSpec, Precision

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
    name = "tflite"
    suffix = ".tflite"
    precisions = (Precision.FP32, Precision.FP16)
    requires = (("litert_torch", "litert-torch"), ("ai_edge_litert", "ai-edge-litert"))
    extra = "tflite"

    def write(self, model: torch.nn.Module, spec: InputSpec, out_dir: Path, options: ExportOptions) -> str:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        logging.getLogger("torchao").setLevel(logging.ERROR)  # it warns about CUDA kernels a CPU build lacks
        path = out_dir / "model.tflite"
        try:
            with _quiet():
                import litert_torch
                from litert_torch.generative.quantize import quant_recipes

                quant_config = quant_recipes.full_fp16_recipe() if options.precision is Precision.FP16 else None
                edge_model = litert_torch.convert(model.eval(), (self.example_input(spec, 1),),
                                                  quant_config=quant_config)
                edge_model.export(str(path))
        except Exception as exc:  # converter errors come from torch.export, MLIR and the flatbuffer writer
            raise ExportError(f"TFLite conversion failed: {str(exc).strip().splitlines()[0]}") from exc
        assert_builtin_ops_only(path)
        return path.name


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
