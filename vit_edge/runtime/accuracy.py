"""Top-1 accuracy and agreement of an artifact on labelled images, with the artifact's own preprocessing; a dense
output's predictions scored and kept a batch at a time (segmentation: class maps, never the whole logits)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from vit_edge.core.errors import ParityError
from vit_edge.core.output_kinds import ModelOutput
from vit_edge.core.outputs import reserved_array, save_array
from vit_edge.core.progress import steps
from vit_edge.core.segmentation_metrics import (
    CLASS_MAP_DTYPE,
    SAMPLE_IMAGES,
    ClassMapFiles,
    Confusion,
    SegmentationScores,
    keeps_class_maps,
    predicted_classes,
)
from vit_edge.core.types import InputSpec
from vit_edge.data.datasets import LabelledImages
from vit_edge.data.preprocess import preprocess_uint8

__all__ = ["CHUNK_BYTES", "Predictions", "ClassMapWriter", "predict", "predict_logits", "run_batched",
           "stream_logits", "stream_outputs", "top1_accuracy"]

CHUNK_BYTES = 32 << 20  # a streamed output's batch holds at most this much (at least one image)


def run_batched(run: Any, inputs: np.ndarray, batch_size: int = 256, what: str = "scoring") -> np.ndarray:
    """`run` (a Session.run or any batch → outputs callable) over `inputs` a slice at a time, outputs joined;
    thousands of images show a progress bar on a terminal (core/progress.py)."""
    starts = range(0, len(inputs), batch_size)
    sized = steps(starts, lambda start: min(batch_size, len(inputs) - start), len(inputs), what)
    return np.concatenate([run(inputs[start : start + batch_size]) for start in sized])


def predict_logits(run: Any, data: LabelledImages | np.ndarray, spec: InputSpec, batch_size: int = 256) -> np.ndarray:
    """Logits of `run` for every image, in batches, each preprocessed with `spec`; `data` is a prepared set or a
    uint8 array (a memory-mapped one is read a batch at a time). The one place anything is scored."""
    images = data.images if isinstance(data, LabelledImages) else data
    return run_batched(lambda chunk: run(preprocess_uint8(np.asarray(chunk), spec)), images, batch_size)


def _chunks(runs: Sequence[Any], images: np.ndarray, spec: InputSpec,
            limit_bytes: int) -> Iterator[tuple[np.ndarray, ...]]:
    """Each run's outputs on the same images, in order: one image first, then as many at a time as all the runs'
    outputs fit in `limit_bytes` (at least one); each batch preprocessed once."""
    start, size = 0, 1
    while start < len(images):
        batch = preprocess_uint8(np.asarray(images[start : start + size]), spec)
        outs = tuple(np.asarray(run(batch)) for run in runs)
        yield outs
        start += size
        per_image = sum(out.nbytes // max(len(out), 1) for out in outs)
        size = max(1, min(256, limit_bytes // max(per_image, 1)))


def stream_outputs(runs: Sequence[Any], images: np.ndarray, spec: InputSpec, limit_bytes: int | None = None,
                   what: str = "scoring") -> Iterator[tuple[np.ndarray, ...]]:
    """Several runs (two models compared) a batch of uint8 images at a time, each batch preprocessed once and its
    outputs never joined: dense outputs of any number of images in flat memory (each batch's outputs, all the runs'
    together, within `limit_bytes`, CHUNK_BYTES unless given)."""
    limit = CHUNK_BYTES if limit_bytes is None else limit_bytes
    return steps(_chunks(runs, images, spec, limit), lambda outs: len(outs[0]), len(images), what)


def stream_logits(run: Any, images: np.ndarray, spec: InputSpec, limit_bytes: int | None = None,
                  what: str = "scoring") -> Iterator[np.ndarray]:
    """predict_logits a batch at a time, never joined: a dense output of any number of images in flat memory
    (each batch's outputs within `limit_bytes`, CHUNK_BYTES unless given)."""
    return (logits for logits, in stream_outputs((run,), images, spec, limit_bytes, what))


class ClassMapWriter:
    """Writes a segmentation run's predictions as ClassMapFiles names them, a batch at a time, both memory-mapped:
    each batch's argmax into the class maps, the logits of the first `sample` images into the sample."""

    def __init__(self, files: ClassMapFiles, count: int, sample: int = SAMPLE_IMAGES) -> None:
        self.files, self.count, self.sample_count = files, count, max(0, min(sample, count))
        self.classes: np.memmap[Any, np.dtype[Any]] | None = None
        self.sample: np.memmap[Any, np.dtype[Any]] | None = None
        self.written = 0

    def add(self, classes: np.ndarray, logits: np.ndarray) -> None:
        """The next images' class maps (B, H, W) and their logits (B, C, H, W)."""
        if logits.shape[1] > np.iinfo(CLASS_MAP_DTYPE).max + 1:
            raise ParityError(f"{logits.shape[1]} classes do not fit a {np.dtype(CLASS_MAP_DTYPE).name} class map")
        if self.classes is None or self.sample is None:
            self.classes = reserved_array(self.files.classes, CLASS_MAP_DTYPE, (self.count, *classes.shape[1:]),
                                          "the predicted class maps")
            self.sample = reserved_array(self.files.sample, np.float32, (self.sample_count, *logits.shape[1:]),
                                         "the sample's logits")
        self.classes[self.written : self.written + len(classes)] = classes
        kept = max(0, min(len(classes), self.sample_count - self.written))
        self.sample[self.written : self.written + kept] = logits[:kept]
        self.written += len(classes)

    def close(self) -> None:
        """Flush both files; a run that wrote fewer images than announced is an error."""
        if self.classes is None or self.sample is None or self.written != self.count:
            raise ParityError(f"{self.written} class maps were predicted for {self.count} images")
        self.classes.flush()
        self.sample.flush()
        self.classes = self.sample = None


@dataclass(frozen=True)
class Predictions:
    """One pass over the prepared images: every output (None where they were streamed: segmentation), and the
    segmentation scores against masks where masks were given."""

    logits: np.ndarray | None
    masks: SegmentationScores | None = None


def predict(run: Any, images: np.ndarray, spec: InputSpec, output: ModelOutput, out: Path | None = None,
            masks: np.ndarray | None = None) -> Predictions:
    """Every image's output, kept at `out` where given: the logits whole (.npy), or for segmentation streamed into
    ClassMapFiles.beside(out) and scored against `masks` a batch at a time. The one function both sides of a
    bench agreement (the runner, the PyTorch reference) predict with, so their files are alike."""
    if not keeps_class_maps(output):
        logits = predict_logits(run, images, spec)
        if out is not None:
            save_array(out, logits.astype(np.float32))
        return Predictions(logits)
    return Predictions(None, _stream_segmentation(run, images, spec, out, masks))


def _stream_segmentation(run: Any, images: np.ndarray, spec: InputSpec, out: Path | None,
                         masks: np.ndarray | None) -> SegmentationScores | None:
    if masks is not None and len(masks) != len(images):
        raise ParityError(f"{len(images)} images for {len(masks)} masks")
    writer = ClassMapWriter(ClassMapFiles.beside(out), len(images)) if out is not None else None
    confusion: Confusion | None = None
    start = 0
    for logits in stream_logits(run, images, spec):
        classes = predicted_classes(logits)
        if masks is not None:
            confusion = confusion or Confusion(int(logits.shape[1]))
            confusion.add_masks(classes, masks[start : start + len(classes)])
        if writer is not None:
            writer.add(classes, logits)
        start += len(classes)
    if writer is not None:
        writer.close()
    return None if confusion is None else confusion.scores()


def top1_accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    """Top-1 accuracy in percent."""
    return float(100.0 * np.mean(logits.argmax(axis=1) == labels))
