"""Integrity on every load: a file changed after export, a manifest path that leaves the artifact, or a manifest
that is not an object is refused in one line by info, Artifact.open and bench, never run or reported as ok."""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from tests.helpers import assert_user_error, copy_artifact, run_cli
from vit_edge.api import Artifact, export
from vit_edge.benchmarking.record import BenchRecord
from vit_edge.core.errors import ArtifactError
from vit_edge.core.manifest import MANIFEST_NAME, manifest_digest, sha256_file

pytestmark = pytest.mark.slow


@pytest.fixture
def exported(shipped_onnx: Path) -> Path:
    return shipped_onnx  # conftest's, read only


@pytest.fixture
def artifact(exported: Path, tmp_path: Path) -> Path:
    return copy_artifact(exported, tmp_path / "copy")


def edit_manifest(root: Path, rehash: bool = True, **changes: object) -> None:
    """Change manifest fields; with `rehash`, as an attacker who also recomputes the manifest's own sha256 would
    (what the checks below must still catch), else as a plain edit."""
    data = json.loads((root / MANIFEST_NAME).read_text())
    data.update(changes)
    if rehash:
        data["manifest_sha256"] = manifest_digest(data)
    (root / MANIFEST_NAME).write_text(json.dumps(data))


def test_an_edited_manifest_is_refused_on_every_load(artifact: Path) -> None:
    """Editing what changes the numbers (the preprocessing) without the model file: once reported 'sha256
    verified' and status ok with top-1 8.5 % for a model that scores 88 %."""
    spec = json.loads((artifact / MANIFEST_NAME).read_text())["input_spec"]
    edit_manifest(artifact, rehash=False, input_spec={**spec, "mean": [0.9], "std": [0.1]})
    assert_refused_on_every_load(artifact, "was edited after export")


def assert_refused_on_every_load(artifact: Path, message: str) -> None:
    """info (exit 2, one line), Artifact.open (ArtifactError) and bench (exit 2) all refuse it, saying `message`."""
    assert_user_error(run_cli("info", str(artifact)), message)
    with pytest.raises(ArtifactError, match=re.escape(message)):
        Artifact.open(artifact)
    result = run_cli("bench", str(artifact), "--runs", "2", "--min-time", "0", "--warmup", "0",
                     "--out", str(artifact.parent / "reports"))
    assert result.returncode == 2 and message in result.stdout + result.stderr


@pytest.mark.parametrize("section, change, words", [
    ("parity", {"min_cosine": "high"}, "ParityCheck.min_cosine must be float, not str"),
    ("source", {"weights_sha256": 7}, "Provenance.weights_sha256 must be str, not int"),
    ("source", {"output_shape": [16, "384"]}, "Provenance.output_shape[1] must be int, not str"),
])
def test_a_section_of_another_shape_is_refused_at_read_in_one_line(artifact: Path, section: str,
                                                                   change: dict[str, object], words: str) -> None:
    """A manifest's sections are typed records, read with their types checked. Re-hashed, as another tool would
    write it: a parity whose min cosine is a word was read, then `info` died formatting it (a traceback)."""
    data = json.loads((artifact / MANIFEST_NAME).read_text())
    edit_manifest(artifact, **{section: {**data[section], **change}})
    assert_refused_on_every_load(artifact, words)


def test_changed_model_bytes_are_caught_everywhere(artifact: Path) -> None:
    model = artifact / "model.onnx"
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0xFF
    model.write_bytes(bytes(data))
    assert_refused_on_every_load(artifact, "model.onnx does not match its sha256")


@pytest.mark.parametrize("name", ["../../../../etc/passwd", "/etc/passwd", "sub/../../outside.onnx"])
def test_manifest_paths_stay_inside_the_artifact(artifact: Path, name: str) -> None:
    files = json.loads((artifact / MANIFEST_NAME).read_text())["files"]
    edit_manifest(artifact, model_file=name, files={**files, name: "0" * 64})
    assert_user_error(run_cli("info", str(artifact)), "not a path inside the artifact")
    with pytest.raises(ArtifactError, match="not a path inside the artifact"):
        Artifact.open(artifact)


def test_a_link_out_of_the_artifact_is_refused(artifact: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside.onnx"
    shutil.copy(artifact / "model.onnx", outside)
    (artifact / "model.onnx").unlink()
    (artifact / "model.onnx").symlink_to(outside)
    files = json.loads((artifact / MANIFEST_NAME).read_text())["files"]
    edit_manifest(artifact, files={**files, "model.onnx": sha256_file(outside)})
    assert_user_error(run_cli("info", str(artifact)), "leads outside the artifact")


def test_model_file_must_be_listed(artifact: Path) -> None:
    files = json.loads((artifact / MANIFEST_NAME).read_text())["files"]
    files.pop("model.onnx")
    edit_manifest(artifact, files=files)
    assert_user_error(run_cli("info", str(artifact)), "not among the manifest's files")


def test_a_manifest_that_is_a_list_is_one_line(artifact: Path, exported: Path) -> None:
    (artifact / MANIFEST_NAME).write_text("[1, 2, 3]")
    assert_user_error(run_cli("info", str(artifact)), "does not hold a JSON object (found a list)")
    result = run_cli("bench", str(artifact), str(exported), "--runs", "2", "--min-time", "0", "--warmup", "0",
                     "--out", str(artifact.parent / "reports"))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    lines = (artifact.parent / "reports" / "bench.jsonl").read_text().splitlines()
    records = [BenchRecord.from_json(json.loads(line)) for line in lines]
    assert [r.status for r in records].count("ok") == 1  # the good artifact is still measured


def test_wrong_inputs_to_run_say_what_was_expected(exported: Path) -> None:
    import numpy as np

    from vit_edge.core.errors import ConfigError, DataError

    artifact = Artifact.open(exported)
    good = np.zeros((2, 1, 28, 28), dtype=np.float32)
    assert artifact.run(good).shape == (2, 10)
    assert artifact.run(good.astype(np.float64)).shape == (2, 10)  # any float is taken as float32
    with pytest.raises(DataError, match=r"NCHW \(N, 1, 28, 28\), got shape \(2, 28, 28, 1\) \(it looks like NHWC\)"):
        artifact.run(np.zeros((2, 28, 28, 1), dtype=np.float32))
    images = np.zeros((2, 28, 28, 1), dtype=np.uint8)  # uint8 is images, in either layout, preprocessed by run
    assert np.array_equal(artifact.run(images.transpose(0, 3, 1, 2)), artifact.run(images))
    with pytest.raises(DataError, match="is uint8 of shape .* neither"):
        artifact.run(np.zeros((2, 5, 28, 28), dtype=np.uint8))
    with pytest.raises(DataError, match="cannot read images from list"):
        artifact.run([[0.0]])
    with pytest.raises(ConfigError, match="target must be a target name"):
        export("fmnist-vit-tiny", None, exported.parent / "none")  # type: ignore[arg-type]


def test_consistent_hashes_but_wrong_numbers_fail_the_numerics_gate(exported: Path, tmp_path: Path) -> None:
    """The head negated inside the ONNX file and the manifest re-hashed: integrity holds, the numbers do not."""
    import numpy as np
    import onnx
    from onnx import numpy_helper

    from vit_edge.core.manifest import NUMERICS_CHECK

    artifact = tmp_path / "negated"
    shutil.copytree(exported, artifact)
    assert (artifact / NUMERICS_CHECK).is_file()
    model = onnx.load(str(artifact / "model.onnx"))
    for initializer in model.graph.initializer:
        if tuple(initializer.dims) == (10, 64):  # the head's weight: 10 classes × 64 features
            initializer.CopyFrom(numpy_helper.from_array(-numpy_helper.to_array(initializer), initializer.name))
    onnx.save(model, str(artifact / "model.onnx"))
    edit_manifest(artifact, files={**json.loads((artifact / MANIFEST_NAME).read_text())["files"],
                                   "model.onnx": sha256_file(artifact / "model.onnx")})
    Artifact.open(artifact)  # integrity holds
    result = run_cli("bench", str(artifact), str(exported), "--runs", "2", "--min-time", "0", "--warmup", "0",
                     "--out", str(tmp_path / "reports"))
    assert result.returncode == 2, result.stderr
    lines = (tmp_path / "reports" / "bench.jsonl").read_text().splitlines()
    records = [BenchRecord.from_json(json.loads(line)) for line in lines]
    status = {Path(r.artifact).name: r.status for r in records}
    assert status == {"negated": "mismatch", exported.name: "ok"}, status
    negated = next(r for r in records if r.status == "mismatch")
    assert "computes other numbers than PyTorch" in negated.error and not negated.numerics_check.passed
    assert np.isfinite(negated.p50_ms)  # the timing is still reported, beside the verdict


def test_reference_gate_flags_rows_outside_tolerance(tmp_path: Path) -> None:
    """--reference: the same model agrees (ok); another model's numbers are a 'mismatch' and exit 2."""
    from tests.helpers import small_vit

    arts = {seed: export(small_vit(seed=seed, in_chans=1, img_size=28, patch_size=4), "onnx", tmp_path / f"m{seed}",
                         parity_samples=2).path for seed in (0, 1)}
    common = ("--runs", "2", "--min-time", "0", "--warmup", "0", "--data", "fashion-mnist", "--eval-limit", "64")
    same = run_cli("bench", str(arts[0]), "--reference", str(arts[0]), *common, "--out", str(tmp_path / "r0"))
    assert same.returncode == 0, same.stdout + same.stderr
    other = run_cli("bench", str(arts[0]), "--reference", str(arts[1]), *common, "--out", str(tmp_path / "r1"))
    assert other.returncode == 2
    (record,) = [BenchRecord.from_json(json.loads(line))
                 for line in (tmp_path / "r1" / "bench.jsonl").read_text().splitlines()]
    assert record.status == "mismatch" and "beyond fp32 tolerance" in record.error


def test_a_schema_1_manifest_without_its_hash_is_refused(artifact: Path) -> None:
    """Deleting manifest_sha256 and declaring schema 1 (read unhashed) let an edited mean/std through: info said
    'sha256 verified' and bench reported top-1 8.5 % as ok for a model that scores 86 %."""
    data = json.loads((artifact / MANIFEST_NAME).read_text())
    del data["manifest_sha256"]
    data.update(schema_version=1, input_spec={**data["input_spec"], "mean": [0.9], "std": [0.1]})
    (artifact / MANIFEST_NAME).write_text(json.dumps(data))
    assert_refused_on_every_load(artifact, "schema 1")
    assert "export the artifact again" in run_cli("info", str(artifact)).stderr
