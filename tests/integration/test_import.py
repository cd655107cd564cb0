"""`import vit_edge` stays light, and the runtime side never pulls torch (boards do not have it)."""
from __future__ import annotations

import subprocess
import sys

from tests.conftest import REPO

HEAVY = ["torch", "onnxruntime", "openvino", "litert_torch", "ai_edge_litert", "transformers", "onnx", "timm"]


def loaded_after(statement: str) -> list[str]:
    code = f"{statement}\nimport sys\nprint(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    return [m for m in out.stdout.strip().split(",") if m]


def test_import_vit_edge_imports_no_heavy_package() -> None:
    assert loaded_after("import vit_edge") == []


def test_runtime_and_data_import_without_torch() -> None:
    modules = loaded_after("import vit_edge.runtime, vit_edge.runtime.accuracy, vit_edge.data, vit_edge.artifact")
    assert modules == []


def test_verbs_are_callable_even_after_their_subpackages_are_imported() -> None:
    import vit_edge
    import vit_edge.export.registry  # noqa: F401  (binds the subpackage on the parent)
    import vit_edge.quantize.recipe  # noqa: F401

    assert callable(vit_edge.export) and callable(vit_edge.quantize)
    assert vit_edge.quantize.Recipe(calibration="mse").calibration == "mse"
