"""The depth output kind's measures against a reference depth map (FP32/PyTorch): AbsRel, δ<1.25 and SQNR, one
implementation for quantize's summary, parity and bench (numpy only: boards use it).

Which pixels count: AbsRel and δ divide by the reference, so they are taken over the pixels whose reference depth is
> 0 only. A relative-depth model (Depth Anything) ends in a ReLU and writes exact zeros where it sees "infinitely far";
a relative error there has no meaning, and an epsilon would turn any tiny INT8 value at such a pixel into an error of
millions of percent. Those pixels are left out (as a ground-truth evaluation leaves out invalid depth) and their share
is reported (`valid_share`); a candidate value ≤ 0 at a valid pixel counts in AbsRel as it is and fails δ. SQNR is over
every pixel: it needs no division per pixel. All three are pooled over every pixel of every image given.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from vit_edge.core.errors import ParityError

__all__ = ["DELTA1_THRESHOLD", "ABS_REL_TOLERANCE", "DepthScores", "depth_verdict", "depth_scores", "abs_rel",
           "delta1", "sqnr_db", "TruthScores", "truth_scores", "aligned_depth", "ALIGNMENT"]

DELTA1_THRESHOLD = 1.25
# what a depth artifact of any precision must meet against its FP32 PyTorch model where bench compares them
# (--reference pytorch): AbsRel ≤ 2 %, the budget #37 sets for INT8 (FP32 and FP16 files are orders of magnitude
# inside it). The cosine tolerance of the precision applies as well; this one says it in the task's own measure.
ABS_REL_TOLERANCE = 0.02
_FLOOR = 1e-30  # a power below this is zero: SQNR of identical maps is finite (300 dB), and JSON can hold it


@dataclass(frozen=True)
class DepthScores:
    """AbsRel (a fraction, not %), δ<1.25 (a fraction), SQNR (dB), and the share of pixels AbsRel and δ were over;
    AbsRel and δ are None when no reference pixel is > 0."""

    abs_rel: float | None
    delta1: float | None
    sqnr_db: float
    valid_share: float


def _pair(candidate: np.ndarray, reference: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    got, ref = np.asarray(candidate, dtype=np.float64), np.asarray(reference, dtype=np.float64)
    if got.shape != ref.shape:
        raise ParityError(f"depth maps of shapes {got.shape} and {ref.shape} cannot be compared")
    return got.ravel(), ref.ravel()


def abs_rel(candidate: np.ndarray, reference: np.ndarray) -> float | None:
    """mean(|d − d_ref| / d_ref) over the pixels where d_ref > 0; None when there is none."""
    got, ref = _pair(candidate, reference)
    valid = ref > 0
    if not valid.any():
        return None
    return float(np.mean(np.abs(got[valid] - ref[valid]) / ref[valid]))


def delta1(candidate: np.ndarray, reference: np.ndarray, threshold: float = DELTA1_THRESHOLD) -> float | None:
    """The share of pixels with d_ref > 0 where max(d / d_ref, d_ref / d) < threshold (d ≤ 0 fails); None when
    no reference pixel is > 0."""
    got, ref = _pair(candidate, reference)
    valid = ref > 0
    if not valid.any():
        return None
    d, r = got[valid], ref[valid]
    positive = d > 0
    ratio = np.full(d.shape, np.inf)
    ratio[positive] = np.maximum(d[positive] / r[positive], r[positive] / d[positive])
    return float(np.mean(ratio < threshold))


def sqnr_db(candidate: np.ndarray, reference: np.ndarray) -> float:
    """10·log10(Σ d_ref² / Σ (d − d_ref)²) in dB over every pixel (powers floored at 1e-30)."""
    got, ref = _pair(candidate, reference)
    signal = max(float(np.sum(ref * ref)), _FLOOR)
    noise = max(float(np.sum((got - ref) ** 2)), _FLOOR)
    return 10 * math.log10(signal / noise)


def depth_scores(candidate: np.ndarray, reference: np.ndarray) -> DepthScores:
    """All three measures of `candidate` against `reference` (same shape: (B, H, W) or any)."""
    _, ref = _pair(candidate, reference)
    share = float(np.mean(ref > 0)) if ref.size else 0.0
    return DepthScores(abs_rel(candidate, reference), delta1(candidate, reference), sqnr_db(candidate, reference),
                       share)


def depth_verdict(scores: DepthScores, tolerance: float = ABS_REL_TOLERANCE) -> str | None:
    """None when `scores` meet the AbsRel tolerance, else the words of the failure (one line)."""
    if scores.abs_rel is None:
        return "AbsRel cannot be measured: no pixel of the reference depth is > 0"
    if scores.abs_rel > tolerance:
        return f"AbsRel {100 * scores.abs_rel:.2f}% against the reference exceeds {100 * tolerance:.0f}%"
    return None


# -- against ground truth -------------------------------------------------------------------------------------------
# How a relative-depth prediction meets metric ground truth. Depth Anything's relative models predict disparity up to
# an unknown scale and shift (affine-invariant inverse depth, trained with MiDaS's loss); their papers evaluate them
# zero-shot "following MiDaS" (Yang et al., Depth Anything, CVPR 2024, section 4.2): per image, the scale and shift
# that fit the prediction to the ground truth's disparity (1 / depth) by least squares over the measured pixels,
# then depth = 1 / aligned disparity, capped (Ranftl et al., "Towards Robust Monocular Depth Estimation", TPAMI 2022,
# and its NYU evaluation code, gist ranftlr/a1c7a24ebb24ce0e2f2ace5bce917022, which caps at 10 m; here at the image's
# deepest measured pixel, which needs no dataset constant). Median scaling (Zhou et al. 2017) fits a scale only, for
# scale-ambiguous *depth*; it is wrong for disparity, so it is not used. A metric model's metres are compared as they
# are. AbsRel and δ<1.25 are computed per image over its measured pixels (ground truth > 0) and averaged over images.
ALIGNMENT = {True: "least-squares scale and shift on disparity per image (MiDaS's protocol), depth capped at the "
                   "image's deepest measured pixel",
             False: "none (metric depth in metres)"}


@dataclass(frozen=True)
class TruthScores:
    """AbsRel and δ<1.25 (fractions) against ground-truth depth, averaged over `images`, and how predictions were
    aligned to it."""

    abs_rel: float
    delta1: float
    images: int
    alignment: str


def aligned_depth(predicted: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """A relative (disparity) prediction of one image as depth on the ground truth's scale: least-squares scale s and
    shift t of s·predicted + t ≈ 1 / truth over the measured pixels, then 1 / max(s·predicted + t, 1 / deepest)."""
    pred, gt = np.asarray(predicted, np.float64), np.asarray(truth, np.float64)
    valid = gt > 0
    x, y = pred[valid], 1.0 / gt[valid]
    a00, a01, a11 = float(np.dot(x, x)), float(x.sum()), float(valid.sum())
    b0, b1 = float(np.dot(x, y)), float(y.sum())
    det = a00 * a11 - a01 * a01
    scale, shift = ((a11 * b0 - a01 * b1) / det, (a00 * b1 - a01 * b0) / det) if det > 0 else (0.0, b1 / a11)
    floor = 1.0 / float(gt[valid].max())
    return 1.0 / np.maximum(scale * pred + shift, floor)


def truth_scores(predicted: np.ndarray, truth: np.ndarray, relative: bool) -> TruthScores:
    """`predicted` (B, H, W) against `truth` (B, H, W, metres, 0 = not measured); `relative`: the prediction is
    disparity up to scale and shift (aligned per image first), else metres."""
    if np.shape(predicted) != np.shape(truth):
        raise ParityError(f"depth maps of shapes {np.shape(predicted)} and {np.shape(truth)} cannot be compared")
    rels: list[float] = []
    deltas: list[float] = []
    for pred, gt in zip(np.asarray(predicted, np.float64), np.asarray(truth, np.float64)):
        depth = aligned_depth(pred, gt) if relative and (gt > 0).any() else pred
        rel, share = abs_rel(depth, gt), delta1(depth, gt)
        if rel is not None and share is not None:  # None: no measured pixel left (check_depth refuses such maps;
            rels.append(rel)                        # a crop may still leave none)
            deltas.append(share)
    if not rels:
        raise ParityError("no image has a measured ground-truth pixel at the model's input")
    return TruthScores(float(np.mean(rels)), float(np.mean(deltas)), len(rels), ALIGNMENT[relative])
