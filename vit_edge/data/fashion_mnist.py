"""The one named dataset, Fashion-MNIST: Debian's package when installed, else the 1,000 test images bundled here.

Below `sources` (which opens it by name) and `datasets` (which returns it as LabelledImages): it reads arrays and
imports nothing else of vit_edge.data, so the package's modules form no import loop (the contract checks).
"""
from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np

from vit_edge.core.errors import DataError

__all__ = ["FASHION_MNIST_CLASSES", "DATASET_NAMES", "fashion_mnist_dir", "read_fashion_mnist"]

FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
DATASET_NAMES = ("fashion-mnist", "fashion-mnist-train")
# Debian's dataset-fashion-mnist package; VIT_EDGE_FASHION_MNIST points elsewhere.
FASHION_MNIST_DIRS = (Path("/usr/share/datasets/fashion-mnist"),)
BUNDLED_SUBSET = Path(__file__).with_name("fashion_mnist_test_1k.npz")


def _read_idx(path: Path) -> np.ndarray:
    try:
        with gzip.open(path, "rb") as handle:
            raw = handle.read()
    except (OSError, EOFError) as exc:
        raise DataError(f"cannot read {path}: {exc}") from exc
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise DataError(f"{path} is truncated: {data.size} bytes for shape {dims}")
    return data.reshape(dims)


def fashion_mnist_dir() -> Path | None:
    """Where the full Fashion-MNIST files are, or None when only the bundled subset is available."""
    override = os.environ.get("VIT_EDGE_FASHION_MNIST")
    candidates = (Path(override),) if override else FASHION_MNIST_DIRS
    for folder in candidates:
        if (folder / "t10k-images-idx3-ubyte.gz").is_file():
            return folder
    return None


def read_fashion_mnist(split: str = "test") -> tuple[np.ndarray, np.ndarray, str]:
    """(uint8 images (N, 28, 28), int64 labels, where they came from) of a split; the test split falls back to the
    bundled 1,000 images."""
    if split not in ("train", "test"):
        raise DataError(f"Fashion-MNIST has splits 'train' and 'test', not '{split}'")
    folder = fashion_mnist_dir()
    prefix = "train" if split == "train" else "t10k"
    if folder is not None:
        images = _read_idx(folder / f"{prefix}-images-idx3-ubyte.gz")
        labels = _read_idx(folder / f"{prefix}-labels-idx1-ubyte.gz").astype(np.int64)
        return images, labels, f"fashion-mnist:{split}"
    if split == "test" and BUNDLED_SUBSET.is_file():
        with np.load(BUNDLED_SUBSET) as bundle:
            return bundle["images"], bundle["labels"].astype(np.int64), "fashion-mnist:test-1k-bundled"
    raise DataError(
        "Fashion-MNIST's training split is not installed: run  apt-get install dataset-fashion-mnist  "
        "or set VIT_EDGE_FASHION_MNIST to a folder with the four idx .gz files"
    )
