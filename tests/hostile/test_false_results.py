"""Hostile requests, false-results class: a measure is computed only where it means something.

The output kind (core/output_kinds.py) says which measures apply: a top-1 of patch tokens (the argmax over the
token axis taken as a class) was printed as "top-1 1.76 % → 1.76 %", written into the manifest, and met
`--max-drop 0.5`; `--eval` with QAT on tokens ended in a traceback. Each is now refused in one line, and what is
measured on such an output (cosine with FP32) is said as such.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import assert_user_error, run_cli
from vit_edge.core.manifest import read_manifest
from vit_edge.core.output_kinds import OUTPUTS, Measure
from vit_edge.core.parity import compare_logits, judge
from vit_edge.core.types import Precision

TOKENS = ("quantize", "fmnist-vit-tiny", "--target", "onnx", "--output", "tokens", "--calib", "fashion-mnist",
          "--calib-size", "16", "--parity-samples", "2")


@pytest.mark.parametrize("extra, said", [
    (("--eval", "fashion-mnist"), "--eval needs top-1 against labels"),
    (("--eval", "fashion-mnist", "--max-drop", "0.5"), "--max-drop, a budget in top-1 points, needs top-1"),
    (("--method", "qat", "--data", "fashion-mnist", "--eval", "fashion-mnist", "--epochs", "1"),
     "QAT (--method qat), which trains on labels, needs top-1"),
])
def test_no_top1_is_measured_on_patch_tokens(tmp_path: Path, extra: tuple[str, ...], said: str) -> None:
    result = run_cli(*TOKENS, *extra, "--out", str(tmp_path / "a"))
    message = assert_user_error(result, said, "patch tokens", "cosine with FP32 per token")
    assert "leave" in message or "--method ptq" in message
    assert not (tmp_path / "a").exists()


def test_tokens_are_reported_by_cosine_not_by_an_agreement(tmp_path: Path) -> None:
    """Without --eval the quantize line said 'agreement with fp32 …%': a per-token argmax over the features."""
    result = run_cli(*TOKENS, "--out", str(tmp_path / "a"))
    assert result.returncode == 0, result.stderr
    assert "agreement" not in result.stdout and "mean cosine with fp32" in result.stdout
    manifest = read_manifest(tmp_path / "a")
    assert manifest.quantization is not None and manifest.parity is not None
    accuracy = manifest.quantization.accuracy
    assert accuracy.agreement_top1 is None and accuracy.drop is None and 0.9 < (accuracy.cosine or 0) <= 1.0
    assert "agreement_top1" not in json.loads((tmp_path / "a" / "manifest.json").read_text())["quantization"][
        "accuracy"]  # not written as null either: the key is absent
    assert manifest.parity.top1_agreement is None
    bench = run_cli("bench", str(tmp_path / "a"), "--data", "fashion-mnist", "--eval-limit", "64", "--reference",
                    "pytorch", "--runs", "2", "--min-time", "0", "--warmup", "0", "--out", str(tmp_path / "r"))
    assert "Traceback" not in bench.stderr
    (record,) = [json.loads(line) for line in (tmp_path / "r" / "bench.jsonl").read_text().splitlines()]
    assert record["top1"] is None and record["agreement_top1"] is None and record["agreement_cosine"] > 0.9
    assert "agreement" not in (record["error"] or "")  # a verdict on tokens names cosines only


def test_every_output_kind_declares_its_measures() -> None:
    rng = __import__("numpy").random.default_rng(0)
    reference = rng.normal(size=(2, 4, 8)).astype("float32")
    shaped = {"segmentation": reference[..., None]}  # (batch, classes, H, W)
    for name, output in OUTPUTS.items():
        given = shaped.get(name, reference if output.dense else reference[:, 0])
        found = compare_logits(given, given, output)
        assert (found.top1_agreement is not None) is output.supports(Measure.AGREEMENT), name
        assert (found.segmentation is not None) is output.supports(Measure.PIXEL_AGREEMENT), name
    assert OUTPUTS["logits"].supports(Measure.TOP1) and not OUTPUTS["embedding"].supports(Measure.TOP1)
    assert judge(reference, -reference, Precision.INT8, OUTPUTS["tokens"]).passed is False
