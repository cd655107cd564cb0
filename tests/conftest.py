"""Shared fixtures (the helpers themselves live in tests/helpers.py).

The session-scoped artifacts are exported once per run (once per worker under pytest-xdist) instead of once per
module: read them, and copy one into tmp_path (tests.helpers.copy_artifact) before changing anything in it. Each
checks at the end of the run that no test changed it, so a test that forgot to copy fails loudly instead of
breaking whichever test reads the artifact next."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator


def _share_the_cores_between_workers() -> None:
    """Under pytest-xdist, each worker (and every process it starts: the CLI's subprocesses inherit the variables)
    computes on its share of the cores. torch, OpenMP and the runtimes otherwise take every core in each worker, and
    two workers' threads on 2 cores spin against each other: the NPU budget test took 205 s alone and 716 s beside
    another worker. Set before torch is imported; a variable the user set wins."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0"))
    if workers < 2:
        return
    share = str(max(1, (os.cpu_count() or 1) // workers))
    for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(variable, share)


_share_the_cores_between_workers()

import pytest  # noqa: E402

from tests.helpers import small_vit  # noqa: E402
from vit_edge.models.vit import VisionTransformer  # noqa: E402


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


# The files that take longest, longest first (seconds of one worker, measured on the 2-core machine with
# --durations=0, 2026-12-06, after the zygote's tracer imports and the trimmed INT16 mixes). `make test` hands files
# to its workers in collection order (--no-loadscope-reorder), so these start first and the quick ones fill the gaps
# at the end, instead of a 5-minute file starting last.
_LONGEST_FIRST = (
    "tests/integration/test_families.py",  # 286
    "tests/integration/test_int16.py",  # 185 (the NPU budget test alone is 88)
    "tests/integration/test_docs_commands_run.py",  # 131
    "tests/conformance/test_export_conformance.py",  # 128
    "tests/integration/test_quantize.py",  # 104
    "tests/integration/test_token_merging.py",  # 93
    "tests/integration/test_dense_outputs.py",  # 85
    "tests/integration/test_depth_head_int8.py",  # 81
    "tests/integration/test_dpt.py",  # 79
    "tests/integration/test_dpt_int8.py",  # 69
    "tests/integration/test_ssh_bench.py",  # 64
    "tests/integration/test_shipped_model.py",  # 57
    "tests/integration/test_real_folders.py",  # 57
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The files in _LONGEST_FIRST first, in its order; every other file after them, as collected."""
    rank = {path: index for index, path in enumerate(_LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0], len(rank)))
