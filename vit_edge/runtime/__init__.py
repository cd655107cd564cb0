"""Runtimes that run artifacts; torch-free (a board has neither torch nor the models package)."""
from __future__ import annotations

from pathlib import Path

from vit_edge.core.manifest import Manifest, read_manifest
from vit_edge.runtime.base import Session, SessionOptions, default_runtime, session_class

__all__ = ["Session", "SessionOptions", "default_runtime", "open_session", "session_class"]


def open_session(
    artifact: str | Path,
    runtime: str | None = None,
    options: SessionOptions | None = None,
    manifest: Manifest | None = None,
) -> Session:
    """Load an artifact's model file in `runtime` (default: the target's own runtime)."""
    root = Path(artifact)
    manifest = manifest or read_manifest(root)
    cls = session_class(runtime or default_runtime(manifest.target))
    return cls(root / manifest.model_file, options or SessionOptions())
