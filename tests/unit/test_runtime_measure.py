"""The memory figure is the measuring process's own: a known allocation shows up as itself, and a process forked
from a large parent does not inherit the parent's peak."""
from __future__ import annotations

import subprocess
import sys

from tests.helpers import REPO

PROBE = """
import numpy as np
from vit_edge.runtime.measure import peak_rss_mb
before = peak_rss_mb()
block = np.ones(200 * 1024 * 1024 // 8)  # 200 MiB, touched
print(before, peak_rss_mb())
"""


def test_a_known_allocation_is_measured_as_itself() -> None:
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=REPO, capture_output=True, text=True, check=True)
    before, after = (float(v) for v in out.stdout.split())
    assert 195 <= after - before <= 210, (before, after)


def test_a_child_does_not_report_its_parents_peak() -> None:
    """The parent touches 500 MiB, then starts the probe: the child's figure stays far below it."""
    parent = (f"import numpy as np, subprocess, sys\nblock = np.ones(500 * 1024 * 1024 // 8)\n"
              f"print(subprocess.run([sys.executable, '-c', {PROBE!r}], capture_output=True, text=True).stdout)")
    out = subprocess.run([sys.executable, "-c", parent], cwd=REPO, capture_output=True, text=True, check=True)
    before, after = (float(v) for v in out.stdout.split())
    assert before < 300 and after < 500, (before, after)
