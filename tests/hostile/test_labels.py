"""Hostile inputs, labels class: every label source (class folders, list files, .npy/.npz, named datasets, sources
built in Python, --class-names files) passes one check, `vit_edge.data.labels.check_labels`: integer indices in
range, class names that differ and are read whole, one model name per output. What fails it is refused in one
line before anything is scored or trained; each case below was once accepted (or a traceback)."""
from __future__ import annotations

import argparse
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.helpers import assert_user_error, run_cli
from vit_edge.core.errors import DataError
from vit_edge.core.types import InputSpec
from vit_edge.data import (
    FASHION_MNIST_CLASSES,
    ArrayImages,
    DataOptions,
    load_dataset,
    load_image_folder,
    match_labels,
    open_images,
    read_class_names,
)

SPEC = InputSpec(img_size=8, channels=1, mean=(0.5,), std=(0.5,))
FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")


def _png(path: Path, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (12, 12, 3), dtype=np.uint8)).save(path)
    return path


def _npz(path: Path, labels: object, **extra: object) -> Path:
    images = np.random.default_rng(0).integers(0, 256, (4, 8, 8), dtype=np.uint8)
    np.savez(path, images=images, labels=labels, **extra)  # type: ignore[arg-type]
    return path


def _shop(root: Path, classes: tuple[str, ...] = ("Bag", "Sneaker"), per_class: int = 4) -> Path:
    for c, name in enumerate(classes):
        for i in range(per_class):
            _png(root / name / f"{i}.png", seed=10 * c + i)
    return root


def _train_flags() -> set[str]:
    from vit_edge.cli import build_parser

    for action in build_parser()._actions:
        if isinstance(action, argparse._SubParsersAction):
            return {option for a in action.choices["train"]._actions for option in a.option_strings}
    raise AssertionError("no subcommands")


# -- 1. range: a negative label ---------------------------------------------------------------------------------
def test_an_npz_label_of_minus_one_is_refused_like_a_list_files(tmp_path: Path) -> None:
    """An .npz label of -1 was scored (a list file's -1 was refused): both now fail the same check."""
    with pytest.raises(DataError, match=r"neg\.npz has label -1, but labels are class indices \(labels 0 to 9\)"):
        load_dataset(_npz(tmp_path / "neg.npz", np.array([0, 1, -1, 2])), SPEC, num_classes=10)
    _png(tmp_path / "imgs" / "a.png")
    (tmp_path / "neg.txt").write_text("imgs/a.png -1\n")
    with pytest.raises(DataError, match=r"neg\.txt has label -1, but labels are class indices"):
        load_dataset(tmp_path / "neg.txt", SPEC, num_classes=10)


def test_labels_at_or_past_the_class_count_are_refused(tmp_path: Path) -> None:
    """Labels past an .npz's own class_names were an IndexError traceback."""
    npz = _npz(tmp_path / "named.npz", np.array([0, 1, 5, 1]), class_names=np.array(["Bag", "Sneaker"]))
    with pytest.raises(DataError, match="has label 5, but it names 2 classes"):
        match_labels(open_images(npz), FASHION_MNIST_CLASSES, 10)
    with pytest.raises(DataError, match="has label 10, but the model has 10 outputs"):
        load_dataset(_npz(tmp_path / "big.npz", np.array([0, 1, 10, 2])), SPEC, num_classes=10)


@pytest.mark.slow  # trains a model
def test_an_npz_label_of_minus_one_stops_the_cli_in_one_line(tmp_path: Path) -> None:
    shop = _shop(tmp_path / "shop")
    result = run_cli("train", "--data", str(shop), "--eval-data", str(_npz(tmp_path / "neg.npz", [0, 1, -1, 0])),
                     "--epochs", "1", "--out", str(tmp_path / "m.pt"))
    assert_user_error(result, "has label -1")
    assert not (tmp_path / "m.pt").exists()


# -- 2. integer dtype: float labels -----------------------------------------------------------------------------
@pytest.mark.parametrize("labels", [np.array([0.0, 1.0, 3.0, 2.0]), np.array([0.5, 1.9, 2.2, 3.0]),
                                    np.array([True, False, True, True]), np.array(["0", "1", "3", "2"])])
def test_labels_that_are_not_integers_are_refused_even_when_whole(tmp_path: Path, labels: np.ndarray) -> None:
    """Float labels were cast to indices without a word (18.75 % top-1, status ok): refused, 3.0 included."""
    npz = _npz(tmp_path / "f.npz", labels)
    with pytest.raises(DataError, match=rf"f\.npz's labels are {labels.dtype}.*not integer class indices"):
        load_dataset(npz, SPEC, num_classes=10)


def test_a_source_built_in_python_passes_the_same_check() -> None:
    images = np.zeros((3, 8, 8), np.uint8)
    floats = ArrayImages("mine", "arrays", np.array([0.0, 1.0, 2.0]), None, images=images)
    with pytest.raises(DataError, match="mine's labels are float64"):
        match_labels(floats, FASHION_MNIST_CLASSES, 10)
    short = ArrayImages("short", "arrays", np.array([0, 1]), None, images=images)
    with pytest.raises(DataError, match="short: 2 labels for 3 images"):
        match_labels(short, FASHION_MNIST_CLASSES, 10)
    from vit_edge.data import check_labels  # here, so the cases above fail alone on code without it

    assert check_labels("ok", [3, 1], num_classes=10).dtype == np.int64


def test_odd_label_arrays_are_one_line_not_a_traceback(tmp_path: Path) -> None:
    """A 0-d labels array (len() of it) and a '--1' label (int('--1')) were tracebacks."""
    with pytest.raises(DataError, match="labels of shape \\(\\)"):
        open_images(_npz(tmp_path / "scalar.npz", np.int64(3)))
    _png(tmp_path / "imgs" / "a.png")
    (tmp_path / "dash.txt").write_text("imgs/a.png --1\n")
    with pytest.raises(DataError, match="'--1'"):
        load_dataset(tmp_path / "dash.txt", SPEC, num_classes=10)


# -- 3. class names with spaces are read whole ------------------------------------------------------------------
def test_a_list_file_class_name_with_a_space_is_read_whole(tmp_path: Path) -> None:
    """'imgs/a.png Ankle boot' was read as the path 'imgs/a.png Ankle' and the class 'boot'."""
    _png(tmp_path / "imgs" / "a b.png", 1)
    _png(tmp_path / "imgs" / "c.PNG", 2)
    (tmp_path / "val.txt").write_text("imgs/a b.png   Ankle boot\nimgs/c.PNG Sneaker\nimgs/a b.png T-shirt/top\n")
    source = open_images(tmp_path / "val.txt")
    assert source.label_names == ("Ankle boot", "Sneaker", "T-shirt/top")
    assert [p.name for p in source.paths] == ["a b.png", "c.PNG", "a b.png"]  # type: ignore[attr-defined]
    assert match_labels(source, FASHION_MNIST_CLASSES, 10).labels.tolist() == [9, 7, 0]
    (tmp_path / "bare.txt").write_text("imgs/a b.png\n")
    assert open_images(tmp_path / "bare.txt").labels is None  # a path with a space and no label, as before


# -- 4. duplicate class names, and the model's class count ------------------------------------------------------
def test_a_class_names_file_with_duplicates_is_refused(tmp_path: Path) -> None:
    """A --class-names file naming 'Bag' twice was taken, and every Bag image scored against the first."""
    shop = _shop(tmp_path / "shop")
    (tmp_path / "dup.txt").write_text("Bag\nSneaker\nBag\n")
    with pytest.raises(DataError, match="dup.txt names 'Bag' twice; rename one"):
        load_dataset(shop, SPEC, num_classes=3, options=DataOptions(class_names=str(tmp_path / "dup.txt")))
    (tmp_path / "alike.txt").write_text("T-shirt/top\nT-shirt top\n")
    with pytest.raises(DataError, match="'T-shirt/top' and 'T-shirt top', which read as one class"):
        read_class_names(tmp_path / "alike.txt")


def test_class_names_must_match_the_model_s_class_count_whatever_the_labels(tmp_path: Path) -> None:
    """Five names for ten outputs were used when the labels were indices."""
    _png(tmp_path / "imgs" / "a.png")
    (tmp_path / "idx.txt").write_text("imgs/a.png 3\n")
    (tmp_path / "five.txt").write_text("a\nb\nc\nd\ne\n")
    with pytest.raises(DataError, match="five.txt names 5 classes but the model has 10 outputs"):
        load_dataset(tmp_path / "idx.txt", SPEC, num_classes=10, options=DataOptions(str(tmp_path / "five.txt")))


def test_names_in_any_script_are_told_apart(tmp_path: Path) -> None:
    """Non-Latin names all matched as '' (two folders were 'the same class'); accents are still ignored."""
    _png(tmp_path / "pets" / "猫" / "a.png", 1)
    _png(tmp_path / "pets" / "犬" / "b.png", 2)
    _png(tmp_path / "pets" / "Cafe" / "c.png", 3)
    (tmp_path / "names.txt").write_text("犬\n猫\ncafé\n", encoding="utf-8")
    data = load_dataset(tmp_path / "pets", SPEC, num_classes=3, options=DataOptions(str(tmp_path / "names.txt")))
    assert data.labels.tolist() == [2, 0, 1]  # sorted folders: Cafe, 犬, 猫


def test_a_name_two_model_classes_share_is_refused(tmp_path: Path) -> None:
    """ImageNet-1k names two classes 'crane' (a bird, a machine): a 'crane' folder was scored as the bird."""
    _png(tmp_path / "val" / "crane" / "a.JPEG")
    with pytest.raises(DataError, match="'crane'; rename them to a name one class alone has.*synset"):
        match_labels(open_images(tmp_path / "val"), (), 1000)
    _png(tmp_path / "synsets" / "n03126707" / "a.JPEG")
    assert match_labels(open_images(tmp_path / "synsets"), (), 1000).labels.tolist() == [517]


# -- 5, 6. train: its messages name its own flags, and it takes the sources docs/data.md lists ------------------
@pytest.mark.slow  # trains a model
def test_train_s_class_mismatch_names_only_flags_train_has(tmp_path: Path) -> None:
    """train's message asked for --class-names, which train refuses."""
    shop = _shop(tmp_path / "shop")
    _png(tmp_path / "eval" / "Sandals" / "x.png")
    result = run_cli("train", "--data", str(shop), "--eval-data", str(tmp_path / "eval"), "--epochs", "1",
                     "--out", str(tmp_path / "m.pt"))
    message = assert_user_error(result, "'Sandals'", "rename them to the training data's class names")
    assert set(FLAG.findall(message)) <= _train_flags(), message


@pytest.mark.slow  # trains a model
def test_train_takes_a_list_file_of_indices_and_an_npz(tmp_path: Path) -> None:
    """docs/data.md: train takes every source; a list file of indices was refused as 'no class folders'."""
    _shop(tmp_path / "shop")
    lines = [f"shop/{name}/{i}.png {c}" for c, name in enumerate(("Bag", "Sneaker")) for i in range(4)]
    (tmp_path / "train.txt").write_text("\n".join(lines) + "\n")
    result = run_cli("train", "--data", str(tmp_path / "train.txt"), "--eval-data", str(tmp_path / "train.txt"),
                     "--epochs", "1", "--out", str(tmp_path / "m.pt"))
    assert result.returncode == 0, result.stderr
    from vit_edge.reading.checkpoint import load_checkpoint

    assert load_checkpoint(tmp_path / "m.pt")[1].class_names == ("0", "1")
    npz = _npz(tmp_path / "t.npz", np.array([0, 1, 1, 0]), class_names=np.array(["Bag", "Sneaker"]))
    data = load_image_folder(npz, channels=3, size=8)
    assert data.class_names == ("Bag", "Sneaker") and data.labels.tolist() == [0, 1, 1, 0]
    (tmp_path / "neg.txt").write_text("shop/Bag/0.png 0\nshop/Bag/1.png -1\n")
    with pytest.raises(DataError, match="has label -1"):
        load_image_folder(tmp_path / "neg.txt")
