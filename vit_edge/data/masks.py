"""Ground-truth segmentation masks beside images, in ADE20K's layout: DIR/images/**/NAME.jpg with
DIR/annotations/**/NAME.png (same relative folder, same stem), each mask one class index per pixel.

Every mask passes `check_mask` where it is read (the one mask validator, as `labels.check_labels` is for labels): an
8-bit or 16-bit single-channel PNG (or a palette PNG, whose indices are the classes), of its image's size, every value
a class of the model or the ignore index, else one line naming the file and what to do. A mask goes through the
image's own eval geometry (resize, crop) with nearest-neighbour sampling, so pixel (i, j) of the mask labels pixel
(i, j) of the model's input; scores are taken at the model's input resolution (at its output's, masks resampled the
same way, where the two differ), not at the photo's.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np

from vit_edge.core.errors import DataError
from vit_edge.core.segmentation_metrics import MaskLabels
from vit_edge.data.sources import MASK_LAYOUT, MaskedFiles, fill_images, scan_mask_folder  # read with the others

if TYPE_CHECKING:
    from PIL import Image

    from vit_edge.core.types import InputSpec
    from vit_edge.data.datasets import LabelledImages

__all__ = ["MASK_LAYOUT", "MASK_MODES", "MaskedFiles", "MaskedImages", "scan_mask_folder", "check_mask",
           "read_mask", "prepare_masks", "load_masked"]

# Pillow's modes of a class-index PNG: 8-bit gray, palette (its indices), 16-bit gray (Pillow names it either way)
MASK_MODES = ("L", "P", "I;16", "I;16L", "I;16B", "I")
_HELP = "a mask holds one class index per pixel: an 8-bit or 16-bit grayscale PNG (or a palette PNG)"


@dataclass(frozen=True)
class MaskedImages:
    """Images at a model's input size (uint8, (N, H, W, C)) and their masks as class maps at the same size (int32,
    (N, H, W), IGNORE where no class counts), with how mask values were read. `load_masked` memory-maps both in a
    scratch folder that `scratch` keeps until the object goes (ADE20K's 2,000 at 512² are about 3.5 GB)."""

    images: np.ndarray
    masks: np.ndarray
    labels: MaskLabels
    source: str
    skipped: int = 0
    scratch: object = field(default=None, repr=False, compare=False)

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def describe(self) -> str:
        skipped = f"; {self.skipped} unreadable files skipped" if self.skipped else ""
        return f"{len(self)} images of {self.source} with masks ({self.labels.describe()}){skipped}"

    def as_images(self) -> "LabelledImages":
        """The images alone, unlabelled (parity inputs)."""
        from vit_edge.data.datasets import LabelledImages

        images = self.images[..., 0] if self.images.shape[-1] == 1 else self.images
        return LabelledImages(images, np.full(len(self), -1, dtype=np.int64), (), self.source, labels_from="",
                              skipped=self.skipped)


def check_mask(origin: str, mask: "Image.Image", image_size: tuple[int, int], labels: MaskLabels) -> np.ndarray:
    """The one mask check: a class-index mode, its image's (width, height), values that are classes or the ignore
    index; DataError in one line otherwise. Returns the values (int64, (H, W))."""
    if mask.mode not in MASK_MODES:
        raise DataError(f"mask {origin} is a {mask.mode} image; {_HELP} (a colour-coded mask must be converted to "
                        "class indices first)")
    if mask.size != image_size:
        raise DataError(f"mask {origin} is {mask.size[0]}x{mask.size[1]} but its image is "
                        f"{image_size[0]}x{image_size[1]}; a mask labels its own image pixel by pixel")
    values = np.asarray(mask, dtype=np.int64)
    wrong = (values > labels.largest_value) & (values != labels.ignore_index) | (values < 0)
    if wrong.any():
        bad = int(values[wrong].max())
        raise DataError(f"mask {origin} has value {bad} at {int(wrong.sum())} pixels, but the model has "
                        f"{labels.num_classes} classes ({labels.describe()}); fix the mask or use the model it was "
                        "made for")
    return values


def read_mask(path: Path, image_size: tuple[int, int], labels: MaskLabels, spec: "InputSpec") -> np.ndarray:
    """One mask file checked and brought to the spec's input size by the image's own geometry, nearest-neighbour:
    (H, W) int32 class indices, IGNORE where no class counts."""
    from PIL import Image, UnidentifiedImageError

    from vit_edge.data.preprocess import eval_transform

    try:
        with Image.open(path) as opened:
            opened.load()
            values = check_mask(str(path), opened, image_size, labels)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise DataError(f"cannot read mask {path}: {exc}") from exc
    shifted = (labels.classes(values) + 1).astype(np.int32)  # IGNORE → 0, so the crop's black padding is ignored
    moved = eval_transform(Image.fromarray(shifted), spec.with_(interpolation="nearest"))
    return np.asarray(moved, dtype=np.int32) - 1


def _image_size(path: Path) -> tuple[int, int]:
    """(width, height) of an image as decoded (EXIF orientation applied), from its header."""
    from PIL import Image

    try:
        with Image.open(path) as opened:
            width, height = opened.size
            turned = opened.getexif().get(0x0112) in (5, 6, 7, 8)
    except (OSError, ValueError, SyntaxError) as exc:
        raise DataError(f"cannot read image {path}: {exc}") from exc
    return (height, width) if turned else (width, height)


def prepare_masks(source: MaskedFiles, indices: np.ndarray, spec: "InputSpec", labels: MaskLabels,
                  progress: Callable[[str], None] | None = None, out: np.ndarray | None = None) -> np.ndarray:
    """The masks of the images `indices` (those read), checked, at the spec's input size: (N, H, W) int32, written
    into `out` when given (a memory-mapped array of that shape)."""
    out = np.empty((len(indices), spec.height, spec.width), dtype=np.int32) if out is None else out
    for row, index in enumerate(indices):
        image = source.paths[int(index)]
        out[row] = read_mask(source.mask_paths[int(index)], _image_size(image), labels, spec)
        if progress is not None and len(indices) >= 1000 and row % 1000 == 999:
            progress(f"  read {row + 1}/{len(indices)} masks of {source.origin}")
    return out


def load_masked(source: MaskedFiles, spec: "InputSpec", labels: MaskLabels,
                progress: Callable[[str], None] | None = None) -> MaskedImages:
    """Every image of `source` at the spec's size with its mask, both memory-mapped in a scratch folder (a full disk
    is one line: core/outputs.reserved_array) that lives as long as the MaskedImages."""
    from vit_edge.core.outputs import held_scratch_folder, reserved_array

    scratch = held_scratch_folder("vit-edge-masks-")
    folder = Path(scratch.name)
    try:
        images = reserved_array(folder / "images.npy", np.uint8, (len(source), spec.height, spec.width,
                                                                  spec.channels))
        kept = fill_images(images, source, spec, progress)
        if len(kept) == 0:
            raise DataError(f"{source.origin}: none of its {len(source)} images could be read")
        masks = reserved_array(folder / "masks.npy", np.int32, (len(kept), spec.height, spec.width), "the masks")
        prepare_masks(source, kept, spec, labels, progress, out=masks)
    except BaseException:  # a bad mask, a full disk, Ctrl-C: the folder goes now, not at exit
        scratch.cleanup()
        raise
    return MaskedImages(images[: len(kept)], masks, labels, source.origin, skipped=len(source) - len(kept),
                        scratch=scratch)
