"""Parity judgement: logits must keep their top-1; an embedding is judged by cosine alone."""
from __future__ import annotations

import numpy as np
import pytest

from vit_edge.core.errors import ParityError
from vit_edge.core.output_kinds import OUTPUTS
from vit_edge.core.parity import check_parity
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
