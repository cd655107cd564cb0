"""Calibration data (`calib`): a dataset name, an image folder, a .npy/.npz array, an array, or an iterable of
batches (a generator, a DataLoader, vit_edge.data.Dataset); all end as one preprocessed batch, `CalibData`.

As NNCF's Dataset(source, transform): the source is the user's, and the model's input spec is the last transform.
"Calibration" alone names the recipe's method (minmax, percentile, ...); the data is always `calib`.
"""
from __future__ import annotations

import hashlib
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vit_edge.core.errors import DataError
from vit_edge.core.summaries import CalibInfo
from vit_edge.core.types import InputSpec, Layout
from vit_edge.data.datasets import ImageData, LabelledImages, load_dataset
from vit_edge.data.iterables import as_dataset, is_batch_iterable, read_batches
from vit_edge.data.preprocess import preprocess_uint8
from vit_edge.data.sources import DataOptions, ImageSource

__all__ = ["CalibData", "load_calibration"]


@dataclass(frozen=True)
class CalibData:
    """The calibration images as the model takes them, where they came from, and their sha256 for the manifest."""

    batch: np.ndarray  # float32, preprocessed, in the spec's layout
    source: str
    fingerprint: str

    def info(self) -> CalibInfo:
        return CalibInfo(self.source, int(len(self.batch)), self.fingerprint)


def _layout_hint(shape: tuple[int, ...], spec: InputSpec) -> str:
    """' (NHWC; the model takes NCHW)' where only the layout is wrong: the usual slip with a DataLoader's tensors."""
    other = Layout.NHWC if spec.layout is Layout.NCHW else Layout.NCHW
    if shape[1:] == spec.with_(layout=other).shape(1)[1:]:
        return f" ({other.value}; the model takes {spec.layout.value})"
    return ""


def _from_array(array: np.ndarray, spec: InputSpec, origin: str) -> np.ndarray:
    """uint8 images through the model's eval transform; a float batch taken as preprocessed, checked to fit."""
    expected = spec.shape(1)[1:]
    wanted = (f"uint8 images (N,H,W[,C]) or a float batch already preprocessed for the model, "
              f"(N, {', '.join(map(str, expected))}) in its {spec.layout.value} layout")
    if not isinstance(array, np.ndarray) or array.ndim not in (3, 4):
        shape = getattr(array, "shape", type(array).__name__)
        raise DataError(f"calibration data {origin} has shape {shape}; expected {wanted}")
    if array.dtype == np.uint8:
        return preprocess_uint8(array, spec)
    if not np.issubdtype(array.dtype, np.floating) or array.shape[1:] != expected:
        raise DataError(f"calibration data {origin} is {array.dtype} of shape {array.shape}"
                        f"{_layout_hint(array.shape, spec)}; expected {wanted}")
    if not np.isfinite(array).all():
        raise DataError(f"calibration data {origin} holds NaN or infinite values; a scale calibrated on them "
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


def _calib_batch(calib: ImageData, spec: InputSpec, size: int, options: DataOptions) -> tuple[np.ndarray, str]:
    """(the preprocessed batch, where it came from) for each kind of `calib`; an iterable is read once, `size`
    images at most, so an endless generator ends."""
    if is_batch_iterable(calib):
        batches = read_batches(as_dataset(calib), size, labelled=False)
        return _from_array(batches.images, spec, batches.origin), batches.origin
    if isinstance(calib, np.ndarray):
        return _from_array(calib[:size] if calib.ndim else calib, spec, "(in memory)"), "array"
    if isinstance(calib, LabelledImages):
        return preprocess_uint8(calib.images[:size], spec), calib.source
    if isinstance(calib, (str, os.PathLike)) and Path(calib).suffix in (".npy", ".npz"):
        path = Path(calib)
        if not path.is_file():
            raise DataError(f"calibration file {path} does not exist")
        array = _read_array(path)
        return _from_array(array[:size] if array.ndim else array, spec, str(path)), str(path)
    if isinstance(calib, (str, os.PathLike, ImageSource)):
        data = load_dataset(calib, spec, limit=size, options=options)
        return preprocess_uint8(data.images, spec), data.source
    raise DataError(f"calibration data must be a path, a dataset name, an array or an iterable of batches, not a "
                    f"{type(calib).__name__}")


def load_calibration(calib: ImageData, spec: InputSpec, size: int,
                     options: DataOptions = DataOptions()) -> CalibData:
    """Up to `size` calibration images from `calib` (labels are not needed: a flat folder will do), through the
    model's eval transform and normalisation; a folder gives `size` images spread over all its classes, an array
    or an iterable its first `size`."""
    if size < 1:
        raise DataError(f"calibration size {size} must be ≥ 1")
    batch, origin = _calib_batch(calib, spec, size, options)
    if len(batch) == 0:
        raise DataError(f"calibration data {origin} holds no images")
    return CalibData(batch, origin, hashlib.sha256(batch.tobytes()).hexdigest())
