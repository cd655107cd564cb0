"""Runtimes that run artifacts; imports neither torch nor the models package (boards have neither)."""
from __future__ import annotations

from pathlib import Path

from vit_edge.artifact import Manifest, read_manifest
from vit_edge.runtime.base import DEFAULT_RUNTIME, RUNTIMES, Session, SessionOptions, session_class

__all__ = ["DEFAULT_RUNTIME", "RUNTIMES", "Session", "SessionOptions", "open_session"]


def open_session(
    artifact: str | Path,
    runtime: str | None = None,
    options: SessionOptions | None = None,
    manifest: Manifest | None = None,
) -> Session:
    """Load an artifact's model file in `runtime` (default: the target's own runtime)."""
    root = Path(artifact)
    manifest = manifest or read_manifest(root)
    cls = session_class(runtime or DEFAULT_RUNTIME[manifest.target])
    return cls(root / manifest.model_file, options or SessionOptions())
