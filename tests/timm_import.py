"""Real timm inside the tests, without torchvision.

timm imports torchvision when it is imported (FrozenBatchNorm2d, transforms), although its ViTs never call it,
and PyPI's torchvision is a CUDA build that cannot load beside the CPU torch. The Makefile installs timm with
--no-deps; this puts an empty stand-in for torchvision in sys.modules first, so the modules the tests build are
timm's real VisionTransformer code.
"""
from __future__ import annotations

import enum
import sys
import types
from typing import Any

__all__ = ["import_timm"]

_MODULES = ["torchvision", "torchvision.ops", "torchvision.ops.misc", "torchvision.transforms",
            "torchvision.transforms.functional", "torchvision.datasets", "torchvision.transforms.v2"]


def _stub_torchvision() -> None:
    if "torchvision" in sys.modules:
        return
    for name in _MODULES:
        module = types.ModuleType(name)
        module.__path__ = []  # type: ignore[attr-defined]

        def resolve(attr: str) -> type:  # any class name resolves to an unused class
            if attr.startswith("__"):
                raise AttributeError(attr)
            return type(attr, (), {})

        module.__getattr__ = resolve  # type: ignore[method-assign]
        sys.modules[name] = module
        if "." in name:
            parent, child = name.rsplit(".", 1)
            setattr(sys.modules[parent], child, module)
    modes = enum.Enum("InterpolationMode", "NEAREST BILINEAR BICUBIC BOX HAMMING LANCZOS NEAREST_EXACT")
    sys.modules["torchvision.transforms.functional"].InterpolationMode = modes  # type: ignore[attr-defined]
    sys.modules["torchvision.transforms"].InterpolationMode = modes  # type: ignore[attr-defined]


def import_timm() -> Any:
    """timm, imported beside a torchvision stand-in (a real torchvision, where one loads, is left alone)."""
    try:
        import torchvision  # noqa: F401
    except Exception:  # noqa: BLE001 - a CUDA torchvision raises OSError/RuntimeError on import
        for name in list(sys.modules):
            if name.startswith("torchvision"):
                del sys.modules[name]
        try:  # transformers asks importlib whether torchvision exists when first imported; ask before the stand-in
            import transformers  # noqa: F401
        except ImportError:
            pass
        _stub_torchvision()
    import timm

    return timm
