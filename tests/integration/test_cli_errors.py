"""Bad input gets one clear line on stderr, exit code 2, no traceback and no half-written artifact."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.helpers import assert_nothing_written, assert_user_error, run_cli, small_vit
from vit_edge.core.types import InputSpec
from vit_edge.reading.checkpoint import save_checkpoint


@pytest.fixture
def checkpoint(tmp_path: Path) -> Path:
    return save_checkpoint(tmp_path / "small.pt", small_vit(), InputSpec(img_size=32))


def test_missing_model_file(tmp_path: Path) -> None:
    result = run_cli("export", str(tmp_path / "nope.pt"), "--target", "onnx", "--out", str(tmp_path / "out"))
    assert_user_error(result, "does not exist")
    assert_nothing_written(tmp_path)


def test_truncated_checkpoint(tmp_path: Path, checkpoint: Path) -> None:
    broken = tmp_path / "broken.pt"
    broken.write_bytes(checkpoint.read_bytes()[:4000])
    result = run_cli("export", str(broken), "--target", "onnx", "--out", str(tmp_path / "out"))
    assert_user_error(result, "truncated")


def test_pickle_with_code_is_refused(tmp_path: Path) -> None:
    unsafe = tmp_path / "unsafe.pt"
    torch.save({"format": "vit-edge-checkpoint/1", "payload": Path("x")}, unsafe)  # a class outside the allow-list
    result = run_cli("export", str(unsafe), "--target", "onnx", "--out", str(tmp_path / "out"))
    assert_user_error(result, "refused")


def test_model_that_is_not_a_vit(tmp_path: Path) -> None:
    assert_user_error(run_cli("export", "timm:resnet50", "--target", "onnx", "--random-init"),
                      "not a ViT that vit-edge knows")
    cnn = tmp_path / "cnn.pth"
    torch.save(torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU()).state_dict(), cnn)
    result = run_cli("export", "timm:vit_tiny_patch16_224", "--weights", str(cnn), "--target", "onnx",
                     "--out", str(tmp_path / "out"))
    assert_user_error(result, "do not fit the architecture")
    assert_user_error(run_cli("export", str(cnn), "--target", "onnx"), "not a vit-edge checkpoint")


def test_unknown_target_suggests_the_closest(checkpoint: Path) -> None:
    assert_user_error(run_cli("export", str(checkpoint), "--target", "tflight"), "did you mean 'tflite'")


def test_target_whose_converter_is_missing(tmp_path: Path, checkpoint: Path) -> None:
    """Python reports a missing package as ImportError; None in sys.modules makes the import fail that way."""
    prelude = "import sys; sys.modules['litert_torch'] = None"
    result = run_cli("export", str(checkpoint), "--target", "tflite", "--out", str(tmp_path / "out"), prelude=prelude)
    assert_user_error(result, "pip install 'vit-edge[tflite]'")
    assert not (tmp_path / "out").exists()


def test_existing_output_is_kept_without_force(tmp_path: Path, checkpoint: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "mine.txt").write_text("user data")
    assert_user_error(run_cli("export", str(checkpoint), "--target", "onnx", "--out", str(out)), "--force")
    assert (out / "mine.txt").read_text() == "user data"


def test_unusable_opset_is_refused_before_any_work(tmp_path: Path, checkpoint: Path) -> None:
    result = run_cli("export", str(checkpoint), "--target", "onnx", "--opset", "16", "--out", str(tmp_path / "out"))
    assert_user_error(result, "opset 16")
    assert not (tmp_path / "out").exists()


def test_a_failure_while_writing_leaves_no_artifact(tmp_path: Path) -> None:
    """Whatever fails inside the staging directory (converter, parity), neither it nor `out` survives."""
    from vit_edge.core.errors import ParityError
    from vit_edge.core.outputs import OutputKind, staged_folder

    with pytest.raises(ParityError):
        with staged_folder(tmp_path / "out", OutputKind.ARTIFACT, force=False) as staging:
            (staging / "model.onnx").write_bytes(b"half")
            raise ParityError("simulated mismatch")
    assert list(tmp_path.iterdir()) == []


def test_bad_img_size_and_option_clash(checkpoint: Path) -> None:
    assert_user_error(run_cli("export", str(checkpoint), "--target", "onnx", "--img-size", "30"), "multiple")
    assert_user_error(run_cli("export", "vit_tiny_patch16", "--target", "onnx"), "--random-init")
    assert_user_error(run_cli("export", str(checkpoint), "--target", "onnx", "--precision", "fp16"), "fp16")


def test_info_on_a_directory_that_is_no_artifact(tmp_path: Path) -> None:
    assert_user_error(run_cli("info", str(tmp_path)), "manifest.json")


@pytest.mark.parametrize("args, fragment", [
    (("quantize", "fmnist-vit-tiny", "--target", "onnx", "--calib", "fashion-mnist", "--eval-limit", "-5"),
     "--eval-limit: expected an integer ≥ 1"),
    (("quantize", "fmnist-vit-tiny", "--target", "onnx", "--calib", "fashion-mnist", "--calib-size", "0"),
     "--calib-size: expected an integer ≥ 1"),
    (("bench", "x", "--runs", "0"), "--runs: expected an integer ≥ 1"),
    (("bench", "x", "--min-time", "nan"), "--min-time: expected a number ≥ 0"),
    (("bench", "x", "--cpus", "99"), "not available here"),
    (("export", "fmnist-vit-tiny", "--target", "onnx", "--opset", "99"), "opset 99 is newer"),
    (("export", "fmnist-vit-tiny", "--target", "onnx", "--parity-samples", "0"), "expected an integer ≥ 1"),
    (("export", "fmnist-vit-tiny", "--target", "onnx", "--img-size", "0x5"), "positive sizes"),
])
def test_numbers_are_checked_at_the_boundary(args: tuple[str, ...], fragment: str, tmp_path: Path) -> None:
    assert_user_error(run_cli(*args, "--out", str(tmp_path / "out")), fragment)
    assert_nothing_written(tmp_path)


def test_calibration_arrays_are_checked(tmp_path: Path) -> None:
    """NaN/inf, a 0-d array, a wrong dtype and a garbage .npz: one line each, nothing written."""
    import numpy as np

    bad = np.zeros((4, 1, 28, 28), dtype=np.float32)
    bad[0, 0, 0, 0] = np.nan
    np.save(tmp_path / "nan.npy", bad)
    np.save(tmp_path / "scalar.npy", np.float32(3.0))
    np.save(tmp_path / "ints.npy", np.zeros((4, 1, 28, 28), dtype=np.int64))
    (tmp_path / "garbage.npz").write_bytes(b"PK\x03\x04 certainly not a zip archive")
    cases = {"nan.npy": "NaN or infinite", "scalar.npy": "has shape ()", "ints.npy": "is int64",
             "garbage.npz": "cannot read calibration file"}
    for name, fragment in cases.items():
        result = run_cli("quantize", "fmnist-vit-tiny", "--target", "onnx", "--calib", str(tmp_path / name),
                         "--out", str(tmp_path / "out"))
        assert_user_error(result, fragment)
    assert not (tmp_path / "out").exists()


def test_executorch_missing_names_its_extra(tmp_path: Path) -> None:
    """ExecuTorch is its own extra (it brings about 290 MB): without it, export and bench say which to install."""
    hide = ("import sys\nfor name in ('executorch', 'executorch.exir', 'executorch.runtime'):\n"
            "    sys.modules[name] = None")
    result = run_cli("export", "fmnist-vit-tiny", "--target", "executorch", "--out", str(tmp_path / "e"),
                     prelude=hide)
    assert_user_error(result, "executorch", "pip install 'vit-edge[executorch]'")
    assert not (tmp_path / "e").exists()
