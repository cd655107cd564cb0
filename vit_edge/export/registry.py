"""One table of export targets, addressed by name (never by position), imported only when asked for."""
from __future__ import annotations

import importlib

from vit_edge.errors import ConfigError, did_you_mean
from vit_edge.export.base import Exporter

__all__ = ["TARGETS", "get_exporter"]

# name → (module, class). A new target is one module here, one session in runtime/, one conformance test subclass.
TARGETS: dict[str, tuple[str, str]] = {
    "onnx": ("vit_edge.export.onnx", "OnnxExporter"),
    "openvino": ("vit_edge.export.openvino", "OpenVinoExporter"),
    "tflite": ("vit_edge.export.tflite", "TfliteExporter"),
}


def get_exporter(target: str) -> Exporter:
    if target not in TARGETS:
        raise ConfigError(f"unknown target '{target}'{did_you_mean(target, TARGETS)}; known: {', '.join(TARGETS)}")
    module_name, class_name = TARGETS[target]
    return getattr(importlib.import_module(module_name), class_name)()
