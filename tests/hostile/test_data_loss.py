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

from tests.helpers import assert_user_error, copy_artifact, run_cli
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
    shutil.copy(Path(__file__).resolve().parents[2] / "vit_edge" / "reading" / "weights" / "fmnist_vit_tiny.pt",
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


def test_force_does_replace_what_vit_edge_made(shipped_onnx: Path, tmp_path: Path) -> None:
    artifact = copy_artifact(shipped_onnx, tmp_path / "a")  # a user's file is added to it below
    assert is_artifact(artifact)
    check_output(artifact, OutputKind.ARTIFACT, force=True)  # no error: it is ours
    (artifact / "my-notes.txt").write_text("added by the user")
    assert not is_artifact(artifact)  # a file the manifest does not list would be lost: refused
    with pytest.raises(Exception, match="is not a vit-edge artifact"):
        check_output(artifact, OutputKind.ARTIFACT, force=True)
    shipped = Path(__file__).resolve().parents[2] / "vit_edge" / "reading" / "weights" / "fmnist_vit_tiny.pt"
    check_output(shipped, OutputKind.CHECKPOINT, force=True)  # a vit-edge checkpoint is recognised


QAT = ("quantize", "fmnist-vit-tiny", "--target", "onnx", "--calib", "fashion-mnist", "--method", "qat", "--data",
       "fashion-mnist", "--eval", "fashion-mnist")


def test_qat_checkpoints_never_replace_a_users_files(tmp_path: Path) -> None:
    """QAT wrote best.pt over the user's own (only last.pt was looked at), and called a 5-byte last.pt 'a QAT
    checkpoint already', suggesting --force, which then replaced it."""
    runs = tmp_path / "runs"
    runs.mkdir()
    (runs / "best.pt").write_bytes(b"the user's best model")
    out = ("--out", str(tmp_path / "art"))
    assert_user_error(run_cli(*QAT, *out, "--checkpoint-dir", str(runs)), "exists already", "--resume")
    assert_user_error(run_cli(*QAT, *out, "--checkpoint-dir", str(runs), "--force"),
                      "is not a vit-edge QAT checkpoint folder")
    (runs / "last.pt").write_bytes(b"12345")
    assert_user_error(run_cli(*QAT, *out, "--checkpoint-dir", str(runs), "--force"), "is not a vit-edge QAT")
    assert_user_error(run_cli(*QAT, *out, "--checkpoint-dir", str(runs), "--resume"), "nothing to resume")
    assert (runs / "best.pt").read_bytes() == b"the user's best model" and (runs / "last.pt").read_bytes() == b"12345"
    assert not (tmp_path / "art").exists()


def test_qat_checkpoint_dir_is_never_the_project_a_file_or_the_artifact(tmp_path: Path) -> None:
    project = _users_folder(tmp_path / "project")
    assert_user_error(run_cli(*QAT, "--out", "art", "--checkpoint-dir", ".", cwd=project), "exists already")
    assert_user_error(run_cli(*QAT, "--out", "art", "--checkpoint-dir", ".", "--force", cwd=project),
                      "current folder")
    notes = project / "notes.txt"
    notes.write_text("mine")
    assert_user_error(run_cli(*QAT, "--out", str(tmp_path / "a"), "--checkpoint-dir", str(notes), "--force"),
                      "not a vit-edge QAT checkpoint folder")
    assert_user_error(run_cli(*QAT, "--out", str(tmp_path / "a"), "--checkpoint-dir", str(tmp_path / "a" / "ck")),
                      "inside, the artifact's folder")
    _unchanged(project)
    assert notes.read_text() == "mine"


@pytest.fixture
def small_artifact(shipped_onnx: Path) -> Path:
    return shipped_onnx  # conftest's, read only


BENCH = ("--runs", "2", "--min-time", "0", "--warmup", "0")


@pytest.mark.parametrize("users_file", ["bench.md", "bench.html", "bench.jsonl"])
def test_bench_never_replaces_a_users_report_files(tmp_path: Path, small_artifact: Path, users_file: str) -> None:
    """bench --out replaced the user's bench.md (read-only too) and bench.html, and appended to their
    bench.jsonl; it had no --force and checked nothing."""
    reports = tmp_path / "reports"
    reports.mkdir()
    mine = reports / users_file
    mine.write_text('{"my": "own notes"}\n')
    mine.chmod(0o444)
    assert_user_error(run_cli("bench", str(small_artifact), *BENCH, "--out", str(reports)), "exists already",
                      "--force")
    assert_user_error(run_cli("bench", str(small_artifact), *BENCH, "--out", str(reports), "--force"),
                      "is not a vit-edge bench report folder")
    assert mine.read_text() == '{"my": "own notes"}\n' and [p.name for p in reports.iterdir()] == [users_file]


def test_bench_force_replaces_its_own_report(tmp_path: Path, small_artifact: Path) -> None:
    reports = tmp_path / "reports"
    first = run_cli("bench", str(small_artifact), *BENCH, "--out", str(reports))
    assert first.returncode == 0, first.stderr
    assert sorted(p.name for p in reports.iterdir()) == ["bench.html", "bench.jsonl", "bench.md"]  # no plot: no top-1
    assert_user_error(run_cli("bench", str(small_artifact), *BENCH, "--out", str(reports)), "exists already")
    again = run_cli("bench", str(small_artifact), *BENCH, "--out", str(reports), "--force")
    assert again.returncode == 0, again.stderr
    assert len((reports / "bench.jsonl").read_text().splitlines()) == 1  # replaced, not appended to
