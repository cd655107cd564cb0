"""Image sources as users have them, the eval transform against references that are not ours, and labels by name.

No conversion here: folders of real files (JPEG, PNG, WebP, TIFF, BMP; L, RGB, RGBA, P, CMYK, 16-bit; EXIF
rotation), decoded through vit-edge's source and compared with transformers' own PIL processors and with timm's
eval-transform arithmetic worked by hand.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vit_edge.core.errors import DataError
from vit_edge.core.types import InputSpec
from vit_edge.data import DataOptions, load_dataset, match_labels, open_images, prepare_images
from vit_edge.data.labels import imagenet_classes
from vit_edge.data.preprocess import eval_transform, preprocess_uint8, resized_size

FMNIST_NAMES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                "Ankle boot")


def _photo(width: int, height: int, seed: int = 0, mode: str = "RGB") -> Image.Image:
    """A smooth, photo-like image (a gradient plus low-frequency structure), so resampling differences show."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, size=(6, 8, 3), dtype=np.uint8)
    image = Image.fromarray(coarse).resize((width, height), Image.Resampling.BICUBIC)
    return image.convert(mode)


# -- the eval transform against timm's arithmetic (worked by hand) ------------------------------------------------
@pytest.mark.parametrize("size, crop_pct, photo, resized, box", [
    # 224 / 0.9 = 248.9 → floor 248 (not round: 249); 500×375 → short side 248, long int(248·500/375) = 330
    (224, 0.9, (500, 375), (330, 248), (53, 12)),
    # 224 / 0.875 = 256; portrait 333×500 → 256 × int(256·500/333) = 384; margins (0, 80)
    (224, 0.875, (333, 500), (256, 384), (16, 80)),
    # crop_pct 1: a 640×427 photo → 335 × 224; margin 111 → round(55.5) = 56 (Python rounds half to even)
    (224, 1.0, (640, 427), (335, 224), (56, 0)),
    # 384 / 1.0 on a 1600×1200 photo: 512 × 384
    (384, 1.0, (1600, 1200), (512, 384), (64, 0)),
])
def test_timm_eval_transform_sizes(size: int, crop_pct: float, photo: tuple[int, int], resized: tuple[int, int],
                                   box: tuple[int, int]) -> None:
    spec = InputSpec(img_size=size, crop_pct=crop_pct)
    assert resized_size(*photo, spec) == resized
    image = _photo(*photo)
    manual = image.resize(resized, Image.Resampling.BICUBIC).crop((box[0], box[1], box[0] + size, box[1] + size))
    np.testing.assert_array_equal(np.asarray(eval_transform(image, spec)), np.asarray(manual))


def test_squash_resizes_both_sides_then_crops() -> None:
    spec = InputSpec(img_size=224, crop_pct=0.875, crop_mode="squash", crop_offset="floor")
    assert resized_size(640, 427, spec) == (256, 256)
    assert eval_transform(_photo(640, 427), spec).size == (224, 224)


def test_bad_crop_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="crop_mode"):
        InputSpec(img_size=224, crop_mode="border")


# -- against transformers' PIL image processors ------------------------------------------------------------------
def _hf_spec(processor_config: dict, base: InputSpec) -> InputSpec:
    from vit_edge.reading.hf_compat import _spec_from_preprocessor

    return _spec_from_preprocessor(processor_config, base)


@pytest.mark.parametrize("name", ["vit", "deit", "clip"])
def test_hf_processor_specs_match_transformers_pixel_for_pixel(name: str) -> None:
    transformers = pytest.importorskip("transformers")
    configs = {
        "vit": ("ViTImageProcessorPil", {"size": {"height": 224, "width": 224}, "resample": 2, "do_center_crop": False,
                                          "image_mean": [0.5] * 3, "image_std": [0.5] * 3}),
        "deit": ("DeiTImageProcessorPil", {"size": {"height": 256, "width": 256}, "crop_size": {"height": 224,
                                            "width": 224}, "resample": 3, "do_center_crop": True,
                                            "image_mean": [0.485, 0.456, 0.406], "image_std": [0.229, 0.224, 0.225]}),
        "clip": ("CLIPImageProcessorPil", {"size": {"shortest_edge": 224}, "crop_size": {"height": 224, "width": 224},
                                            "resample": 3, "do_center_crop": True,
                                            "image_mean": [0.4815, 0.4578, 0.4082],
                                            "image_std": [0.2686, 0.2613, 0.2758]}),
    }
    class_name, config = configs[name]
    processor = getattr(transformers, class_name)(**config)
    spec = _hf_spec(config, InputSpec(img_size=224))
    # odd margins on both axes, portrait and landscape, a grayscale and an RGBA photo
    photos = [_photo(641, 427, 1), _photo(333, 501, 2), _photo(1024, 769, 3, "L"), _photo(300, 300, 4, "RGBA")]
    for photo in photos:
        theirs = processor(photo.convert("RGB"), return_tensors="np")["pixel_values"]
        ours = preprocess_uint8(np.asarray(eval_transform(photo.convert("RGB"), spec))[None], spec)
        np.testing.assert_allclose(ours, theirs, atol=2e-6, err_msg=f"{name} on a {photo.size} {photo.mode} photo")


# -- sources -----------------------------------------------------------------------------------------------------
def _save(image: Image.Image, path: Path, **kwargs: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, **kwargs)
    return path


def _mixed_tree(root: Path) -> Path:
    """Class folders named like the model's classes, every image another size, format and mode."""
    _save(_photo(640, 480, 1), root / "Sneaker" / "a.jpg", quality=90)
    _save(_photo(300, 500, 2, "L"), root / "Sneaker" / "B.PNG")
    _save(_photo(200, 200, 3, "RGBA"), root / "Sneaker" / "c.webp")
    _save(_photo(120, 90, 4).convert("P"), root / "Bag" / "d.gif")
    _save(_photo(333, 222, 5, "CMYK"), root / "Bag" / "e.tiff")
    _save(_photo(64, 48, 6), root / "Bag" / "f.bmp")
    sixteen = Image.fromarray(np.asarray(_photo(90, 60, 7, "L"), dtype=np.uint16) * 257)
    assert sixteen.mode.startswith("I;16")
    _save(sixteen, root / "Ankle_boot" / "g.png")
    (root / "Ankle_boot" / "notes.txt").write_text("not an image, ignored")
    (root / "Ankle_boot" / ".DS_Store").write_bytes(b"\0\1")
    return root


def test_a_mixed_tree_reads_every_format_and_mode(tmp_path: Path) -> None:
    source = open_images(_mixed_tree(tmp_path / "shop"))
    assert source.layout == "class folders" and len(source) == 7
    assert source.label_names == ("Ankle_boot", "Bag", "Sneaker")
    for channels, mode in ((3, "RGB"), (1, "L")):
        spec = InputSpec(img_size=28, channels=channels, mean=(0.5,) * channels, std=(0.5,) * channels)
        prepared = prepare_images(source, spec)
        assert prepared.images.shape == ((7, 28, 28, 3) if channels == 3 else (7, 28, 28)), mode
    sixteen = np.asarray(source.read(0, "L"))
    assert 30 < sixteen.mean() < 225  # 16-bit values scaled to 8 bits, not clipped to white


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    image = _photo(60, 30, 8)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    _save(image, tmp_path / "flat" / "rotated.jpg", exif=exif.tobytes(), quality=95)
    source = open_images(tmp_path / "flat")
    assert source.layout == "flat folder" and source.labels is None
    assert source.read(0, "RGB").size == (30, 60)


def test_labels_are_matched_by_name_not_folder_order(tmp_path: Path) -> None:
    source = open_images(_mixed_tree(tmp_path / "shop"))
    match = match_labels(source, FMNIST_NAMES, 10)
    # sorted folders are Ankle_boot, Bag, Sneaker: by position they would be 0, 1, 2
    assert sorted(set(match.labels.tolist())) == [7, 8, 9]
    assert match.labels.tolist() == [9, 8, 8, 8, 7, 7, 7]
    assert "by class name" in match.how and "3 of 10" in match.how


def test_unmatched_names_missing_names_and_duplicates_are_refused(tmp_path: Path) -> None:
    root = _mixed_tree(tmp_path / "shop")
    _save(_photo(40, 40, 9), root / "Sandals" / "x.jpg")
    with pytest.raises(DataError, match="'Sandals'.*--class-names"):
        match_labels(open_images(root), FMNIST_NAMES, 10)
    with pytest.raises(DataError, match="no class names"):
        match_labels(open_images(root), (), 10)
    with pytest.raises(DataError, match="names 10 classes but the model has 12"):
        match_labels(open_images(root), FMNIST_NAMES, 12)
    twins = tmp_path / "twins"
    _save(_photo(40, 40, 1), twins / "ankle boot" / "a.jpg")
    _save(_photo(40, 40, 2), twins / "Ankle_Boot" / "b.jpg")
    with pytest.raises(DataError, match="'Ankle_Boot' and 'ankle boot', which read as one class"):
        match_labels(open_images(twins), FMNIST_NAMES, 10)
    _save(_photo(40, 40, 1), tmp_path / "digits" / "3" / "a.jpg")
    _save(_photo(40, 40, 2), tmp_path / "digits" / "03" / "b.jpg")
    with pytest.raises(DataError, match="same model class"):
        match_labels(open_images(tmp_path / "digits"), (), 10)
    with pytest.raises(DataError, match="no labels"):
        match_labels(open_images(tmp_path / "shop" / "Bag"), FMNIST_NAMES, 10)


def test_imagenet_synset_folders_map_to_the_standard_order(tmp_path: Path) -> None:
    table = imagenet_classes()
    assert len(table) == 1000 and table[0][0] == "n01440764" and table[999][0] == "n15075141"
    _save(_photo(50, 40, 1), tmp_path / "val" / "n15075141" / "x.JPEG")
    _save(_photo(50, 40, 2), tmp_path / "val" / "n01440764" / "y.JPEG")
    _save(_photo(50, 40, 3), tmp_path / "val" / "goldfish" / "z.JPEG")
    match = match_labels(open_images(tmp_path / "val"), (), 1000)
    assert match.labels.tolist() == [1, 0, 999]  # goldfish, tench, toilet tissue
    with pytest.raises(DataError, match="no class names"):
        match_labels(open_images(tmp_path / "val"), (), 10)


def test_numeric_folders_and_class_names_file(tmp_path: Path) -> None:
    _save(_photo(50, 40, 1), tmp_path / "digits" / "3" / "x.png")
    _save(_photo(50, 40, 2), tmp_path / "digits" / "0" / "y.png")
    assert match_labels(open_images(tmp_path / "digits"), (), 5).labels.tolist() == [0, 3]
    names = tmp_path / "names.txt"
    names.write_text("# output order\nzero\none\ntwo\nthree\nfour\n")
    _save(_photo(50, 40, 1), tmp_path / "named" / "three" / "x.png")
    options = DataOptions(class_names=str(names))
    spec = InputSpec(img_size=16)
    data = load_dataset(tmp_path / "named", spec, num_classes=5, options=options)
    assert data.labels.tolist() == [3] and str(names) in data.labels_from


def test_list_files_with_indices_names_and_no_labels(tmp_path: Path) -> None:
    _save(_photo(70, 50, 1), tmp_path / "imgs" / "a b.jpg")
    _save(_photo(50, 70, 2), tmp_path / "imgs" / "c.png")
    (tmp_path / "val.txt").write_text("imgs/a b.jpg 8\n# a comment\n\nimgs/c.png 7\n")
    source = open_images(tmp_path / "val.txt")
    assert source.layout == "list file" and len(source) == 2 and source.label_names is None
    assert match_labels(source, FMNIST_NAMES, 10).labels.tolist() == [8, 7]
    (tmp_path / "named.csv").write_text("path,label\nimgs/c.png,Sneaker\nimgs/a b.jpg,Bag\n")
    assert match_labels(open_images(tmp_path / "named.csv"), FMNIST_NAMES, 10).labels.tolist() == [7, 8]
    (tmp_path / "bare.txt").write_text("imgs/a b.jpg\nimgs/c.png\n")
    assert open_images(tmp_path / "bare.txt").labels is None
    (tmp_path / "mixed.txt").write_text("imgs/a b.jpg 1\nimgs/c.png\n")
    with pytest.raises(DataError, match="some lines have a label"):
        open_images(tmp_path / "mixed.txt")
    (tmp_path / "big.txt").write_text("imgs/c.png 10\n")
    with pytest.raises(DataError, match="label 10, but the model has 10 outputs"):
        match_labels(open_images(tmp_path / "big.txt"), FMNIST_NAMES, 10)


def test_take_spreads_over_every_class(tmp_path: Path) -> None:
    for name in ("a", "b", "c", "d"):
        for i in range(25):
            _save(_photo(20, 20, i), tmp_path / "tree" / name / f"{i:03d}.png")
    subset = open_images(tmp_path / "tree").take(8)
    assert subset.labels is not None and sorted(set(subset.labels.tolist())) == [0, 1, 2, 3]


@pytest.mark.parametrize("bad, message", [
    ("corrupt", "cannot read image"),
    ("empty", "is empty"),
    ("text", "cannot read image"),
    ("fifo", "not a regular file"),
])
def test_bad_files_stop_in_one_line_or_are_counted(tmp_path: Path, bad: str, message: str) -> None:
    root = tmp_path / "data"
    _save(_photo(40, 30, 1), root / "Bag" / "good.jpg")
    target = root / "Bag" / "bad.jpg"
    if bad == "corrupt":
        target.write_bytes((root / "Bag" / "good.jpg").read_bytes()[:200])
    elif bad == "empty":
        target.write_bytes(b"")
    elif bad == "text":
        target.write_text("this is not a JPEG\n")
    else:
        os.mkfifo(target)
    spec = InputSpec(img_size=16, class_names=FMNIST_NAMES)
    with pytest.raises(DataError, match=message):
        load_dataset(root, spec, num_classes=10, options=DataOptions())
    kept = load_dataset(root, spec, num_classes=10, options=DataOptions(skip_unreadable=True))
    assert len(kept) == 1 and kept.skipped == 1 and "1 unreadable files skipped" in kept.describe()


def test_a_decompression_bomb_is_one_line(tmp_path: Path) -> None:
    _save(_photo(300, 300, 1), tmp_path / "bomb" / "x.png")
    source = open_images(tmp_path / "bomb", DataOptions(max_image_pixels=1000))
    with pytest.raises(DataError, match="Pillow's safety limit.*--max-image-pixels"):
        source.read(0, "RGB")
    assert open_images(tmp_path / "bomb").read(0, "RGB").size == (300, 300)


def test_folder_shapes_that_cannot_be_read(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no images in"):
        open_images(tmp_path / "empty")
    _save(_photo(20, 20, 1), tmp_path / "both" / "cls" / "a.png")
    _save(_photo(20, 20, 2), tmp_path / "both" / "loose.png")
    with pytest.raises(DataError, match="beside its class folders"):
        open_images(tmp_path / "both")
    loop = tmp_path / "loop" / "cls"
    _save(_photo(20, 20, 3), loop / "a.png")
    os.symlink(loop, loop / "again")
    with pytest.raises(DataError, match="symbolic link loop"):
        open_images(tmp_path / "loop")
    with pytest.raises(DataError, match="neither a folder"):
        open_images(tmp_path / "missing")
    (tmp_path / "notes.md").write_text("x")
    with pytest.raises(DataError, match="not a folder, a list file"):
        open_images(tmp_path / "notes.md")


def test_arrays_at_the_input_size_are_taken_as_prepared(tmp_path: Path) -> None:
    images = np.random.default_rng(0).integers(0, 256, size=(5, 28, 28), dtype=np.uint8)
    np.savez(tmp_path / "prepared.npz", images=images, labels=np.arange(5))
    spec = InputSpec(img_size=28, channels=1, mean=(0.5,), std=(0.5,), crop_pct=0.875)
    data = load_dataset(tmp_path / "prepared.npz", spec, num_classes=10)
    np.testing.assert_array_equal(data.images, images)  # not resized to 32 and cropped again
    assert data.labels.tolist() == [0, 1, 2, 3, 4]
