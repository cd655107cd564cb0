"""vit-edge: take a trained Vision Transformer from PyTorch to an edge device, verified and measured.

`import vit_edge` is light: torch, the converters and the runtimes are imported only by the verbs that need them.
"""
from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["__version__", "export", "quantize", "info", "load_model", "Artifact", "ExportOptions"]

from vit_edge import export  # the callable subpackage: vit_edge.export(model, target=...)
from vit_edge import quantize  # likewise: vit_edge.quantize(model, target=..., calib=...)


def __getattr__(name: str) -> Any:
    if name in ("info", "Artifact", "ExportOptions"):
        from vit_edge import api

        return getattr(api, name)
    if name == "load_model":
        from vit_edge.models.loaders import load_model

        return load_model
    raise AttributeError(f"module 'vit_edge' has no attribute {name!r}")
