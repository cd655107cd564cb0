"""The Python API composes: what export returns goes to bench, info and preprocess; a path or a list of either
works; JPEGs become a batch through one public function; the table bench prints comes from Python too; errors
name the keywords a Python caller uses, the CLI's the flags."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import vit_edge
import vit_edge.quantization.recipe
from tests.helpers import run_cli
from vit_edge.core.errors import ArtifactError, ConfigError

FAST = {"runs": 2, "min_seconds": 0.0, "warmup": 0}


@pytest.fixture
def artifact(shipped_onnx: Path) -> vit_edge.Artifact:
    return vit_edge.Artifact.open(shipped_onnx)  # conftest's, read only


def test_bench_takes_what_export_returns_a_path_or_a_list(artifact: vit_edge.Artifact) -> None:
    """bench([artifact]) failed with 'File name too long' (its repr used as a path); bench('path') walked the
    string letter by letter."""
    for given in ([artifact], artifact, str(artifact.path), artifact.path, [str(artifact.path)]):
        (record,) = vit_edge.bench(given, **FAST)
        assert record.ok and record.artifact == str(artifact.path), (given, record.error)
    table = vit_edge.bench_table(vit_edge.bench([artifact, artifact.path], **FAST))
    assert table.startswith("| ") and table.count(artifact.path.name) >= 2
    assert vit_edge.info(artifact).target == "onnx" and vit_edge.Artifact.open(artifact).path == artifact.path


def test_images_become_a_batch_through_one_public_function(artifact: vit_edge.Artifact, tmp_path: Path) -> None:
    """Turning a JPEG into a batch needed preprocess_uint8, which no doc named."""
    rng = np.random.default_rng(0)
    files = []
    for index, size in enumerate([(640, 480), (300, 500)]):
        path = tmp_path / f"photo{index}.jpg"
        Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(path)
        files.append(path)
    batch = vit_edge.preprocess(files, artifact)
    assert batch.dtype == np.float32 and batch.shape == (2, 1, 28, 28)
    assert np.array_equal(batch, artifact.preprocess([Image.open(f) for f in files]))
    assert np.allclose(artifact.run(files), artifact.run(batch), atol=1e-6)
    assert np.array_equal(vit_edge.preprocess(files[0], artifact), batch[:1])
    with pytest.raises(vit_edge.core.errors.DataError, match="cannot read images from dict"):
        vit_edge.preprocess({"x": 1}, artifact)


def test_errors_name_keywords_in_python_and_flags_on_the_command_line(artifact: vit_edge.Artifact) -> None:
    """API errors said 'pass --force' to a Python caller, who has force=True."""
    with pytest.raises(ArtifactError, match=r"pass force=True to replace it") as raised:
        vit_edge.export("fmnist-vit-tiny", "onnx", artifact.path)
    assert "--" not in str(raised.value)
    with pytest.raises(ConfigError, match="pass eval_data") as raised:
        vit_edge.quantize("fmnist-vit-tiny", "onnx", artifact.path.parent / "q", calib="fashion-mnist",
                          recipe=vit_edge.quantization.recipe.Recipe(max_drop=0.5))
    assert "--" not in str(raised.value)
    cli = run_cli("export", "fmnist-vit-tiny", "--target", "onnx", "--out", str(artifact.path))
    assert cli.returncode == 2 and "pass --force to replace it" in cli.stderr
