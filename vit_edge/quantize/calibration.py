"""Calibration sources: a dataset name, an image folder, or a .npy/.npz array; all end as a preprocessed batch.

As NNCF's Dataset(source, transform): the source is the user's, the transform is the artifact's input spec.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vit_edge.data.datasets import LabelledImages, load_dataset
from vit_edge.data.preprocess import preprocess_uint8
from vit_edge.errors import DataError
from vit_edge.types import InputSpec

__all__ = ["Calibration", "load_calibration"]


@dataclass(frozen=True)
class Calibration:
    batch: np.ndarray  # float32, preprocessed, in NCHW
    source: str
    fingerprint: str

    def info(self) -> dict[str, object]:
        return {"source": self.source, "images": int(len(self.batch)), "fingerprint": self.fingerprint}


def _from_array(array: np.ndarray, spec: InputSpec, origin: str) -> np.ndarray:
    if array.dtype == np.uint8:
        return preprocess_uint8(array, spec)
    expected = spec.shape(len(array))
    if array.shape != expected:
        raise DataError(f"calibration array {origin} has shape {array.shape}; expected uint8 images "
                        f"(N,H,W[,C]) or preprocessed float32 {('N',) + expected[1:]}")
    return np.ascontiguousarray(array, dtype=np.float32)


def _read_array(path: Path) -> np.ndarray:
    try:
        if path.suffix == ".npz":
            with np.load(path) as bundle:
                key = "images" if "images" in bundle else list(bundle.keys())[0]
                return bundle[key]
        return np.load(path)
    except (OSError, ValueError, IndexError) as exc:
        raise DataError(f"cannot read calibration file {path}: {exc}") from exc


def load_calibration(source: str | Path | np.ndarray | LabelledImages, spec: InputSpec, size: int) -> Calibration:
    """Up to `size` calibration images from `source`, preprocessed for `spec`."""
    import hashlib

    if size < 1:
        raise DataError(f"calibration size {size} must be ≥ 1")
    if isinstance(source, np.ndarray):
        batch, origin = _from_array(source[:size], spec, "(in memory)"), "array"
    elif isinstance(source, LabelledImages):
        batch, origin = preprocess_uint8(source.images[:size], spec), source.source
    else:
        path = Path(source)
        if path.suffix in (".npy", ".npz"):
            if not path.is_file():
                raise DataError(f"calibration file {path} does not exist")
            batch, origin = _from_array(_read_array(path)[:size], spec, str(path)), str(path)
        else:
            data = load_dataset(str(source), channels=spec.channels, size=spec.img_size)
            batch, origin = preprocess_uint8(data.images[:size], spec), data.source
    if len(batch) == 0:
        raise DataError(f"calibration data {origin} holds no images")
    return Calibration(batch, origin, hashlib.sha256(batch.tobytes()).hexdigest())
