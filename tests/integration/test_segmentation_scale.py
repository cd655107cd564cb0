"""Segmentation scored at ADE20K's scale (#37): the runner consumes a segmentation output a batch at a time (the
confusion against the masks accumulated, each image's argmax written to a memory-mapped class map, the whole logits
of SAMPLE_IMAGES images kept), bench's agreement reads those files a batch at a time, and quantize --eval runs the
float and the INT8 model on the masks' images a batch at a time (quantization/dense.mask_accuracy). 2,000 ADE20K
images' logits (150 classes, 512x512, float32) are ~300 GB: whatever holds them whole cannot run.

No model: a per-pixel linear classifier in numpy stands for the session, so the memory measured is the scoring
path's own; its numbers are checked against the all-in-memory computation (core/segmentation_metrics, parity.judge).
"""
from __future__ import annotations

import tracemalloc
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, cast

import numpy as np
import pytest

from tests.helpers import mask_accuracy_of_whole_logits
from vit_edge.benchmarking import sweep
from vit_edge.core.errors import ParityError
from vit_edge.core.manifest import Manifest
from vit_edge.core.output_kinds import OUTPUTS, ModelOutput
from vit_edge.core.parity import judge
from vit_edge.core.segmentation_metrics import (
    IGNORE,
    SAMPLE_IMAGES,
    ClassMapFiles,
    MaskLabels,
    mask_scores,
    segmentation_against_fp32,
)
from vit_edge.core.types import InputSpec, Precision
from vit_edge.data.masks import MaskedImages
from vit_edge.data.preprocess import preprocess_uint8
from vit_edge.quantization.dense import mask_accuracy
from vit_edge.runtime import accuracy
from vit_edge.runtime.accuracy import ClassMapWriter, predict
from vit_edge.runtime.measure import MeasureConfig, _accuracy

SEGMENTATION = OUTPUTS["segmentation"]


@dataclass(frozen=True)
class _Manifest:
    """What the scoring path reads of a manifest."""

    input_spec: InputSpec
    output: ModelOutput = SEGMENTATION
    precision: Precision = Precision.INT8


class _Session:
    """A per-pixel linear classifier over the 3 input channels: (B, 3, H, W) → (B, C, H, W) float32."""

    def __init__(self, classes: int, noise: float = 0.0, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        weights = rng.standard_normal((classes, 3)).astype(np.float32)
        self.weights = weights + noise * rng.standard_normal(weights.shape).astype(np.float32)

    def run_any(self, x: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(np.moveaxis(np.tensordot(x, self.weights, axes=([1], [1])), -1, 1))


def _data(folder: Path, count: int, size: int, classes: int) -> tuple[Path, Path]:
    """`count` random uint8 images at `size` and their masks (random classes, a corner IGNORE), as .npy files."""
    rng = np.random.default_rng(2)
    images, masks = folder / "images.npy", folder / "masks.npy"
    np.save(images, rng.integers(0, 256, (count, size, size, 3), dtype=np.uint8))
    mask = rng.integers(0, classes, (count, size, size)).astype(np.int64)
    mask[:, :2, :2] = IGNORE
    np.save(masks, mask)
    return images, masks


def _measured(run: Callable[[], Any]) -> tuple[Any, int]:
    """run()'s result and the peak of memory numpy allocated meanwhile (tracemalloc traces numpy's buffers)."""
    tracemalloc.start()
    try:
        found = run()
        return found, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def _score(session: _Session, manifest: _Manifest, images: Path, masks: Path | None, out: Path) -> Any:
    cfg = MeasureConfig(artifact="unused", data_images=str(images), data_masks=None if masks is None else str(masks),
                        logits_out=str(out))
    return _accuracy(cast(Any, session), cast(Manifest, manifest), cfg)


def test_a_large_segmentation_run_is_scored_and_compared_in_flat_memory(tmp_path: Path) -> None:
    count, classes, size = 64, 150, 128
    whole = count * classes * size * size * 4  # the logits: 629 MB
    images, masks = _data(tmp_path, count, size, classes)
    manifest = _Manifest(InputSpec(img_size=size))
    scores, peak = _measured(lambda: _score(_Session(classes), manifest, images, masks, tmp_path / "run.npy"))
    assert peak < whole / 4, f"scoring held {peak / 2**20:.0f} MiB of {whole / 2**20:.0f} MiB of logits"
    assert scores.eval_images == count and scores.seg_pixels == count * (size * size - 4) and scores.seg_miou
    reference = predict(_Session(classes, noise=0.05).run_any, np.load(images, mmap_mode="r"), manifest.input_spec,
                        SEGMENTATION, tmp_path / "reference.npy")
    assert reference.logits is None and reference.masks is None  # streamed to files, no masks given
    run, ref = ClassMapFiles.beside(tmp_path / "run.npy"), ClassMapFiles.beside(tmp_path / "reference.npy")
    maps = run.read()
    assert maps.classes.shape == (count, size, size) and maps.classes.dtype == np.uint16
    assert maps.sample.shape == (SAMPLE_IMAGES, classes, size, size) and maps.sample.dtype == np.float32
    found, peak = _measured(lambda: sweep._segmentation_agreement(run, ref, cast(Manifest, manifest)))
    assert peak < whole / 4, f"the agreement held {peak / 2**20:.0f} MiB"
    assert found.status is None and found.agreement_cosine_images == SAMPLE_IMAGES, found
    assert found.segmentation is not None and 0.5 < found.segmentation.seg_pixel_agreement < 1.0, found


def _logits(session: _Session, images: Path, spec: InputSpec) -> np.ndarray:
    return session.run_any(preprocess_uint8(np.load(images), spec))


def test_streamed_numbers_equal_the_whole_logits_numbers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    count, classes, size = 11, 5, 16
    images, masks = _data(tmp_path, count, size, classes)
    manifest = _Manifest(InputSpec(img_size=size))
    monkeypatch.setattr(accuracy, "CHUNK_BYTES", 3 * classes * size * size * 4)  # batches of 1, 3, 3, 3, 1
    candidate, reference = _Session(classes), _Session(classes, noise=0.1)
    scores = _score(candidate, manifest, images, masks, tmp_path / "run.npy")
    _score(reference, manifest, images, None, tmp_path / "reference.npy")
    whole, whole_ref = _logits(candidate, images, manifest.input_spec), _logits(reference, images, manifest.input_spec)
    seg = mask_scores(whole, np.load(masks))
    assert (scores.seg_miou, scores.seg_pixel_accuracy, scores.seg_pixels) == (seg.miou, seg.pixel_accuracy,
                                                                               seg.pixels)
    found = sweep._agreement_of_files(tmp_path / "run.npy", tmp_path / "reference.npy", cast(Manifest, manifest))
    expected = segmentation_against_fp32(whole, whole_ref)
    assert found.segmentation == sweep.SegmentationAgreement(expected.pixel_agreement, expected.min_pixel_agreement,
                                                             expected.miou_vs_fp32)
    assert 0 < expected.min_pixel_agreement < expected.pixel_agreement < 1  # pixels flipped: a check that can fail
    sample = judge(whole_ref[:SAMPLE_IMAGES], whole[:SAMPLE_IMAGES], Precision.INT8, SEGMENTATION)
    assert found.agreement_cosine == pytest.approx(sample.mean_cosine, abs=1e-12)
    assert found.agreement_cosine_images == SAMPLE_IMAGES < count


def test_fewer_images_than_the_sample_keep_them_all(tmp_path: Path) -> None:
    images, _ = _data(tmp_path, 3, 8, 4)
    manifest = _Manifest(InputSpec(img_size=8), precision=Precision.FP32)
    for name in ("run", "reference"):
        _score(_Session(4), manifest, images, None, tmp_path / f"{name}.npy")
    assert ClassMapFiles.beside(tmp_path / "run.npy").read().sample.shape == (3, 4, 8, 8)
    found = sweep._agreement_of_files(tmp_path / "run.npy", tmp_path / "reference.npy", cast(Manifest, manifest))
    assert found.status is None and found.agreement_cosine_images == 3 and found.segmentation is not None
    assert found.segmentation.seg_pixel_agreement == 1.0
    writer = ClassMapWriter(ClassMapFiles.beside(tmp_path / "w.npy"), 2, sample=100)
    writer.add(np.zeros((2, 8, 8), dtype=np.int64), np.zeros((2, 4, 8, 8), dtype=np.float32))
    writer.close()
    assert np.load(tmp_path / "w.sample.npy").shape == (2, 4, 8, 8)


def test_a_reference_of_another_shape_or_kind_is_one_mismatch_line(tmp_path: Path) -> None:
    small, _ = _data(tmp_path, 3, 8, 4)
    (tmp_path / "big").mkdir()
    big, _ = _data(tmp_path / "big", 3, 16, 4)
    _score(_Session(4), _Manifest(InputSpec(img_size=16)), big, None, tmp_path / "run.npy")
    _score(_Session(4), _Manifest(InputSpec(img_size=8)), small, None, tmp_path / "reference.npy")
    manifest = cast(Manifest, _Manifest(InputSpec(img_size=16)))
    found = sweep._agreement_of_files(tmp_path / "run.npy", tmp_path / "reference.npy", manifest)
    assert found.status == "mismatch" and found.segmentation is None and found.agreement_cosine is None
    assert found.error == "class maps (16, 16) of 4 classes differ from the reference's (8, 8) of 4 classes (3 and " \
                          "3 images)", found.error
    _score(_Session(4), _Manifest(InputSpec(img_size=8), output=OUTPUTS["logits"]), small, None, tmp_path / "cls.npy")
    found = sweep._agreement_of_files(tmp_path / "run.npy", tmp_path / "cls.npy", manifest)
    assert found.status == "mismatch" and "the reference kept no class maps" in (found.error or ""), found
    classifier = cast(Manifest, _Manifest(InputSpec(img_size=8), output=OUTPUTS["logits"]))
    found = sweep._agreement_of_files(tmp_path / "cls.npy", tmp_path / "run.npy", classifier)
    assert found.status == "mismatch" and "the reference kept class maps, not logits" in (found.error or ""), found


def test_what_cannot_be_a_class_map_is_refused(tmp_path: Path) -> None:
    writer = ClassMapWriter(ClassMapFiles.beside(tmp_path / "w.npy"), 1)
    with pytest.raises(ParityError, match="65537 classes do not fit a uint16 class map"):
        writer.add(np.zeros((1, 1, 1), dtype=np.int64), np.zeros((1, 65537, 1, 1), dtype=np.float32))
    short = ClassMapWriter(ClassMapFiles.beside(tmp_path / "s.npy"), 3)
    short.add(np.zeros((2, 2, 2), dtype=np.int64), np.zeros((2, 3, 2, 2), dtype=np.float32))
    with pytest.raises(ParityError, match="2 class maps were predicted for 3 images"):
        short.close()


def test_other_outputs_keep_their_whole_logits(tmp_path: Path) -> None:
    images, _ = _data(tmp_path, 4, 8, 4)
    spec = InputSpec(img_size=8)
    found = predict(_Session(4).run_any, np.load(images, mmap_mode="r"), spec, OUTPUTS["depth"], tmp_path / "d.npy")
    assert found.logits is not None and np.array_equal(np.load(tmp_path / "d.npy"), found.logits)
    assert np.array_equal(found.logits, _logits(_Session(4), images, spec))
    assert not ClassMapFiles.beside(tmp_path / "d.npy").classes.exists()


def _masked(images: Path, masks: Path, classes: int) -> MaskedImages:
    return MaskedImages(np.load(images), np.load(masks), MaskLabels(classes), "synthetic")


def test_quantize_eval_masks_streamed_gives_the_numbers_of_the_whole_logits(tmp_path: Path) -> None:
    count, classes, size = 11, 5, 16
    masked = _masked(*_data(tmp_path, count, size, classes), classes)
    spec = InputSpec(img_size=size)
    fp32, int8 = _Session(classes), _Session(classes, noise=0.1)
    x = preprocess_uint8(masked.images, spec)
    expected = mask_accuracy_of_whole_logits(fp32.run_any(x), int8.run_any(x), masked)
    per_image = 2 * classes * size * size * 4  # both models' logits of one image
    for limit in (1, 3 * per_image, None):  # batches of 1; of 1, 3, 3, 3, 1; of 1 then the 10 others
        assert mask_accuracy(fp32.run_any, int8.run_any, masked, spec, limit) == expected  # exactly
    seg = expected.segmentation
    assert seg is not None and 0 < seg.min_pixel_agreement < seg.pixel_agreement < 1  # pixels flipped
    assert expected.min_cosine is not None and expected.cosine is not None
    assert expected.min_cosine < expected.cosine < 1.0 and expected.fp32_miou != expected.int8_miou
    assert expected.images == count and expected.fp32_pixels == count * (size * size - 4)


def test_quantize_eval_masks_is_scored_in_flat_memory(tmp_path: Path) -> None:
    count, classes, size = 64, 150, 128
    whole = count * classes * size * size * 4  # one model's logits: 629 MB (the old scoring held both, and more)
    masked = _masked(*_data(tmp_path, count, size, classes), classes)
    fp32, int8 = _Session(classes), _Session(classes, noise=0.05)
    found, peak = _measured(lambda: mask_accuracy(fp32.run_any, int8.run_any, masked, InputSpec(img_size=size)))
    assert peak < whole / 4, f"scoring held {peak / 2**20:.0f} MiB of {whole / 2**20:.0f} MiB of logits"
    assert found.images == count and found.int8_pixels == count * (size * size - 4) and found.int8_miou
    assert found.segmentation is not None and 0.5 < found.segmentation.pixel_agreement < 1.0, found
