"""Numbers that look ordinary but say something went wrong: each rule gives the warning a person needs, or None.

A top-1 at chance level, or one class predicted for nearly every image, is what a wrong input size, mean/std or
label mapping looks like on a first run; a p90 many times the p50 makes two configurations impossible to compare.
These rules only warn (the numbers are still reported as measured); `vit-edge bench`, `quantize` and `tune` print
them, and the bench report shows them above its table.
"""
from __future__ import annotations

import numpy as np

__all__ = ["NEAR_CHANCE", "NEAR_CHANCE_POINTS", "ONE_CLASS_SHARE", "WIDE_SPREAD", "accuracy_warning",
           "int8_slower_warning", "most_frequent_share", "threads_warning", "timing_warning"]

NEAR_CHANCE = 1.5  # a top-1 within this factor of chance (100 / classes) is what guessing gives …
NEAR_CHANCE_POINTS = 10.0  # … and within this many points of it (two classes: 60 %, not 75 %)
ONE_CLASS_SHARE = 0.6  # the most frequent prediction's share of the images, with several classes labelled
WIDE_SPREAD = 1.5  # p90 / p50 beyond this: too noisy to compare configurations at the p50's precision
SLOWER_MARGIN = 1.05  # INT8's p50 above FP32's by more than this is "slower", not noise at the p50's precision

CAUSES = "check the input size and mean/std (vit-edge info shows them) and that the labels match the class names"


def most_frequent_share(predictions: np.ndarray, classes: int) -> float:
    """The share of the images given the most frequent prediction (class indices): 1.0 when one class gets all."""
    return float(np.bincount(predictions, minlength=classes).max() / max(len(predictions), 1))


def accuracy_warning(what: str, top1: float | None, classes: int | None,
                     top_class_share: float | None = None) -> str | None:
    """`what` (an artifact, 'FP32') scored at chance level, or answered one class for most images."""
    if top1 is None or not classes or classes < 2:
        return None
    chance = 100.0 / classes
    if top_class_share is not None and classes >= 3 and top_class_share >= ONE_CLASS_SHARE:
        return (f"{what}: {100 * top_class_share:.0f} % of the images got the same prediction (top-1 {top1:.2f} %, "
                f"{classes} classes): {CAUSES}")
    if top1 <= min(NEAR_CHANCE * chance, chance + NEAR_CHANCE_POINTS):
        return (f"{what}: top-1 {top1:.2f} % is near chance ({chance:.2f} % for {classes} classes): the model is "
                f"guessing; {CAUSES}")
    return None


def timing_warning(what: str, p50_ms: float | None, p90_ms: float | None) -> str | None:
    """A spread too wide to compare at the p50's precision."""
    if not p50_ms or p90_ms is None or p90_ms <= WIDE_SPREAD * p50_ms:
        return None
    return (f"{what}: p90 is {p90_ms / p50_ms:.1f}× the p50 ({p90_ms:.2f} against {p50_ms:.2f} ms): too noisy to "
            "compare; use more --runs or --min-time, a quiet machine, and fewer --threads than cores")


def threads_warning(what: str, threads: int | None, cores: int | None) -> str | None:
    if threads is None or not cores or threads <= cores:
        return None
    return (f"{what}: {threads} threads on {cores} cores compete for them, so this row times contention; use "
            f"--threads {cores} or fewer")


def int8_slower_warning(what: str, int8_ms: float | None, fp32_ms: float | None) -> str | None:
    if not int8_ms or not fp32_ms or int8_ms <= SLOWER_MARGIN * fp32_ms:
        return None
    return (f"{what}: INT8 is slower than FP32 ({int8_ms:.2f} against {fp32_ms:.2f} ms p50): the runtime may lack "
            "INT8 kernels for this CPU, or the timings are noisy; measure again with more --runs before choosing")
