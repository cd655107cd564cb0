"""Calibration sources: a dataset name, an image folder, or a .npy/.npz array; all end as a preprocessed batch.

As NNCF's Dataset(source, transform): the source is the user's, the transform is the artifact's input spec.
"""
from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vit_edge.core.errors import DataError
from vit_edge.core.types import InputSpec
from vit_edge.data.datasets import LabelledImages, load_dataset
from vit_edge.data.preprocess import preprocess_uint8
from vit_edge.data.sources import DataOptions, ImageSource

__all__ = ["Calibration", "load_calibration"]


@dataclass(frozen=True)
class Calibration:
    batch: np.ndarray  # float32, preprocessed, in NCHW
    source: str
    fingerprint: str

    def info(self) -> dict[str, object]:
        return {"source": self.source, "images": int(len(self.batch)), "fingerprint": self.fingerprint}


def _from_array(array: np.ndarray, spec: InputSpec, origin: str) -> np.ndarray:
    expected = spec.shape(1)[1:]
    wanted = f"uint8 images (N,H,W[,C]) or preprocessed float32 (N, {', '.join(map(str, expected))})"
    if not isinstance(array, np.ndarray) or array.ndim not in (3, 4):
        shape = getattr(array, "shape", type(array).__name__)
        raise DataError(f"calibration array {origin} has shape {shape}; expected {wanted}")
    if array.dtype == np.uint8:
        return preprocess_uint8(array, spec)
    if not np.issubdtype(array.dtype, np.floating) or array.shape[1:] != expected:
        raise DataError(f"calibration array {origin} is {array.dtype} of shape {array.shape}; expected {wanted}")
    if not np.isfinite(array).all():
        raise DataError(f"calibration array {origin} holds NaN or infinite values; a scale calibrated on them "
                        "would be meaningless")
    return np.ascontiguousarray(array, dtype=np.float32)


def _read_array(path: Path) -> np.ndarray:
    try:
        if path.suffix == ".npz":
            with np.load(path) as bundle:
                key = "images" if "images" in bundle else list(bundle.keys())[0]
                return bundle[key]
        return np.load(path)
    except (OSError, ValueError, IndexError, EOFError, zipfile.BadZipFile) as exc:
        raise DataError(f"cannot read calibration file {path}: {exc}") from exc


def load_calibration(source: str | Path | np.ndarray | LabelledImages | ImageSource, spec: InputSpec, size: int,
                     options: DataOptions = DataOptions()) -> Calibration:
    """Up to `size` calibration images from `source` (labels are not needed: a flat folder will do), through the
    model's eval transform and normalisation; a folder gives `size` images spread over all its classes."""
    import hashlib

    if size < 1:
        raise DataError(f"calibration size {size} must be ≥ 1")
    if not isinstance(source, (str, Path, np.ndarray, LabelledImages, ImageSource)):
        raise DataError(f"calibration data must be a path, a dataset name or an array, not a {type(source).__name__}")
    if isinstance(source, np.ndarray):
        batch, origin = _from_array(source[:size] if source.ndim else source, spec, "(in memory)"), "array"
    elif isinstance(source, LabelledImages):
        batch, origin = preprocess_uint8(source.images[:size], spec), source.source
    elif isinstance(source, ImageSource):
        data = load_dataset(source, spec, limit=size, options=options)
        batch, origin = preprocess_uint8(data.images, spec), data.source
    else:
        path = Path(source)
        if path.suffix in (".npy", ".npz"):
            if not path.is_file():
                raise DataError(f"calibration file {path} does not exist")
            array = _read_array(path)
            batch, origin = _from_array(array[:size] if array.ndim else array, spec, str(path)), str(path)
        else:
            data = load_dataset(source, spec, limit=size, options=options)
            batch, origin = preprocess_uint8(data.images, spec), data.source
    if len(batch) == 0:
        raise DataError(f"calibration data {origin} holds no images")
    return Calibration(batch, origin, hashlib.sha256(batch.tobytes()).hexdigest())
