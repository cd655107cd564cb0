"""The shipped Fashion-MNIST ViT: the same accuracy (±0.1 pt) in PyTorch and in every exported artifact."""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from tests.helpers import run_cli
from vit_edge.api import Artifact
from vit_edge.benchmarking.record import BenchRecord
from vit_edge.core.targets import TARGETS
from vit_edge.data.datasets import LabelledImages, load_fashion_mnist
from vit_edge.reading.loaders import load_model
from vit_edge.runtime.accuracy import predict_logits, top1_accuracy


@pytest.fixture(scope="module")
def test_set():
    return load_fashion_mnist("test")


def _torch_top1(images: LabelledImages) -> float:
    loaded = load_model("fmnist-vit-tiny")
    with torch.inference_mode():
        logits = predict_logits(lambda x: loaded.model(torch.from_numpy(x)).numpy(), images, loaded.spec)
    return top1_accuracy(logits, images.labels)


# scored in each target's runtime twice (here and through bench): the test split's first 3,000 images, as bench's
# --eval-limit takes them from an array set; 1/30 pt a image, the 0.1 pt tolerance is 3 images
PER_TARGET = 3000


@pytest.fixture(scope="module")
def first_images(test_set) -> LabelledImages:
    return replace(test_set, images=test_set.images[:PER_TARGET], labels=test_set.labels[:PER_TARGET])


@pytest.fixture(scope="module")
def torch_top1(first_images: LabelledImages) -> float:
    return _torch_top1(first_images)


def test_shipped_model_is_trained(test_set) -> None:
    top1 = _torch_top1(test_set)
    assert top1 > 85.0 if len(test_set) == 10000 else top1 > 80.0


@pytest.mark.slow
@pytest.mark.parametrize("target", list(TARGETS))
def test_accuracy_is_the_same_in_every_target(target: str, tmp_path: Path, first_images: LabelledImages,
                                              torch_top1: float) -> None:
    out = tmp_path / target
    result = run_cli("export", "fmnist-vit-tiny", "--target", target, "--data", "fashion-mnist", "--out", str(out))
    assert result.returncode == 0, result.stderr
    artifact = Artifact.open(out)
    assert artifact.manifest.parity.inputs.startswith("fashion-mnist")
    accuracy = top1_accuracy(predict_logits(artifact.run, first_images, artifact.manifest.input_spec),
                             first_images.labels)
    assert abs(accuracy - torch_top1) <= 0.1, (accuracy, torch_top1)
    # the same number through the bench harness and its report (a separate process, the manifest's preprocessing)
    bench = run_cli("bench", str(out), "--data", "fashion-mnist", "--eval-limit", str(PER_TARGET), "--reference",
                    "pytorch", "--runs", "5", "--min-time", "0", "--out", str(tmp_path / "report"))
    assert bench.returncode == 0, bench.stderr
    lines = (tmp_path / "report" / "bench.jsonl").read_text().splitlines()
    (record,) = [BenchRecord.from_json(json.loads(line)) for line in lines]
    assert record.top1 == pytest.approx(accuracy) and record.eval_images == len(first_images)
    assert record.agreement_top1 >= 99.9 and record.agreement_cosine > 0.99999
    info = run_cli("info", str(out))
    assert info.returncode == 0 and "sha256 verified" in info.stdout and "passed" in info.stdout
