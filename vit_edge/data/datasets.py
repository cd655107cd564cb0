"""Images in memory at a model's input size: the bundled Fashion-MNIST, and any source prepared for a spec.

`sources.py` says where images are (decoded lazily); `prepare_images` decodes them for one model (its eval
transform, its channels) and attaches labels already matched to its outputs (`labels.py`).
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Union

import numpy as np

from vit_edge.core.errors import DataError
from vit_edge.core.types import InputSpec
from vit_edge.data.fashion_mnist import DATASET_NAMES, FASHION_MNIST_CLASSES, fashion_mnist_dir, read_fashion_mnist
from vit_edge.data.iterables import Dataset, as_dataset, is_batch_iterable, read_batches
from vit_edge.data.labels import CLASS_NAMES_HINT, LabelMatch, check_labels, match_labels, model_class_names
from vit_edge.data.preprocess import match_channels
from vit_edge.data.sources import ArrayImages, DataOptions, ImageSource, fill_images, open_images

__all__ = [
    "ImageData",
    "LabelledImages",
    "FASHION_MNIST_CLASSES",
    "load_fashion_mnist",
    "fashion_mnist_dir",
    "load_image_folder",
    "load_dataset",
    "prepare_images",
    "labels_for",
    "open_data",
    "DATASET_NAMES",
]

@dataclass(frozen=True)
class LabelledImages:
    """uint8 images (N,H,W) or (N,H,W,C), int64 labels (-1 when unlabelled), the class names, where they came
    from, how the labels were matched to the model ('' when unlabelled) and how many unreadable files were left
    out."""

    images: np.ndarray
    labels: np.ndarray
    class_names: tuple[str, ...]
    source: str
    labels_from: str = "the dataset's own labels"
    skipped: int = 0

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def labelled(self) -> bool:
        return bool(self.labels_from)

    def take(self, count: int | None) -> "LabelledImages":
        """The first `count` examples (all when None)."""
        if count is None or count >= len(self):
            return self
        return LabelledImages(self.images[:count], self.labels[:count], self.class_names, self.source,
                              self.labels_from, self.skipped)

    def describe(self) -> str:
        """What the report says about this data: images, label matching, skipped files."""
        labels = f"labels {self.labels_from}" if self.labelled else "unlabelled"
        skipped = f"; {self.skipped} unreadable files skipped" if self.skipped else ""
        return f"{len(self)} images of {self.source}; {labels}{skipped}"

    def fingerprint(self) -> str:
        """sha256 of images and labels: identifies calibration and training data in manifests."""
        digest = hashlib.sha256(self.images.tobytes())
        digest.update(self.labels.tobytes())
        return digest.hexdigest()


def load_fashion_mnist(split: str = "test") -> LabelledImages:
    """Fashion-MNIST from Debian's package; the test split falls back to the 1,000 images bundled with vit-edge."""
    images, labels, origin = read_fashion_mnist(split)
    return LabelledImages(images, labels, FASHION_MNIST_CLASSES, origin)


def prepare_images(source: ImageSource, spec: InputSpec, labels: LabelMatch | None = None,
                   progress: Callable[[str], None] | None = None) -> LabelledImages:
    """Every image of `source` decoded and transformed to the spec's size (uint8, in memory), with `labels`
    (already matched to the model's outputs) or none; unreadable files left out when the source skips them."""
    if isinstance(source, ArrayImages) and source.images.shape[1:3] == (spec.height, spec.width):
        images = source.images if source.images.ndim == 4 else source.images[..., None]
        images = match_channels(images, spec.channels)
        kept = np.arange(len(source))
    else:
        images = np.empty((len(source), spec.height, spec.width, spec.channels), dtype=np.uint8)
        kept = fill_images(images, source, spec, progress)
        images = images[: len(kept)]
    if len(kept) == 0:
        raise DataError(f"{source.origin}: none of its {len(source)} images could be read")
    images = images[..., 0] if spec.channels == 1 else images
    label_array = labels.labels[kept] if labels is not None else np.full(len(kept), -1, dtype=np.int64)
    names = spec.class_names or (source.label_names or ())
    return LabelledImages(images, label_array, tuple(names), source.origin,
                          labels_from=labels.how if labels is not None else "",
                          skipped=len(source) - len(kept))


def load_image_folder(root: str | Path | ImageSource, channels: int = 3,
                      size: int | tuple[int, int] | None = None) -> LabelledImages:
    """Any labelled source (DIR/class_name/*, a list file with labels, a labelled .npz) → uint8 images squashed to
    `size` (default: the first image's size): for training a model from scratch on it, whose classes become the
    model's (its class names in sorted order; numeric labels name classes '0' to the largest)."""
    source = open_images(root)
    names, labels = _own_classes(source)
    if size is None:
        first = np.asarray(source.read(0, "L"))
        size = (int(first.shape[0]), int(first.shape[1]))
    spec = folder_training_spec(size, channels, names)
    return prepare_images(source, spec, labels)


def _own_classes(source: ImageSource) -> tuple[tuple[str, ...], LabelMatch]:
    """The classes a source defines for a model trained on it, and its labels (through `check_labels`)."""
    if source.labels is None:
        raise DataError(f"{source.origin} has no labels ({source.layout}); training needs class folders "
                        "(DIR/class_name/*.png), a list file with labels, or a labelled .npz")
    if source.label_names is not None:
        labels = check_labels(source.origin, source.labels, names=source.label_names, count=len(source))
        how = {"class folders": "folder names in sorted order", "list file": "list-file names in sorted order"}
        return tuple(source.label_names), LabelMatch(labels, how.get(source.layout, "its class_names in their order"))
    labels = check_labels(source.origin, source.labels, count=len(source))
    names = tuple(str(i) for i in range(int(labels.max()) + 1)) if len(labels) else ()
    return names, LabelMatch(labels, f"{source.layout} labels as output indices")


def folder_training_spec(size: int | tuple[int, int], channels: int, class_names: tuple[str, ...]) -> InputSpec:
    """The input of a model trained from scratch on a folder: images squashed to `size`, normalised to ±1, the
    folder names as its classes (training and every later evaluation read the folder the same way)."""
    return InputSpec(img_size=size if isinstance(size, int) else (size[0], size[1]), channels=channels,
                     mean=(0.5,) * channels, std=(0.5,) * channels, crop_mode="squash", class_names=class_names)


# What export's data, quantize's calib and eval_data read images from: a path or dataset name, an array, a source,
# or an iterable of batches (a generator, a DataLoader, a list, a vit_edge.data.Dataset).
ImageData = Union[str, "os.PathLike[str]", np.ndarray, ImageSource, LabelledImages, Dataset, Iterable[Any]]


def open_data(data: ImageData, options: DataOptions = DataOptions(), limit: int | None = None, *,
              labelled: bool = False) -> ImageSource:
    """The source `data` names, with `limit` images at most; an iterable of batches is read here, once, and only
    as far as `limit` (an endless generator ends), with its labels when `labelled`."""
    if is_batch_iterable(data):
        return read_batches(as_dataset(data), limit, labelled=labelled).as_source()
    if isinstance(data, LabelledImages):  # e.g. load_fashion_mnist's, read as its dataset name would be
        labels = data.labels if data.labelled else None
        return ArrayImages(data.source, "dataset", labels, data.class_names or None, images=data.images).take(limit)
    return open_images(data, options).take(limit)  # type: ignore[arg-type]  # open_images refuses other kinds


def load_dataset(name_or_path: ImageData, spec: InputSpec, *, num_classes: int | None = None,
                 limit: int | None = None, options: DataOptions = DataOptions(),
                 progress: Callable[[str], None] | None = None, hint: str | None = None) -> LabelledImages:
    """Images for a model with input `spec`, from any source `open_images` takes or an iterable of batches,
    transformed to its size; with `num_classes` (the model's outputs), labelled by class name against the spec's
    names (or --class-names). `hint` replaces 'pass --class-names FILE' for unmatched names where the verb has no
    such flag (train)."""
    source = open_data(name_or_path, options, limit, labelled=num_classes is not None)
    labels = labels_for(source, spec, num_classes, options, hint) if num_classes is not None else None
    return prepare_images(source, spec, labels, progress)


def labels_for(source: ImageSource, spec: InputSpec, num_classes: int, options: DataOptions,
               hint: str | None = None) -> LabelMatch:
    """`source`'s labels matched to a model with `num_classes` outputs named by the spec (or --class-names)."""
    names, names_from = model_class_names(options, spec.class_names)
    return match_labels(source, names, num_classes, names_from, hint or CLASS_NAMES_HINT)
