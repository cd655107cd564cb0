"""The depth measures (#37 step 2) on hand-made maps, each value worked out by hand in the comments."""
from __future__ import annotations

import math

import numpy as np
import pytest

from vit_edge.core.depth_metrics import abs_rel, delta1, depth_scores, depth_verdict, sqnr_db
from vit_edge.core.errors import ParityError
from vit_edge.core.records import as_json

REFERENCE = np.array([[[1.0, 2.0], [4.0, 0.0]]])  # one 2×2 map; the 0 is a ReLU's "far" pixel
CANDIDATE = np.array([[[1.1, 2.0], [3.0, 5.0]]])


def test_abs_rel_leaves_out_reference_pixels_at_zero() -> None:
    # |1.1-1|/1 + |2-2|/2 + |3-4|/4 = 0.1 + 0 + 0.25 over 3 valid pixels; the pixel with reference 0 is left out
    assert abs_rel(CANDIDATE, REFERENCE) == pytest.approx(0.35 / 3)


def test_delta1_counts_ratios_below_1_25() -> None:
    # ratios 1.1, 1.0, 4/3: two of three valid pixels are within 1.25
    assert delta1(CANDIDATE, REFERENCE) == pytest.approx(2 / 3)
    # exactly 1.25 is not < 1.25; a candidate ≤ 0 fails δ and counts in AbsRel as it is: |-1 - 2| / 2 = 1.5
    assert delta1(np.array([1.25, -1.0]), np.array([1.0, 2.0])) == 0.0
    assert abs_rel(np.array([-1.0]), np.array([2.0])) == pytest.approx(1.5)


def test_sqnr_in_decibels() -> None:
    # signal 10² = 100, error 1² = 1: 10·log10(100) = 20 dB; the zero pixel adds nothing to either
    assert sqnr_db(np.array([11.0, 0.0]), np.array([10.0, 0.0])) == pytest.approx(20.0)
    # 1 + 4 + 16 over 0.01 + 1 + 25 (the zero-reference pixel's error counts in SQNR)
    assert sqnr_db(CANDIDATE, REFERENCE) == pytest.approx(10 * math.log10(21 / 26.01))
    assert sqnr_db(REFERENCE, REFERENCE) == pytest.approx(10 * math.log10(21 / 1e-30))  # finite for JSON


def test_scores_together_and_what_cannot_be_measured() -> None:
    scores = depth_scores(CANDIDATE, REFERENCE)
    assert scores.valid_share == 0.75 and scores.abs_rel == pytest.approx(0.35 / 3)
    assert set(as_json(scores)) == {"abs_rel", "delta1", "sqnr_db", "valid_share"}  # as a quantize summary holds it
    empty = depth_scores(np.ones((1, 2, 2)), np.zeros((1, 2, 2)))
    assert empty.abs_rel is None and empty.delta1 is None and empty.valid_share == 0.0
    with pytest.raises(ParityError, match="cannot be compared"):
        abs_rel(np.ones((2, 2)), np.ones((2, 3)))


def test_verdict_holds_abs_rel_to_two_percent() -> None:
    # 1.9 % and 2.1 % relative error at every pixel: inside and outside bench's AbsRel tolerance of 2 %
    reference = np.full((1, 2, 2), 10.0)
    assert depth_verdict(depth_scores(reference * 1.019, reference)) is None
    assert "AbsRel 2.10%" in str(depth_verdict(depth_scores(reference * 1.021, reference)))
    assert "cannot be measured" in str(depth_verdict(depth_scores(reference, np.zeros((1, 2, 2)))))
