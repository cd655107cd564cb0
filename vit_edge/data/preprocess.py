"""Image preprocessing from an InputSpec, in numpy and Pillow only (the runtime side has no torch).

`eval_transform` is the one place a photo becomes a model input: timm's eval transform (resize the shorter side to
floor(size / crop_pct) with the model's interpolation, then a center crop) or, with `crop_mode="squash"`, the
exact resize of Hugging Face's {height, width} processors and TransReID, then the crop.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from vit_edge.core.errors import DataError
from vit_edge.core.types import InputSpec, Layout

if TYPE_CHECKING:
    from PIL import Image

__all__ = ["preprocess_uint8", "resize_center_crop", "eval_transform", "resized_size", "keep_aspect_size",
           "stack_images"]

_PIL_FILTERS = {"nearest": 0, "bilinear": 2, "bicubic": 3, "lanczos": 1, "box": 4, "hamming": 5}


def keep_aspect_size(width: int, height: int, spec: InputSpec) -> tuple[int, int]:
    """(width, height) as transformers' DPT processor resizes with keep_aspect_ratio (get_resize_output_image_size):
    one scale for both sides, the one nearer 1 of those that bring the height or the width to the spec's, then each
    side rounded (Python's round, as there) to a multiple of ensure_multiple_of. A side below two multiples of the
    model's patch (a thin panorama) is raised to them: the model takes no less."""
    scale_h, scale_w = spec.height / height, spec.width / width
    scale = scale_w if abs(1 - scale_w) < abs(1 - scale_h) else scale_h
    step, least = spec.ensure_multiple_of, 2 * spec.size_multiple
    return tuple(max(round(side * scale / step) * step, -(-least // step) * step)  # type: ignore[return-value]
                 for side in (width, height))


def resized_size(width: int, height: int, spec: InputSpec) -> tuple[int, int]:
    """(width, height) after the resize step, before the crop, exactly as timm / torchvision compute it (or as the
    DPT processor does, for a model of any size that keeps the aspect ratio: then there is no crop)."""
    if spec.keeps_aspect:
        return keep_aspect_size(width, height, spec)
    # timm: math.floor(img_size / crop_pct); the epsilon keeps 224 / (224 / 248) at 248 despite float rounding
    scale_h = math.floor(spec.height / spec.crop_pct + 1e-6)
    scale_w = math.floor(spec.width / spec.crop_pct + 1e-6)
    if spec.crop_mode == "squash":
        return scale_w, scale_h
    if scale_h == scale_w:  # torchvision Resize(int): the shorter side to the size, the longer one truncated
        if width <= height:
            return scale_w, int(scale_w * height / width)
        return int(scale_h * width / height), scale_h
    ratio = min(height / scale_h, width / scale_w)  # timm's ResizeKeepRatio (longest=0): both sides cover it
    return round(width / ratio), round(height / ratio)


def _crop_offset(have: int, want: int, rule: str) -> int:
    return int(round((have - want) / 2.0)) if rule == "round" else (have - want) // 2


def eval_transform(image: "Image.Image", spec: InputSpec) -> "Image.Image":
    """A PIL image of any size → the spec's height × width: resize as the model's eval transform does, then
    center-crop (padding with black where the resized image is smaller than the crop, as torchvision does)."""
    from PIL import Image

    width, height = image.size
    new_w, new_h = resized_size(width, height, spec)
    if (new_w, new_h) != (width, height):
        image = image.resize((new_w, new_h), resample=Image.Resampling(_PIL_FILTERS.get(spec.interpolation, 3)))
    if spec.keeps_aspect:  # each image at its own size, as the processor leaves it
        return image
    left = _crop_offset(new_w, spec.width, spec.crop_offset)
    top = _crop_offset(new_h, spec.height, spec.crop_offset)
    if (left, top, new_w, new_h) == (0, 0, spec.width, spec.height):
        return image
    return image.crop((left, top, left + spec.width, top + spec.height))


def resize_center_crop(image: np.ndarray, spec: InputSpec) -> np.ndarray:
    """`eval_transform` on a uint8 array (H, W) or (H, W, C)."""
    from PIL import Image

    return np.asarray(eval_transform(Image.fromarray(image), spec))


def preprocess_uint8(images: np.ndarray, spec: InputSpec) -> np.ndarray:
    """uint8 images (N,H,W) or (N,H,W,C) → float32 batch normalised and laid out as the spec says.

    Images already at the spec's size are taken as transformed (a prepared array, or what `image_batches` made);
    any other size goes through `eval_transform` first."""
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4:
        raise DataError(f"expected images of shape (N,H,W[,C]), got {images.shape}")
    if images.shape[1] != spec.height or images.shape[2] != spec.width:
        squeezed = images[..., 0] if images.shape[-1] == 1 else images
        images = np.stack([resize_center_crop(img, spec) for img in squeezed])  # one input size: one output size
        if images.ndim == 3:
            images = images[..., None]
    images = match_channels(images, spec.channels)
    if len(spec.mean) != spec.channels or len(spec.std) != spec.channels:
        raise DataError(f"input spec has {spec.channels} channels but mean/std of length {len(spec.mean)}")
    mean = np.asarray(spec.mean, dtype=np.float32)
    std = np.asarray(spec.std, dtype=np.float32)
    batch = (images.astype(np.float32) / 255.0 - mean) / std
    if spec.layout is Layout.NCHW:
        batch = batch.transpose(0, 3, 1, 2)
    return np.ascontiguousarray(batch, dtype=np.float32)


def stack_images(images: list[np.ndarray], origin: str) -> np.ndarray:
    """Transformed images as one uint8 batch; DataError when they came out at different sizes (a model of any size
    that keeps each photo's aspect ratio), which no batch holds."""
    sizes = sorted({image.shape[:2] for image in images})
    if len(sizes) > 1:
        shown = ", ".join(f"{h}x{w}" for h, w in sizes[:3]) + (", ..." if len(sizes) > 3 else "")
        raise DataError(f"{origin} become inputs of {len(sizes)} sizes ({shown}): the model keeps each image's aspect "
                        "ratio, and one batch has one size; run them one at a time, or in groups of one shape")
    return np.stack(images)


def match_channels(images: np.ndarray, channels: int) -> np.ndarray:
    """(N, H, W, C) uint8 with C made `channels`: gray repeated, RGB(A) to ITU-R 601 luma, alpha dropped."""
    have = images.shape[-1]
    if have == channels:
        return images
    if have == 1 and channels == 3:
        return np.repeat(images, 3, axis=-1)
    if have in (3, 4) and channels == 1:
        rgb = images[..., :3].astype(np.float32)
        return (rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32))[..., None].round().astype(np.uint8)
    if have == 4 and channels == 3:
        return images[..., :3]
    raise DataError(f"images have {have} channels, the model expects {channels}")
