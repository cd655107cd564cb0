"""Ground-truth depth beside the images: a folder `DIR/images/...` with `DIR/depth/...`, one depth map per image
under the same relative path and stem, as a 16-bit PNG (integers, `DataOptions.depth_scale` of them a metre:
1000, millimetres, by default; KITTI's are 256) or a float `.npy` in metres. 0 marks a pixel without a measurement.

`check_depth` is the one check every depth map passes before it is scored against (as `labels.check_labels` is for
labels): the size of its image, one channel of 16 bits or floats (an 8-bit PNG holds 255 depths at most, an RGB one
a colour-mapped picture of depth, not depth), no NaN, infinity or negative value (mark a missing pixel 0), and at
least one measured pixel. A folder whose image has no depth map, or two, is refused before anything is measured.

The map follows its image's geometry to the model's input (the eval transform's resize and crop) with the nearest
sample, so that no depth is averaged across an edge or with the zeros that mark missing pixels.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np

from vit_edge.core.errors import DataError
from vit_edge.data.sources import (
    DEPTH_DIR,
    DEPTH_LAYOUT,
    IMAGES_DIR,
    DataOptions,
    FileImages,
    ImageSource,
    fill_images,
    is_depth_folder,
    open_images,
)

if TYPE_CHECKING:
    from vit_edge.core.types import InputSpec

__all__ = ["IMAGES_DIR", "DEPTH_DIR", "DEPTH_SUFFIXES", "DEPTH_LAYOUT", "DEFAULT_DEPTH_SCALE", "DepthFiles",
           "DepthEval", "is_depth_folder", "depth_files", "check_depth", "read_depth", "depth_at_input",
           "prepared_depth", "check_depth_files", "load_depth_eval"]

DEPTH_SUFFIXES = (".png", ".npy")
DEFAULT_DEPTH_SCALE = 1000.0  # 16-bit PNG units per metre: millimetres
_SIXTEEN_BIT = ("I;16", "I;16B", "I;16L", "I")


@dataclass(frozen=True)
class DepthFiles:
    """The depth file of each image of a depth folder (in the image source's order), and the PNG scale."""

    origin: str
    paths: tuple[Path, ...]
    scale: float  # PNG integers per metre

    def read(self, index: int, image_size: tuple[int, int]) -> np.ndarray:
        """Map `index` in metres, checked against its image's (width, height)."""
        return read_depth(self.paths[index], self.scale, image_size)


def depth_files(source: ImageSource, options: DataOptions) -> DepthFiles | None:
    """The depth files of a depth folder's images (None for any other source); an image without one, or with two
    (a .png and a .npy), is refused in one line naming it."""
    if not isinstance(source, FileImages) or source.layout != DEPTH_LAYOUT:
        return None
    root = Path(source.origin)
    found = []
    for image in source.paths:
        stem = root / DEPTH_DIR / image.relative_to(root / IMAGES_DIR).with_suffix("")
        candidates = [stem.with_name(stem.name + suffix) for suffix in DEPTH_SUFFIXES]
        present = [path for path in candidates if path.is_file()]
        if not present:
            raise DataError(f"{image} has no depth map: expected {candidates[0]} (16-bit PNG) or {candidates[1]} "
                            f"(float metres) in {root / DEPTH_DIR}")
        if len(present) > 1:
            raise DataError(f"{image} has two depth maps ({present[0].name} and {present[1].name}); keep one")
        found.append(present[0])
    return DepthFiles(source.origin, tuple(found), options.depth_scale)


def check_depth(origin: str, depth: np.ndarray, image_size: tuple[int, int]) -> np.ndarray:
    """The one check of a depth map's values (float metres, 0 = not measured) against its image's (width, height):
    DataError in one line naming `origin` otherwise. Returns it as float32 (H, W)."""
    if depth.ndim == 3 and depth.shape[-1] == 1:
        depth = depth[..., 0]
    width, height = image_size
    if depth.ndim != 2:
        raise DataError(f"depth map {origin} has shape {depth.shape}; expected one value per pixel (H, W)")
    if depth.shape != (height, width):
        raise DataError(f"depth map {origin} is {depth.shape[1]}x{depth.shape[0]} but its image is "
                        f"{width}x{height}; give the depth at the image's size")
    values = depth.astype(np.float64)
    if not np.isfinite(values).all():
        raise DataError(f"depth map {origin} has {int((~np.isfinite(values)).sum())} NaN or infinite values; mark "
                        "pixels without a measurement 0")
    if (values < 0).any():
        raise DataError(f"depth map {origin} has {int((values < 0).sum())} negative depths; mark pixels without a "
                        "measurement 0")
    if not (values > 0).any():
        raise DataError(f"depth map {origin} is all zero: no pixel has a measured depth to score against; remove "
                        "the image or give its depth")
    return depth.astype(np.float32)


def read_depth(path: Path, scale: float, image_size: tuple[int, int]) -> np.ndarray:
    """One depth file in metres (float32, (H, W)), through `check_depth`."""
    if path.suffix.lower() == ".npy":
        try:
            depth = np.load(path, allow_pickle=False)
        except (OSError, ValueError, EOFError) as exc:
            raise DataError(f"cannot read depth map {path}: {exc}") from exc
        if depth.dtype.kind != "f":
            raise DataError(f"depth map {path} holds {depth.dtype}; a .npy depth map is float metres (float32)")
        return check_depth(str(path), depth, image_size)
    return check_depth(str(path), _read_png(path) / scale, image_size)


def _read_png(path: Path) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image.load()
            mode = image.mode
            if mode in _SIXTEEN_BIT:
                return np.asarray(image, dtype=np.float64)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise DataError(f"cannot read depth map {path}: {exc}") from exc
    kind = "an 8-bit" if mode in ("L", "P", "1") else f"a colour ({mode})" if mode != "F" else "a float"
    raise DataError(f"depth map {path} is {kind} PNG; depth PNGs are 16-bit, one channel (integers, "
                    "--depth-scale of them a metre), or give a float .npy")


def depth_at_input(depth: np.ndarray, spec: InputSpec) -> np.ndarray:
    """A depth map (float32, its image's size) through its image's eval geometry to the model's input, nearest."""
    from dataclasses import replace

    from PIL import Image

    from vit_edge.data.preprocess import eval_transform

    image = eval_transform(Image.fromarray(depth.astype(np.float32)), replace(spec, interpolation="nearest"))
    return np.asarray(image, dtype=np.float32)


def prepared_depth(files: DepthFiles, source: ImageSource, indices: np.ndarray, spec: InputSpec,
                   out: np.ndarray | None = None) -> np.ndarray:
    """The maps of the images at `indices` at the model's input ((N, H, W) float32, into `out` when given). One array
    holds one size: a model of any size gets its default size here (InputSpec.fixed), as `fill_images` gives its
    images, so each map stays aligned with its photo's pixels."""
    spec = spec.fixed()
    target = np.empty((len(indices), spec.height, spec.width), np.float32) if out is None else out
    for row, index in enumerate(indices):
        target[row] = depth_at_input(files.read(int(index), _image_size(source, int(index))), spec)
    return target


def _image_size(source: ImageSource, index: int) -> tuple[int, int]:
    """(width, height) of image `index` as decoded (EXIF orientation applied), without decoding the pixels twice."""
    from PIL import Image

    path = source.paths[index]  # type: ignore[attr-defined]  # depth folders are FileImages
    try:
        with Image.open(path) as image:
            orientation = image.getexif().get(0x0112, 1)
            width, height = image.size
    except OSError as exc:
        raise DataError(f"cannot read image {path}: {exc}") from exc
    return (height, width) if orientation in (5, 6, 7, 8) else (width, height)


def check_depth_files(files: DepthFiles, source: ImageSource) -> None:
    """Every map of the folder read and checked once, before any model runs (a bad one stops here, in one line)."""
    for index in range(len(files.paths)):
        files.read(index, _image_size(source, index))


@dataclass(frozen=True)
class DepthEval:
    """Images at the model's input (uint8 (N, H, W, C)) and their ground-truth depth there ((N, H, W) metres)."""

    images: np.ndarray
    depth: np.ndarray
    source: str
    skipped: int = 0

    def describe(self) -> str:
        skipped = f"; {self.skipped} unreadable images skipped" if self.skipped else ""
        return f"{len(self.images)} images of {self.source} with ground-truth depth{skipped}"


def load_depth_eval(data: str | os.PathLike[str], spec: InputSpec, options: DataOptions, limit: int | None = None,
                    progress: Callable[[str], None] | None = None) -> DepthEval:
    """A depth folder's images and maps at the model's input; DataError for any other source, in one line."""
    source = open_images(Path(data), options).take(limit)
    files = depth_files(source, options)
    if files is None:
        raise DataError(f"{data} has no ground-truth depth: a depth model is scored on a folder holding "
                        f"{IMAGES_DIR}/ (the photos) and {DEPTH_DIR}/ (a 16-bit PNG in millimetres or a float .npy "
                        "in metres per photo, same name)")
    check_depth_files(files, source)
    images = np.empty((len(source), spec.height, spec.width, spec.channels), dtype=np.uint8)
    kept = fill_images(images, source, spec, progress)
    if len(kept) == 0:
        raise DataError(f"{source.origin}: none of its {len(source)} images could be read")
    return DepthEval(images[: len(kept)], prepared_depth(files, source, kept, spec), source.origin,
                     len(source) - len(kept))
