"""Shared fixtures (the helpers themselves live in tests/helpers.py).

The session-scoped artifacts are exported once per run (once per worker under pytest-xdist) instead of once per
module: read them, and copy one into tmp_path (tests.helpers.copy_artifact) before changing anything in it. Each
checks at the end of the run that no test changed it, so a test that forgot to copy fails loudly instead of
breaking whichever test reads the artifact next."""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from tests.helpers import small_vit
from vit_edge.models.vit import VisionTransformer


@pytest.fixture
def tiny_vit() -> VisionTransformer:
    return small_vit()


def _unchanged_after_use(artifact: Path) -> Iterator[Path]:
    """Yield `artifact`; afterwards, fail if any test added, removed or changed one of its files."""
    from vit_edge.core.manifest import read_manifest
    from vit_edge.core.recognise import is_artifact

    before = read_manifest(artifact, verify_files=True).files
    yield artifact
    assert is_artifact(artifact), f"a test added a file to the shared artifact {artifact}: copy it first"
    assert read_manifest(artifact, verify_files=True).files == before, f"a test changed {artifact}: copy it first"


@pytest.fixture(scope="session")
def shipped_onnx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """fmnist-vit-tiny exported to ONNX (2 parity inputs), the artifact a test breaks, benches or reads."""
    from vit_edge.api import export

    artifact = export("fmnist-vit-tiny", "onnx", tmp_path_factory.mktemp("shipped") / "fm-onnx", parity_samples=2)
    yield from _unchanged_after_use(artifact.path)


@pytest.fixture(scope="session")
def small_onnx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """small_vit() exported to ONNX with export's defaults: the quickest real artifact to bench."""
    from vit_edge.api import export

    artifact = export(small_vit(), "onnx", tmp_path_factory.mktemp("small") / "onnx")
    yield from _unchanged_after_use(artifact.path)
