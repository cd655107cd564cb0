"""OpenVINO session: CPU, GPU (Intel iGPU), NPU or AUTO, with the inference precision reported as it really ran."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from vit_edge.core.errors import ArtifactError, DeviceError
from vit_edge.core.targets import OPENVINO_RUNTIME
from vit_edge.core.types import SessionInfo
from vit_edge.runtime.base import OpTime, Session, SessionOptions

__all__ = ["OpenVinoSession"]


class OpenVinoSession(Session):
    name = OPENVINO_RUNTIME.name

    @classmethod
    def installation(cls) -> str:
        try:
            import openvino

            core = openvino.Core()
            devices = [f"{d} ({core.get_property(d, 'FULL_DEVICE_NAME')})" for d in core.available_devices]
        except Exception:  # a broken plugin must not hide the other runtimes
            devices = []
        return "devices: " + (", ".join(devices) or "none")

    def __init__(self, model_file: Path, options: SessionOptions) -> None:
        super().__init__(model_file, options)
        ov = self.require("running OpenVINO IR")
        core = ov.Core()
        device = options.accelerator.upper()
        if device not in core.available_devices and device != "AUTO":
            available = ", ".join(core.available_devices)
            raise DeviceError(f"OpenVINO device '{device}' is not present; available: {available}")
        config: dict[str, Any] = {}
        if options.precision_hint and device in ("CPU", "GPU"):
            config["INFERENCE_PRECISION_HINT"] = options.precision_hint
        if options.threads and device == "CPU":
            config["INFERENCE_NUM_THREADS"] = options.threads
        try:
            model = core.read_model(str(model_file))
            if options.batch is not None:  # static shapes: what benchmark_app measures, ~10 % faster on CPU
                shape = model.inputs[0].get_partial_shape()
                shape[0] = options.batch
                model.reshape(shape)
                self.static_batch = options.batch
            self._compiled = core.compile_model(model, device, config)
        except Exception as exc:  # OpenVINO raises RuntimeError with multi-line text
            raise ArtifactError(f"OpenVINO cannot load {model_file}: {str(exc).strip().splitlines()[0]}") from exc
        self._request = self._compiled.create_infer_request()
        self._ov = ov

    def run(self, batch: np.ndarray) -> np.ndarray:
        """Zero-copy input (a tensor over the numpy buffer), as benchmark_app feeds its pre-filled tensors."""
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        self._request.set_input_tensor(self._ov.Tensor(batch, shared_memory=True))
        self._request.infer()
        return self._request.get_output_tensor().data.copy()

    can_profile = True

    def profile(self, batch: np.ndarray, runs: int) -> list[OpTime]:
        """OpenVINO's performance counters (a second compile with PERF_COUNT): each node's time and the precision
        its kernel ran in (exec_type, e.g. brgemm_avx512_amx_I8)."""
        core = self._ov.Core()
        config = {"PERF_COUNT": True}
        for key in ("INFERENCE_PRECISION_HINT", "INFERENCE_NUM_THREADS"):
            try:
                config[key] = self._compiled.get_property(key)
            except Exception:  # noqa: BLE001 - a device without the property keeps its default
                continue
        model = core.read_model(str(self.model_file))
        shape = model.inputs[0].get_partial_shape()
        shape[0] = batch.shape[0]
        model.reshape(shape)
        request = core.compile_model(model, self.options.accelerator.upper(), config).create_infer_request()
        tensor = self._ov.Tensor(np.ascontiguousarray(batch, dtype=np.float32))
        totals: dict[str, OpTime] = {}
        for _ in range(runs):
            request.infer({0: tensor})
            for node in request.profiling_info:
                if str(node.status).endswith("NOT_RUN"):
                    continue
                entry = totals.get(node.node_name) or OpTime(node.node_name, node.node_type,
                                                             _ov_precision(node.exec_type), 0.0)
                totals[node.node_name] = replace(entry, ms=entry.ms + node.real_time.total_seconds() * 1000.0 / runs)
        return list(totals.values())

    def info(self) -> SessionInfo:
        try:
            hint = str(self._compiled.get_property("INFERENCE_PRECISION_HINT")).split("'")[-2]
        except Exception:  # not every device reports the property
            hint = "unknown"
        names = {"float32": "fp32", "bfloat16": "bf16", "float16": "fp16", "f32": "fp32", "bf16": "bf16"}
        precision = names.get(hint, hint)
        if self._runs_int8():
            precision = f"int8+{precision}"
        return replace(super().info(), precision=precision)

    def _runs_int8(self) -> bool:
        """Whether the compiled graph runs any matmul or convolution in u8/i8 (FakeQuantize was honoured)."""
        try:
            for op in self._compiled.get_runtime_model().get_ops():
                info = op.get_rt_info()
                if (info["layerType"].astype(str) in ("FullyConnected", "MatMul", "Convolution")
                        and info["runtimePrecision"].astype(str) in ("u8", "i8")):
                    return True
        except Exception:  # devices other than CPU may not expose a runtime model
            return False
        return False


def _ov_precision(exec_type: str) -> str:
    """The kernel's precision, the suffix of OpenVINO's exec_type (…_I8, …_U8, …_BF16, …_FP32)."""
    suffix = exec_type.rsplit("_", 1)[-1].upper()
    return {"I8": "int8", "U8": "int8", "BF16": "bf16", "F16": "fp16", "FP16": "fp16"}.get(suffix, "fp32")
