"""Images as users hold them, made into the float batch a model takes: the same decoding, eval transform and
normalisation that calibration, evaluation and bench use, for the Python API (`vit_edge.preprocess`,
`Artifact.run`)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from vit_edge.core.errors import DataError
from vit_edge.core.types import InputSpec
from vit_edge.data.iterables import channels_last
from vit_edge.data.preprocess import eval_transform, preprocess_uint8, stack_images
from vit_edge.data.sources import IMAGE_SUFFIXES, FileImages, ImageSource, image_batches, open_images

if TYPE_CHECKING:
    from PIL import Image

__all__ = ["as_batch", "check_images", "IMAGES_HELP"]

IMAGES_HELP = ("an image file, a list of image files or PIL images, a uint8 array (N, H, W[, C]), or what --data "
               "takes (a folder, a list file, a .npy/.npz, a dataset name)")


def _is_pil(value: Any) -> bool:
    return type(value).__module__.startswith("PIL.") and hasattr(value, "convert")


def check_images(images: Any) -> None:
    """What `as_batch` takes, checked by kind before anything is opened: DataError naming what it can take."""
    paths_or_pil = isinstance(images, (list, tuple)) and all(
        isinstance(i, (str, os.PathLike)) or _is_pil(i) for i in images)
    if isinstance(images, bool) or not (paths_or_pil or isinstance(images, (str, os.PathLike, np.ndarray,
                                                                              ImageSource))):
        raise DataError(f"cannot read images from {type(images).__name__}; give {IMAGES_HELP}")


def _source(images: Any) -> ImageSource | None:
    """The files or data source `images` names; None for PIL images (transformed directly)."""
    if isinstance(images, (list, tuple)) and not images:
        raise DataError(f"no images given; give {IMAGES_HELP}")
    if isinstance(images, (str, os.PathLike)) and Path(images).suffix.lower() in IMAGE_SUFFIXES:
        images = [images]
    if isinstance(images, (list, tuple)) and images and all(isinstance(i, (str, os.PathLike)) for i in images):
        return FileImages(origin="the given files", layout="files", labels=None, label_names=None,
                          paths=tuple(Path(i) for i in images))
    if isinstance(images, (list, tuple)) and images and all(_is_pil(i) for i in images):
        return None
    if isinstance(images, np.ndarray) and images.dtype != np.uint8:
        raise DataError(f"images as an array must be uint8 (N, H, W[, C]), got {images.dtype}; a float batch that "
                        "is already normalised goes to Artifact.run as it is")
    if isinstance(images, np.ndarray):
        images = channels_last(images, "the uint8 images")
    if isinstance(images, (str, os.PathLike, np.ndarray, ImageSource)):
        return open_images(images if isinstance(images, (np.ndarray, ImageSource)) else str(images))
    raise DataError(f"cannot read images from {type(images).__name__}; give {IMAGES_HELP}")


def _from_pil(images: "list[Image.Image]", spec: InputSpec) -> np.ndarray:
    mode = "L" if spec.channels == 1 else "RGB"
    return stack_images([np.asarray(eval_transform(image.convert(mode), spec)) for image in images],
                        "the given PIL images")


def as_batch(images: Any, spec: InputSpec) -> np.ndarray:
    """`images` (see IMAGES_HELP) decoded, resized and cropped as the model was evaluated, normalised and laid
    out as `spec` says: float32 (N, C, H, W) or (N, H, W, C). A model of any size that keeps the aspect ratio
    (InputSpec.keeps_aspect) gets each image at its own size, so images of one shape make one batch."""
    check_images(images)
    source = _source(images)
    if source is None:
        uint8 = _from_pil(list(images), spec)
    else:
        if len(source) == 0:
            raise DataError(f"no images in {source.origin}")
        batches = [batch for batch, _ in image_batches(source, spec)]
        uint8 = stack_images([image for batch in batches for image in batch], f"the images of {source.origin}") \
            if len({batch.shape for batch in batches}) > 1 else np.concatenate(batches)
    return preprocess_uint8(uint8, spec)
