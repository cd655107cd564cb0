"""Folders as users have them, through every verb: class folders named by class (not in the model's order) of
mixed-size JPEG/PNG photos in gray and colour, a flat folder, a list file, and the ways they go wrong.

The images are real Fashion-MNIST test images blown up to photo sizes on a black canvas of another aspect ratio,
so the model's own eval transform (shorter side, center crop) recovers them and the shipped model scores them as it
scores the originals; scored by folder position instead, top-1 would be near zero.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

from tests.helpers import assert_nothing_written, assert_user_error, run_cli
from vit_edge.data.datasets import load_fashion_mnist

pytestmark = pytest.mark.slow

# folder name → class index; sorted, the folders would read as classes 0-3 (T-shirt, Trouser, Pullover, Dress)
FOLDERS = {"Sneaker": 7, "Bag": 8, "Ankle_boot": 9, "T-shirt_top": 0}
PER_CLASS = 30


def _photo_of(image: np.ndarray, k: int, rng: np.random.Generator) -> Image.Image:
    """A 28×28 image at photo size, centred on a wider or taller black canvas, in gray or RGB."""
    side = int(rng.integers(160, 700)) if k % 10 else 1200
    pad = int(rng.integers(10, side // 2))
    canvas = Image.new("L", (side + 2 * pad, side) if k % 2 else (side, side + 2 * pad))
    canvas.paste(Image.fromarray(image).resize((side, side), Image.Resampling.BICUBIC), (pad, 0) if k % 2 else (0, pad))
    return canvas.convert("RGB") if k % 3 else canvas


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("real") / "shop"
    data = load_fashion_mnist("test")
    rng = np.random.default_rng(0)
    for name, label in FOLDERS.items():
        (root / name).mkdir(parents=True)
        for k, index in enumerate(np.flatnonzero(data.labels == label)[:PER_CLASS]):
            photo = _photo_of(data.images[index], k, rng)
            path = root / name / (f"IMG_{k:04d}.JPG" if k % 4 else f"scan {k}.png")
            photo.save(path, quality=93) if path.suffix == ".JPG" else photo.save(path)
    return root


def _reference_arrays(root: Path, out: Path) -> Path:
    """The same images preprocessed by hand, not by vit-edge: timm's eval transform for 28 px at crop_pct 1.0
    (shorter side to 28, the other truncated, center crop with torchvision's rounding), as a labelled .npz."""
    images, labels = [], []
    for name in sorted(FOLDERS):
        for path in sorted((root / name).iterdir()):
            with Image.open(path) as opened:
                image = ImageOps.exif_transpose(opened).convert("L")
            width, height = image.size
            size = (28, int(28 * height / width)) if width <= height else (int(28 * width / height), 28)
            image = image.resize(size, Image.Resampling.BILINEAR)
            left, top = int(round((size[0] - 28) / 2.0)), int(round((size[1] - 28) / 2.0))
            images.append(np.asarray(image.crop((left, top, left + 28, top + 28))))
            labels.append(FOLDERS[name])
    np.savez(out, images=np.stack(images), labels=np.asarray(labels))
    return out


def _bench_rows(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "bench.jsonl").read_text().splitlines()]


def _export(tmp_path: Path, target: str, *extra: str) -> Path:
    out = tmp_path / f"{target}{'-'.join(extra)}"
    result = run_cli("export", "fmnist-vit-tiny", "--target", target, "--out", str(out), *extra)
    assert result.returncode == 0, result.stderr
    return out


def test_bench_scores_a_class_folder_by_name_as_the_same_images_as_arrays(shop: Path, tmp_path: Path) -> None:
    artifact = _export(tmp_path, "onnx")
    arrays = _reference_arrays(shop, tmp_path / "by-hand.npz")
    top1 = {}
    for name, data in (("folder", shop), ("arrays", arrays)):
        report = tmp_path / f"report-{name}"
        result = run_cli("bench", str(artifact), "--data", str(data), "--runs", "2", "--min-time", "0", "--warmup",
                         "0", "--out", str(report))
        assert result.returncode == 0, result.stderr
        row = _bench_rows(report)[0]
        assert row["eval_images"] == len(FOLDERS) * PER_CLASS
        top1[name] = row["top1"]
    assert top1["folder"] == top1["arrays"]
    assert top1["folder"] > 80, top1  # by folder position it would be about 0
    assert "by class name" in (tmp_path / "report-folder" / "bench.md").read_text()


def test_quantize_calibrates_on_a_flat_folder_and_evaluates_a_list_file(shop: Path, tmp_path: Path) -> None:
    flat = tmp_path / "flat"
    flat.mkdir()
    for path in sorted(shop.glob("*/*"))[::3]:
        (flat / f"{path.parent.name}-{path.name}").write_bytes(path.read_bytes())
    listing = tmp_path / "val.txt"
    listing.write_text("".join(f"{p} {FOLDERS[p.parent.name]}\n" for p in sorted(shop.glob("*/*"))))
    out = tmp_path / "int8"
    result = run_cli("quantize", "fmnist-vit-tiny", "--target", "onnx", "--calib", str(flat), "--calib-size", "32",
                     "--eval", str(listing), "--out", str(out))
    assert result.returncode == 0, result.stderr
    accuracy = json.loads((out / "manifest.json").read_text())["quantization"]["accuracy"]
    assert accuracy["int8_top1_measured_in"] == "onnxruntime"
    assert accuracy["fp32_top1"] > 80 and abs(accuracy["int8_top1"] - accuracy["int8_top1_simulated"]) < 3
    assert accuracy["images"] == len(FOLDERS) * PER_CLASS and "output indices" in accuracy["eval_data"]


def test_tune_evaluates_a_class_folder(shop: Path, tmp_path: Path) -> None:
    out = tmp_path / "tune"
    result = run_cli("tune", "fmnist-vit-tiny", "--target", "onnx", "--calib", str(shop), "--eval", str(shop),
                     "--max-drop", "5", "--merge", "0", "--precisions", "fp32,int8", "--threads", "1", "--runs", "3",
                     "--calib-size", "32", "--out", str(out))
    assert result.returncode == 0, result.stderr
    document = json.loads((out / "tune.json").read_text())
    assert document["baseline_top1"] > 80


# bench's PyTorch reference rebuilt with the merge; ExecuTorch's merged program: test_token_merging.py
@pytest.mark.parametrize("target", ["onnx", "openvino", "tflite"])
def test_a_merged_artifact_matches_its_pytorch_reference(shop: Path, tmp_path: Path, target: str) -> None:
    merged = _export(tmp_path, target, "--merge", "8")
    report = tmp_path / "report"
    result = run_cli("bench", str(merged), "--data", str(shop), "--reference", "pytorch", "--runs", "2",
                     "--min-time", "0", "--warmup", "0", "--out", str(report))
    assert result.returncode == 0, result.stderr
    row = _bench_rows(report)[0]
    assert row["status"] == "ok" and row["agreement_cosine"] > 0.9999, row


def test_an_artifact_that_really_differs_is_still_a_mismatch(shop: Path, tmp_path: Path) -> None:
    merged, plain = _export(tmp_path, "onnx", "--merge", "12"), _export(tmp_path, "onnx")
    report = tmp_path / "report"
    result = run_cli("bench", str(merged), "--data", str(shop), "--reference", str(plain), "--runs", "2",
                     "--min-time", "0", "--warmup", "0", "--out", str(report))
    assert result.returncode == 2
    assert _bench_rows(report)[0]["status"] == "mismatch"


def _broken(tmp_path: Path, shop: Path, kind: str) -> Path:
    root = tmp_path / kind
    for name in FOLDERS:
        (root / name).mkdir(parents=True)
        for path in sorted((shop / name).iterdir())[:3]:
            (root / name / path.name).write_bytes(path.read_bytes())
    bad = root / "Bag" / "zz.jpg"
    if kind == "corrupt":
        bad.write_bytes(b"\xff\xd8\xff\xe0 truncated")
    elif kind == "empty":
        bad.write_bytes(b"")
    elif kind == "text":
        bad.write_text("hello")
    elif kind == "unmatched":
        (root / "Sandals").mkdir()
        (root / "Sandals" / "a.jpg").write_bytes(next((shop / "Bag").iterdir()).read_bytes())
    elif kind == "loop":
        (root / "Bag" / "again").symlink_to(root / "Bag")
    return root


@pytest.mark.parametrize("kind, fragment", [
    ("corrupt", "cannot read image"), ("empty", "is empty"), ("text", "cannot read image"),
    ("unmatched", "'Sandals'"), ("loop", "symbolic link loop"),
])
def test_bad_folders_stop_in_one_line_before_anything_is_written(shop: Path, tmp_path: Path, kind: str,
                                                                  fragment: str) -> None:
    data = _broken(tmp_path, shop, kind)
    out = tmp_path / "int8"
    result = run_cli("quantize", "fmnist-vit-tiny", "--target", "onnx", "--calib", "fashion-mnist", "--calib-size",
                     "8", "--eval", str(data), "--out", str(out))
    assert_user_error(result, fragment)
    assert not out.exists()
    assert_nothing_written(tmp_path)  # no staging folder left either


def test_bench_refuses_unmatched_names_before_measuring_and_counts_skips(shop: Path, tmp_path: Path) -> None:
    artifact = _export(tmp_path, "onnx")
    report = tmp_path / "report"
    unmatched = run_cli("bench", str(artifact), "--data", str(_broken(tmp_path, shop, "unmatched")), "--out",
                        str(report))
    assert_user_error(unmatched, "'Sandals'", "--class-names")
    assert "threads 1" not in unmatched.stderr  # refused before the first measurement
    empty = tmp_path / "none"
    empty.mkdir()
    assert_user_error(run_cli("bench", str(artifact), "--data", str(empty), "--out", str(report)), "no images in")
    skipped = run_cli("bench", str(artifact), "--data", str(_broken(tmp_path, shop, "corrupt")), "--skip-unreadable",
                      "--runs", "2", "--min-time", "0", "--warmup", "0", "--out", str(report))
    assert skipped.returncode == 0, skipped.stderr
    row = _bench_rows(report)[-1]
    assert row["eval_skipped"] == 1 and row["eval_images"] == 3 * len(FOLDERS)


def test_max_drop_needs_labelled_eval_data(tmp_path: Path) -> None:
    result = run_cli("quantize", "fmnist-vit-tiny", "--target", "onnx", "--calib", "fashion-mnist", "--max-drop",
                     "0.5", "--out", str(tmp_path / "x"))
    assert_user_error(result, "--max-drop", "--eval")
