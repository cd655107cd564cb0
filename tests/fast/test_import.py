"""`import vit_edge` stays light, and the runtime side never pulls torch (boards do not have it)."""
from __future__ import annotations

import subprocess
import sys

from tests.helpers import REPO

HEAVY = ["torch", "onnxruntime", "openvino", "litert_torch", "ai_edge_litert", "transformers", "onnx", "timm"]


def loaded_after(statement: str) -> list[str]:
    code = f"{statement}\nimport sys\nprint(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    return [m for m in out.stdout.strip().split(",") if m]


def test_import_vit_edge_imports_no_heavy_package() -> None:
    assert loaded_after("import vit_edge") == []


def test_runtime_and_data_import_without_torch() -> None:
    modules = loaded_after("import vit_edge.runtime, vit_edge.runtime.accuracy, vit_edge.data, vit_edge.core.manifest")
    assert modules == []


def test_verbs_are_functions_and_packages_are_nouns() -> None:
    import inspect

    import vit_edge
    import vit_edge.exporters.registry  # noqa: F401  (binds the subpackage on the parent)
    import vit_edge.quantization.recipe  # noqa: F401

    for verb in ("export", "quantize", "bench", "info", "train", "load_model"):
        assert inspect.isfunction(getattr(vit_edge, verb)), verb
    assert inspect.ismodule(vit_edge.exporters) and inspect.ismodule(vit_edge.quantization)
    assert vit_edge.quantization.Recipe(calibration="mse").calibration == "mse"
