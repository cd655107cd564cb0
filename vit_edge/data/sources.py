"""Image sources as users have them: class folders, a flat folder, a list file, arrays, a named dataset.

A source knows its images and, where it has them, its own labels (folder or list-file names, or indices). Nothing
is decoded until read, and `image_batches` decodes a batch at a time through the model's eval transform, so memory
stays bounded whatever the folder's size. Matching the source's labels to the model's classes is `labels.py`'s job
(above this module: labels imports sources, never the other way).
"""
from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator

import numpy as np

from vit_edge.core.errors import DataError, did_you_mean
from vit_edge.data.fashion_mnist import DATASET_NAMES, FASHION_MNIST_CLASSES, read_fashion_mnist
from vit_edge.data.preprocess import eval_transform

if TYPE_CHECKING:
    from PIL import Image

    from vit_edge.core.types import InputSpec

__all__ = ["DataOptions", "ImageSource", "FileImages", "ArrayImages", "open_images", "image_batches", "fill_images",
           "decode_image", "IMAGE_SUFFIXES", "LIST_SUFFIXES", "SOURCE_HELP", "MASK_LAYOUT", "MaskedFiles",
           "scan_mask_folder", "IMAGES_DIR", "DEPTH_DIR", "DEPTH_LAYOUT", "is_depth_folder"]

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".jpe", ".bmp", ".webp", ".gif", ".tif", ".tiff", ".ppm",
                            ".pgm", ".pbm"})
LIST_SUFFIXES = frozenset({".txt", ".lst", ".csv"})
SOURCE_HELP = ("DIR/class_name/*.jpg, a flat DIR of images, a list file of 'path label' lines, .npy/.npz "
               "arrays, DIR/images + DIR/annotations (segmentation masks), or fashion-mnist")


@dataclass(frozen=True)
class DataOptions:
    """How a user's images are read and labelled (the --class-names, --skip-unreadable, --max-image-pixels flags)."""

    class_names: str | None = None  # a file of the model's class names, one a line in output order
    skip_unreadable: bool = False  # leave out (and count) files that cannot be decoded, instead of stopping
    max_image_pixels: int | None = None  # raise Pillow's decompression-bomb limit for really large photos
    depth_scale: float = 1000.0  # ground-truth depth PNGs: integers per metre (1000: millimetres; KITTI 256)

    def __post_init__(self) -> None:
        if not isinstance(self.skip_unreadable, bool):
            raise DataError(f"skip_unreadable must be True or False, not {self.skip_unreadable!r}")
        if self.max_image_pixels is not None and (not isinstance(self.max_image_pixels, int)
                                                  or self.max_image_pixels < 1):
            raise DataError(f"max_image_pixels must be a positive integer, not {self.max_image_pixels!r}")
        if (isinstance(self.depth_scale, bool) or not isinstance(self.depth_scale, (int, float))
                or not 0 < self.depth_scale < float("inf")):
            raise DataError(f"depth_scale must be a positive number of PNG units per metre, not {self.depth_scale!r}")


@dataclass(frozen=True)
class ImageSource:
    """What every source shares: where it came from, its labels (None: unlabelled) and their names.

    `label_names[i]` names label i (folder names, list-file names); when `label_names` is None the labels are
    already the model's output indices (a list file of numbers, a labelled .npz without names). Labels are taken
    as found and checked where they are used (`labels.check_labels`), so calibration never stops on them."""

    origin: str
    layout: str  # class folders | flat folder | list file | arrays | dataset
    labels: np.ndarray | None
    label_names: tuple[str, ...] | None

    def __len__(self) -> int:
        raise NotImplementedError

    def subset(self, indices: np.ndarray) -> "ImageSource":
        raise NotImplementedError

    def read(self, index: int, mode: str) -> "Image.Image":
        """Image `index` decoded and converted to the PIL `mode` ('L' or 'RGB'); DataError when it cannot be."""
        raise NotImplementedError

    def take(self, count: int | None) -> "ImageSource":
        """`count` images spread evenly over the source (a class-sorted folder's first N would be a few classes)."""
        if count is None or count >= len(self):
            return self
        if count < 1:
            raise DataError(f"asked for {count} images of {self.origin}; need at least 1")
        return self.subset(np.unique(np.linspace(0, len(self) - 1, count).round().astype(np.int64)))

    def describe(self) -> str:
        classes = f", {len(self.label_names)} classes" if self.label_names else ""
        return f"{self.origin} ({self.layout}, {len(self)} images{classes})"


@dataclass(frozen=True)
class FileImages(ImageSource):
    """Image files, decoded one at a time when read; `skip_unreadable` counts bad files instead of stopping."""

    paths: tuple[Path, ...] = ()
    skip_unreadable: bool = False
    max_pixels: int | None = None  # Pillow's decompression-bomb limit (its default when None)

    def __len__(self) -> int:
        return len(self.paths)

    def subset(self, indices: np.ndarray) -> "FileImages":
        labels = None if self.labels is None else self.labels[indices]
        return replace(self, paths=tuple(self.paths[int(i)] for i in indices), labels=labels)

    def read(self, index: int, mode: str) -> "Image.Image":
        return decode_image(self.paths[index], mode, self.max_pixels)


@dataclass(frozen=True)
class ArrayImages(ImageSource):
    """uint8 images in memory (N, H, W[, C]): Fashion-MNIST, a .npy/.npz file, an array passed to the API."""

    images: np.ndarray = field(default_factory=lambda: np.zeros((0, 1, 1), np.uint8))
    skip_unreadable: bool = False

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def subset(self, indices: np.ndarray) -> "ArrayImages":
        labels = None if self.labels is None else self.labels[indices]
        return replace(self, images=self.images[indices], labels=labels)

    def take(self, count: int | None) -> "ArrayImages":
        """The first `count` images (arrays are used in their own order, as before)."""
        if count is None or count >= len(self):
            return self
        return self.subset(np.arange(count))

    def read(self, index: int, mode: str) -> "Image.Image":
        from PIL import Image

        image = self.images[index]
        return Image.fromarray(image[..., 0] if image.ndim == 3 and image.shape[-1] == 1 else image).convert(mode)


# -- decoding ---------------------------------------------------------------------------------------------------
def decode_image(path: Path, mode: str, max_pixels: int | None = None) -> "Image.Image":
    """One file → a PIL image in `mode`, EXIF orientation applied; 16-bit and CMYK/palette/alpha made 8-bit."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        info = os.stat(path)
    except OSError as exc:
        raise DataError(f"cannot read image {path}: {exc.strerror or exc}") from exc
    if not stat.S_ISREG(info.st_mode):  # a FIFO or device would block or never end
        raise DataError(f"{path} is not a regular file (a pipe or device?); remove it from the image folder")
    if info.st_size == 0:
        raise DataError(f"image {path} is empty (0 bytes)")
    previous = Image.MAX_IMAGE_PIXELS
    if max_pixels is not None:
        Image.MAX_IMAGE_PIXELS = max_pixels
    try:
        with Image.open(path) as opened:
            opened.load()
            return _to_mode(ImageOps.exif_transpose(opened), mode)
    except Image.DecompressionBombError as exc:
        raise DataError(f"image {path} is larger than Pillow's safety limit ({exc}); pass --max-image-pixels N "
                        "if it is a real photo") from exc
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise DataError(f"cannot read image {path}: {exc}") from exc
    finally:
        Image.MAX_IMAGE_PIXELS = previous


def _to_mode(image: "Image.Image", mode: str) -> "Image.Image":
    """As torchvision's loader does (`convert('RGB')`), except 16/32-bit values are scaled, not clipped."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        array = np.asarray(image, dtype=np.float64)
        peak = 65535.0 if image.mode.startswith("I;16") or array.max(initial=0) > 255 else 255.0
        from PIL import Image

        image = Image.fromarray(np.clip(array * (255.0 / peak), 0, 255).round().astype(np.uint8), "L")
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")  # Pillow warns when a palette with transparency goes straight to RGB
    return image if image.mode == mode else image.convert(mode)


def image_batches(source: ImageSource, spec: "InputSpec", batch_size: int = 64,
                  progress: Callable[[str], None] | None = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(uint8 images at the spec's size, the source indices they came from), a batch at a time.

    Arrays already at the spec's size are taken as prepared; everything else goes through `eval_transform`. A file
    that cannot be read stops with one line, or is left out (and absent from the indices) with `skip_unreadable`."""
    from vit_edge.data.preprocess import stack_images

    mode = "L" if spec.channels == 1 else "RGB"
    prepared = isinstance(source, ArrayImages) and source.images.shape[1:3] == (spec.height, spec.width)
    total, step = len(source), max(1000, len(source) // 10)
    for start in range(0, total, batch_size):
        images, kept = [], []
        for index in range(start, min(start + batch_size, total)):
            try:
                image = source.read(index, mode)
            except DataError:
                if not getattr(source, "skip_unreadable", False):
                    raise
                continue
            images.append(np.asarray(image if prepared else eval_transform(image, spec)))
            kept.append(index)
        if progress is not None and total >= 1000 and (start // step) != ((start + batch_size) // step):
            progress(f"  decoded {min(start + batch_size, total)}/{total} images of {source.origin}")
        if images:
            yield stack_images(images, f"the images of {source.origin}"), np.asarray(kept, dtype=np.int64)


def fill_images(target: np.ndarray, source: ImageSource, spec: "InputSpec",
                progress: Callable[[str], None] | None = None) -> np.ndarray:
    """Decode `source` into `target` ((N, H, W, C) uint8: in memory or memory-mapped), from the start; returns the
    source indices of the images written (fewer than N where unreadable files were skipped). One array holds one
    size: a model of any size gets its default size here (InputSpec.fixed)."""
    kept, count = [], 0
    for batch, indices in image_batches(source, spec.fixed(), progress=progress):
        target[count : count + len(batch)] = batch.reshape(len(batch), *target.shape[1:])
        kept.append(indices)
        count += len(batch)
    return np.concatenate(kept) if kept else np.zeros(0, dtype=np.int64)


# -- opening what the user named --------------------------------------------------------------------------------
def open_images(name: "str | Path | np.ndarray | ImageSource", options: DataOptions = DataOptions()) -> ImageSource:
    """The source a user names: a dataset name, a folder, a list file, a .npy/.npz file, an array or a source."""
    if isinstance(name, ImageSource):
        return name
    if isinstance(name, np.ndarray):
        return _array_source(name, None, None, "array (in memory)")
    if not isinstance(name, (str, Path)):
        raise DataError(f"images must be named by a path or dataset name, not a {type(name).__name__}")
    text = str(name)
    if text in ("fashion-mnist", "fashion-mnist-train"):
        images, labels, origin = read_fashion_mnist("train" if text.endswith("train") else "test")
        return ArrayImages(origin, "dataset", labels, FASHION_MNIST_CLASSES, images=images)
    path = Path(text)
    if path.is_dir():
        return _scan_folder(path, options)
    if path.suffix.lower() in (".npy", ".npz"):
        return _read_arrays(path)
    if path.suffix.lower() in LIST_SUFFIXES and path.exists():
        return _read_list_file(path, options)
    if path.exists():
        raise DataError(f"{path} is not a folder, a list file (.txt/.lst/.csv) or an array file (.npy/.npz)")
    raise DataError(f"data '{text}' is neither a folder, a file nor a known dataset"
                    f"{did_you_mean(text, DATASET_NAMES)}; give {SOURCE_HELP}")


def _array_source(images: np.ndarray, labels: np.ndarray | None, names: tuple[str, ...] | None,
                  origin: str) -> ArrayImages:
    if images.ndim not in (3, 4) or images.dtype != np.uint8:
        raise DataError(f"{origin} holds {images.dtype} of shape {images.shape}; expected uint8 images (N,H,W[,C])")
    if images.ndim == 4 and images.shape[-1] not in (1, 3, 4):
        raise DataError(f"{origin} has {images.shape[-1]} channels in its last axis; expected (N,H,W,C), C 1/3/4")
    if labels is not None and labels.shape != images.shape[:1]:
        raise DataError(f"{origin}: labels of shape {labels.shape} for {len(images)} images; give one label per "
                        "image, shape (N,)")
    return ArrayImages(origin, "arrays", labels, names, images=images)


def _read_arrays(path: Path) -> ArrayImages:
    """.npy: uint8 images; .npz: 'images' (or the first array), optional 'labels' (integer indices, checked when
    used, never cast) and 'class_names'."""
    import zipfile

    if not path.is_file():
        raise DataError(f"array file {path} does not exist")
    try:
        if path.suffix.lower() == ".npy":
            return _array_source(np.load(path, allow_pickle=False), None, None, str(path))
        with np.load(path, allow_pickle=False) as bundle:
            keys = list(bundle.keys())
            if not keys:
                raise DataError(f"{path} holds no arrays")
            images = bundle["images" if "images" in keys else keys[0]]
            labels = bundle["labels"] if "labels" in keys else None
            names = tuple(str(n) for n in bundle["class_names"]) if "class_names" in keys else None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise DataError(f"cannot read array file {path}: {exc}") from exc
    return _array_source(images, labels, names, str(path))


def _image_files(folder: Path, seen: set[tuple[int, int]]) -> list[Path]:
    """Image files under `folder`, sorted, hidden names skipped, links followed once (a loop is refused)."""
    found: list[Path] = []
    for here, dirs, files in os.walk(folder, followlinks=True, onerror=_walk_error):
        info = os.stat(here)
        if (info.st_dev, info.st_ino) in seen:
            raise DataError(f"{here} leads back to a folder already read (a symbolic link loop); remove the link")
        seen.add((info.st_dev, info.st_ino))
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found += [Path(here) / f for f in sorted(files)
                  if not f.startswith(".") and Path(f).suffix.lower() in IMAGE_SUFFIXES]
    return found


def _walk_error(exc: OSError) -> None:
    raise DataError(f"cannot read folder {exc.filename}: {exc.strerror or exc}")


def _files(origin: Path, layout: str, labels: np.ndarray | None, names: tuple[str, ...] | None,
           paths: tuple[Path, ...], options: DataOptions) -> FileImages:
    return FileImages(str(origin), layout, labels, names, paths=paths, skip_unreadable=options.skip_unreadable,
                      max_pixels=options.max_image_pixels)


def _scan_folder(root: Path, options: DataOptions) -> FileImages:
    """DIR/class_name/... (labelled by folder name), a flat DIR of images (unlabelled), ADE20K's DIR/images +
    DIR/annotations (images with their masks: data/masks.py), or DIR/images + DIR/depth (photos with ground-truth
    depth: data/depth_truth.py)."""
    masked = scan_mask_folder(root, options)
    if masked is not None:
        return masked
    try:
        entries = sorted(p for p in root.iterdir() if not p.name.startswith("."))
    except OSError as exc:
        raise DataError(f"cannot read folder {root}: {exc.strerror or exc}") from exc
    seen: set[tuple[int, int]] = set()
    if is_depth_folder(root):  # images/ + depth/: the photos, their ground truth beside them (data/depth_truth.py)
        photos = _image_files(root / IMAGES_DIR, seen)
        if not photos:
            raise DataError(f"no images in {root / IMAGES_DIR}; a depth folder holds the photos in {IMAGES_DIR}/ and "
                            f"their depth maps in {DEPTH_DIR}/")
        return _files(root, DEPTH_LAYOUT, None, None, tuple(photos), options)
    loose = [p for p in entries if p.suffix.lower() in IMAGE_SUFFIXES and not p.is_dir()]
    classes = {p.name: _image_files(p, seen) for p in entries if p.is_dir()}
    classes = {name: files for name, files in classes.items() if files}
    if classes and loose:
        raise DataError(f"{root} holds {len(loose)} images (e.g. {loose[0].name}) beside its class folders; move "
                        "them into a class folder, or give a list file")
    if classes:
        names = tuple(classes)
        paths = tuple(path for files in classes.values() for path in files)
        labels = np.concatenate([np.full(len(files), i, dtype=np.int64) for i, files in enumerate(classes.values())])
        return _files(root, "class folders", labels, names, paths, options)
    if loose:
        return _files(root, "flat folder", None, None, tuple(loose), options)
    raise DataError(f"no images in {root} (looked for {', '.join(sorted(IMAGE_SUFFIXES)[:6])}, … in it and in "
                    f"its subfolders); give {SOURCE_HELP}")


def _read_list_file(path: Path, options: DataOptions) -> FileImages:
    """'path label' lines (comma-separated in a .csv); paths relative to the list file; '#' starts a comment.

    A label is an output index or a class name, read whole ('Ankle boot'); class names are numbered in sorted
    order, as class folders are, so the same images give the same classes whatever the lines' order."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read list file {path}: {exc}") from exc
    parsed = [_list_row(line, path.suffix.lower() == ".csv") for line in text.splitlines()]
    rows = [row for row in parsed if row is not None]
    if rows and rows[0][0].lower() in ("path", "file", "filename", "image"):
        rows = rows[1:]  # a csv header
    if not rows:
        raise DataError(f"list file {path} names no images")
    labelled = {len(row) == 2 for row in rows}
    if labelled == {True, False}:
        raise DataError(f"list file {path}: some lines have a label and some do not; give every line one")
    paths = tuple(_listed_path(path.parent, row[0]) for row in rows)
    if labelled == {False}:
        return _files(path, "list file", None, None, paths, options)
    labels_text = [row[1] for row in rows]
    if all(_INDEX.fullmatch(label) for label in labels_text):
        labels = np.asarray([int(label) for label in labels_text], dtype=np.int64)
        return _files(path, "list file", labels, None, paths, options)
    names = tuple(sorted(set(labels_text)))
    index = {name: i for i, name in enumerate(names)}
    labels = np.asarray([index[label] for label in labels_text], dtype=np.int64)
    return _files(path, "list file", labels, names, paths, options)


_INDEX = re.compile(r"-?[0-9]{1,18}")  # a label that is an output index (a negative one is refused when used)
# A path ends at its image suffix, so both the path and a class name after it may hold spaces.
_SUFFIX = "|".join(re.escape(suffix[1:]) for suffix in sorted(IMAGE_SUFFIXES))
_LISTED = re.compile(rf"(?P<path>.*\.(?:{_SUFFIX}))(?:\s+(?P<label>.*))?", re.IGNORECASE)


def _list_row(line: str, csv: bool) -> list[str] | None:
    """[path] or [path, label] of one list-file line (None for a blank line or a comment)."""
    line = line.strip()
    if not line or line.startswith("#"):
        return None
    if csv:
        return [p.strip() for p in line.rsplit(",", 1)]
    listed = _LISTED.fullmatch(line)
    if listed is None:  # no image suffix to end the path at: the label is the last word
        return line.rsplit(None, 1)
    return [listed["path"]] + ([listed["label"]] if listed["label"] else [])


def _listed_path(folder: Path, name: str) -> Path:
    path = Path(name)
    return path if path.is_absolute() else folder / path


# ADE20K's layout: images with segmentation masks (read here with the other layouts; checked by data/masks.py)
MASK_LAYOUT = "images + annotations (masks)"


@dataclass(frozen=True)
class MaskedFiles(FileImages):
    """Image files, each with its mask file (ADE20K's layout); unlabelled as a classifier sees it."""

    mask_paths: tuple[Path, ...] = ()

    def subset(self, indices: np.ndarray) -> "MaskedFiles":
        return replace(self, paths=tuple(self.paths[int(i)] for i in indices),
                       mask_paths=tuple(self.mask_paths[int(i)] for i in indices))


def scan_mask_folder(root: Path, options: DataOptions) -> MaskedFiles | None:
    """ROOT/images + ROOT/annotations → each image with its mask (None when `root` is not in that layout); an image
    without its mask is refused, naming the path expected."""
    images_dir, masks_dir = root / "images", root / "annotations"
    if not (images_dir.is_dir() and masks_dir.is_dir()):
        return None
    images = _image_files(images_dir, set())
    if not images:
        raise DataError(f"no images in {images_dir} (ADE20K layout: {images_dir}/NAME.jpg with "
                        f"{masks_dir}/NAME.png)")
    masks = []
    for image in images:
        mask = masks_dir / image.relative_to(images_dir).with_suffix(".png")
        if not mask.is_file():
            raise DataError(f"image {image} has no mask: expected {mask} (ADE20K layout: the same name under "
                            "annotations/, as PNG); add it, or move the image out of images/")
        masks.append(mask)
    return MaskedFiles(str(root), MASK_LAYOUT, None, None, paths=tuple(images), skip_unreadable=options.skip_unreadable,
                       max_pixels=options.max_image_pixels, mask_paths=tuple(masks))


# Ground-truth depth's layout: DIR/images + DIR/depth (read here with the other layouts; each map found and checked
# by data/depth_truth.py, which imports this module)
IMAGES_DIR, DEPTH_DIR = "images", "depth"
DEPTH_LAYOUT = "images + depth folders"  # the layout name an ImageSource of such a folder carries


def is_depth_folder(root: Path) -> bool:
    """`root` holds the two folders of the layout (anything else beside them is not read)."""
    return (root / IMAGES_DIR).is_dir() and (root / DEPTH_DIR).is_dir()
