"""INT8 quantization of the ViT's matmuls, and the `vit_edge.quantize(...)` verb.

As with `vit_edge.export`, the subpackage itself is callable (forwarding to `vit_edge.api.quantize`), because
Python binds a subpackage over a parent attribute of the same name. Importing it stays light: torch is loaded by
the submodules that need it.
"""
from __future__ import annotations

import importlib
import sys
import types
from typing import Any

__all__ = ["Recipe", "quantize_model", "QuantizedViT", "QatConfig", "QatTraining"]

_LAZY = {"Recipe": "vit_edge.quantize.recipe", "quantize_model": "vit_edge.quantize.ptq",
         "QuantizedViT": "vit_edge.quantize.ptq", "QatConfig": "vit_edge.quantize.qat",
         "QatTraining": "vit_edge.quantize.qat"}


class _CallableQuantizePackage(types.ModuleType):
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from vit_edge.api import quantize

        return quantize(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        if name in _LAZY:
            return getattr(importlib.import_module(_LAZY[name]), name)
        raise AttributeError(f"module 'vit_edge.quantize' has no attribute {name!r}")


sys.modules[__name__].__class__ = _CallableQuantizePackage
