"""INT8 quantization of the ViT's matmuls (PTQ, QAT) and the per-target rewrites that keep one set of scales.

Importing the package stays light: torch is loaded by the submodules that need it.
"""
from __future__ import annotations

import importlib
from typing import Any

__all__ = ["Recipe", "quantize_model", "QuantizedViT", "QatConfig", "QatTraining"]

_LAZY = {"Recipe": "vit_edge.quantization.recipe", "quantize_model": "vit_edge.quantization.ptq",
         "QuantizedViT": "vit_edge.quantization.ptq", "QatConfig": "vit_edge.quantization.qat",
         "QatTraining": "vit_edge.quantization.qat"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'vit_edge.quantization' has no attribute {name!r}")
