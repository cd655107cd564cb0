"""What can run here: each runtime, its version, and OpenVINO's devices (for `vit-edge devices`)."""
from __future__ import annotations

import importlib

from vit_edge.runtime.base import RUNTIMES, package_version

__all__ = ["inventory"]

_PACKAGES = {"onnxruntime": ("onnxruntime", "onnx"), "openvino": ("openvino", "openvino"),
             "litert": ("ai-edge-litert", "tflite"), "pytorch": ("torch", "torch")}


def _openvino_devices() -> list[str]:
    try:
        ov = importlib.import_module("openvino")
        core = ov.Core()
        return [f"{d} ({core.get_property(d, 'FULL_DEVICE_NAME')})" for d in core.available_devices]
    except Exception:  # a broken plugin must not hide the other runtimes
        return []


def inventory() -> list[str]:
    lines = []
    for runtime in RUNTIMES:
        package, extra = _PACKAGES[runtime]
        version = package_version(package)
        if version == "not installed":
            lines.append(f"{runtime:<12} not installed (pip install 'vit-edge[{extra}]')")
            continue
        detail = ""
        if runtime == "openvino":
            detail = "  devices: " + (", ".join(_openvino_devices()) or "none")
        elif runtime == "onnxruntime":
            ort = importlib.import_module("onnxruntime")
            detail = "  providers: " + ", ".join(ort.get_available_providers())
        elif runtime == "litert":
            detail = "  delegate: XNNPACK (CPU)"
        lines.append(f"{runtime:<12} {version}{detail}")
    return lines
