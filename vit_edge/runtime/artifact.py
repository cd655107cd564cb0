"""An artifact you can run: its folder, its manifest, and a session in the target's own runtime (no torch)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vit_edge.core.errors import DataError
from vit_edge.core.manifest import Manifest, read_manifest
from vit_edge.core.options import check_path
from vit_edge.core.types import InputSpec
from vit_edge.runtime import SessionOptions, open_session
from vit_edge.runtime.base import Session

__all__ = ["Artifact", "checked_batch"]


@dataclass
class Artifact:
    """An artifact directory and its manifest; `run` executes it in its own runtime (no torch needed)."""

    path: Path
    manifest: Manifest
    _session: Session | None = field(default=None, repr=False)

    @classmethod
    def open(cls, path: "str | Path | Artifact") -> "Artifact":
        """The artifact at `path`, its files' sha256 checked against the manifest."""
        check_path("path", path)
        return cls(Path(path), read_manifest(Path(path)))

    def __fspath__(self) -> str:
        """An Artifact stands wherever a path to it does: bench([artifact]), info(artifact), Artifact.open."""
        return str(self.path)

    def preprocess(self, images: Any) -> np.ndarray:
        """`images` as this artifact's model takes them: decoded, resized and cropped as it was evaluated,
        normalised with its mean/std, in its layout (see vit_edge.data.batch.IMAGES_HELP for what `images` may be)."""
        from vit_edge.data.batch import as_batch

        return as_batch(images, self.manifest.input_spec)

    def run(self, batch: Any, threads: int | None = None) -> np.ndarray:
        """The model's output for a preprocessed float32 batch in the artifact's layout, or for images as
        `preprocess` takes them (files, PIL images, a uint8 array, a folder)."""
        if not (isinstance(batch, np.ndarray) and np.issubdtype(batch.dtype, np.floating)):
            batch = self.preprocess(batch)
        batch = checked_batch(batch, self.manifest.input_spec)
        if self._session is None:
            self._session = open_session(self.path, options=SessionOptions(threads=threads), manifest=self.manifest)
        return self._session.run(batch)


def checked_batch(batch: Any, spec: InputSpec) -> np.ndarray:
    """The batch as the runtime needs it, or a DataError saying what was expected (shape, layout, dtype)."""
    expected = spec.shape(1)[1:]
    layout = f"{spec.layout.value} (N, {', '.join(map(str, expected))})"
    if not isinstance(batch, np.ndarray):
        raise DataError(f"expected a numpy array in {layout}, got {type(batch).__name__}")
    if not np.issubdtype(batch.dtype, np.floating):
        raise DataError(f"expected a preprocessed float32 batch, got {batch.dtype} (uint8 images go through "
                        "vit_edge.data.preprocess.preprocess_uint8 with the manifest's input_spec first)")
    if batch.ndim != 4 or tuple(batch.shape[1:]) != tuple(expected) or batch.shape[0] < 1:
        hint = ""
        if batch.ndim == 4 and tuple(batch.shape[1:]) == (expected[1], expected[2], expected[0]):
            hint = " (it looks like NHWC)"
        elif batch.ndim == 4 and tuple(batch.shape[1:]) == (expected[2], expected[0], expected[1]):
            hint = " (it looks like NCHW)"
        raise DataError(f"expected a batch in {layout}, got shape {tuple(batch.shape)}{hint}")
    return np.ascontiguousarray(batch, dtype=np.float32)
