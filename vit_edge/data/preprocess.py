"""Image preprocessing from an InputSpec, in numpy and Pillow only (the runtime side has no torch)."""
from __future__ import annotations

import numpy as np

from vit_edge.core.errors import DataError
from vit_edge.core.types import InputSpec, Layout

__all__ = ["preprocess_uint8", "resize_center_crop"]

_PIL_FILTERS = {"nearest": 0, "bilinear": 2, "bicubic": 3, "lanczos": 1}


def resize_center_crop(image: "np.ndarray", spec: InputSpec) -> np.ndarray:
    """timm's eval transform: resize (short side to size / crop_pct; both sides for a non-square input), center-crop."""
    from PIL import Image

    height, width = spec.height, spec.width
    if image.shape[0] == height and image.shape[1] == width:
        return image
    pil = Image.fromarray(image)
    if height == width:
        scale_to = int(round(height / spec.crop_pct))
        old_w, old_h = pil.size
        if old_w <= old_h:
            new_w, new_h = scale_to, max(scale_to, int(round(old_h * scale_to / old_w)))
        else:
            new_w, new_h = max(scale_to, int(round(old_w * scale_to / old_h))), scale_to
    else:
        new_w, new_h = int(width / spec.crop_pct), int(height / spec.crop_pct)
    pil = pil.resize((new_w, new_h), resample=_PIL_FILTERS.get(spec.interpolation, 3))
    left, top = (new_w - width) // 2, (new_h - height) // 2
    return np.asarray(pil.crop((left, top, left + width, top + height)))


def preprocess_uint8(images: np.ndarray, spec: InputSpec) -> np.ndarray:
    """uint8 images (N,H,W) or (N,H,W,C) → float32 batch normalised and laid out as the spec says."""
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4:
        raise DataError(f"expected images of shape (N,H,W[,C]), got {images.shape}")
    if images.shape[1] != spec.height or images.shape[2] != spec.width:
        squeezed = images[..., 0] if images.shape[-1] == 1 else images
        images = np.stack([resize_center_crop(img, spec) for img in squeezed])
        if images.ndim == 3:
            images = images[..., None]
    images = _match_channels(images, spec.channels)
    if len(spec.mean) != spec.channels or len(spec.std) != spec.channels:
        raise DataError(f"input spec has {spec.channels} channels but mean/std of length {len(spec.mean)}")
    mean = np.asarray(spec.mean, dtype=np.float32)
    std = np.asarray(spec.std, dtype=np.float32)
    batch = (images.astype(np.float32) / 255.0 - mean) / std
    if spec.layout is Layout.NCHW:
        batch = batch.transpose(0, 3, 1, 2)
    return np.ascontiguousarray(batch, dtype=np.float32)


def _match_channels(images: np.ndarray, channels: int) -> np.ndarray:
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
