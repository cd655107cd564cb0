"""Calibration and evaluation data as a training loop holds it (#38): a generator, a torch DataLoader, a list of
batches, vit_edge.data.Dataset(source, transform). Each gives exactly the batch, so the scales, that the same
images as one numpy array give; an endless generator stops at calib_size; a batch that does not fit the model is
one line."""
from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

import vit_edge
from vit_edge.core.errors import ConfigError, DataError
from vit_edge.data import Dataset
from vit_edge.data.datasets import LabelledImages, load_fashion_mnist, open_data
from vit_edge.data.preprocess import preprocess_uint8
from vit_edge.quantization.calibration import load_calibration
from vit_edge.quantization.ptq import quantize_model
from vit_edge.quantization.recipe import Recipe
from vit_edge.reading.loaders import LoadedModel, load_model

SIZE = 64


@pytest.fixture(scope="module")
def shipped() -> LoadedModel:
    return load_model("fmnist-vit-tiny")


@pytest.fixture(scope="module")
def test_set() -> LabelledImages:
    return load_fashion_mnist("test").take(SIZE)


def _batches(images: np.ndarray, size: int = 16) -> Iterator[np.ndarray]:
    return (images[i : i + size] for i in range(0, len(images), size))


def test_quantize_takes_a_generator_for_calib_and_eval_data(tmp_path: Path, shipped: LoadedModel,
                                                            test_set: LabelledImages) -> None:
    """The whole verb: calib a generator of uint8 batches, eval_data a generator of (images, labels) pairs."""
    pairs = ((test_set.images[i : i + 32], test_set.labels[i : i + 32]) for i in range(0, SIZE, 32))
    artifact = vit_edge.quantize("fmnist-vit-tiny", "onnx", tmp_path / "int8", calib=_batches(test_set.images),
                                 calib_size=SIZE, eval_data=pairs, parity_samples=2, log=lambda _: None)
    summary = artifact.manifest.quantization
    as_array = load_calibration(test_set.images, shipped.spec, SIZE)
    assert summary is not None and summary.calibration is not None
    assert summary.calibration.fingerprint == as_array.fingerprint
    assert summary.calibration.source == "batches of a generator"
    assert summary.scales_sha256 == quantize_model(shipped.model, Recipe(), as_array.batch).scales_sha256
    accuracy = summary.accuracy
    assert accuracy.images == SIZE and "batches of a generator" in (accuracy.eval_data or "")
    assert 50.0 <= (accuracy.fp32_top1 or 0) <= 100.0 and accuracy.int8_top1 is not None


def _kinds(images: np.ndarray, spec: Any) -> dict[str, Any]:
    """The same 64 images as each kind of iterable the brief names."""
    tensors = TensorDataset(torch.from_numpy(images), torch.zeros(len(images), dtype=torch.int64))
    chw = TensorDataset(torch.from_numpy(images[:, None]))  # uint8 (N, 1, H, W), as PILToTensor gives
    floats = [preprocess_uint8(batch, spec) for batch in _batches(images)]
    dicts = [{"pixel_values": torch.from_numpy(batch), "label": 0} for batch in _batches(images)]
    return {"generator": _batches(images), "DataLoader": DataLoader(tensors, batch_size=16),
            "DataLoader of uint8 NCHW": DataLoader(chw, batch_size=10), "list of float batches": floats,
            "Dataset with a transform": Dataset(dicts, transform=lambda item: item["pixel_values"]),
            "a tensor": torch.from_numpy(images)}


def test_each_kind_of_batches_calibrates_as_the_array_does(shipped: LoadedModel, test_set: LabelledImages) -> None:
    expected = load_calibration(test_set.images, shipped.spec, SIZE)
    for kind, calib in _kinds(test_set.images, shipped.spec).items():
        found = load_calibration(calib, shipped.spec, SIZE)
        assert found.fingerprint == expected.fingerprint, kind
        np.testing.assert_array_equal(found.batch, expected.batch, err_msg=kind)


def test_the_verb_takes_each_kind_at_the_door(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                              shipped: LoadedModel, test_set: LabelledImages) -> None:
    """Past quantize's type checks (which still refuse `[1]`) to the model's loading, no generator read there."""
    import vit_edge.api

    def reached(*_args: Any, **_kwargs: Any) -> None:
        raise LookupError("reached the loading")

    monkeypatch.setattr(vit_edge.api, "load", reached)
    kinds = _kinds(test_set.images, shipped.spec)
    for kind, calib in kinds.items():
        with pytest.raises(LookupError):
            vit_edge.quantize("fmnist-vit-tiny", "onnx", tmp_path / kind, calib=calib, eval_data=iter([]))
    np.testing.assert_array_equal(next(kinds["generator"]), test_set.images[:16])
    with pytest.raises(ConfigError, match="item 0 of the list is int, not a batch"):
        vit_edge.quantize("fmnist-vit-tiny", "onnx", tmp_path / "x", calib=[1])
    with pytest.raises(ConfigError, match="transform="):  # dicts need a transform to name the images
        vit_edge.quantize("fmnist-vit-tiny", "onnx", tmp_path / "x", calib=[{"pixel_values": test_set.images}])


def test_an_endless_generator_stops_at_calib_size(shipped: LoadedModel, test_set: LabelledImages) -> None:
    pulled = []

    def endless() -> Iterator[np.ndarray]:
        for index in itertools.count():
            pulled.append(index)
            yield test_set.images[(index % 4) * 16 : (index % 4 + 1) * 16]

    calib = load_calibration(endless(), shipped.spec, SIZE)
    assert len(calib.batch) == SIZE and pulled == [0, 1, 2, 3]
    assert calib.fingerprint == load_calibration(test_set.images, shipped.spec, SIZE).fingerprint


def test_a_batch_that_does_not_fit_is_one_line(tmp_path: Path, shipped: LoadedModel) -> None:
    rgb = [np.zeros((8, 3, 32, 32), dtype=np.float32)]  # 32×32 RGB, already "preprocessed", for a 28×28 gray model
    with pytest.raises(DataError) as caught:
        vit_edge.quantize("fmnist-vit-tiny", "onnx", tmp_path / "int8", calib=rgb, log=lambda _: None)
    message = str(caught.value)
    assert "\n" not in message and "(8, 3, 32, 32)" in message and "(N, 1, 28, 28)" in message, message
    assert not (tmp_path / "int8").exists()
    nhwc = [np.zeros((8, 28, 28, 1), dtype=np.float32)]
    with pytest.raises(DataError, match="NHWC; the model takes NCHW"):
        load_calibration(nhwc, shipped.spec, SIZE)
    cases = {"a dict item without a transform": ([{"pixel_values": np.zeros((2, 28, 28), np.uint8)}], "transform="),
             "int64 images": ([np.zeros((2, 28, 28), np.int64)], "is int64"),
             "a single image": ([np.zeros((28,), np.uint8)], "each item is a batch"),
             "batches of two sizes": ([np.zeros((2, 28, 28), np.uint8), np.zeros((2, 32, 32), np.uint8)],
                                      "one kind and size"),
             "nothing": (iter([]), "gave no images")}
    for name, (calib, fragment) in cases.items():
        with pytest.raises(DataError, match=fragment) as caught:
            load_calibration(calib, shipped.spec, SIZE)
        assert "\n" not in str(caught.value), name


def test_evaluation_batches_need_labels_and_uint8(test_set: LabelledImages) -> None:
    """Evaluation preprocesses its images itself (parity, the runtime's top-1), so float batches are refused."""
    labelled = open_data(iter([(test_set.images[:8], torch.from_numpy(test_set.labels[:8]))]), labelled=True)
    assert labelled.labels is not None and labelled.labels.tolist() == test_set.labels[:8].tolist()
    with pytest.raises(DataError, match="no labels"):
        open_data(iter([test_set.images[:8]]), labelled=True)
    with pytest.raises(DataError, match="already preprocessed"):
        open_data([(np.zeros((8, 1, 28, 28), np.float32), np.zeros(8, np.int64))], labelled=True)
    with pytest.raises(DataError, match="one label per image"):
        open_data([(test_set.images[:8], np.zeros(7, np.int64))], labelled=True)
    assert len(open_data(itertools.repeat((test_set.images[:8], test_set.labels[:8])), limit=20, labelled=True)) == 20
