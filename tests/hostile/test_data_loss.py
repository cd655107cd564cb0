"""Hostile outputs, data-loss class: `--force` replaces only what vit-edge made, on every verb that writes.

Each case once lost a user's files: tune --force emptied any --out (documents, the model folder, the project);
export --force took any folder holding a file named manifest.json (a web app's). Every refusal comes before any
work, in one line, and leaves the folder as it was.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.integration.test_cli_errors import assert_user_error
from vit_edge.api import export
from vit_edge.core.outputs import OutputKind, check_output, is_artifact

TUNE = ("--target", "onnx", "--calib", "fashion-mnist", "--eval", "fashion-mnist", "--max-drop", "1", "--force")


def _users_folder(root: Path) -> Path:
    root.mkdir(parents=True)
    (root / "thesis.docx").write_bytes(b"years of work")
    (root / "manifest.json").write_text(json.dumps({"name": "My PWA", "icons": [], "start_url": "/"}))
    return root


def _unchanged(root: Path) -> None:
    assert (root / "thesis.docx").read_bytes() == b"years of work"


@pytest.mark.parametrize("verb", ["export", "quantize", "tune"])
def test_force_never_replaces_a_users_folder(tmp_path: Path, verb: str) -> None:
    users = _users_folder(tmp_path / "webapp")
    args = {"export": ("export", "fmnist-vit-tiny", "--target", "onnx", "--force"),
            "quantize": ("quantize", "fmnist-vit-tiny", "--target", "onnx", "--calib", "fashion-mnist", "--force"),
            "tune": ("tune", "fmnist-vit-tiny", *TUNE)}[verb]
    assert_user_error(run_cli(*args, "--out", str(users)), "is not a vit-edge", "--force replaces only")
    _unchanged(users)


def test_force_refuses_the_current_folder_and_the_folders_above(tmp_path: Path) -> None:
    project = _users_folder(tmp_path / "project")
    inner = project / "sub"
    inner.mkdir()
    for out, cwd in ((".", project), ("..", inner)):
        assert_user_error(run_cli("tune", "fmnist-vit-tiny", *TUNE, "--out", out, cwd=cwd), "current folder")
        assert_user_error(run_cli("export", "fmnist-vit-tiny", "--target", "onnx", "--force", "--out", out, cwd=cwd),
                          "current folder")
    _unchanged(project)


def test_force_refuses_an_output_holding_the_model_or_the_data(tmp_path: Path) -> None:
    data = tmp_path / "work" / "calib"
    data.mkdir(parents=True)
    shutil.copy(Path(__file__).resolve().parents[2] / "vit_edge" / "models" / "weights" / "fmnist_vit_tiny.pt",
                tmp_path / "work" / "model.pt")
    assert_user_error(run_cli("export", str(tmp_path / "work" / "model.pt"), "--target", "onnx", "--force", "--out",
                              str(tmp_path / "work")), "contains, the model")
    assert_user_error(run_cli("quantize", "fmnist-vit-tiny", "--target", "onnx", "--calib", str(data), "--force",
                              "--out", str(tmp_path / "work")), "contains, the data")
    assert (tmp_path / "work" / "model.pt").is_file()


def test_train_force_replaces_only_a_checkpoint(tmp_path: Path) -> None:
    notes = tmp_path / "notes.pt"
    notes.write_text("not a checkpoint")
    assert_user_error(run_cli("train", "--epochs", "1", "--force", "--out", str(notes)), "not a vit-edge checkpoint")
    assert notes.read_text() == "not a checkpoint"


def test_force_does_replace_what_vit_edge_made(tmp_path: Path) -> None:
    artifact = export("fmnist-vit-tiny", "onnx", tmp_path / "a", parity_samples=2).path
    assert is_artifact(artifact)
    check_output(artifact, OutputKind.ARTIFACT, force=True)  # no error: it is ours
    (artifact / "my-notes.txt").write_text("added by the user")
    assert not is_artifact(artifact)  # a file the manifest does not list would be lost: refused
    with pytest.raises(Exception, match="is not a vit-edge artifact"):
        check_output(artifact, OutputKind.ARTIFACT, force=True)
    shipped = Path(__file__).resolve().parents[2] / "vit_edge" / "models" / "weights" / "fmnist_vit_tiny.pt"
    check_output(shipped, OutputKind.CHECKPOINT, force=True)  # a vit-edge checkpoint is recognised
