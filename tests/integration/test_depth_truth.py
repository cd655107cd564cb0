"""Ground-truth depth (#37): a folder of images/ with depth/ beside them (16-bit PNG in millimetres, or float .npy in
metres, same stem) gives AbsRel and δ<1.25 against the ground truth in `quantize --eval` (FP32 and INT8) and in
`bench --data` (the file run in its runtime), beside the measures against FP32; a bad depth file stops either in one
line (exit 2) before anything is measured.

The ground truth is made from the FP32 model's own output so that the right answer is known: a relative Depth
Anything predicts disparity up to scale and shift, so depth = 1 / (2·prediction + 0.5) must align back to it
(least-squares scale and shift per image, MiDaS's protocol) with AbsRel ~0 for FP32 (only the PNG's millimetre
rounding, ≤ 0.05 %, and the cap) and the INT8 file's own small error; a prediction aligned wrongly (no shift, or
median scaling on disparity) would score AbsRel of several percent on the same maps.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tests.helpers import assert_user_error, make_depth_anything, run_cli
from vit_edge.api import bench, export
from vit_edge.core.depth_metrics import aligned_depth, truth_scores
from vit_edge.core.errors import DataError
from vit_edge.core.types import InputSpec
from vit_edge.data.depth_truth import DEFAULT_DEPTH_SCALE, depth_files, prepared_depth, read_depth
from vit_edge.data.sources import DataOptions, fill_images, open_images
from vit_edge.data.synthetic import smooth_images

pytest.importorskip("transformers")
pytestmark = pytest.mark.slow

COUNT = 6


def _write_folder(root: Path, hf: torch.nn.Module) -> np.ndarray:
    """images/ (56 px PNGs) and depth/ (PNG mm for the even ones, .npy metres for the odd ones, one pixel unmeasured
    each) made from the model's FP32 disparity; returns the depths in metres as written."""
    images = smooth_images(COUNT, 56, 3)
    (root / "images").mkdir(parents=True)
    (root / "depth").mkdir()
    x = (images.astype(np.float32) / 255 - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225])
    with torch.no_grad():
        disparity = hf(pixel_values=torch.from_numpy(x.transpose(0, 3, 1, 2).astype(np.float32))).predicted_depth
    depth = 1.0 / (2.0 * disparity.numpy().astype(np.float64) + 0.5)
    written = np.empty_like(depth)
    for index, (image, metres) in enumerate(zip(images, depth)):
        Image.fromarray(image).save(root / "images" / f"{index:02d}.png")
        metres[0, 0] = 0.0  # not measured
        if index % 2 == 0:
            millimetres = np.round(metres * 1000).astype(np.uint16)
            Image.fromarray(millimetres).save(root / "depth" / f"{index:02d}.png")
            written[index] = millimetres / 1000.0
        else:
            np.save(root / "depth" / f"{index:02d}.npy", metres.astype(np.float32))
            written[index] = metres.astype(np.float32)
    return written


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> tuple[torch.nn.Module, Path, Path, Path]:
    """(the transformers model, its folder, the depth folder, an ONNX FP32 artifact of it)."""
    hf = make_depth_anything("relative")
    root = tmp_path_factory.mktemp("depth_truth")
    hf.save_pretrained(root / "hf")
    _write_folder(root / "data", hf)
    export(root / "hf", "onnx", root / "fp32", parity_samples=1)
    return hf, root / "hf", root / "data", root / "fp32"


def test_alignment_is_scale_and_shift_on_disparity() -> None:
    """The arithmetic alone: an affine disparity aligns to 0 error, and the alternatives named in the docstring
    would not."""
    rng = np.random.default_rng(0)
    disparity = rng.uniform(0.1, 2.0, (3, 20, 20))
    truth = 1.0 / (4.0 * disparity + 0.7)
    scores = truth_scores(disparity, truth, relative=True)
    assert scores.abs_rel < 1e-9 and scores.delta1 == 1.0 and scores.images == 3
    median = disparity * np.median(truth) / np.median(disparity)  # median scaling, as if it were depth
    assert truth_scores(median, truth, relative=False).abs_rel > 0.3
    scale_only = 1.0 / (disparity * np.sum(disparity / truth) / np.sum(disparity**2))  # no shift
    assert truth_scores(scale_only, truth, relative=False).abs_rel > 0.05
    assert truth_scores(truth * 1.1, truth, relative=False).abs_rel == pytest.approx(0.1)  # metric: as it is
    assert aligned_depth(np.zeros((4, 4)), np.full((4, 4), 3.0)).max() == pytest.approx(3.0)  # a flat map: capped


def test_quantize_eval_and_bench_score_against_ground_truth(setup: tuple[torch.nn.Module, Path, Path, Path],
                                                            tmp_path: Path) -> None:
    _, folder, data, fp32 = setup
    out = tmp_path / "int8"
    result = run_cli("quantize", str(folder), "--target", "onnx", "--calib", str(data / "images"), "--eval",
                     str(data), "--out", str(out))
    assert result.returncode == 0, result.stderr
    truth = json.loads((out / "manifest.json").read_text())["quantization"]["accuracy"]["ground_truth"]
    assert truth["fp32_abs_rel"] < 0.002 and truth["fp32_delta1"] == 1.0, truth  # the maps were made from FP32
    assert truth["fp32_abs_rel"] < truth["int8_abs_rel"] < 0.05 and "least-squares" in truth["alignment"], truth
    assert f"{COUNT} images of {data} with ground-truth depth" == truth["eval_data"]
    assert "against ground truth" in result.stdout, result.stdout
    int8, reference = bench([out, fp32], data=str(data), runs=1, warmup=0, min_seconds=0.0)
    assert int8.status == "ok" and reference.status == "ok", (int8, reference)
    assert reference.extra["depth_truth_abs_rel"] < 0.002 and reference.extra["depth_truth_images"] == COUNT
    assert abs(int8.extra["depth_truth_abs_rel"] - truth["int8_abs_rel"]) < 0.005, (int8.extra, truth)


def _hostile(root: Path, name: str, data: Path) -> Path:
    """A copy of the good folder with one thing wrong."""
    folder = root / name
    (folder / "images").mkdir(parents=True)
    (folder / "depth").mkdir()
    for path in (data / "images").iterdir():
        (folder / "images" / path.name).write_bytes(path.read_bytes())
    for path in (data / "depth").iterdir():
        (folder / "depth" / path.name).write_bytes(path.read_bytes())
    return folder


CASES = {  # name: (what is done to depth/ or images/, the words)
    "missing": (lambda f: (f / "depth" / "02.png").unlink(), "images/02.png has no depth map"),
    "two": (lambda f: np.save(f / "depth" / "02.npy", np.ones((56, 56), np.float32)), "has two depth maps"),
    "size": (lambda f: Image.fromarray(np.full((40, 56), 900, np.uint16)).save(f / "depth" / "02.png"),
             "is 56x40 but its image is 56x56"),
    "8bit": (lambda f: Image.fromarray(np.full((56, 56), 9, np.uint8)).save(f / "depth" / "02.png"),
             "is an 8-bit PNG"),
    "rgb": (lambda f: Image.fromarray(np.zeros((56, 56, 3), np.uint8) + 9).save(f / "depth" / "02.png"),
            "is a colour (RGB) PNG"),
    "nan": (lambda f: np.save(f / "depth" / "01.npy", np.full((56, 56), np.nan, np.float32)), "NaN or infinite"),
    "negative": (lambda f: np.save(f / "depth" / "01.npy", -np.ones((56, 56), np.float32)), "negative depths"),
    "zero": (lambda f: Image.fromarray(np.zeros((56, 56), np.uint16)).save(f / "depth" / "02.png"), "is all zero"),
    "integer_npy": (lambda f: np.save(f / "depth" / "01.npy", np.ones((56, 56), np.int32)), "holds int32"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_bad_depth_file_stops_bench_in_one_line(setup: tuple[torch.nn.Module, Path, Path, Path], case: str,
                                                  tmp_path: Path) -> None:
    _, _, data, fp32 = setup
    spoil, words = CASES[case]
    folder = _hostile(tmp_path, case, data)
    spoil(folder)
    result = run_cli("bench", str(fp32), "--data", str(folder), "--runs", "1", "--warmup", "0", "--out",
                     str(tmp_path / "report"))
    assert_user_error(result, words)
    assert not (tmp_path / "report").exists()


def test_quantize_eval_refuses_a_folder_without_depth(setup: tuple[torch.nn.Module, Path, Path, Path],
                                                      tmp_path: Path) -> None:
    _, folder, data, _ = setup
    assert_user_error(run_cli("quantize", str(folder), "--target", "onnx", "--calib", str(data / "images"),
                              "--eval", str(data / "images"), "--out", str(tmp_path / "q")),
                      "has no ground-truth depth", "images/", "depth/")
    spoiled = _hostile(tmp_path, "nan", data)
    np.save(spoiled / "depth" / "03.npy", np.full((56, 56), np.inf, np.float32))
    assert_user_error(run_cli("quantize", str(folder), "--target", "onnx", "--calib", str(data / "images"),
                              "--eval", str(spoiled), "--out", str(tmp_path / "r")), "03.npy", "NaN or infinite")
    assert not (tmp_path / "q").exists() and not (tmp_path / "r").exists()


def test_depth_scale_says_how_many_png_units_make_a_metre(setup: tuple[torch.nn.Module, Path, Path, Path],
                                                          tmp_path: Path) -> None:
    """--depth-scale: KITTI's PNGs hold 256 units a metre, read as metres with it (millimetres by default); a scale
    that is no positive number is refused in one line, by the API and by the CLI, before anything is measured."""
    _, _, data, fp32 = setup
    Image.fromarray(np.full((4, 6), 512, np.uint16)).save(tmp_path / "kitti.png")
    assert read_depth(tmp_path / "kitti.png", 256.0, (6, 4)) == pytest.approx(np.full((4, 6), 2.0))
    assert read_depth(tmp_path / "kitti.png", DEFAULT_DEPTH_SCALE, (6, 4)) == pytest.approx(np.full((4, 6), 0.512))
    for bad in (0.0, -256.0, float("nan"), float("inf"), "256", True):
        with pytest.raises(DataError, match="depth_scale must be a positive number"):
            DataOptions(depth_scale=bad)
    for bad_flag in ("0", "-1", "mm"):
        result = run_cli("bench", str(fp32), "--data", str(data), "--depth-scale", bad_flag, "--runs", "1",
                         "--out", str(tmp_path / "report"))
        assert_user_error(result, "--depth-scale")
    assert not (tmp_path / "report").exists()


def test_maps_of_a_model_of_any_size_follow_its_images_to_the_default_size(tmp_path: Path) -> None:
    """A --dynamic-size artifact whose processor keeps the aspect ratio scores one array of one size (its default,
    as fill_images makes its images): each map goes there too, the same geometry as its photo (before, a 40x60 map
    came out 28x42 beside a 28x28 image and numpy raised)."""
    (tmp_path / "images").mkdir()
    (tmp_path / "depth").mkdir()
    photo = np.zeros((40, 60, 3), np.uint8)
    photo[:, 30:] = 200  # the right half bright ...
    Image.fromarray(photo).save(tmp_path / "images" / "a.png")
    metres = np.ones((40, 60), np.float32)
    metres[:, 30:] = 5.0  # ... and far
    np.save(tmp_path / "depth" / "a.npy", metres)
    spec = InputSpec(img_size=28, size_multiple=14, keep_aspect_ratio=True, ensure_multiple_of=14,
                     interpolation="bilinear", crop_mode="squash")
    source = open_images(tmp_path)
    files = depth_files(source, DataOptions())
    assert files is not None
    images = np.empty((1, 28, 28, 3), np.uint8)
    kept = fill_images(images, source, spec)
    depth = prepared_depth(files, source, kept, spec)
    assert depth.shape == (1, 28, 28)
    assert np.array_equal(depth[0] == 5.0, images[0, :, :, 0] > 100)  # the far pixels are the bright ones
