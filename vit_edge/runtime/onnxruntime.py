"""ONNX Runtime session (CPU execution provider unless another is asked for and installed)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from vit_edge.errors import ArtifactError
from vit_edge.runtime.base import Session, SessionOptions, require

__all__ = ["OnnxRuntimeSession"]


class OnnxRuntimeSession(Session):
    name = "onnxruntime"
    package = "onnxruntime"
    extra = "onnx"

    def __init__(self, model_file: Path, options: SessionOptions) -> None:
        super().__init__(model_file, options)
        ort = require("onnxruntime", self.package, self.extra, "running .onnx files")
        settings = ort.SessionOptions()
        if options.threads:
            settings.intra_op_num_threads = options.threads
            settings.inter_op_num_threads = 1
        settings.log_severity_level = 3
        provider = "CPUExecutionProvider" if options.device.upper() == "CPU" else options.device
        try:
            self._session = ort.InferenceSession(str(model_file), settings, providers=[provider])
        except Exception as exc:  # ORT raises its own Fail/InvalidGraph/NoSuchFile types
            raise ArtifactError(f"ONNX Runtime cannot load {model_file}: {str(exc).splitlines()[0]}") from exc
        self._input = self._session.get_inputs()[0].name

    def run(self, batch: np.ndarray) -> np.ndarray:
        return self._session.run(None, {self._input: np.ascontiguousarray(batch, dtype=np.float32)})[0]

    def info(self) -> dict[str, Any]:
        quantized = b"QuantizeLinear" in self.model_file.read_bytes()  # op types are plain strings in the protobuf
        return {**super().info(), "providers": self._session.get_providers(),
                "precision": "int8" if quantized else "fp32"}
