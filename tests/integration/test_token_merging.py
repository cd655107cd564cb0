"""Token merging (ToMe) in the exported graph: every target, FP32 and INT8, verified in its runtime, under a budget."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import assert_user_error, run_cli
from vit_edge.api import QuantizeConfig, export, quantize
from vit_edge.core.targets import TARGETS
from vit_edge.core.types import Precision
from vit_edge.data.datasets import load_fashion_mnist
from vit_edge.data.preprocess import preprocess_uint8
from vit_edge.runtime import open_session

INT8_TARGETS = [t.name for t in TARGETS.values() if Precision.INT8 in t.precisions]
MERGE = 4  # the shipped model's 50 tokens → 34 after four blocks; 0.26 points on the 10,000 test images


@pytest.fixture(scope="module")
def heldout():
    return load_fashion_mnist("test").take(500)


@pytest.mark.parametrize("target", INT8_TARGETS)
def test_merged_int8_artifact_runs_as_verified_within_budget(target: str, tmp_path: Path, heldout) -> None:
    config = QuantizeConfig("fashion-mnist", calib_size=64, eval_data="fashion-mnist", eval_limit=500)
    artifact = quantize("fmnist-vit-tiny", target, tmp_path / "q", config, merge=MERGE, parity_samples=8)
    manifest = artifact.manifest
    assert manifest.parity.passed and manifest.source.architecture["merge"] == MERGE
    merge = manifest.source.merge
    assert merge.tokens_per_block == (46, 42, 38, 34) and merge.images == 500
    accuracy = manifest.quantization.accuracy  # measured from the unmerged FP32 model: merging + INT8
    assert accuracy.fp32_top1 == pytest.approx(merge.top1_unmerged)
    assert accuracy.drop < 2.0 and accuracy.agreement_top1 > 95.0, accuracy
    session = open_session(artifact.path)
    predictions = session.run(preprocess_uint8(heldout.images[:200], manifest.input_spec)).argmax(1)
    assert np.mean(predictions == heldout.labels[:200]) > 0.80


def test_merged_fp32_exports_match_pytorch_on_every_target(tmp_path: Path) -> None:
    """ExecuTorch: XNNPACK keeps the blocks' matmuls; the matching (top-k, cumsum, comparisons) runs on portable
    kernels, and the delegation report names it."""
    for declaration in TARGETS.values():
        artifact = export("fmnist-vit-tiny", declaration.name, tmp_path / declaration.name, merge=MERGE,
                          parity_samples=8)
        assert artifact.manifest.parity.passed and artifact.manifest.parity.max_abs_diff < 1e-4
        if declaration.name == "executorch":
            delegation = json.loads((artifact.path / "delegation.json").read_text())
            assert {"topk", "cumsum", "eq"} <= set(delegation["undelegated_ops"]), delegation
            assert delegation["gemms_in_delegate"]["float linear"] >= 16


def test_merge_errors_are_one_line(tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert_user_error(run_cli("export", "fmnist-vit-tiny", "--target", "onnx", "--merge", "25", "--out", str(out)),
                      "--merge 25", "use --merge 1 to 24")
    assert_user_error(run_cli("quantize", "fmnist-vit-tiny", "--target", "onnx", "--calib", "fashion-mnist",
                              "--merge", "20", "--max-drop", "0.5", "--eval", "fashion-mnist", "--eval-limit", "300",
                              "--out", str(out)), "--merge 20 alone costs", "over --max-drop 0.5")
    assert_user_error(run_cli("export", "fmnist-vit-tiny", "--target", "onnx", "--max-drop", "1", "--out", str(out)),
                      "needs --merge R and labelled --data")
    assert not out.exists()
