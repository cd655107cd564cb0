"""Images as a training loop holds them: an iterable of batches (a generator, a torch DataLoader, a list), read
once into memory up to the images asked for, as NNCF's `Dataset(source, transform)` takes them.

Each item is a batch: uint8 images (N,H,W[,C]), which go through the model's eval transform as every other source
does, or a float batch, taken as already preprocessed (normalised, in the model's layout). Torch tensors become
numpy; an (images, labels) pair carries labels for evaluation. torch is never imported here (tensors are read by
what they offer), so the data layer stays usable where torch is absent.
"""
from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from vit_edge.core.errors import DataError
from vit_edge.data.sources import ArrayImages, ImageSource

__all__ = ["Dataset", "Batches", "is_batch_iterable", "list_problem", "as_dataset", "read_batches", "BATCHES_HELP"]

BATCHES_HELP = ("uint8 images (N,H,W[,C]) or a float batch already preprocessed in the model's layout, as numpy or "
                "torch, or an (images, labels) pair")


@dataclass(frozen=True)
class Dataset:
    """An iterable of batches and a `transform` applied to each item first (NNCF's Dataset), so a loader that
    yields dicts or extra fields needs no wrapper: `Dataset(loader, transform=lambda b: b["pixel_values"])`."""

    source: Iterable[Any]
    transform: Callable[[Any], Any] | None = None

    def __post_init__(self) -> None:
        if not (isinstance(self.source, Dataset) or _is_iterable(self.source)):
            raise DataError(f"Dataset takes an iterable of batches (a generator, a DataLoader, a list), not "
                            f"{type(self.source).__name__}")
        if self.transform is not None and not callable(self.transform):
            raise DataError(f"Dataset's transform must be a function of one item, not {type(self.transform).__name__}")

    def __iter__(self) -> Iterator[Any]:
        for index, item in enumerate(self.source):
            if self.transform is None:
                yield item
                continue
            try:
                yield self.transform(item)
            except Exception as exc:  # the user's function: say which item, keep its own words
                raise DataError(f"the transform failed on item {index} of {self.describe()}: "
                                f"{type(exc).__name__}: {exc}") from exc

    def describe(self) -> str:
        """'a generator', 'a DataLoader through a transform': what the report calls this data."""
        inner = self.source.describe() if isinstance(self.source, Dataset) else f"a {type(self.source).__name__}"
        return inner + (" through a transform" if self.transform is not None else "")


@dataclass(frozen=True)
class Batches:
    """What a Dataset gave, read into memory: uint8 images to preprocess, or a float batch already preprocessed."""

    images: np.ndarray  # uint8 (N, H, W[, C]), channels last; or float as the model takes it
    labels: np.ndarray | None
    origin: str

    @property
    def preprocessed(self) -> bool:
        return self.images.dtype != np.uint8

    def as_source(self) -> ArrayImages:
        """The images as a source like any other (labels matched, the eval transform applied); floats are refused,
        since evaluation and parity preprocess the images themselves."""
        if self.preprocessed:
            raise DataError(f"{self.origin} gives {self.images.dtype} batches, read as already preprocessed; here "
                            "images are needed as uint8 (N,H,W[,C]) so that the model's eval transform is applied "
                            "to them: give uint8 images (with labels: (images, labels) pairs)")
        return ArrayImages(self.origin, "batches", self.labels, None, images=self.images)


def _is_tensor(value: object) -> bool:
    return type(value).__module__.split(".")[0] == "torch" and hasattr(value, "detach") and hasattr(value, "numpy")


def _is_iterable(value: object) -> bool:
    """An iterable that is not a path, an array, a mapping, a set or an image source: those are read otherwise."""
    named = (str, bytes, bytearray, os.PathLike, np.ndarray, Mapping, set, frozenset, ImageSource)
    return isinstance(value, Iterable) and not isinstance(value, named) and not _is_tensor(value)


def is_batch_iterable(value: object) -> bool:
    """Whether `value` is read as batches: a Dataset, a tensor (one batch), a list, a generator, a DataLoader or
    another iterable that is not a path, an array, a mapping or an image source."""
    return isinstance(value, Dataset) or _is_tensor(value) or _is_iterable(value)


def list_problem(value: object) -> str | None:
    """What is wrong with a list or tuple of batches, said as reading it would (None when nothing, or when `value`
    is no list): checked where the verb starts, so `[1]` stops there, not after the model has loaded."""
    if not isinstance(value, (list, tuple)):
        return None
    if not value:
        return f"an empty {type(value).__name__} holds no images"
    for index, item in enumerate(value):
        try:
            _split(item, f"item {index} of the {type(value).__name__}")
        except DataError as exc:
            return str(exc)
    return None


def as_dataset(value: object) -> Dataset:
    """`value` as a Dataset: itself, a tensor as one batch, any other iterable of batches as it is."""
    if isinstance(value, Dataset):
        return value
    if _is_tensor(value):
        return Dataset((value,))
    if not is_batch_iterable(value):
        raise DataError(f"cannot read batches from {type(value).__name__}; give an iterable of {BATCHES_HELP}")
    return Dataset(value)  # type: ignore[arg-type]  # is_batch_iterable checked it is iterable


def _as_numpy(value: object, where: str) -> np.ndarray:
    if _is_tensor(value):
        tensor = value.detach().cpu()  # type: ignore[attr-defined]
        try:
            return np.asarray(tensor.numpy())
        except TypeError:  # bfloat16 has no numpy dtype
            return np.asarray(tensor.float().numpy())
    if isinstance(value, np.ndarray):
        return value
    raise DataError(f"{where} is {type(value).__name__}, not a batch; give {BATCHES_HELP}")


def _images(value: object, where: str) -> np.ndarray:
    """One batch of images, checked for kind and rank; uint8 made channels last (torchvision's PILToTensor gives
    (N, C, H, W) uint8), floats left as they are for the model's own shape check."""
    images = _as_numpy(value, where)
    if images.dtype != np.uint8 and not np.issubdtype(images.dtype, np.floating):
        raise DataError(f"{where} is {images.dtype}; give {BATCHES_HELP}")
    if images.ndim not in (3, 4):
        raise DataError(f"{where} has shape {images.shape}; each item is a batch: give {BATCHES_HELP}")
    return channels_last(images, where) if images.dtype == np.uint8 else images


def channels_last(images: np.ndarray, where: str) -> np.ndarray:
    """uint8 images as (N, H, W[, C]): a (N, C, H, W) batch with 1 or 3 channels (torchvision's PILToTensor) is
    turned; anything else 4-D whose last axis is not 1, 3 or 4 channels is refused in one line."""
    if images.ndim != 4 or images.shape[-1] in (1, 3, 4):
        return images
    if images.shape[1] not in (1, 3):
        raise DataError(f"{where} is uint8 of shape {images.shape}: neither (N,H,W,C) nor (N,C,H,W) with 1 or "
                        "3 channels")
    return images.transpose(0, 2, 3, 1)


def _labels(value: object, count: int, where: str) -> np.ndarray:
    labels = np.asarray(_as_numpy(value, where) if _is_tensor(value) else value)
    if labels.shape != (count,):
        raise DataError(f"{where}: labels of shape {labels.shape} for {count} images; give one label per image")
    return labels


def _split(item: object, where: str) -> tuple[np.ndarray, object | None]:
    """(images, labels or None) of one item: a batch, [batch] (a TensorDataset of one tensor), (batch, labels)."""
    if isinstance(item, Mapping):
        keys = ", ".join(map(repr, list(item)[:4]))
        raise DataError(f"{where} is a dict (keys {keys}); pick the images with vit_edge.data.Dataset(source, "
                        "transform=lambda item: item[KEY]) (or (item[IMAGES], item[LABELS]) for evaluation)")
    if isinstance(item, (tuple, list)) and 1 <= len(item) <= 2:
        return _images(item[0], where), (item[1] if len(item) == 2 else None)
    return _images(item, where), None


def _check_alike(batch: np.ndarray, first: np.ndarray | None, where: str) -> None:
    """Every batch holds images of one kind and size: they are stacked into one array."""
    if first is None:
        return
    if (batch.dtype == np.uint8) != (first.dtype == np.uint8) or batch.shape[1:] != first.shape[1:]:
        raise DataError(f"{where} is {batch.dtype} of shape {batch.shape} after batches of {first.dtype} "
                        f"{first.shape[1:]} per image; give every batch images of one kind and size")


def read_batches(data: Dataset, limit: int | None, *, labelled: bool) -> Batches:
    """Up to `limit` images of `data` (all when None), read once: a generator is consumed, and no item is asked
    for once there are enough, so an endless one ends too. With `labelled`, every item must carry labels."""
    origin = f"batches of {data.describe()}"
    images: list[np.ndarray] = []
    labels: list[np.ndarray] = []
    count = 0
    for index, item in enumerate(data):
        where = f"item {index} of {origin}"
        batch, batch_labels = _split(item, where)
        _check_alike(batch, images[0] if images else None, where)
        if labelled:
            if batch_labels is None:
                raise DataError(f"{where} has no labels; accuracy needs (images, labels) pairs")
            labels.append(_labels(batch_labels, len(batch), where))
        images.append(batch)
        count += len(batch)
        if limit is not None and count >= limit:
            break
    if count == 0:
        raise DataError(f"{origin} gave no images")
    return Batches(np.concatenate(images)[:limit], np.concatenate(labels)[:limit] if labelled else None, origin)
