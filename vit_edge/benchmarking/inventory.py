"""What can run here: each declared runtime, its version, and what it reports about itself (`vit-edge devices`)."""
from __future__ import annotations

from vit_edge.core.targets import RUNTIMES
from vit_edge.runtime.base import package_version, session_class

__all__ = ["inventory"]


def inventory() -> list[str]:
    lines = []
    for name, declared in RUNTIMES.items():
        version = package_version(declared.package.distribution)
        if version == "not installed":
            lines.append(f"{name:<12} not installed (pip install 'vit-edge[{declared.extra}]')")
            continue
        detail = session_class(name).installation()
        lines.append(f"{name:<12} {version}" + (f"  {detail}" if detail else ""))
    return lines
