"""A board's install (numpy, Pillow and one runtime, no torch) in a real venv: every verb that needs PyTorch answers
in one line naming the extra (exit 2), and `info` and `bench` of an artifact exported elsewhere work (#36)."""
from __future__ import annotations

import os
import subprocess
import venv
from pathlib import Path

import pytest

from tests.helpers import REPO

pytestmark = pytest.mark.slow  # a venv, a pip install and an export: about 20 s with pip's cache warm

# What docs/install.md tells a board to install, at the versions constraints.txt pins; vit-edge itself comes from
# the checkout on PYTHONPATH (its core is numpy and Pillow), so nothing is written into it.
BOARD_PACKAGES = ("numpy", "pillow", "onnxruntime")
EXTRA_LINE = "needs the Python package 'torch', which is not installed: run  pip install 'vit-edge[torch]'"


def _clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without the main venv: the pip index settings stay, PYTHONPATH and VIRTUAL_ENV
    go, so nothing of the venv that has torch leaks into the one that must not."""
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    return {**env, **extra}


@pytest.fixture(scope="module")
def board_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with what a board installs, and no torch (checked, not assumed)."""
    root = tmp_path_factory.mktemp("torch-free") / "venv"
    venv.EnvBuilder(with_pip=True).create(root)
    python = root / "bin" / "python"
    pip = subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                          "-c", str(REPO / "constraints.txt"), *BOARD_PACKAGES],
                         env=_clean_env(), capture_output=True, text=True, timeout=600)
    if pip.returncode != 0:
        last = (pip.stderr.strip().splitlines() or ["no output"])[-1]
        pytest.skip(f"cannot pip install {' '.join(BOARD_PACKAGES)} here (no package index?): {last}")
    probe = subprocess.run([str(python), "-c", "import torch"], env=_clean_env(PYTHONPATH=str(REPO)),
                           capture_output=True, text=True)
    assert probe.returncode != 0 and "No module named 'torch'" in probe.stderr, "torch leaked into the board venv"
    return python


@pytest.fixture
def artifact(shipped_onnx: Path) -> Path:
    """The shipped model exported to ONNX with the full install, as a workstation would before copying it over."""
    return shipped_onnx  # conftest's, read only


def board_cli(python: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """`vit-edge ARGS` in the board venv (the console script's own two lines, run from the checkout)."""
    code = f"import sys\nfrom vit_edge.cli import main\nsys.exit(main({list(args)!r}))"
    return subprocess.run([str(python), "-c", code], cwd=cwd, env=_clean_env(PYTHONPATH=str(REPO)),
                          capture_output=True, text=True, timeout=300)


def assert_needs_torch(result: subprocess.CompletedProcess[str], verb: str) -> None:
    """Exit 2 and stderr is one line naming the verb and the extra: no traceback, no progress, no argparse usage."""
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"vit-edge: error: {verb} {EXTRA_LINE}"), lines[0]
    assert "docs/install.md" in lines[0], lines[0]


NEEDS_TORCH = {
    "export": ["export", "fmnist-vit-tiny", "--target", "onnx", "--out", "out"],
    "quantize": ["quantize", "fmnist-vit-tiny", "--target", "onnx", "--calib", "fashion-mnist-train", "--out", "out"],
    "models": ["models"],
    "train": ["train", "--data", "fashion-mnist-train", "--epochs", "1", "--out", "out.pt"],
    "tune": ["tune", "fmnist-vit-tiny", "--target", "onnx", "--calib", "fashion-mnist", "--eval", "fashion-mnist",
             "--max-drop", "1", "--out", "out"],
}


@pytest.mark.parametrize("verb", sorted(NEEDS_TORCH))
def test_a_verb_that_needs_torch_is_one_line(board_python: Path, tmp_path: Path, verb: str) -> None:
    assert_needs_torch(board_cli(board_python, *NEEDS_TORCH[verb], cwd=tmp_path), verb)
    assert list(tmp_path.iterdir()) == []  # nothing half-written


def test_info_and_bench_run_without_torch(board_python: Path, artifact: Path, tmp_path: Path) -> None:
    shown = board_cli(board_python, "info", str(artifact), cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert "onnx (fp32)" in shown.stdout and "sha256 verified" in shown.stdout
    report = tmp_path / "report"
    measured = board_cli(board_python, "bench", str(artifact), "--runs", "3", "--warmup", "1", "--out", str(report),
                         cwd=tmp_path)
    assert measured.returncode == 0, measured.stderr
    assert "| onnxruntime |" in measured.stdout and "| ok |" in measured.stdout, measured.stdout
    assert (report / "bench.jsonl").is_file()
    listed = board_cli(board_python, "devices", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    pytorch = [line for line in listed.stdout.splitlines() if line.startswith("pytorch ")]
    assert pytorch and "not installed" in pytorch[0] and "vit-edge[torch]" in pytorch[0], listed.stdout


def test_a_flag_that_needs_torch_is_the_same_line(board_python: Path, artifact: Path, tmp_path: Path) -> None:
    """Caught once for every verb, not beside each: bench is torch-free, its PyTorch runtime is not."""
    result = board_cli(board_python, "bench", str(artifact), "--runtime", "pytorch", "--runs", "2",
                       "--out", str(tmp_path / "report"), cwd=tmp_path)
    assert_needs_torch(result, "bench")
    assert not (tmp_path / "report").exists()

