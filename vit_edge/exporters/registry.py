"""The exporter of a declared target (`core/targets.py`), imported only when asked for."""
from __future__ import annotations

from vit_edge.core.targets import resolve, target
from vit_edge.exporters.base import Exporter

__all__ = ["get_exporter"]


def get_exporter(name: str) -> Exporter:
    """The exporter for target `name`, bound to its declaration (precisions, packages, extra)."""
    declared = target(name)
    exporter: Exporter = resolve(declared.exporter)(declared)
    return exporter
