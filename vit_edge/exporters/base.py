"""The Exporter extension point: one subclass per target, named by the target's declaration in core/targets.py."""
from __future__ import annotations

import importlib
import importlib.util
from abc import ABC, abstractmethod
from pathlib import Path

import torch

from vit_edge.core.errors import ConfigError, MissingDependencyError
from vit_edge.core.options import ExportOptions
from vit_edge.core.targets import Build, Target, flag
from vit_edge.core.types import InputSpec, Layout, Precision

__all__ = ["Exporter", "ExportOptions", "conversion_error", "spatial_axes"]


class Exporter(ABC):
    """Writes one model file for a target; parity, the manifest and the atomic write are the caller's
    (pipeline/writing.py's write_artifact).

    What the target is (name, precisions, packages) comes from its declaration in core/targets.py.
    """

    layouts: tuple[Layout, ...] = (Layout.NCHW, Layout.NHWC)

    def __init__(self, declaration: Target) -> None:
        self.declaration = declaration

    @property
    def name(self) -> str:
        return self.declaration.name

    def check_available(self, build: Build | None = None) -> None:
        """Fail before any work when a converter package is missing (converters log to fd 2 on import: hushed),
        or the tool of the sub-target `build` chose (found, not imported: it runs as its own process)."""
        from vit_edge.runtime.base import native_stderr_silenced

        for package in self.declaration.packages:
            try:
                with native_stderr_silenced():
                    importlib.import_module(package.module)
            except ImportError as exc:
                raise MissingDependencyError(package.distribution, self.declaration.extra,
                                             f"export to {self.name}") from exc
        sub = build.sub_target if build is not None else None
        if sub is not None and not _found(sub.tool.module):
            raise MissingDependencyError(sub.tool.distribution, sub.extra, f"--{flag(sub.option)} ({sub.name})")

    def check_options(self, options: ExportOptions) -> None:
        build = options.build
        if options.precision not in build.precisions:
            supported = ", ".join(p.value for p in build.precisions)
            hint = ": int8 files come from  vit-edge quantize" if build.precisions == (Precision.INT8,) else ""
            raise ConfigError(f"{build.words} supports precision {supported}, not {options.precision.value}{hint}")
        if options.layout not in self.layouts:
            raise ConfigError(f"target {self.name} does not support layout {options.layout.value}")

    @abstractmethod
    def write(self, model: torch.nn.Module, spec: InputSpec, out_dir: Path, options: ExportOptions) -> str:
        """Convert `model` (already wrapped for the layout) and write it into `out_dir`; return the model file name."""

    def example_input(self, spec: InputSpec, batch: int = 1) -> torch.Tensor:
        generator = torch.Generator().manual_seed(0)
        return torch.randn(spec.shape(batch), generator=generator)


def spatial_axes(spec: InputSpec) -> tuple[int, int]:
    """The input's height and width axes in the spec's layout (what --dynamic-size leaves open)."""
    return (1, 2) if spec.layout is Layout.NHWC else (2, 3)


def _found(module: str) -> bool:
    """Whether `module` (dotted) is installed, without importing it."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a parent missing, or hidden as None in sys.modules
        return False


def conversion_error(what: str, exc: BaseException) -> BaseException:
    """The one-line ExportError for a converter's exception; a Ctrl-C the converter wrapped stays an interrupt.

    Converters catch KeyboardInterrupt inside and raise their own errors (with terminal colour codes) from it.
    """
    from vit_edge.core.errors import ExportError, first_line

    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, KeyboardInterrupt):
            return KeyboardInterrupt()
        cause = cause.__cause__ or cause.__context__
    return ExportError(f"{what} failed: {first_line(exc)}")
