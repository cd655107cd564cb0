"""Parity: an exported artifact, run in its own runtime, must compute what the PyTorch model computes.

Tolerances per precision, and why:
- fp32: cosine ≥ 0.99999 and every top-1 the same. Only summation order differs between runtimes (~1e-6).
- fp16: cosine ≥ 0.999; weights rounded to 11 significant bits move logits by ~1e-3 relative, so a top-1 may
  flip only at a near tie: where PyTorch's own top-1/top-2 margin is within 4 times that sample's
  RMS difference (noise of the size the sample shows can close that gap). The yardstick is the RMS over the
  sample's outputs, not the largest difference: any flip closes its own margin, so the largest difference
  always covers it and a max-based rule could never fail. With C outputs a flip's margin can reach √(2C)·RMS,
  so the rule can fail from 9 outputs up; below that, flips are judged by the cosine alone.
- int8: cosine ≥ 0.98, the same rule at 6 RMS differences (quantization noise is larger and heavier-tailed;
  accuracy budgets are the quantizer's job).
- an embedding (an encoder without a head: DINOv2, SigLIP, CLIP, re-ID), patch tokens or a feature map is judged
  by cosine alone (core/output_kinds.py): the index of its largest component means nothing, so no top-1 agreement
  is computed for it at all.
- segmentation logits are judged by cosine per image too; their pixel agreement (argmax) and mIoU against the
  reference's argmax are reported beside it, not judged: a random or barely trained model's near-tied classes flip
  under any rounding, and the cosine already bounds the logits' error.
- patch tokens and feature maps are judged per image, as a depth map is: each image's mean token cosine against the
  tolerance, and its worst token against a floor five times as far from 1 (INT8: 0.90). The tolerance as a minimum
  over every token of every image was a test of the noise's tail, not of the artifact: a correct INT8 ViT-Ti's
  tokens reached 0.963 on one token of 1,568 (all images' means ≥ 0.99) and bench called it a mismatch. The floor
  keeps a token that is really wrong (a broken kernel at the border, a garbage row) a failure even where its image's
  mean hides it; `min_token_cosine` reports the worst token either way.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from vit_edge.core.errors import ParityError
from vit_edge.core.output_kinds import OUTPUTS, Measure, ModelOutput
from vit_edge.core.records import flat, optional
from vit_edge.core.segmentation_metrics import PixelAgreement, segmentation_against_fp32
from vit_edge.core.types import Precision, SessionInfo

__all__ = ["Tolerance", "TOLERANCES", "TOKEN_FLOOR_FACTOR", "Comparison", "Verdict", "ParityCheck", "SizeParity",
           "agreement_words", "cosine_words", "compare_logits", "sample_cosines", "judge", "check_parity"]

LOGITS = OUTPUTS["logits"]


@dataclass(frozen=True)
class Comparison:
    """Two models' outputs on the same inputs: per-sample (per-token for a dense output) cosine and absolute
    differences; for an output with classes, top-1 agreement and each flip's margin in units of its sample's RMS
    difference (None, 0 and () where the output has no classes)."""

    samples: int
    tokens_per_sample: int
    max_abs_diff: float
    mean_abs_diff: float
    min_cosine: float
    mean_cosine: float
    top1_agreement: float | None = None
    top1_disagreements: int = 0
    flip_margins_in_noise: tuple[float, ...] = ()
    segmentation: PixelAgreement | None = flat(None)  # a segmentation map: its pixels' argmax against the reference
    # several tokens an image (tokens, a feature map): `min_cosine` is the worst image's mean, this the worst token
    min_token_cosine: float | None = optional()


@dataclass(frozen=True, kw_only=True)
class Verdict(Comparison):
    """A comparison judged by the tolerance of a precision: `passed`, and the numbers it was judged by."""

    tolerance_min_cosine: float
    near_ties_may_flip: bool
    disagreements_beyond_near_ties: int
    output: str  # the output kind judged (core/output_kinds.py)
    passed: bool
    token_cosine_floor: float | None = optional()  # what the worst token had to reach (with min_token_cosine)


@dataclass(frozen=True)
class SizeParity:
    """Parity of an artifact of any size at one size besides its default (a few synthetic inputs)."""

    size: tuple[int, int]  # (height, width)
    samples: int
    passed: bool
    min_cosine: float
    max_abs_diff: float


@dataclass(frozen=True, kw_only=True)
class ParityCheck(Verdict):
    """A manifest's parity: the artifact in its own runtime against PyTorch at export, on which inputs, what ran,
    and the file holding a few of those inputs and PyTorch's outputs for every device to check again."""

    inputs: str | None = optional()  # the images ("synthetic smooth images" or the data's origin)
    runtime: SessionInfo | None = optional()
    other_sizes: tuple[SizeParity, ...] | None = optional()  # an artifact of any size: parity at other sizes
    numerics_check: str | None = optional()  # NUMERICS_CHECK, in the artifact


@dataclass(frozen=True)
class Tolerance:
    min_cosine: float
    near_tie_noise: float | None  # a flip within this many RMS differences is a near tie; None: no flip at all

    @property
    def near_ties_may_flip(self) -> bool:
        return self.near_tie_noise is not None

    @property
    def token_floor(self) -> float:
        """The least cosine one token of a dense output may have (its image's mean is held to `min_cosine`)."""
        return round(1.0 - TOKEN_FLOOR_FACTOR * (1.0 - self.min_cosine), 9)


TOKEN_FLOOR_FACTOR = 5.0  # a dense output's worst token may be this many times as far from 1 as the tolerance

# Measured on the shipped model's 10,000 test images against FP32: INT8 flips reach 2.6 (ONNX) and 3.6 (TFLite)
# times the sample's RMS difference; a sample whose winner collapses (a broken kernel) stands far beyond.
TOLERANCES: dict[Precision, Tolerance] = {
    Precision.FP32: Tolerance(min_cosine=0.99999, near_tie_noise=None),
    Precision.FP16: Tolerance(min_cosine=0.999, near_tie_noise=4.0),
    Precision.INT8: Tolerance(min_cosine=0.98, near_tie_noise=6.0),
}


def per_token(output: np.ndarray, feature_map: bool = False, pixel_map: bool = False) -> np.ndarray:
    """A dense output as one row per token: (B, [L,] N, D) tokens → (B·L·N, D); a (B, [L,] D, H, W) feature map
    (`feature_map`) → (B·L·H·W, D); a (B, H, W) map of one value per pixel (`pixel_map`: depth) → (B, H·W), one row
    per image (a row of pixels is no token)."""
    if pixel_map:
        return output.reshape(output.shape[0], -1)
    if feature_map:
        output = np.moveaxis(output, -3, -1)
    return output.reshape(-1, output.shape[-1]) if output.ndim > 2 else output


def compare_logits(reference: np.ndarray, candidate: np.ndarray, output: ModelOutput = LOGITS) -> Comparison:
    """Per-sample cosine and max/mean abs diff; for logits also top-1 agreement and the disagreements that are not
    near-ties. A dense output (tokens, feature map) is compared per token: `min_cosine` is the worst image's mean
    token cosine and `min_token_cosine` the worst token; a depth map per image (the whole map one vector); an output
    without classes gets no agreement (None): its largest index means nothing."""
    _same_shape(reference, candidate)
    maps = segmentation_against_fp32(candidate, reference) if output.supports(Measure.PIXEL_AGREEMENT) else None
    samples = int(reference.shape[0])
    reference, candidate = _as_rows(reference, output), _as_rows(candidate, output)
    diff = np.abs(reference - candidate)
    cosine = _cosines(reference, candidate)
    tokens = int(reference.shape[0]) // max(samples, 1)
    per_image = _per_sample(cosine, samples)
    found = Comparison(samples=samples, tokens_per_sample=tokens,
                       max_abs_diff=float(diff.max()), mean_abs_diff=float(diff.mean()),
                       min_cosine=float(per_image.min()),  # per image: its tokens' mean, where it has several
                       mean_cosine=float(cosine.mean()),
                       segmentation=maps,  # segmentation: pixel agreement and mIoU with FP32's argmax (not judged)
                       min_token_cosine=float(cosine.min()) if tokens > 1 else None)
    return _with_agreement(found, reference, candidate, diff) if output.supports(Measure.AGREEMENT) else found


def sample_cosines(reference: np.ndarray, candidate: np.ndarray, output: ModelOutput = LOGITS) -> np.ndarray:
    """Each sample's cosine against the reference (its tokens' mean where it has several), float64: what
    compare_logits takes `min_cosine` from, and its `mean_cosine` where a sample is one vector (logits, an embedding,
    a depth or segmentation map). A comparison streamed a batch at a time keeps these, one float an image."""
    _same_shape(reference, candidate)
    return _per_sample(_cosines(_as_rows(reference, output), _as_rows(candidate, output)), int(reference.shape[0]))


def _same_shape(reference: np.ndarray, candidate: np.ndarray) -> None:
    if reference.shape != candidate.shape:
        raise ParityError(f"artifact output shape {candidate.shape} differs from PyTorch's {reference.shape}")


def _as_rows(output: np.ndarray, kind: ModelOutput) -> np.ndarray:
    """per_token's rows, in float64."""
    return per_token(output, kind.channels_first, kind.pixel_map).astype(np.float64)


def _cosines(reference: np.ndarray, candidate: np.ndarray) -> np.ndarray:
    """Each row's cosine (rows of float64)."""
    norms = np.linalg.norm(reference, axis=1) * np.linalg.norm(candidate, axis=1)
    return np.sum(reference * candidate, axis=1) / np.maximum(norms, 1e-30)


def _per_sample(cosine: np.ndarray, samples: int) -> np.ndarray:
    """Each sample's mean over its tokens' cosines (the rows as they are where there is one a sample)."""
    tokens = len(cosine) // max(samples, 1)
    return cosine.reshape(samples, tokens).mean(axis=1) if samples and tokens else cosine


def _with_agreement(found: Comparison, reference: np.ndarray, candidate: np.ndarray, diff: np.ndarray) -> Comparison:
    """Top-1 agreement, and each flip's top-1/top-2 margin in units of its sample's RMS difference."""
    disagree = reference.argmax(1) != candidate.argmax(1)
    ordered = np.sort(reference, axis=1)
    margin = ordered[:, -1] - ordered[:, -2] if reference.shape[1] > 1 else np.full(len(reference), np.inf)
    noise = np.sqrt(np.mean(diff * diff, axis=1))  # each sample's RMS difference
    in_noise = margin / np.maximum(noise, 1e-30)
    return replace(found, top1_agreement=float(1.0 - disagree.mean()), top1_disagreements=int(disagree.sum()),
                   flip_margins_in_noise=tuple(round(float(v), 3) for v in in_noise[disagree]))


def judge(reference: np.ndarray, candidate: np.ndarray, precision: Precision,
          output: ModelOutput = LOGITS) -> Verdict:
    """compare_logits plus the verdict for `precision` ('passed'), without raising (numpy only: boards use it).
    A dense output with several tokens an image is judged per image: `min_cosine` is the worst image's mean token
    cosine, and its worst token must reach the tolerance's floor."""
    found = compare_logits(reference, candidate, output)
    tolerance = TOLERANCES[precision]
    limit = tolerance.near_tie_noise if tolerance.near_tie_noise is not None else -1.0
    flips = sum(1 for ratio in found.flip_margins_in_noise if ratio > limit)
    floor = tolerance.token_floor if found.min_token_cosine is not None else None
    tokens_ok = floor is None or (found.min_token_cosine is not None and found.min_token_cosine >= floor)
    return Verdict(**vars(found), tolerance_min_cosine=tolerance.min_cosine,
                   near_ties_may_flip=tolerance.near_ties_may_flip, disagreements_beyond_near_ties=flips,
                   output=output.name, passed=found.min_cosine >= tolerance.min_cosine and flips == 0 and tokens_ok,
                   token_cosine_floor=floor)


def cosine_words(result: Comparison) -> str:
    """'min cosine 0.97 (need ≥ 0.98)', and for a dense output judged per image what its mean and its worst token
    met: the words every parity failure uses."""
    need = result.tolerance_min_cosine if isinstance(result, Verdict) else None
    words = "worst image's mean token cosine" if result.min_token_cosine is not None else "min cosine"
    text = f"{words} {result.min_cosine:.5f}" + (f" (need ≥ {need})" if need is not None else "")
    if result.min_token_cosine is not None:
        floor = result.token_cosine_floor if isinstance(result, Verdict) else None
        text += f", worst token {result.min_token_cosine:.5f} (floor {'?' if floor is None else floor})"
    return text


def agreement_words(result: Comparison, digits: int = 1) -> str:
    """', top-1 agreement 99.5%' where the output has classes, ', pixel agreement 99.5%' for a segmentation map;
    '' where it has neither."""
    agreement = result.top1_agreement
    if result.segmentation is not None:
        return f", pixel agreement {100 * result.segmentation.pixel_agreement:.{digits}f}%"
    return "" if agreement is None else f", top-1 agreement {100 * agreement:.{digits}f}%"


def check_parity(reference: np.ndarray, candidate: np.ndarray, precision: Precision, label: str,
                 output: ModelOutput = LOGITS) -> Verdict:
    """Compare and judge; raises ParityError with the numbers when the artifact is outside tolerance."""
    result = judge(reference, candidate, precision, output)
    if not result.passed:
        raise ParityError(
            f"{label} does not match PyTorch: {cosine_words(result)}{agreement_words(result)}, max abs diff "
            f"{result.max_abs_diff:.3g}; pass --no-verify to keep it anyway"
        )
    return result
