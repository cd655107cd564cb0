"""The segmentation measures (#37) on hand-made maps, each value worked out by hand in the comments."""
from __future__ import annotations

from pathlib import Path, PurePosixPath

import numpy as np
import pytest

from vit_edge.core.errors import ParityError
from vit_edge.core.identity import Provenance
from vit_edge.core.output_kinds import OUTPUTS
from vit_edge.core.records import from_json
from vit_edge.core.segmentation_metrics import (
    CLASS_MAP_DTYPE,
    IGNORE,
    SAMPLE_IMAGES,
    ClassMapFiles,
    Confusion,
    MaskLabels,
    class_map_agreement,
    kept_files,
    mask_scores,
    pixel_agreement,
    resize_nearest,
    segmentation_against_fp32,
)


def _logits(classes: np.ndarray, num_classes: int) -> np.ndarray:
    """(B, H, W) class maps → one-hot logits (B, C, H, W) whose argmax is that map."""
    return np.moveaxis(np.eye(num_classes)[classes], -1, 1)


def test_miou_over_classes_present_with_ignored_pixels_left_out() -> None:
    target = np.array([[[0, 0, 1, IGNORE]]])
    predicted = np.array([[[0, 1, 1, 2]]])  # the ignored pixel's 2 counts nowhere
    confusion = Confusion(4)
    confusion.add(predicted, target)
    scores = confusion.scores()
    # class 0: hit 1, union 2 (target 2, predicted 1) → 0.5; class 1: hit 1, union 2 → 0.5; classes 2 and 3 absent
    assert scores.miou == pytest.approx(0.5) and scores.classes_present == 2 and scores.pixels == 3
    assert scores.pixel_accuracy == pytest.approx(2 / 3) and scores.class_iou[2] is None


def test_a_class_only_predicted_counts_as_zero() -> None:
    confusion = Confusion(3)
    confusion.add(np.array([[2, 0]]), np.array([[0, 0]]))
    # class 0: hit 1, union 2 → 0.5; class 2: predicted once, never true → IoU 0, present → mean (0.5 + 0) / 2
    assert confusion.scores().miou == pytest.approx(0.25)


def test_the_matrix_accumulates_image_by_image() -> None:
    whole, parts = Confusion(3), Confusion(3)
    rng = np.random.default_rng(0)
    target, predicted = rng.integers(0, 3, (4, 5, 5)), rng.integers(0, 3, (4, 5, 5))
    whole.add(predicted, target)
    for index in range(4):
        parts.add(predicted[index], target[index])
    assert np.array_equal(whole.matrix, parts.matrix) and whole.matrix.sum() == 100


def test_reduced_labels_as_ade20k_stores_them() -> None:
    labels = MaskLabels(150, reduce_labels=True)
    # 0 ("other") and 255 are ignored; 1 is class 0, 150 is class 149
    assert labels.classes(np.array([0, 1, 150, 255])).tolist() == [IGNORE, 0, 149, IGNORE]
    assert labels.largest_value == 150 and MaskLabels(150).largest_value == 149
    assert MaskLabels(6).classes(np.array([0, 5, 255])).tolist() == [0, 5, IGNORE]


def test_mask_labels_from_a_source_and_damaged_ones() -> None:
    def source(mask_labels: dict[str, object]) -> Provenance:
        return from_json(Provenance, {"kind": "huggingface", "id": "x", "mask_labels": mask_labels})

    assert MaskLabels.from_source(6, None) == MaskLabels(6, 255, False)
    assert MaskLabels.from_source(6, source({"reduce_labels": True, "ignore_index": 0}).mask_labels) == MaskLabels(
        6, 0, True)
    with pytest.raises(TypeError, match="ignore_index"):  # the manifest reader: one ArtifactError line
        source({"ignore_index": "255"})
    with pytest.raises(ValueError, match="ignore_index"):
        source({"ignore_index": -1})


def test_pixel_agreement_and_miou_against_fp32() -> None:
    reference = _logits(np.array([[[0, 1], [1, 1]]]), 2)
    candidate = _logits(np.array([[[0, 1], [1, 0]]]), 2)
    assert pixel_agreement(candidate, reference) == pytest.approx(0.75)
    found = segmentation_against_fp32(candidate, reference)
    # class 0: hit 1, union 2 → 0.5; class 1: hit 2, union 3 → 2/3
    assert found.pixel_agreement == pytest.approx(0.75) and found.miou_vs_fp32 == pytest.approx(7 / 12)
    with pytest.raises(ParityError, match="cannot be compared"):
        pixel_agreement(candidate, reference[:, :, :1])


def test_masks_meet_logits_of_another_size() -> None:
    masks = np.array([[[0, 1], [2, IGNORE]]])
    assert resize_nearest(masks, (4, 4)).tolist() == [[[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, -1, -1], [2, 2, -1, -1]]]
    logits = _logits(np.array([[[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 0, 0], [2, 2, 0, 0]]]), 3)
    scores = mask_scores(logits, masks)
    assert scores.miou == pytest.approx(1.0) and scores.pixels == 12  # the 4 ignored pixels left out
    with pytest.raises(ParityError, match="2 segmentation maps for 1 masks"):
        mask_scores(np.concatenate([logits, logits]), masks)


def test_class_maps_compared_in_batches_give_the_numbers_of_the_whole_logits() -> None:
    rng = np.random.default_rng(1)
    reference = rng.standard_normal((7, 5, 6, 4))
    candidate = reference + 0.7 * rng.standard_normal(reference.shape)  # many pixels flip, each image differently
    whole = segmentation_against_fp32(candidate, reference)
    got, ref = candidate.argmax(1).astype(np.uint16), reference.argmax(1).astype(np.uint16)
    for batch in (1, 3, 64):  # 7 images: uneven batches, and one batch of all
        assert class_map_agreement(got, ref, 5, batch=batch) == whole  # exactly: the same shares and counts
    assert 0 < whole.min_pixel_agreement < whole.pixel_agreement < 1


def test_class_maps_of_another_shape_or_none_are_refused() -> None:
    maps = np.zeros((2, 4, 4), dtype=np.uint16)
    with pytest.raises(ParityError, match=r"class maps of shape \(2, 4, 4\) cannot be compared .* \(2, 4, 2\)"):
        class_map_agreement(maps, maps[:, :, :2], 3)
    with pytest.raises(ParityError, match="no class maps to compare"):
        class_map_agreement(maps[:0], maps[:0], 3)


def test_class_map_files_are_named_beside_their_base() -> None:
    files = ClassMapFiles.beside(Path("/w/logits-1.npy"))
    assert files.paths == (Path("/w/logits-1.classes.npy"), Path("/w/logits-1.sample.npy"))
    assert ClassMapFiles.names(PurePosixPath("/board/run1.npy"))[0] == PurePosixPath("/board/run1.classes.npy")
    assert SAMPLE_IMAGES == 8 and np.iinfo(CLASS_MAP_DTYPE).max == 65535
    assert kept_files(Path("/w/l.npy"), OUTPUTS["segmentation"]) == ClassMapFiles.beside(Path("/w/l.npy")).paths
    assert all(kept_files(Path("/w/l.npy"), OUTPUTS[name]) == (Path("/w/l.npy"),) for name in OUTPUTS
               if name != "segmentation")  # depth maps, tokens, logits: kept whole
