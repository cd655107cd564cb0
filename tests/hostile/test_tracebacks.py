"""Hostile inputs, traceback class: each case below once ended in a Python traceback (or, worse, a silent exit 1
with a half-written folder). Now each is one `vit-edge: error:` line, exit 2, and nothing left behind."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Iterator

import pytest
import torch

from tests.helpers import assert_user_error, run_cli, small_vit, tmpfs
from vit_edge.core.manifest import MANIFEST_NAME
from vit_edge.core.types import InputSpec
from vit_edge.models.vit import VisionTransformer
from vit_edge.reading.checkpoint import save_checkpoint
from vit_edge.reading.registry import timm_entry

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_checkpoint(tmp_path_factory.mktemp("ckpt") / "small.pt", small_vit(), InputSpec(img_size=32))


@pytest.fixture(scope="module")
def hf_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("transformers")
    from tests.unit.test_reading_hf_compat import make_hf

    folder = tmp_path_factory.mktemp("hf") / "vit"
    make_hf("vit", folder)
    return folder


def _variant(hf_folder: Path, tmp_path: Path, name: str, text: str | bytes) -> Path:
    folder = tmp_path / "model"
    shutil.copytree(hf_folder, folder)
    (folder / name).write_bytes(text if isinstance(text, bytes) else text.encode())
    return folder


@pytest.mark.parametrize("name, text, said", [
    ("config.json", '{"a":' * 100_000 + "1" + "}" * 100_000, "nested too deeply"),
    ("config.json", '{"pad": "' + "x" * (17 << 20) + '"}', "MiB, over the 16 MiB"),
    ("preprocessor_config.json", '{"crop_size": {"height": 3200000, "width": 3200000}}', "over 8192 px per side"),
    ("preprocessor_config.json", '{"image_std": [0, 0.5, 0.5], "size": {"height": 32, "width": 32}}',
     "image_std [0.0, 0.5, 0.5] has a zero"),
    ("config.json", b'{"a": "\xff"}', "not UTF-8 text"),
])
def test_hostile_hf_configs(hf_folder: Path, tmp_path: Path, name: str, text: str | bytes, said: str) -> None:
    """A zero std once reached the parity gate as NaN and was called a parity failure, with --no-verify offered."""
    model = _variant(hf_folder, tmp_path, name, text)
    message = assert_user_error(run_cli("export", str(model), "--target", "onnx", "--out", str(tmp_path / "out")),
                                said)
    assert "--no-verify" not in message and not (tmp_path / "out").exists()


def _timm_weights(tmp_path: Path, **changes: torch.Tensor) -> Path:
    state = VisionTransformer(timm_entry("vit_tiny_patch16_224").config).state_dict()
    path = tmp_path / "weights.pth"
    torch.save({**state, **changes}, path)
    return path


@pytest.mark.parametrize("changes, said", [
    ({"head.weight": torch.tensor(1.0)}, "head.weight in the weights is (), not a 2-d tensor"),
    ({"pos_embed": torch.zeros(1, 0, 192)}, "pos_embed (1, 0, 192) holds no patch positions"),
    ({"cls_token": torch.zeros(())}, "cls_token in the weights is (), not a 3-d tensor"),
])
def test_degenerate_timm_state_dicts(tmp_path: Path, changes: dict[str, torch.Tensor], said: str) -> None:
    weights = _timm_weights(tmp_path, **changes)
    assert_user_error(run_cli("export", "timm:vit_tiny_patch16_224", "--weights", str(weights), "--target", "onnx",
                              "--out", str(tmp_path / "out")), said)


@pytest.fixture
def full_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 160 KiB tmpfs: the small model's files do not fit."""
    with tmpfs(tmp_path / "full", "size=160k") as mount:
        yield mount


@pytest.mark.parametrize("target", ["onnx", "openvino", "tflite"])
def test_a_full_disk_is_one_line_and_leaves_nothing(full_disk: Path, checkpoint: Path, target: str) -> None:
    """TFLite's flatbuffer writer (LLVM) called exit(1) on ENOSPC: no message, a partial folder and a lock left;
    OpenVINO said only 'basic_ios::clear: iostream error'."""
    result = run_cli("export", str(checkpoint), "--target", target, "--out", str(full_disk / "art"),
                     "--parity-samples", "2")
    assert_user_error(result, "No space left on device", "nothing was kept")
    assert list(full_disk.iterdir()) == []


def test_a_file_size_limit_leaves_no_half_report(shipped_onnx: Path, tmp_path: Path) -> None:
    """`ulimit -f`: bench.jsonl once kept a cut line, which the next bench run appended to."""
    artifact = shipped_onnx
    reports = tmp_path / "reports"
    limit = "import resource; resource.setrlimit(resource.RLIMIT_FSIZE, (1024, 1024))"
    result = run_cli("bench", str(artifact), "--out", str(reports), "--runs", "3", "--warmup", "0", "--min-time", "0",
                     prelude=limit)
    assert_user_error(result, "File too large", "ulimit -f")
    assert not (reports / "bench.jsonl").exists() or (reports / "bench.jsonl").read_text() == ""
    assert run_cli("bench", str(artifact), "--out", str(reports), "--runs", "3", "--warmup", "0",
                   "--min-time", "0").returncode == 0
    assert [json.loads(line)["status"] for line in (reports / "bench.jsonl").read_text().splitlines()] == ["ok"]


def test_tune_out_that_is_a_file(tmp_path: Path, checkpoint: Path) -> None:
    target = tmp_path / "notes.txt"
    target.write_text("mine")
    args = ("tune", str(checkpoint), "--target", "onnx", "--calib", "fashion-mnist", "--eval", "fashion-mnist",
            "--max-drop", "1", "--out", str(target))
    assert_user_error(run_cli(*args), "exists already")
    assert_user_error(run_cli(*args, "--force"), "is not a vit-edge tune folder")
    assert target.read_text() == "mine"


@pytest.fixture
def exported(shipped_onnx: Path) -> Path:
    return shipped_onnx  # conftest's, read only


@pytest.mark.parametrize("victim", [MANIFEST_NAME, "model.onnx"])
def test_a_folder_where_an_artifact_file_should_be(exported: Path, tmp_path: Path, victim: str) -> None:
    """Unreadable files (root reads through permissions, so a folder stands in for one): no IsADirectoryError."""
    artifact = tmp_path / "copy"
    shutil.copytree(exported, artifact)
    (artifact / victim).unlink()
    (artifact / victim).mkdir()
    assert_user_error(run_cli("info", str(artifact)), f"{victim}", "is not a regular file")


def test_a_named_pipe_as_the_devices_file_does_not_hang(exported: Path, tmp_path: Path) -> None:
    pipe = tmp_path / "devices.txt"
    os.mkfifo(pipe)
    assert_user_error(run_cli("bench", str(exported), "--devices", str(pipe), "--out", str(tmp_path / "r")),
                      "is not a regular file")


def test_bench_with_a_full_temporary_folder_is_one_line(shipped_onnx: Path, tmp_path: Path) -> None:
    """Preparing --data in a full TMPDIR died of SIGBUS (a memory-mapped file on a full disk), no message."""
    artifact = shipped_onnx
    with tmpfs(tmp_path / "tmp", "size=2m") as full:
        code = f"import os, tempfile\nos.environ['TMPDIR'] = {str(full)!r}\ntempfile.tempdir = None"
        result = run_cli("bench", str(artifact), "--data", "fashion-mnist", "--runs", "2", "--out",
                         str(tmp_path / "reports"), prelude=code)
        assert_user_error(result, "MiB free", "TMPDIR")
        assert list(full.iterdir()) == []
