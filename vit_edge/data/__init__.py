"""Datasets and preprocessing (numpy + Pillow only, usable where torch is absent)."""
from vit_edge.data.datasets import (
    DATASET_NAMES,
    FASHION_MNIST_CLASSES,
    LabelledImages,
    load_dataset,
    load_fashion_mnist,
    load_image_folder,
)
from vit_edge.data.preprocess import preprocess_uint8

__all__ = [
    "DATASET_NAMES",
    "FASHION_MNIST_CLASSES",
    "LabelledImages",
    "load_dataset",
    "load_fashion_mnist",
    "load_image_folder",
    "preprocess_uint8",
]
