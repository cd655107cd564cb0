"""An artifact you can run: its folder, its manifest, and a session in the target's own runtime (no torch)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vit_edge.core.errors import DataError
from vit_edge.core.manifest import Manifest, read_manifest
from vit_edge.core.options import check_path
from vit_edge.core.types import InputSpec, Layout
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
    """The batch as the runtime needs it, or a DataError saying what was expected (shape, layout, dtype). A model
    of any size (spec.size_multiple) takes a batch at its own height and width, where they are multiples of it."""
    if not isinstance(batch, np.ndarray):
        raise DataError(f"expected a numpy array in {_layout_words(spec)}, got {type(batch).__name__}")
    if not np.issubdtype(batch.dtype, np.floating):
        raise DataError(f"expected a preprocessed float32 batch, got {batch.dtype} (uint8 images go through "
                        "vit_edge.data.preprocess.preprocess_uint8 with the manifest's input_spec first)")
    expected = _expected_shape(batch, spec)
    if batch.ndim != 4 or tuple(batch.shape[1:]) != tuple(expected) or batch.shape[0] < 1:
        hint = ""
        if batch.ndim == 4 and tuple(batch.shape[1:]) == (expected[1], expected[2], expected[0]):
            hint = " (it looks like NHWC)"
        elif batch.ndim == 4 and tuple(batch.shape[1:]) == (expected[2], expected[0], expected[1]):
            hint = " (it looks like NCHW)"
        raise DataError(f"expected a batch in {_layout_words(spec)}, got shape {tuple(batch.shape)}{hint}")
    return np.ascontiguousarray(batch, dtype=np.float32)


def _expected_shape(batch: np.ndarray, spec: InputSpec) -> tuple[int, ...]:
    """The (C, H, W) or (H, W, C) a batch must have: the spec's, or for a model of any size the batch's own height
    and width, once they are checked (a size off the patch is one DataError naming it)."""
    expected = spec.shape(1)[1:]
    if not spec.size_multiple or batch.ndim != 4:
        return expected
    nhwc = spec.layout is Layout.NHWC
    if (batch.shape[3] if nhwc else batch.shape[1]) != spec.channels:
        return expected  # another layout or channel count: said with the expected shape
    height, width = (int(n) for n in (batch.shape[1:3] if nhwc else batch.shape[2:4]))
    problem = spec.size_problem(height, width)
    if problem is not None:
        raise DataError(f"a batch of {height}x{width} inputs: {problem}; resize the images to such a size "
                        "(Artifact.preprocess does)")
    return tuple(int(n) for n in batch.shape[1:])


def _layout_words(spec: InputSpec) -> str:
    """'NCHW (N, 3, 56, 56)', or for a model of any size 'NCHW (N, 3, H, W), H and W multiples of 14'."""
    if not spec.size_multiple:
        return f"{spec.layout.value} (N, {', '.join(map(str, spec.shape(1)[1:]))})"
    dims = "H, W, " + str(spec.channels) if spec.layout is Layout.NHWC else f"{spec.channels}, H, W"
    return f"{spec.layout.value} (N, {dims}), H and W multiples of {spec.size_multiple}"
