"""Parity judgement: logits must keep their top-1; an embedding is judged by cosine alone."""
from __future__ import annotations

import numpy as np
import pytest

from vit_edge.core.errors import ParityError
from vit_edge.core.output_kinds import OUTPUTS
from vit_edge.core.parity import check_parity, compare_logits, sample_cosines
from vit_edge.core.types import Precision


def flipped_pair() -> tuple[np.ndarray, np.ndarray]:
    """Two nearly equal largest components whose order differs: cosine ~1, argmax flipped."""
    reference = np.array([[1.0, 0.999999, 0.2, -0.3]], dtype=np.float32)
    candidate = np.array([[0.999999, 1.0, 0.2, -0.3]], dtype=np.float32)
    return reference, candidate


def test_logits_may_not_flip_at_fp32() -> None:
    with pytest.raises(ParityError, match="top-1 agreement 0.0%"):
        check_parity(*flipped_pair(), Precision.FP32, "the artifact")


def test_embedding_is_judged_by_cosine() -> None:
    result = check_parity(*flipped_pair(), Precision.FP32, "the artifact", OUTPUTS["embedding"])
    assert result.passed and result.output == "embedding" and result.top1_agreement is None
    far = np.array([[-1.0, 0.0, 0.2, 0.3]], dtype=np.float32)
    with pytest.raises(ParityError, match="min cosine"):
        check_parity(flipped_pair()[0], far, Precision.FP32, "the artifact", OUTPUTS["embedding"])


def _tokens_with(cosines: np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(reference, candidate) patch tokens (B, N, 64) whose per-token cosines are `cosines` (B, N): each candidate
    token is its reference token turned by the angle that gives that cosine."""
    rng = np.random.default_rng(seed)
    reference = rng.standard_normal((*cosines.shape, 64))
    noise = rng.standard_normal(reference.shape)
    unit = reference / np.linalg.norm(reference, axis=-1, keepdims=True)
    side = noise - np.sum(noise * unit, axis=-1, keepdims=True) * unit
    side /= np.linalg.norm(side, axis=-1, keepdims=True)
    candidate = cosines[..., None] * unit + np.sqrt(1 - cosines[..., None] ** 2) * side
    return reference, candidate


def test_patch_tokens_are_judged_per_image_with_a_floor_on_the_worst_token() -> None:
    """The false mismatch (#37): one INT8 token at 0.963 among an image's 196 at 0.999 is quantization's tail, not a
    wrong artifact; an image whose tokens are all off, or one token really wrong, still fails."""
    tokens, features = OUTPUTS["tokens"], OUTPUTS["features"]
    cosines = np.full((4, 196), 0.999)
    cosines[2, 17] = 0.963
    result = check_parity(*_tokens_with(cosines), Precision.INT8, "the artifact", tokens)
    assert result.passed and result.min_token_cosine == pytest.approx(0.963)
    assert result.min_cosine == pytest.approx(0.999 - 0.036 / 196) and result.token_cosine_floor == 0.9
    reference, candidate = _tokens_with(cosines)  # the same as a feature map (B, D, H, W): the same verdict
    as_map = (np.moveaxis(a.reshape(4, 14, 14, 64), -1, 1) for a in (reference, candidate))
    assert check_parity(*as_map, Precision.INT8, "the artifact", features).passed
    every = np.full((4, 196), 0.999)
    every[1] = 0.975  # every token of one image off: its mean misses 0.98
    with pytest.raises(ParityError, match=r"worst image's mean token cosine 0\.97500 \(need ≥ 0\.98\)"):
        check_parity(*_tokens_with(every), Precision.INT8, "the artifact", tokens)
    broken = np.full((4, 196), 0.9999)
    broken[3, 0] = 0.5  # one garbage token: its image's mean (0.99735) would pass, the floor does not
    with pytest.raises(ParityError, match=r"worst token 0\.50000 \(floor 0\.9\)"):
        check_parity(*_tokens_with(broken), Precision.INT8, "the artifact", tokens)
    with pytest.raises(ParityError):  # FP32 holds every image's mean to 0.99999: 0.999 is far from it
        check_parity(*_tokens_with(cosines), Precision.FP32, "the artifact", tokens)


@pytest.mark.parametrize(("kind", "shape"), [("logits", (7, 10)), ("tokens", (7, 5, 8)), ("depth", (7, 6, 6)),
                                             ("segmentation", (7, 4, 6, 6))])
def test_sample_cosines_kept_a_batch_at_a_time_give_compare_logits_numbers(kind: str, shape: tuple[int, ...]) -> None:
    rng = np.random.default_rng(3)
    reference = rng.standard_normal(shape).astype(np.float32)
    candidate = (reference + 0.5 * rng.standard_normal(shape)).astype(np.float32)
    whole = compare_logits(reference, candidate, OUTPUTS[kind])
    found = np.concatenate([sample_cosines(reference[start : start + 3], candidate[start : start + 3], OUTPUTS[kind])
                            for start in range(0, 7, 3)])  # batches of 3, 3, 1
    assert found.shape == (7,) and float(found.min()) == whole.min_cosine  # exactly: the same rows, summed alike
    if whole.tokens_per_sample == 1:  # one vector an image: the images' mean is the mean over every row
        assert float(found.mean()) == whole.mean_cosine
    assert whole.min_cosine < whole.mean_cosine < 1.0
    with pytest.raises(ParityError, match="differs from PyTorch's"):
        sample_cosines(reference, candidate[:3], OUTPUTS[kind])
