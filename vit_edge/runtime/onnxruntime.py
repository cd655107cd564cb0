"""ONNX Runtime session (CPU execution provider unless another is asked for and installed)."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from vit_edge.core.errors import ArtifactError
from vit_edge.core.outputs import scratch_folder
from vit_edge.core.targets import ONNXRUNTIME
from vit_edge.core.types import SessionInfo
from vit_edge.runtime.base import OpTime, Session, SessionOptions

__all__ = ["OnnxRuntimeSession"]


class OnnxRuntimeSession(Session):
    name = ONNXRUNTIME.name

    @classmethod
    def installation(cls) -> str:
        import onnxruntime

        return "providers: " + ", ".join(onnxruntime.get_available_providers())

    def __init__(self, model_file: Path, options: SessionOptions) -> None:
        super().__init__(model_file, options)
        ort = self.require("running .onnx files")
        settings = ort.SessionOptions()
        if options.threads:
            settings.intra_op_num_threads = options.threads
            settings.inter_op_num_threads = 1
        settings.log_severity_level = 3
        provider = "CPUExecutionProvider" if options.accelerator.upper() == "CPU" else options.accelerator
        try:
            self._session = ort.InferenceSession(str(model_file), settings, providers=[provider])
        except Exception as exc:  # ORT raises its own Fail/InvalidGraph/NoSuchFile types
            raise ArtifactError(f"ONNX Runtime cannot load {model_file}: {str(exc).splitlines()[0]}") from exc
        self._input = self._session.get_inputs()[0].name

    def run(self, batch: np.ndarray) -> np.ndarray:
        return self._session.run(None, {self._input: np.ascontiguousarray(batch, dtype=np.float32)})[0]

    can_profile = True

    def profile(self, batch: np.ndarray, runs: int) -> list[OpTime]:
        """ONNX Runtime's own profiler (a second session with profiling on): node time averaged over `runs`."""
        import json

        ort = self.require("running .onnx files")
        settings = ort.SessionOptions()
        settings.enable_profiling = True
        settings.log_severity_level = 3
        if self.options.threads:
            settings.intra_op_num_threads = self.options.threads
        with scratch_folder("vit-edge-ort-profile-") as folder:
            settings.profile_file_prefix = str(Path(folder) / "ort")
            session = ort.InferenceSession(str(self.model_file), settings, providers=self._session.get_providers())
            feed = {self._input: np.ascontiguousarray(batch, dtype=np.float32)}
            session.run(None, feed)  # warm-up, excluded below by averaging over the timed runs only
            for _ in range(runs):
                session.run(None, feed)
            events = json.loads(Path(session.end_profiling()).read_text())
        totals: dict[str, OpTime] = {}
        for event in events:  # ORT's own trace format (Chrome's): read here, where it is written
            if event.get("cat") != "Node" or not str(event.get("name", "")).endswith("_kernel_time"):
                continue
            name, op_type = event["name"][: -len("_kernel_time")], event.get("args", {}).get("op_name", "?")
            entry = totals.get(name) or OpTime(name, op_type, _ort_precision(op_type), 0.0)
            totals[name] = replace(entry, ms=entry.ms + event.get("dur", 0) / 1000.0 / (runs + 1))
        return list(totals.values())

    def info(self) -> SessionInfo:
        quantized = b"QuantizeLinear" in self.model_file.read_bytes()  # op types are plain strings in the protobuf
        return replace(super().info(), providers=tuple(self._session.get_providers()),
                       precision="int8" if quantized else "fp32")


def _ort_precision(op_type: str) -> str:
    """ORT's integer kernels say so in their names (MatMulInteger, QLinearMatMul, DynamicQuantizeMatMul, QGemm)."""
    return "int8" if ("Integer" in op_type or op_type.startswith(("QLinear", "DynamicQuantize", "QGemm"))) else "fp32"
