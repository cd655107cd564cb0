"""Top-1 accuracy and agreement of an artifact on labelled images, with the artifact's own preprocessing."""
from __future__ import annotations

from typing import Any

import numpy as np

from vit_edge.core.progress import steps
from vit_edge.core.types import InputSpec
from vit_edge.data.datasets import LabelledImages
from vit_edge.data.preprocess import preprocess_uint8

__all__ = ["predict_logits", "run_batched", "top1_accuracy"]


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


def top1_accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    """Top-1 accuracy in percent."""
    return float(100.0 * np.mean(logits.argmax(axis=1) == labels))
