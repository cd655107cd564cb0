"""Masks beside images (#37): ADE20K's layout is read as images with masks, and every mask passes the one check
(data/masks.check_mask): its image's size, a class-index mode (8-bit, 16-bit, palette), values within the model's
classes or the ignore index; each refusal is one line naming the file."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vit_edge.core.errors import DataError
from vit_edge.core.segmentation_metrics import IGNORE, MaskLabels
from vit_edge.core.types import InputSpec
from vit_edge.data.masks import MASK_LAYOUT, MaskedFiles, check_mask, load_masked
from vit_edge.data.sources import DataOptions, open_images


def _ade(root: Path, count: int = 3, size: tuple[int, int] = (40, 30)) -> Path:
    """ROOT/images/validation/i.jpg and ROOT/annotations/validation/i.png (ADE20K's own nesting)."""
    (root / "images" / "validation").mkdir(parents=True)
    (root / "annotations" / "validation").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for index in range(count):
        Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(
            root / "images" / "validation" / f"ADE_val_{index}.jpg")
        mask = np.zeros((size[1], size[0]), dtype=np.uint8)
        mask[:, size[0] // 2:] = index + 1  # left half 0, right half class index + 1
        Image.fromarray(mask).save(root / "annotations" / "validation" / f"ADE_val_{index}.png")
    return root


def test_the_layout_is_read_as_images_with_masks(tmp_path: Path) -> None:
    source = open_images(_ade(tmp_path / "ade"))
    assert isinstance(source, MaskedFiles) and source.layout == MASK_LAYOUT and source.labels is None
    assert [p.stem for p in source.paths] == [p.stem for p in source.mask_paths] == [f"ADE_val_{i}" for i in range(3)]
    assert source.take(2).mask_paths == (source.mask_paths[0], source.mask_paths[2])  # pairs stay pairs


def test_masks_follow_the_images_geometry(tmp_path: Path) -> None:
    source = open_images(_ade(tmp_path / "ade"))
    assert isinstance(source, MaskedFiles)
    spec = InputSpec(img_size=20, crop_mode="squash")  # 40x30 squashed to 20x20
    found = load_masked(source, spec, MaskLabels(150, reduce_labels=True))
    assert found.images.shape == (3, 20, 20, 3) and found.masks.shape == (3, 20, 20)
    # reduced labels: 0 ignored, k + 1 is class k; the right half of image i is class i
    assert (found.masks[1, :, :10] == IGNORE).all() and (found.masks[1, :, 10:] == 1).all()
    plain = load_masked(source, spec, MaskLabels(6))
    assert (plain.masks[2, :, :10] == 0).all() and (plain.masks[2, :, 10:] == 3).all()
    assert "with masks" in found.describe() and len(found.as_images()) == 3


def test_a_crop_beyond_the_image_is_ignored_not_class_zero(tmp_path: Path) -> None:
    source = open_images(_ade(tmp_path / "ade"))
    assert isinstance(source, MaskedFiles)
    padded = InputSpec(img_size=40, crop_pct=1.25)  # resize the short side to 32, center-crop 40: black padding
    found = load_masked(source, padded, MaskLabels(6))
    assert (found.masks[:, 0, :] == IGNORE).all() and (found.masks[:, 20, :] != IGNORE).any()


def test_a_missing_mask_is_refused_naming_the_path(tmp_path: Path) -> None:
    root = _ade(tmp_path / "ade")
    (root / "annotations" / "validation" / "ADE_val_1.png").unlink()
    with pytest.raises(DataError, match=r"ADE_val_1.jpg has no mask: expected .*annotations/validation/ADE_val_1.png"):
        open_images(root)


def _mask(mode: str, values: np.ndarray) -> Image.Image:
    if mode == "I;16":
        return Image.fromarray(values.astype(np.uint16))
    return Image.fromarray(values.astype(np.uint8)).convert(mode) if mode == "RGB" else Image.fromarray(
        values.astype(np.uint8), mode)


def test_each_mask_is_checked_in_one_line() -> None:
    labels = MaskLabels(150)
    good = np.zeros((4, 6), dtype=np.int64)
    assert check_mask("m.png", _mask("L", good), (6, 4), labels).shape == (4, 6)
    assert check_mask("m.png", _mask("I;16", good + 149), (6, 4), labels).max() == 149  # 16-bit masks are read
    with pytest.raises(DataError, match=r"mask m.png is 6x4 but its image is 8x4"):
        check_mask("m.png", _mask("L", good), (8, 4), labels)
    with pytest.raises(DataError, match="mask m.png is a RGB image; a mask holds one class index per pixel"):
        check_mask("m.png", _mask("RGB", good), (6, 4), labels)
    wrong = good.copy()
    wrong[0, :2] = 300  # class 300 in a 150-class model, in a 16-bit mask
    with pytest.raises(DataError, match="mask m.png has value 300 at 2 pixels, but the model has 150 classes"):
        check_mask("m.png", _mask("I;16", wrong), (6, 4), labels)
    ignored = good.copy()
    ignored[0, 0] = 255
    assert check_mask("m.png", _mask("L", ignored), (6, 4), labels)[0, 0] == 255  # the ignore index is no class
    with pytest.raises(DataError, match="has value 150"):  # 150 names class 149 only with reduced labels
        check_mask("m.png", _mask("L", good + 150), (6, 4), labels)
    assert check_mask("m.png", _mask("L", good + 150), (6, 4), MaskLabels(150, reduce_labels=True)).max() == 150


def test_a_mask_of_another_size_stops_the_load(tmp_path: Path) -> None:
    root = _ade(tmp_path / "ade")
    Image.fromarray(np.zeros((10, 10), dtype=np.uint8)).save(root / "annotations" / "validation" / "ADE_val_2.png")
    source = open_images(root, DataOptions())
    assert isinstance(source, MaskedFiles)
    with pytest.raises(DataError, match="ADE_val_2.png is 10x10 but its image is 40x30"):
        load_masked(source, InputSpec(img_size=20, crop_mode="squash"), MaskLabels(6))


def test_images_and_masks_are_memory_mapped_in_a_folder_that_goes_with_them(tmp_path: Path,
                                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """ADE20K's 2,000 at 512² are about 3.5 GB: mapped from a scratch folder, not held in memory; the folder goes
    when the MaskedImages does, and at once when a mask is refused."""
    import gc
    import tempfile

    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    source = open_images(_ade(tmp_path / "ade"))
    assert isinstance(source, MaskedFiles)
    found = load_masked(source, InputSpec(img_size=20, crop_mode="squash"), MaskLabels(150, reduce_labels=True))
    assert isinstance(found.images, np.memmap) and isinstance(found.masks, np.memmap)
    assert found.masks.dtype == np.int32 and len(list(scratch.glob("vit-edge-masks-*/*.npy"))) == 2
    del found
    gc.collect()
    assert list(scratch.iterdir()) == []
    with pytest.raises(DataError, match="has value 2 at"):  # a model of 2 classes: refused, the folder gone
        load_masked(source, InputSpec(img_size=20, crop_mode="squash"), MaskLabels(2))
    assert list(scratch.iterdir()) == []
