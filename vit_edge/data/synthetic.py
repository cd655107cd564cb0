"""Smooth, image-like random inputs for parity checks when no dataset is given (white noise is unlike any photo)."""
from __future__ import annotations

import numpy as np

__all__ = ["smooth_images"]


def smooth_images(count: int, size: int | tuple[int, int], channels: int, seed: int = 0) -> np.ndarray:
    """uint8 (N, H, W[, C]) images (size: an int or (H, W)): low-resolution random fields upsampled bicubically
    plus mild texture."""
    from PIL import Image

    height, width = (size, size) if isinstance(size, int) else size
    rng = np.random.default_rng(seed)
    images = []
    for _ in range(count):
        coarse = rng.integers(0, 256, size=(int(rng.integers(3, 9)),) * 2 + (channels,), dtype=np.uint8)
        layers = [np.asarray(Image.fromarray(coarse[..., c]).resize((width, height), Image.Resampling.BICUBIC))
                  for c in range(channels)]
        image = np.stack(layers, axis=-1).astype(np.float32) + rng.normal(0, 6, size=(height, width, channels))
        images.append(np.clip(image, 0, 255).astype(np.uint8))
    batch = np.stack(images)
    return batch[..., 0] if channels == 1 else batch
