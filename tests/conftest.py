"""Shared fixtures: small real models built in-process, and a helper that runs the real CLI in a subprocess."""
from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest
import torch

from vit_edge.models.vit import VisionTransformer, ViTConfig

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures"


def small_vit(distilled: bool = False, seed: int = 0, **changes: int) -> VisionTransformer:
    """A 2-block ViT on 32×32 inputs: converts in seconds yet has every op of a full-size one."""
    torch.manual_seed(seed)
    cfg = ViTConfig(img_size=32, patch_size=8, num_classes=10, embed_dim=48, depth=2, num_heads=3,
                    mlp_hidden_dim=96, distilled=distilled).with_(**changes)
    return VisionTransformer(cfg).eval()


def run_cli(*args: str, cwd: Path | None = None, prelude: str = "") -> subprocess.CompletedProcess[str]:
    """Run `vit-edge ARGS` as a user would; `prelude` is Python run first (e.g. to make a package unimportable)."""
    code = f"{prelude}\nimport sys\nfrom vit_edge.cli import main\nsys.exit(main({list(args)!r}))"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=600)


@contextlib.contextmanager
def tmpfs(mount: Path, options: str) -> Iterator[Path]:
    """A real tmpfs at `mount` ('size=1m,ro', 'size=160k'): root writes through file modes, not through a read-only
    or full mount. Skips where this machine does not allow mounting."""
    mount.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(mount)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=False)


def export_shipped(out: Path) -> Path:
    """The shipped model exported to ONNX through the CLI (2 parity inputs): an artifact to break or measure."""
    result = run_cli("export", "fmnist-vit-tiny", "--target", "onnx", "--out", str(out), "--parity-samples", "2")
    assert result.returncode == 0, result.stderr
    return out


def assert_one_xnnpack_partition(model_file: Path) -> None:
    """LiteRT + XNNPACK takes the whole graph: no op is left to the reference kernels."""
    from ai_edge_litert.interpreter import Interpreter

    from vit_edge.runtime.litert import undelegated_ops

    interpreter = Interpreter(model_path=str(model_file), num_threads=1)
    interpreter.allocate_tensors()
    assert undelegated_ops(interpreter._get_ops_details()) == []


@pytest.fixture
def tiny_vit() -> VisionTransformer:
    return small_vit()
