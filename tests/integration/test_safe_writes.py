"""Safe writes: one writer per output, a user's folder (or the model itself) never replaced, no leftovers from
killed processes, and an unwritable output refused before the slow part."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest

from tests.helpers import REPO, assert_user_error, run_cli, tmpfs

pytestmark = pytest.mark.slow


def start_export(out: Path) -> subprocess.Popen[str]:
    code = ("import sys; from vit_edge.cli import main; "
            f"sys.exit(main(['export', 'fmnist-vit-tiny', '--target', 'onnx', '--out', {str(out)!r}, "
            "'--parity-samples', '2']))")
    return subprocess.Popen([sys.executable, "-c", code], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def test_two_concurrent_exports_never_both_write(tmp_path: Path) -> None:
    out = tmp_path / "art"
    first, second = start_export(out), start_export(out)
    results = [(p.wait(timeout=300), p.communicate()[1]) for p in (first, second)]
    codes = sorted(code for code, _ in results)
    assert codes == [0, 2], results
    refusal = next(err for code, err in results if code == 2)
    assert any(text in refusal for text in ("another vit-edge process is writing", "exists already",
                                            "appeared while exporting")), refusal
    assert (out / "manifest.json").is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no partial folder, no lock left


def test_output_that_is_the_model_is_refused(tmp_path: Path) -> None:
    transformers = pytest.importorskip("transformers")
    model_dir = tmp_path / "hf"
    transformers.ViTForImageClassification(transformers.ViTConfig(
        hidden_size=48, num_hidden_layers=1, num_attention_heads=3, intermediate_size=96, image_size=32,
        patch_size=8, num_labels=3)).save_pretrained(model_dir)
    before = sorted(p.name for p in model_dir.iterdir())
    for out in (model_dir, tmp_path):
        assert_user_error(run_cli("export", str(model_dir), "--target", "onnx", "--out", str(out), "--force"),
                          "is, or contains, the model")
    assert sorted(p.name for p in model_dir.iterdir()) == before


def test_force_replaces_only_artifacts(tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "holiday.jpg").write_bytes(b"not really")
    assert_user_error(run_cli("export", "fmnist-vit-tiny", "--target", "onnx", "--out", str(folder), "--force"),
                      "not a vit-edge artifact")
    assert (folder / "holiday.jpg").read_bytes() == b"not really"


def test_leftovers_of_killed_exports_are_removed(tmp_path: Path) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    leftover = tmp_path / f".art.partial-{dead.pid}-abcd"
    leftover.mkdir()
    (leftover / "model.onnx").write_bytes(b"half")
    result = run_cli("export", "fmnist-vit-tiny", "--target", "onnx", "--out", str(tmp_path / "art"),
                     "--parity-samples", "2")
    assert result.returncode == 0, result.stderr
    assert not leftover.exists()


@pytest.fixture
def read_only_folder(tmp_path: Path) -> Iterator[Path]:
    with tmpfs(tmp_path / "ro", "size=1m,ro") as mount:
        yield mount


def test_read_only_output_is_refused_before_exporting(read_only_folder: Path) -> None:
    result = run_cli("export", "fmnist-vit-tiny", "--target", "onnx", "--out", str(read_only_folder / "art"))
    message = assert_user_error(result, "cannot write to")
    assert "exporting to" not in result.stderr, message  # refused before the conversion started


def test_bench_report_folder_is_checked_before_measuring(read_only_folder: Path, tmp_path: Path) -> None:
    assert_user_error(run_cli("bench", str(tmp_path), "--out", str(read_only_folder / "reports")), "cannot write to")


def test_sigkill_mid_export_leaves_nothing_the_next_run_keeps(tmp_path: Path) -> None:
    """A real SIGKILL inside the converter: the partial folder it leaves is removed by the next export."""
    import signal
    import time

    out = tmp_path / "art"
    code = ("import sys; from vit_edge.cli import main; "
            "sys.exit(main(['export', 'timm:vit_small_patch16_224', '--random-init', '--target', 'onnx', "
            f"'--out', {str(out)!r}]))")
    process = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, stderr=subprocess.PIPE, text=True)
    for line in process.stderr:
        if "exporting to" in line:
            time.sleep(2)
            process.send_signal(signal.SIGKILL)
            break
    assert process.wait(timeout=60) == -signal.SIGKILL
    assert not out.exists() and [p for p in tmp_path.iterdir() if ".partial-" in p.name]
    result = run_cli("export", "fmnist-vit-tiny", "--target", "onnx", "--out", str(out), "--parity-samples", "2")
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["art"]
