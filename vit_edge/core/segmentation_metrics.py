"""The segmentation output kind's measures: mIoU from a confusion matrix accumulated over images (against ground-truth
masks, or against FP32's argmax), and pixel agreement with FP32; one implementation for quantize, parity and bench
(numpy only: boards use it).

How mask values become classes (`MaskLabels`): a mask stores one class index per pixel; the ignore index (255 in
ADE20K's reduced labels, transformers' `semantic_loss_ignore_index`) is left out of every score. With `reduce_labels`
(ADE20K's layout: 0 is "other", class k is stored as k + 1) 0 is ignored and every other value is lowered by one, as
transformers' `do_reduce_labels` does. mIoU is the mean IoU over the classes that occur in the target or the
prediction (union > 0), as mmsegmentation and `evaluate`'s mean_iou take it; a class absent from both is no evidence.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import TYPE_CHECKING

import numpy as np

from vit_edge.core.errors import DataError, ParityError

if TYPE_CHECKING:
    from vit_edge.core.identity import MaskReading
    from vit_edge.core.output_kinds import ModelOutput

__all__ = ["IGNORE", "MaskLabels", "Confusion", "SegmentationScores", "PixelAgreement", "AgreementTally",
           "pixel_agreement", "predicted_classes", "segmentation_against_fp32", "resize_nearest", "mask_scores",
           "SAMPLE_IMAGES", "CLASS_MAP_DTYPE", "ClassMapFiles", "ClassMaps", "class_map_agreement", "keeps_class_maps",
           "kept_files"]

IGNORE = -1  # a pixel no score counts, once mask values are classes
SAMPLE_IMAGES = 8  # the images whose whole logits a scoring run keeps (the cosine verdict); the rest: class maps only
CLASS_MAP_DTYPE = np.uint16  # a class map's pixels: up to 65,536 classes (ADE20K has 150)


@dataclass(frozen=True)
class MaskLabels:
    """How a model's masks store classes: `num_classes` logits, the ignored value, ADE20K's reduced labels."""

    num_classes: int
    ignore_index: int = 255
    reduce_labels: bool = False

    @property
    def largest_value(self) -> int:
        """The largest mask value that names a class (the number of classes with reduced labels, where 0 is none)."""
        return self.num_classes if self.reduce_labels else self.num_classes - 1

    @classmethod
    def from_source(cls, num_classes: int, found: "MaskReading | None") -> "MaskLabels":
        """The mask reading a model's source (or an artifact's manifest source) records (`Provenance.mask_labels`:
        what the Hugging Face config and processor say; its types checked by the manifest reader), or the
        defaults: ignore 255, labels as stored."""
        if found is None:
            return cls(num_classes)
        return cls(num_classes, found.ignore_index, found.reduce_labels)

    def describe(self) -> str:
        reduced = "; 0 is 'other' (ignored), class k stored as k + 1" if self.reduce_labels else ""
        return (f"values 0 to {self.largest_value} name the model's {self.num_classes} classes{reduced}; "
                f"{self.ignore_index} is ignored")

    def classes(self, mask: np.ndarray) -> np.ndarray:
        """Mask values (checked already: data/masks.check_mask) → class indices, IGNORE where no class counts."""
        values = mask.astype(np.int64)
        ignored = values == self.ignore_index
        if self.reduce_labels:
            ignored |= values == 0
            values = values - 1
        return np.where(ignored, IGNORE, values)


@dataclass(frozen=True)
class SegmentationScores:
    """mIoU (a fraction), pixel accuracy (a fraction of the counted pixels), each class's IoU (None: not present),
    how many classes counted and how many pixels were counted."""

    miou: float | None
    pixel_accuracy: float | None
    class_iou: tuple[float | None, ...]
    classes_present: int
    pixels: int



@dataclass(frozen=True)
class PixelAgreement:
    """A segmentation map against FP32's (a manifest's parity and accuracy sections, flat): the share of pixels
    whose argmax agrees, the worst image's share, and mIoU with FP32's argmax as the masks."""

    pixel_agreement: float
    min_pixel_agreement: float
    miou_vs_fp32: float | None


class Confusion:
    """A num_classes × num_classes confusion matrix (rows: target, columns: prediction), added to image by image so
    memory does not grow with the data."""

    def __init__(self, num_classes: int) -> None:
        if num_classes < 1:
            raise ValueError("a confusion matrix needs at least one class")
        self.num_classes = num_classes
        self.matrix = np.zeros((num_classes, num_classes), dtype=np.int64)

    def add(self, predicted: np.ndarray, target: np.ndarray) -> None:
        """Class maps of one shape (any number of images); target pixels equal to IGNORE are left out."""
        if predicted.shape != target.shape:
            raise ParityError(f"a prediction of shape {predicted.shape} cannot be scored against a mask of shape "
                              f"{target.shape}")
        counted = target != IGNORE
        truth, guess = target[counted].astype(np.int64), predicted[counted].astype(np.int64)
        if truth.size and (truth.min() < 0 or truth.max() >= self.num_classes):
            raise DataError(f"a target class {int(truth.max())} is outside the model's {self.num_classes} classes")
        if guess.size and (guess.min() < 0 or guess.max() >= self.num_classes):
            raise ParityError(f"a predicted class {int(guess.max())} is outside the {self.num_classes} classes")
        self.matrix += np.bincount(truth * self.num_classes + guess,
                                   minlength=self.num_classes ** 2).reshape(self.num_classes, self.num_classes)

    def add_masks(self, predicted: np.ndarray, masks: np.ndarray) -> None:
        """Class maps (B, h, w) against masks (B, H, W), the masks brought to the prediction's size where they
        differ (resize_nearest): how a prediction is scored against ground truth, whole or a batch at a time."""
        self.add(predicted, resize_nearest(np.asarray(masks), (predicted.shape[1], predicted.shape[2])))

    def scores(self) -> SegmentationScores:
        matrix = self.matrix.astype(np.float64)
        hits = np.diag(matrix)
        union = matrix.sum(0) + matrix.sum(1) - hits
        present = union > 0
        iou = np.divide(hits, union, out=np.zeros_like(hits), where=present)
        total = float(matrix.sum())
        return SegmentationScores(miou=float(iou[present].mean()) if present.any() else None,
                                  pixel_accuracy=float(hits.sum() / total) if total else None,
                                  class_iou=tuple(float(v) if p else None for v, p in zip(iou, present)),
                                  classes_present=int(present.sum()), pixels=int(total))


def predicted_classes(logits: np.ndarray) -> np.ndarray:
    """(B, C, H, W) segmentation logits → (B, H, W) class indices (the argmax over C)."""
    if logits.ndim != 4:
        raise ParityError(f"segmentation logits must be (batch, classes, height, width), got shape {logits.shape}")
    return np.asarray(logits).argmax(axis=1)


def pixel_agreement(candidate: np.ndarray, reference: np.ndarray) -> float:
    """The share of pixels (over every image) whose argmax class in `candidate` is `reference`'s."""
    if candidate.shape != reference.shape:
        raise ParityError(f"segmentation maps of shapes {candidate.shape} and {reference.shape} cannot be compared")
    return float(np.mean(predicted_classes(candidate) == predicted_classes(reference)))


def segmentation_against_fp32(candidate: np.ndarray, reference: np.ndarray) -> PixelAgreement:
    """What a quantized or converted segmentation model is measured by against FP32: pixel agreement, the worst
    image's, and mIoU with FP32's argmax as the masks."""
    ref, got = predicted_classes(reference), predicted_classes(candidate)
    if ref.shape != got.shape:
        raise ParityError(f"segmentation maps of shapes {candidate.shape} and {reference.shape} cannot be compared")
    tally = AgreementTally(int(reference.shape[1]))
    tally.add(got, ref)
    return tally.result()


class AgreementTally:
    """segmentation_against_fp32's numbers accumulated a batch of class maps at a time: each image's share of pixels
    whose class is the reference's (one float an image) and the confusion with the reference's classes as the masks
    (classes²), so any number of images is compared in flat memory and to the same numbers as all at once."""

    def __init__(self, num_classes: int) -> None:
        self.confusion = Confusion(num_classes)
        self.shares: list[np.ndarray] = []

    def add(self, candidate: np.ndarray, reference: np.ndarray) -> None:
        """The next images' class maps (B, H, W): the candidate's and the reference's."""
        if candidate.shape != reference.shape or candidate.ndim != 3:
            raise ParityError(f"class maps of shape {candidate.shape} cannot be compared with the reference's "
                              f"{reference.shape}")
        self.shares.append((reference == candidate).reshape(len(reference), -1).mean(axis=1))
        self.confusion.add(candidate, reference)

    def result(self) -> PixelAgreement:
        """Pixel agreement over every image so far, the worst image's, and mIoU with the reference's argmax."""
        if not self.shares:
            raise ParityError("no class maps to compare: the run scored no images")
        per_image = np.concatenate(self.shares)
        return PixelAgreement(pixel_agreement=float(per_image.mean()), min_pixel_agreement=float(per_image.min()),
                              miou_vs_fp32=self.confusion.scores().miou)


def resize_nearest(masks: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """(N, H, W) class maps → (N, h, w), nearest neighbour with pixel centres aligned (as Pillow's NEAREST)."""
    height, width = masks.shape[-2:]
    if (height, width) == tuple(hw):
        return masks
    rows = np.minimum(((np.arange(hw[0]) + 0.5) * height / hw[0]).astype(np.int64), height - 1)
    cols = np.minimum(((np.arange(hw[1]) + 0.5) * width / hw[1]).astype(np.int64), width - 1)
    return masks[:, rows][:, :, cols]


def mask_scores(logits: np.ndarray, masks: np.ndarray, batch: int = 16) -> SegmentationScores:
    """mIoU and pixel accuracy of segmentation logits (N, C, h, w) against class maps (N, H, W) (IGNORE left out),
    the masks brought to the logits' size where they differ; accumulated a few images at a time."""
    if len(logits) != len(masks):
        raise ParityError(f"{len(logits)} segmentation maps for {len(masks)} masks")
    confusion = Confusion(int(logits.shape[1]))
    for start in range(0, len(logits), batch):
        confusion.add_masks(predicted_classes(np.asarray(logits[start : start + batch])), masks[start : start + batch])
    return confusion.scores()


@dataclass(frozen=True)
class ClassMaps:
    """A segmentation run's predictions, read back: every image's class map (N, H, W) and the whole logits
    (n, C, H, W) of its first n = min(N, SAMPLE_IMAGES) images."""

    classes: np.ndarray
    sample: np.ndarray


@dataclass(frozen=True)
class ClassMapFiles:
    """Where a segmentation run keeps its predictions, both files named from one base path (a bench's logits_out):
    `classes`, every image's argmax as a CLASS_MAP_DTYPE .npy (N, H, W), written a batch at a time; `sample`, the
    float32 logits (n, C, H, W) of the first n images. A full ADE20K run's logits (2,000 × 150 × 512 × 512 float32,
    ~300 GB) never exist anywhere; its class maps are 1 GB on disk and never whole in memory."""

    classes: Path
    sample: Path

    @staticmethod
    def names(base: PurePath) -> tuple[PurePath, PurePath]:
        """(classes, sample) beside `base` (a local Path, or a board's PurePosixPath)."""
        return base.with_name(f"{base.stem}.classes.npy"), base.with_name(f"{base.stem}.sample.npy")

    @classmethod
    def beside(cls, base: Path) -> "ClassMapFiles":
        classes, sample = cls.names(Path(base))
        return cls(Path(classes), Path(sample))

    @property
    def paths(self) -> tuple[Path, Path]:
        return self.classes, self.sample

    def exist(self) -> bool:
        return self.classes.is_file() and self.sample.is_file()

    def read(self) -> ClassMaps:
        """Both memory-mapped: read an image or a batch at a time."""
        return ClassMaps(np.load(self.classes, mmap_mode="r"), np.load(self.sample, mmap_mode="r"))


def class_map_agreement(candidate: np.ndarray, reference: np.ndarray, num_classes: int,
                        batch: int = 64) -> PixelAgreement:
    """segmentation_against_fp32 on class maps (N, H, W) instead of logits, `batch` images at a time (memory-mapped
    maps of any number of images in flat memory): the same per-image shares and confusion, so the same numbers."""
    if candidate.shape != reference.shape or candidate.ndim != 3:
        raise ParityError(f"class maps of shape {candidate.shape} cannot be compared with the reference's "
                          f"{reference.shape}")
    tally = AgreementTally(num_classes)
    for start in range(0, len(reference), batch):
        tally.add(np.asarray(candidate[start : start + batch]), np.asarray(reference[start : start + batch]))
    return tally.result()


def keeps_class_maps(output: "ModelOutput") -> bool:
    """Whether a scoring run keeps `output` as ClassMapFiles (segmentation logits) rather than whole logits."""
    from vit_edge.core.output_kinds import Measure

    return output.supports(Measure.PIXEL_AGREEMENT)


def kept_files(base: PurePath, output: "ModelOutput") -> tuple[PurePath, ...]:
    """The files a scoring run of `output` keeps at logits_out `base` (a local Path, or a board's PurePosixPath)."""
    return ClassMapFiles.names(base) if keeps_class_maps(output) else (base,)
