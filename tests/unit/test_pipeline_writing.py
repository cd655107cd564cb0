"""The written file is run in its runtime before it is kept: a runtime that fails on it is one line, not its
traceback (an any-size graph traced with a size-dependent branch broke ONNX Runtime at another size, exit 1)."""
from __future__ import annotations

import numpy as np
import pytest

from vit_edge.core.errors import DataError, ParityError
from vit_edge.pipeline.writing import _run_written


class _Session:
    """A runtime session that fails the way ONNX Runtime does, on inputs of one width only."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    def run(self, batch: np.ndarray) -> np.ndarray:
        if batch.shape[-1] == 112:
            raise self.error
        return batch.sum(axis=(1, 2, 3))[:, None]


def test_a_runtime_failure_is_a_parity_error_naming_the_size() -> None:
    fail = RuntimeError("[ONNXRuntimeError] : 1 : FAIL : Non-zero status code returned while running Add node.\n"
                        "Attempting to broadcast an axis by a dimension other than 1. 3 by 4")
    session = _Session(fail)
    good = np.ones((2, 3, 64, 64), dtype=np.float32)
    assert _run_written(session, good, "onnx", None).shape == (2, 1)  # type: ignore[arg-type]
    with pytest.raises(ParityError) as caught:
        _run_written(session, np.ones((2, 3, 80, 112), dtype=np.float32), "onnx", (80, 112))  # type: ignore[arg-type]
    words = str(caught.value)
    assert "\n" not in words and "the onnx artifact fails in its runtime at 80x112" in words
    assert "Non-zero status code returned while running Add node" in words and "--img-size" in words


def test_our_own_errors_pass_through_as_they_are() -> None:
    session = _Session(DataError("input 80x112 is not a multiple of 16"))
    with pytest.raises(DataError, match="not a multiple of 16"):
        _run_written(session, np.ones((1, 3, 80, 112), dtype=np.float32), "onnx", (80, 112))  # type: ignore[arg-type]
