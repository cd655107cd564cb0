"""What can run here: each declared runtime, its version, and what it reports about itself (`vit-edge devices`)."""
from __future__ import annotations

from vit_edge.core.targets import RUNTIMES
from vit_edge.runtime.base import package_version, session_class

__all__ = ["inventory"]


def inventory() -> list[str]:
    """One line per runtime, also for one that is installed but broken: the others are still worth listing."""
    lines = []
    for name, declared in RUNTIMES.items():
        version = package_version(declared.package.distribution)
        if version == "not installed":
            lines.append(f"{name:<12} not installed (pip install 'vit-edge[{declared.extra}]')")
            continue
        try:
            detail = session_class(name).installation()
        except Exception as exc:  # a broken build raises anything on import: ImportError, OSError, RuntimeError
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            detail = (f"installed but cannot be imported ({type(exc).__name__}{': ' + reason if reason else ''}); "
                      f"reinstall it: pip install --force-reinstall '{declared.package.distribution}'")
        lines.append(f"{name:<12} {version}" + (f"  {detail}" if detail else ""))
    return lines
