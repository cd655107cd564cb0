"""`vit-edge train` on a user's image folder, then export of the checkpoint it wrote, with parity on those images."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from tests.helpers import run_cli
from vit_edge.reading.checkpoint import load_checkpoint


def make_stripes(root: Path, per_class: int = 40) -> Path:
    """Two classes anyone can tell apart: horizontal and vertical stripes with random phase and noise."""
    rng = np.random.default_rng(0)
    for name, axis in (("horizontal", 0), ("vertical", 1)):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            wave = 127 + 120 * np.sin(np.arange(32) * rng.uniform(0.6, 1.2) + rng.uniform(0, 6.3))
            img = np.repeat(wave[:, None] if axis == 0 else wave[None, :], 32, axis=1 - axis)
            img = np.clip(img + rng.normal(0, 10, img.shape), 0, 255).astype(np.uint8)
            Image.fromarray(np.stack([img] * 3, axis=-1)).save(root / name / f"{i}.png")
    return root


def test_train_on_an_image_folder_and_export(tmp_path: Path) -> None:
    data = make_stripes(tmp_path / "stripes")
    checkpoint = tmp_path / "stripes.pt"
    result = run_cli("train", "--data", str(data), "--eval-data", str(data), "--epochs", "6", "--batch-size", "16",
                     "--out", str(checkpoint))
    assert result.returncode == 0, result.stderr
    model, spec, extra = load_checkpoint(checkpoint)
    assert spec.class_names == ("horizontal", "vertical")
    assert extra["train"]["test_top1"] >= 90.0
    exported = run_cli("export", str(checkpoint), "--target", "onnx", "--data", str(data), "--out",
                       str(tmp_path / "art"))
    assert exported.returncode == 0, exported.stderr
    again = run_cli("train", "--data", str(data), "--epochs", "1", "--out", str(checkpoint))
    assert again.returncode == 2 and "--force" in again.stderr
