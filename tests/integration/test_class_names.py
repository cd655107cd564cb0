"""Class names given on export are kept (#36, item 8): `--class-names FILE` on export or quantize was read by
nothing and stored nowhere, so a timm or in-memory model kept an empty class list and every later bench needed the
flag again. Now the names go into the artifact's input spec (and whence into its source), `info` and `models` show
them, bench matches class folders by them, and a file that contradicts the model (another count than its outputs,
other names than its own, two names that read alike, a model without classes) is refused in one line."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import vit_edge
from tests.helpers import assert_nothing_written, assert_user_error, run_cli, small_vit
from vit_edge.core.errors import ConfigError, DataError
from vit_edge.data.datasets import FASHION_MNIST_CLASSES
from vit_edge.data.sources import DataOptions

NAMES = ("T-shirt", "Trouser", "Sneaker", "Bag", "Ankle boot")  # a 5-class model's outputs, in order


def _names_file(path: Path, names: tuple[str, ...] | list[str]) -> Path:
    path.write_text("\n".join(names) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def named(tmp_path_factory: pytest.TempPathFactory) -> vit_edge.Artifact:
    """One small in-memory model (no names of its own) exported with a --class-names file."""
    root = tmp_path_factory.mktemp("named")
    options = DataOptions(class_names=str(_names_file(root / "names.txt", NAMES)))
    return vit_edge.export(small_vit(num_classes=5), "onnx", root / "art", parity_samples=2, data_options=options)


@pytest.mark.slow
def test_export_keeps_the_names_in_the_manifest(named: vit_edge.Artifact) -> None:
    manifest = vit_edge.info(named.path)
    assert manifest.input_spec.class_names == NAMES
    assert (manifest.source.class_names_from or "").endswith("names.txt")


@pytest.mark.slow
def test_info_shows_the_names_and_whence(named: vit_edge.Artifact) -> None:
    result = run_cli("info", str(named.path))
    assert result.returncode == 0, result.stderr
    (row,) = [line for line in result.stdout.splitlines() if line.strip().startswith("classes")]
    assert "5 classes: T-shirt, Trouser, Sneaker, Bag, …" in row and "(from --class-names " in row


@pytest.mark.slow
def test_bench_matches_class_folders_by_the_stored_names(named: vit_edge.Artifact, tmp_path: Path) -> None:
    """Folders named as the file named them (in any case, with '_' for ' '), without --class-names again."""
    rng = np.random.default_rng(0)
    for folder in ("ankle_boot", "Sneaker"):
        (tmp_path / "shop" / folder).mkdir(parents=True)
        for k in range(3):
            Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(tmp_path / "shop" / folder /
                                                                                      f"{k}.png")
    (record,) = vit_edge.bench([str(named.path)], data=str(tmp_path / "shop"), runs=2, warmup=0, min_seconds=0.0)
    assert record.status == "ok", record.error
    assert record.eval_images == 6 and record.top1 is not None


@pytest.mark.slow
def test_quantize_keeps_the_names_too(tmp_path: Path) -> None:
    from vit_edge.data.synthetic import smooth_images

    options = DataOptions(class_names=str(_names_file(tmp_path / "names.txt", NAMES)))
    artifact = vit_edge.quantize(small_vit(num_classes=5), "onnx", tmp_path / "q", calib=smooth_images(8, 32, 3),
                                 calib_size=8, parity_samples=2, data_options=options)
    assert artifact is not None and artifact.manifest.input_spec.class_names == NAMES


@pytest.mark.slow
def test_a_count_other_than_the_outputs_is_refused(tmp_path: Path) -> None:
    names = _names_file(tmp_path / "three.txt", ["Bag", "Sneaker", "Sandal"])
    result = run_cli("export", "fmnist-vit-tiny", "--target", "onnx", "--class-names", str(names),
                     "--out", str(tmp_path / "out"))
    assert_user_error(result, "names 3 classes but the model has 10 outputs", "one name per output")
    assert_nothing_written(tmp_path)


@pytest.mark.slow
def test_names_other_than_the_model_s_own_are_refused(tmp_path: Path) -> None:
    names = _names_file(tmp_path / "other.txt", ["Top", *FASHION_MNIST_CLASSES[1:]])
    result = run_cli("quantize", "fmnist-vit-tiny", "--target", "onnx", "--calib", "fashion-mnist",
                     "--class-names", str(names), "--out", str(tmp_path / "out"))
    assert_user_error(result, "the model says 'T-shirt/top', the file 'Top'", "leave --class-names out")
    assert_nothing_written(tmp_path)


@pytest.mark.slow
def test_the_model_s_own_names_written_as_folders_keep_its_spelling(tmp_path: Path) -> None:
    from vit_edge.cli.printing import info_rows

    folders = [name.replace("/", "_").replace(" ", "_") for name in FASHION_MNIST_CLASSES]  # T-shirt_top, Ankle_boot
    options = DataOptions(class_names=str(_names_file(tmp_path / "folders.txt", folders)))
    artifact = vit_edge.export("fmnist-vit-tiny", "onnx", tmp_path / "a", parity_samples=2, data_options=options)
    assert artifact.manifest.input_spec.class_names == FASHION_MNIST_CLASSES
    assert artifact.manifest.source.class_names_from is None
    rows = dict(info_rows(artifact.manifest, artifact.path))
    assert rows["classes"] == "10 classes: T-shirt/top, Trouser, Pullover, Dress, … (the model's own)"


@pytest.mark.slow
def test_names_that_read_alike_are_refused_on_export(tmp_path: Path) -> None:
    """The file was never read on export, so 'Bag' and 'bag' went unnoticed until a later bench."""
    names = _names_file(tmp_path / "dup.txt", ["Bag", "bag", "Sneaker", "Sandal", "Shirt"])
    with pytest.raises(DataError, match="'Bag' and 'bag'"):
        vit_edge.export(small_vit(num_classes=5), "onnx", tmp_path / "a", data_options=DataOptions(str(names)))
    assert not (tmp_path / "a").exists()


@pytest.mark.slow
def test_names_for_a_model_without_classes_are_refused(tmp_path: Path) -> None:
    names = _names_file(tmp_path / "names.txt", NAMES)
    with pytest.raises(ConfigError, match="names class outputs, but this model returns patch tokens"):
        vit_edge.export(small_vit(num_classes=5), "onnx", tmp_path / "a", output="tokens",
                        data_options=DataOptions(str(names)))


def test_placeholder_names_give_way_to_the_file(tmp_path: Path) -> None:
    """transformers' default id2label (LABEL_0, …) names nothing: the file's names replace it, not conflict."""
    from vit_edge.data.labels import given_class_names

    names = _names_file(tmp_path / "names.txt", ["cat", "dog"])
    assert given_class_names(names, ("LABEL_0", "LABEL_1"), 2) == ("cat", "dog")
    assert given_class_names(names, ("Cat", "DOG"), 2) == ("Cat", "DOG")


def test_models_lists_the_shipped_model_s_classes() -> None:
    from vit_edge.reading.catalog import model_rows

    assert "fmnist-vit-tiny (10 classes: T-shirt/top, Trouser, Pullover, Dress, …)" in model_rows()[0]
