"""Labelled image sets: the bundled Fashion-MNIST and a user's DIR/class/*.png folder.

A dataset here is uint8 images plus labels and class names; preprocessing for a model happens later, from the
artifact's InputSpec, so one dataset serves every model and every runtime.
"""
from __future__ import annotations

import gzip
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vit_edge.core.errors import DataError, did_you_mean

__all__ = [
    "LabelledImages",
    "FASHION_MNIST_CLASSES",
    "load_fashion_mnist",
    "load_image_folder",
    "load_dataset",
    "DATASET_NAMES",
]

FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
# Debian's dataset-fashion-mnist package; VIT_EDGE_FASHION_MNIST points elsewhere.
FASHION_MNIST_DIRS = (Path("/usr/share/datasets/fashion-mnist"),)
BUNDLED_SUBSET = Path(__file__).with_name("fashion_mnist_test_1k.npz")
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".gif", ".tif", ".tiff"}


@dataclass(frozen=True)
class LabelledImages:
    """uint8 images (N,H,W) or (N,H,W,C), int64 labels, the class names, and where they came from."""

    images: np.ndarray
    labels: np.ndarray
    class_names: tuple[str, ...]
    source: str

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def take(self, count: int | None) -> "LabelledImages":
        """The first `count` examples (all when None)."""
        if count is None or count >= len(self):
            return self
        return LabelledImages(self.images[:count], self.labels[:count], self.class_names, self.source)

    def fingerprint(self) -> str:
        """sha256 of images and labels: identifies calibration and training data in manifests."""
        digest = hashlib.sha256(self.images.tobytes())
        digest.update(self.labels.tobytes())
        return digest.hexdigest()


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


def load_fashion_mnist(split: str = "test") -> LabelledImages:
    """Fashion-MNIST from Debian's package; the test split falls back to the 1,000 images bundled with vit-edge."""
    if split not in ("train", "test"):
        raise DataError(f"Fashion-MNIST has splits 'train' and 'test', not '{split}'")
    folder = fashion_mnist_dir()
    prefix = "train" if split == "train" else "t10k"
    if folder is not None:
        images = _read_idx(folder / f"{prefix}-images-idx3-ubyte.gz")
        labels = _read_idx(folder / f"{prefix}-labels-idx1-ubyte.gz").astype(np.int64)
        return LabelledImages(images, labels, FASHION_MNIST_CLASSES, f"fashion-mnist:{split}")
    if split == "test" and BUNDLED_SUBSET.is_file():
        with np.load(BUNDLED_SUBSET) as bundle:
            images, labels = bundle["images"], bundle["labels"].astype(np.int64)
        return LabelledImages(images, labels, FASHION_MNIST_CLASSES, "fashion-mnist:test-1k-bundled")
    raise DataError(
        "Fashion-MNIST's training split is not installed: run  apt-get install dataset-fashion-mnist  "
        "or set VIT_EDGE_FASHION_MNIST to a folder with the four idx .gz files"
    )


def load_image_folder(root: str | Path, channels: int = 3,
                      size: int | tuple[int, int] | None = None) -> LabelledImages:
    """DIR/class_name/*.png → uint8 images resized to `size` (int or (height, width), when given), labels in
    sorted class order."""
    from PIL import Image, UnidentifiedImageError

    root = Path(root)
    if not root.is_dir():
        raise DataError(f"image folder {root} does not exist (expected DIR/class_name/*.png)")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    files = [
        (path, label)
        for label, name in enumerate(classes)
        for path in sorted((root / name).iterdir())
        if path.suffix.lower() in IMAGE_SUFFIXES
    ]
    if not files and any(p.suffix.lower() in IMAGE_SUFFIXES for p in root.iterdir()):
        raise DataError(f"{root} holds images but no class folders, so no labels: expected DIR/class_name/*.png")
    if not files:
        raise DataError(f"no images found in {root}: expected DIR/class_name/*.png")
    mode = "L" if channels == 1 else "RGB"
    target = None if size is None else ((size, size) if isinstance(size, int) else (size[1], size[0]))
    images = []
    for path, _ in files:
        try:
            with Image.open(path) as opened:
                img = opened.convert(mode)
                if target is not None and img.size != target:
                    img = img.resize(target, resample=Image.Resampling.BICUBIC)
                images.append(np.asarray(img))
        except (UnidentifiedImageError, OSError) as exc:
            raise DataError(f"cannot read image {path}: {exc}") from exc
    shapes = {img.shape for img in images}
    if len(shapes) > 1:
        raise DataError(f"images in {root} differ in size {sorted(shapes)[:3]}; pass the model's input size")
    labels = np.asarray([label for _, label in files], dtype=np.int64)
    return LabelledImages(np.stack(images), labels, tuple(classes), f"folder:{root}")


DATASET_NAMES = ("fashion-mnist", "fashion-mnist-train")


def load_dataset(name_or_path: str, channels: int = 3, size: int | tuple[int, int] | None = None) -> LabelledImages:
    """A named dataset ('fashion-mnist', 'fashion-mnist-train') or an image folder path."""
    if name_or_path == "fashion-mnist":
        return load_fashion_mnist("test")
    if name_or_path == "fashion-mnist-train":
        return load_fashion_mnist("train")
    path = Path(name_or_path)
    if path.is_dir():
        return load_image_folder(path, channels=channels, size=size)
    raise DataError(
        f"data '{name_or_path}' is neither a folder nor a known dataset{did_you_mean(name_or_path, DATASET_NAMES)}; "
        f"known: {', '.join(DATASET_NAMES)}"
    )
