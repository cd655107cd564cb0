"""The shipped Fashion-MNIST ViT: the same accuracy (±0.1 pt) in PyTorch and in every exported artifact."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tests.helpers import run_cli
from vit_edge.api import Artifact
from vit_edge.benchmarking.record import BenchRecord
from vit_edge.core.targets import TARGETS
from vit_edge.data.datasets import load_fashion_mnist
from vit_edge.reading.loaders import load_model
from vit_edge.runtime.accuracy import predict_logits, top1_accuracy


@pytest.fixture(scope="module")
def test_set():
    return load_fashion_mnist("test")


@pytest.fixture(scope="module")
def torch_top1(test_set) -> float:
    loaded = load_model("fmnist-vit-tiny")
    with torch.inference_mode():
        logits = predict_logits(lambda x: loaded.model(torch.from_numpy(x)).numpy(), test_set, loaded.spec)
    return top1_accuracy(logits, test_set.labels)


def test_shipped_model_is_trained(torch_top1: float, test_set) -> None:
    assert torch_top1 > 85.0 if len(test_set) == 10000 else torch_top1 > 80.0


@pytest.mark.slow
@pytest.mark.parametrize("target", list(TARGETS))
def test_accuracy_is_the_same_in_every_target(target: str, tmp_path: Path, test_set, torch_top1: float) -> None:
    out = tmp_path / target
    result = run_cli("export", "fmnist-vit-tiny", "--target", target, "--data", "fashion-mnist", "--out", str(out))
    assert result.returncode == 0, result.stderr
    artifact = Artifact.open(out)
    assert artifact.manifest.parity.inputs.startswith("fashion-mnist")
    accuracy = top1_accuracy(predict_logits(artifact.run, test_set, artifact.manifest.input_spec), test_set.labels)
    assert abs(accuracy - torch_top1) <= 0.1, (accuracy, torch_top1)
    # the same number through the bench harness and its report (a separate process, the manifest's preprocessing)
    bench = run_cli("bench", str(out), "--data", "fashion-mnist", "--reference", "pytorch", "--runs", "5",
                    "--min-time", "0", "--out", str(tmp_path / "report"))
    assert bench.returncode == 0, bench.stderr
    lines = (tmp_path / "report" / "bench.jsonl").read_text().splitlines()
    (record,) = [BenchRecord.from_json(json.loads(line)) for line in lines]
    assert record.top1 == pytest.approx(accuracy) and record.eval_images == len(test_set)
    assert record.agreement_top1 >= 99.9 and record.agreement_cosine > 0.99999
    info = run_cli("info", str(out))
    assert info.returncode == 0 and "sha256 verified" in info.stdout and "passed" in info.stdout
