"""Progress: the long phases report as they go (a bar on a terminal, a callback from Python), and say nothing
when stderr is not a terminal."""
from __future__ import annotations

import numpy as np
import pytest

from vit_edge.core.progress import MIN_ITEMS, reporting, steps
from vit_edge.runtime.accuracy import run_batched


def test_scoring_thousands_of_images_reports_its_progress() -> None:
    """quantize printed nothing for 97 s while it scored 10,000 evaluation images."""
    seen: list[tuple[str, int, int]] = []
    with reporting(lambda what, done, total: seen.append((what, done, total))):
        out = run_batched(lambda chunk: chunk * 2, np.arange(1000), batch_size=256, what="scoring INT8")
    assert np.array_equal(out, np.arange(1000) * 2)
    assert seen == [("scoring INT8", 256, 1000), ("scoring INT8", 512, 1000), ("scoring INT8", 768, 1000),
                    ("scoring INT8", 1000, 1000)]


def test_no_bar_when_stderr_is_not_a_terminal(capfd: pytest.CaptureFixture[str]) -> None:
    assert list(steps(range(3), lambda _: MIN_ITEMS, 3 * MIN_ITEMS, "x")) == [0, 1, 2]
    assert capfd.readouterr().err == ""


def test_a_bar_on_a_terminal(monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]) -> None:
    import sys

    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    assert list(steps(range(2), lambda _: MIN_ITEMS, 2 * MIN_ITEMS, "scoring")) == [0, 1]
    assert "scoring" in capfd.readouterr().err
    monkeypatch.setenv("VIT_EDGE_PROGRESS", "0")
    list(steps(range(2), lambda _: MIN_ITEMS, 2 * MIN_ITEMS, "scoring"))
    assert capfd.readouterr().err == ""
