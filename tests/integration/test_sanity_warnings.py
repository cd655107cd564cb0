"""The first hour: photo-style JPEGs in folders named after the shipped model's classes score at chance (the
model answers one class for all); bench and quantize printed 10.00 % as an ordinary number. They now warn."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.helpers import run_cli


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(0)
    for name in ("Trouser", "Dress", "Sandal", "Bag", "Coat"):
        (root / name).mkdir()
        for index in range(4):
            colours = rng.uniform(0, 255, size=(6, 8, 3)).astype(np.uint8)
            Image.fromarray(colours).resize((160, 120), Image.BICUBIC).save(root / name / f"IMG_{index:04d}.jpg")
    return root


def test_bench_and_quantize_say_when_the_model_is_guessing(tmp_path: Path, photos: Path) -> None:
    export = run_cli("export", "fmnist-vit-tiny", "--target", "onnx", "--parity-samples", "2", "--out",
                     str(tmp_path / "a"))
    assert export.returncode == 0, export.stderr
    bench = run_cli("bench", str(tmp_path / "a"), "--data", str(photos), "--runs", "3", "--min-time", "0",
                    "--warmup", "0", "--out", str(tmp_path / "r"))
    assert bench.returncode == 0, bench.stderr
    assert "vit-edge: warning: a: 100 % of the images got the same prediction" in bench.stderr
    assert "mean/std" in bench.stderr
    quantize = run_cli("quantize", "fmnist-vit-tiny", "--target", "onnx", "--calib", "fashion-mnist",
                       "--calib-size", "16", "--eval", str(photos), "--parity-samples", "2", "--out",
                       str(tmp_path / "q"))
    assert quantize.returncode == 0, quantize.stderr
    assert "vit-edge: warning: FP32 on the --eval images: 100 % of the images got the same prediction" \
        in quantize.stderr
