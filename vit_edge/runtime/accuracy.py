"""Top-1 accuracy and agreement of an artifact on labelled images, with the artifact's own preprocessing."""
from __future__ import annotations

from typing import Any

import numpy as np

from vit_edge.core.types import InputSpec
from vit_edge.data.datasets import LabelledImages
from vit_edge.data.preprocess import preprocess_uint8

__all__ = ["predict_logits", "top1_accuracy"]


def predict_logits(run: Any, data: LabelledImages | np.ndarray, spec: InputSpec, batch_size: int = 256) -> np.ndarray:
    """Logits of `run` (a Session.run or any batch → logits callable) for every image, in batches; `data` is a
    prepared set or a uint8 array (a memory-mapped one is read a batch at a time)."""
    images = data.images if isinstance(data, LabelledImages) else data
    outputs = []
    for start in range(0, len(images), batch_size):
        outputs.append(run(preprocess_uint8(np.asarray(images[start : start + batch_size]), spec)))
    return np.concatenate(outputs, axis=0)


def top1_accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    """Top-1 accuracy in percent."""
    return float(100.0 * np.mean(logits.argmax(axis=1) == labels))
