"""The zip sent to boards holds everything the measuring process imports, and nothing that needs torch."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from vit_edge.benchmarking.remote import build_runner_zip

PROBE = """
import sys
sys.path[:] = [p for p in sys.path if p not in ("", ".") and "vit_edge" not in p and not p.endswith("main")]
sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in repr(f).lower()]
sys.path.insert(0, sys.argv[1])
import vit_edge, vit_edge.runtime.runner, vit_edge.runtime.measure, vit_edge.runtime.accuracy, vit_edge.runtime.litert
import vit_edge.runtime.onnxruntime, vit_edge.runtime.openvino, vit_edge.data.preprocess
assert vit_edge.__file__.startswith(sys.argv[1]), vit_edge.__file__
print("torch" in sys.modules)
"""


def test_runner_zip_is_self_contained(tmp_path: Path) -> None:
    runner = build_runner_zip(tmp_path / "runner.pyz")
    result = subprocess.run([sys.executable, "-c", PROBE, str(runner)], capture_output=True, text=True,
                            cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"
