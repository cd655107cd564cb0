"""Images as users have them (numpy + Pillow only, usable where torch is absent).

`sources` finds them (folders, list files, arrays, dataset names), `iterables` reads an iterable of batches (a
generator, a DataLoader, `Dataset(source, transform)` as NNCF takes it), `labels` checks every source's labels
(`check_labels`) and matches their classes to a model's, `preprocess` is the model's eval transform,
`fashion_mnist` the one named dataset, `datasets` puts them together for one model (`batch` for a run's inputs).
Bottom-up: preprocess, fashion_mnist < sources < labels, iterables < datasets; no module imports one above it.
"""
from vit_edge.data.datasets import (
    DATASET_NAMES,
    FASHION_MNIST_CLASSES,
    ImageData,
    LabelledImages,
    load_dataset,
    load_fashion_mnist,
    load_image_folder,
    prepare_images,
)
from vit_edge.data.iterables import Dataset
from vit_edge.data.labels import LabelMatch, check_labels, match_labels, read_class_names
from vit_edge.data.preprocess import eval_transform, preprocess_uint8
from vit_edge.data.sources import ArrayImages, DataOptions, FileImages, ImageSource, image_batches, open_images

__all__ = [
    "DATASET_NAMES",
    "FASHION_MNIST_CLASSES",
    "ArrayImages",
    "DataOptions",
    "Dataset",
    "FileImages",
    "ImageData",
    "ImageSource",
    "LabelMatch",
    "LabelledImages",
    "check_labels",
    "eval_transform",
    "image_batches",
    "load_dataset",
    "load_fashion_mnist",
    "load_image_folder",
    "match_labels",
    "open_images",
    "prepare_images",
    "preprocess_uint8",
    "read_class_names",
]
