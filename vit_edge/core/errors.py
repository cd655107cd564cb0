"""Error classes: every user-facing failure is a VitEdgeError, printed as one line by the CLI (exit 2).

Anything that is not a VitEdgeError is a bug in vit-edge and keeps its traceback.
"""
from __future__ import annotations

import difflib
import re
from typing import Iterable

__all__ = [
    "VitEdgeError",
    "ConfigError",
    "UnsupportedModelError",
    "MissingDependencyError",
    "ModelLoadError",
    "ExportError",
    "ParityError",
    "ArtifactError",
    "DataError",
    "DeviceError",
    "DiskFullError",
    "did_you_mean",
    "first_line",
]


class VitEdgeError(Exception):
    """Base class of errors caused by the user's input or environment, not by a bug."""


class ConfigError(VitEdgeError):
    """An option or argument has a value that cannot work."""


class UnsupportedModelError(VitEdgeError):
    """The model is not a Vision Transformer vit-edge knows how to handle."""


class ModelLoadError(VitEdgeError):
    """A model file or directory is missing, truncated, corrupt or unsafe."""


class DataError(VitEdgeError):
    """A dataset or calibration source is missing, empty or of the wrong shape."""


class ArtifactError(VitEdgeError):
    """An artifact directory is missing, incomplete or exists already."""


class DiskFullError(ArtifactError):
    """A write found no room: nothing half-written was kept, and every later write would fail the same way."""


class DeviceError(VitEdgeError):
    """A device string does not parse, or the device cannot be reached."""


class ExportError(VitEdgeError):
    """A converter failed; raised `from` the converter's own exception."""


class ParityError(VitEdgeError):
    """The exported artifact does not compute what the PyTorch model computes."""


class MissingDependencyError(VitEdgeError):
    """An optional package is not installed; the message names the extra to install."""

    def __init__(self, package: str, extra: str, purpose: str) -> None:
        super().__init__(
            f"{purpose} needs the Python package '{package}', which is not installed: "
            f"run  pip install 'vit-edge[{extra}]'"
        )
        self.package = package
        self.extra = extra


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """Return ' (did you mean X?)' for the closest choice, or '' when none is close."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.5)
    return f" (did you mean '{close[0]}'?)" if close else ""


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def first_line(exc: BaseException) -> str:
    """The first non-empty line of a third-party exception's message, terminal colour codes removed (its type's name
    when it has none): what a one-line error quotes of a converter's, exporter's or runtime's failure."""
    lines = [line.strip() for line in _ANSI.sub("", str(exc)).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__
