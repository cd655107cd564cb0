"""The Exporter extension point: one subclass per target, registered by name in `registry.py`."""
from __future__ import annotations

import importlib
import re
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

import torch

from vit_edge.errors import ConfigError, MissingDependencyError
from vit_edge.export.options import ExportOptions
from vit_edge.types import InputSpec, Layout, Precision

__all__ = ["Exporter", "ExportOptions", "NHWCInput", "conversion_error"]


class NHWCInput(torch.nn.Module):
    """Takes NHWC images (as camera pipelines deliver them) and hands NCHW to the ViT."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x.permute(0, 3, 1, 2))


class Exporter(ABC):
    """Writes one model file for a target; parity and the manifest are the caller's (api.export)."""

    name: str = ""
    suffix: str = ""
    precisions: tuple[Precision, ...] = (Precision.FP32,)
    layouts: tuple[Layout, ...] = (Layout.NCHW, Layout.NHWC)
    requires: tuple[tuple[str, str], ...] = ()  # (import name, pip distribution) the converter needs
    extra: str = ""

    def check_available(self) -> None:
        """Fail before any work when a converter package is missing (converters log to fd 2 on import: hushed)."""
        from vit_edge.runtime.base import native_stderr_silenced

        for module, package in self.requires:
            try:
                with native_stderr_silenced():
                    importlib.import_module(module)
            except ImportError as exc:
                raise MissingDependencyError(package, self.extra, f"export to {self.name}") from exc

    def check_options(self, options: ExportOptions) -> None:
        if options.precision not in self.precisions:
            supported = ", ".join(p.value for p in self.precisions)
            raise ConfigError(f"target {self.name} supports precision {supported}, not {options.precision.value}")
        if options.layout not in self.layouts:
            raise ConfigError(f"target {self.name} does not support layout {options.layout.value}")

    @abstractmethod
    def write(self, model: torch.nn.Module, spec: InputSpec, out_dir: Path, options: ExportOptions) -> str:
        """Convert `model` (already wrapped for the layout) and write it into `out_dir`; return the model file name."""

    def lower_int8(self, quant: Any, calibration: Any) -> Any:
        """The target's rewrite of a QuantizedViT (same scales) before conversion; most targets need none."""
        return quant

    def example_input(self, spec: InputSpec, batch: int = 1) -> torch.Tensor:
        generator = torch.Generator().manual_seed(0)
        return torch.randn(spec.shape(batch), generator=generator)


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def conversion_error(what: str, exc: BaseException) -> BaseException:
    """The one-line ExportError for a converter's exception; a Ctrl-C the converter wrapped stays an interrupt.

    Converters catch KeyboardInterrupt inside and raise their own errors (with terminal colour codes) from it.
    """
    from vit_edge.errors import ExportError

    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, KeyboardInterrupt):
            return KeyboardInterrupt()
        cause = cause.__cause__ or cause.__context__
    lines = [line for line in _ANSI.sub("", str(exc)).strip().splitlines() if line.strip()]
    return ExportError(f"{what} failed: {lines[0] if lines else type(exc).__name__}")
